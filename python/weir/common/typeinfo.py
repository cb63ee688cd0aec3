"""Record types (PyFlink's ``Types``), each an Arrow type underneath.

Weir's streams are typed: a function that changes a record's shape says what it returns with
``output_type=Types.ROW_NAMED([...], [...])`` (or ``Types.TUPLE``, ``Types.ROW``, or one basic
type for a single field named ``f0``), as PyFlink asks for typed results.
"""

from __future__ import annotations

from typing import List, Sequence

import pyarrow as pa


class TypeInformation:
    """One field's or one record's type."""

    def __init__(self, name: str, arrow: pa.DataType):
        self._name = name
        self._arrow = arrow

    def arrow_type(self) -> pa.DataType:
        return self._arrow

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypeInformation) and other._arrow == self._arrow

    def __hash__(self) -> int:
        return hash(str(self._arrow))

    def __repr__(self) -> str:
        return self._name


class RowTypeInfo(TypeInformation):
    """A record of named fields."""

    def __init__(self, types: Sequence[TypeInformation], names: Sequence[str]):
        types, names = list(types), list(names)
        if len(types) != len(names):
            raise ValueError(f"{len(names)} field names for {len(types)} types")
        for t in types:
            if not isinstance(t, TypeInformation):
                raise TypeError(f"field types must be Types.*(), not {t!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in {names}")
        self._types = types
        self._names = names
        arrow = pa.struct([pa.field(n, t.arrow_type()) for n, t in zip(names, types)])
        super().__init__("ROW<" + ", ".join(f"{n} {t!r}" for n, t in zip(names, types)) + ">", arrow)

    def get_field_names(self) -> List[str]:
        return list(self._names)

    def get_field_types(self) -> List[TypeInformation]:
        return list(self._types)

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t.arrow_type()) for n, t in zip(self._names, self._types)])


class Types:
    """PyFlink's ``Types``: ``Types.STRING()``, ``Types.LONG()``, ``Types.ROW_NAMED(...)``…"""

    @staticmethod
    def STRING() -> TypeInformation:
        return TypeInformation("STRING", pa.string())

    @staticmethod
    def BOOLEAN() -> TypeInformation:
        return TypeInformation("BOOLEAN", pa.bool_())

    @staticmethod
    def INT() -> TypeInformation:
        return TypeInformation("INT", pa.int32())

    @staticmethod
    def LONG() -> TypeInformation:
        return TypeInformation("LONG", pa.int64())

    @staticmethod
    def FLOAT() -> TypeInformation:
        return TypeInformation("FLOAT", pa.float32())

    @staticmethod
    def DOUBLE() -> TypeInformation:
        return TypeInformation("DOUBLE", pa.float64())

    @staticmethod
    def SQL_TIMESTAMP() -> TypeInformation:
        return TypeInformation("SQL_TIMESTAMP", pa.timestamp("ms"))

    @staticmethod
    def ROW_NAMED(field_names: Sequence[str], field_types: Sequence[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types, field_names)

    @staticmethod
    def ROW(field_types: Sequence[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types, [f"f{i}" for i in range(len(field_types))])

    @staticmethod
    def TUPLE(field_types: Sequence[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types, [f"f{i}" for i in range(len(field_types))])

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        raise TypeError(
            "Weir's streams are Arrow-typed: give the record's fields with Types.ROW_NAMED / "
            "Types.TUPLE instead of pickled objects"
        )


def schema_of(type_info: object, what: str) -> pa.Schema:
    """The Arrow schema of a record type: a row type's fields, or one basic type as ``f0``."""
    if isinstance(type_info, RowTypeInfo):
        return type_info.schema()
    if isinstance(type_info, TypeInformation):
        return pa.schema([pa.field("f0", type_info.arrow_type())])
    if isinstance(type_info, pa.Schema):
        return type_info
    raise TypeError(f"{what}: output_type must be Types.*() or a pyarrow.Schema, not {type_info!r}")
