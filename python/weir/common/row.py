"""Rows as Python functions see them (PyFlink's ``Row``)."""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Dict, Sequence, Tuple, Type


class Row(tuple):
    """A record: a tuple whose fields also have names.

    ``row.price``, ``row["price"]`` and ``row[1]`` read the same field; ``Row(1, "a")`` makes a
    row by position, ``Row(id=1, name="a")`` one with names, as in PyFlink. A row compares
    equal to the tuple of its values.
    """

    __slots__ = ()
    _names: Tuple[str, ...] = ()
    _index: Dict[str, int] = {}

    def __new__(cls, *values: Any, **named: Any) -> "Row":
        if values and named:
            raise ValueError("Row takes values by position or by name, not both")
        if named:
            return tuple.__new__(_class_for(tuple(named)), named.values())
        return tuple.__new__(cls, values)

    @staticmethod
    def _make(names: Tuple[str, ...], values: Sequence[Any]) -> "Row":
        return tuple.__new__(_class_for(names), values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return tuple.__getitem__(self, self._names.index(name))
        except ValueError:
            raise AttributeError(f"Row has no field '{name}' (fields: {', '.join(self._names) or 'unnamed'})") from None

    def __getitem__(self, item: Any) -> Any:  # type: ignore[override]
        if isinstance(item, str):
            try:
                return tuple.__getitem__(self, self._index[item])
            except KeyError:
                raise KeyError(f"Row has no field '{item}' (fields: {', '.join(self._names) or 'unnamed'})") from None
        return tuple.__getitem__(self, item)

    def as_dict(self, recursive: bool = False) -> Dict[str, Any]:
        """The fields by name."""
        if not self._names:
            raise TypeError("a Row made by position has no field names")
        out = dict(zip(self._names, self))
        if recursive:
            out = {k: v.as_dict(True) if isinstance(v, Row) else v for k, v in out.items()}
        return out

    def get_fields_by_names(self, names: Sequence[str]) -> list:
        """The values of the named fields, in that order."""
        return [self[n] for n in names]

    def __repr__(self) -> str:
        if self._names:
            return "Row(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._names, self)) + ")"
        return "Row(" + ", ".join(repr(v) for v in self) + ")"

    def __reduce__(self):
        if self._names:
            return (_rebuild, (self._names, tuple(self)))
        return (Row, tuple(self))


# One subclass per tuple of field names, holding the names once for all its rows.
_CLASSES: Dict[Tuple[str, ...], Type[Row]] = {}


def _class_for(names: Tuple[str, ...]) -> Type[Row]:
    cls = _CLASSES.get(names)
    if cls is None:
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in {names}")
        attrs: Dict[str, Any] = {"__slots__": (), "_names": names, "_index": {n: i for i, n in enumerate(names)}}
        # A field is a property reading its position (as a namedtuple's are): `row.price` costs
        # a C call, not a search of the names. A field named like one of Row's own methods, or
        # starting with "_", is read by `row["name"]` (or `__getattr__` when nothing shadows it).
        for i, n in enumerate(names):
            if not n.startswith("_") and n not in _OWN:
                attrs[n] = property(itemgetter(i))
        cls = type("Row", (Row,), attrs)
        _CLASSES[names] = cls
    return cls


_OWN = frozenset(dir(Row))


def _rebuild(names: Tuple[str, ...], values: tuple) -> Row:
    return Row._make(names, values)
