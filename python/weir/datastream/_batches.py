"""Between Arrow batches and the rows and values Python functions see: each wrapper runs a
user function over one batch (the engine calls it once per batch with the GIL held) and names
the function, its file and line, and the record when the function or its result fails."""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import pyarrow as pa

from weir.common.row import Row, _class_for


class UserFunctionError(Exception):
    """A user function failed on a record (or returned something its output type cannot hold)."""


def where(fn: Any) -> str:
    """``name (file:line)`` of a function, or of a function object's class."""
    target = fn
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        target = type(fn)
    name = getattr(target, "__qualname__", None) or repr(fn)
    try:
        file = inspect.getsourcefile(target) or "?"
        line = inspect.getsourcelines(target)[1]
        return f"{name} ({file}:{line})"
    except (OSError, TypeError):
        return name


def failure(what: str, fn_where: str, record: Any, e: BaseException) -> UserFunctionError:
    """The error of ``fn`` failing in ``what`` on ``record``: the innermost line of the user's
    own code that raised, and the exception."""
    tb = e.__traceback__
    line = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.endswith(("/weir/datastream/_batches.py", "/weir/datastream/data_stream.py")):
            line = f" at {code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    text = repr(record)
    if len(text) > 300:
        text = text[:300] + "…"
    return UserFunctionError(f"{what} function {fn_where} raised {type(e).__name__}: {e}{line}, on record {text}")


def rows(batch: pa.RecordBatch) -> List[Row]:
    """The batch's records as rows with its field names."""
    names = tuple(batch.schema.names)
    columns = [c.to_pylist() for c in batch.columns]
    if not columns:
        return [Row._make(names, ()) for _ in range(batch.num_rows)]
    make = partial(tuple.__new__, _class_for(names))
    return list(map(make, zip(*columns)))


def as_row(value: Any, names: tuple) -> Row:
    """A function's result as a row of ``names`` (a tuple or list by position, a dict or a
    named row by name), so the next call sees fields by name as it did the input's."""
    if isinstance(value, Row) and value._names == names:
        return value
    if isinstance(value, dict):
        return Row._make(names, [value.get(n) for n in names])
    if isinstance(value, Row) and value._names:
        return Row._make(names, [value[n] for n in names])
    if isinstance(value, (tuple, list)) and len(value) == len(names):
        return Row._make(names, tuple(value))
    raise TypeError(f"returned {value!r}, which is not a record of fields {', '.join(names)}")


def _fields_of(value: Any, names: Tuple[str, ...]) -> Sequence[Any]:
    """A function's result as the values of fields ``names``."""
    if isinstance(value, Row) and value._names:
        if value._names == names:
            return value
        if all(n in value._index for n in names):
            return [value[name] for name in names]
    if isinstance(value, dict):
        return [value.get(name) for name in names]
    if isinstance(value, (tuple, list)):
        if len(names) == 1 and len(value) != 1:
            return [value]
        return value
    return [value]


def to_batch(values: Sequence[Any], schema: pa.Schema, what: str, fn_where: str) -> pa.RecordBatch:
    """A batch of ``schema`` from a function's results: rows, tuples, lists or dicts, or single
    values when the schema has one field."""
    names = tuple(schema.names)
    width = len(names)
    records = []
    append = records.append
    for v in values:
        fields = v if getattr(v, "_names", None) == names else _fields_of(v, names)
        if len(fields) != width:
            raise UserFunctionError(
                f"{what} function {fn_where} returned {v!r} with {len(fields)} fields; its output type has "
                f"{width}: {', '.join(names)} (pass output_type=Types.ROW_NAMED(...) for another shape)"
            )
        append(fields)
    columns: List[Any] = list(zip(*records)) if records else [[] for _ in names]
    arrays = []
    for column, field in zip(columns, schema):
        try:
            arrays.append(pa.array(column, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
            bad = next((x for x in column if not _fits(x, field.type)), None)
            raise UserFunctionError(
                f"{what} function {fn_where} returned {bad!r} for field '{field.name}' of type {field.type}: {e}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _fits(value: Any, arrow_type: pa.DataType) -> bool:
    try:
        pa.array([value], type=arrow_type)
        return True
    except Exception:
        return False


def row_map(out: Optional[pa.Schema], fn_where: str) -> Callable[[Callable, pa.RecordBatch], pa.RecordBatch]:
    def run(fn: Callable[[Row], Any], batch: pa.RecordBatch) -> pa.RecordBatch:
        results = []
        append = results.append
        for r in rows(batch):
            try:
                append(fn(r))
            except Exception as e:
                raise failure("map", fn_where, r, e) from e
        return to_batch(results, out if out is not None else batch.schema, "map", fn_where)

    return run


def row_flat_map(out: Optional[pa.Schema], fn_where: str) -> Callable[[Callable, pa.RecordBatch], pa.RecordBatch]:
    def run(fn: Callable[[Row], Iterable[Any]], batch: pa.RecordBatch) -> pa.RecordBatch:
        results: List[Any] = []
        for r in rows(batch):
            try:
                produced = fn(r)
                if produced is not None:
                    results.extend(produced)
            except Exception as e:
                raise failure("flat_map", fn_where, r, e) from e
        return to_batch(results, out if out is not None else batch.schema, "flat_map", fn_where)

    return run


def row_filter(fn_where: str) -> Callable[[Callable, pa.RecordBatch], pa.RecordBatch]:
    def run(fn: Callable[[Row], Any], batch: pa.RecordBatch) -> pa.RecordBatch:
        keep = []
        for r in rows(batch):
            try:
                keep.append(bool(fn(r)))
            except Exception as e:
                raise failure("filter", fn_where, r, e) from e
        return batch.filter(pa.array(keep, type=pa.bool_()))

    return run


class Hooks:
    """PyFlink's ``Function`` hooks of a user's function object (``target``; None for a plain
    function): ``open(runtime_context)`` before the first call, ``close()`` at the end of the
    input. The engine deep-copies the wrapper holding them per subtask, so they run once per
    subtask, each on its own copy of the object."""

    def __init__(self, target: Any):
        self.target = target
        self.opened = False

    def open_once(self) -> None:
        if not self.opened:
            self.opened = True
            open_hook = getattr(self.target, "open", None)
            if open_hook is not None:
                from weir.datastream.functions import RuntimeContext

                open_hook(RuntimeContext())

    def close(self) -> None:
        close_hook = getattr(self.target, "close", None)
        if self.opened and close_hook is not None:
            self.opened = False
            close_hook()


class PerBatch(Hooks):
    """What the engine calls per batch for one subtask of a Python operator:
    ``run(fn, batch)``, with the hooks of the function object ``fn`` is a method of."""

    def __init__(self, target: Any, fn: Callable, run: Callable[[Callable, pa.RecordBatch], pa.RecordBatch]):
        super().__init__(target)
        self.fn = fn
        self.run = run

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        self.open_once()
        return self.run(self.fn, batch)


def key_column(
    fn: Callable[[Row], Any], key_type: pa.DataType, name: str, fn_where: str
) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """The batch with one more column: ``fn``'s key of each record."""

    def run(batch: pa.RecordBatch) -> pa.RecordBatch:
        keys = []
        for r in rows(batch):
            try:
                keys.append(fn(r))
            except Exception as e:
                raise failure("key_by", fn_where, r, e) from e
        try:
            column = pa.array(keys, type=key_type)
        except Exception as e:
            raise UserFunctionError(f"key_by function {fn_where} returned keys that are not {key_type}: {e}") from None
        return pa.RecordBatch.from_arrays(
            list(batch.columns) + [column], schema=batch.schema.append(pa.field(name, key_type))
        )

    return run


def batch_map(out: Optional[pa.Schema], fn_where: str) -> Callable[[Callable, pa.RecordBatch], pa.RecordBatch]:
    def run(fn: Callable[[pa.RecordBatch], Any], batch: pa.RecordBatch) -> pa.RecordBatch:
        try:
            result = fn(batch)
        except Exception as e:
            raise failure("map_batches", fn_where, f"<batch of {batch.num_rows} rows>", e) from e
        if isinstance(result, pa.Table):
            result = result.combine_chunks()
            result = (
                result.to_batches()[0]
                if result.num_rows
                else pa.RecordBatch.from_pylist([], schema=result.schema)
            )
        if not isinstance(result, pa.RecordBatch):
            raise UserFunctionError(
                f"map_batches function {fn_where} returned {type(result).__name__}, not a pyarrow.RecordBatch"
            )
        want = out if out is not None else batch.schema
        if not result.schema.equals(want):
            raise UserFunctionError(
                f"map_batches function {fn_where} returned schema {result.schema} where {want} was declared"
                + ("" if out is not None else " (the input's; pass output_type for another)")
            )
        return result

    return run
