"""Streams (PyFlink's ``DataStream``, ``KeyedStream``, ``WindowedStream``): each method adds an
operator to the job and returns the stream it produces."""

from __future__ import annotations

import inspect
from typing import Any, Callable, List, Optional, Sequence, Union

import pyarrow as pa

from weir.common.row import Row

from weir.common.typeinfo import TypeInformation, schema_of
from weir.datastream import _batches as b
from weir.datastream.connectors import Sink
from weir.datastream.functions import (
    AggregateFunction,
    FilterFunction,
    FlatMapFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
    ProcessWindowFunction,
    ReduceFunction,
    TimeWindow,
)
from weir.datastream.window import WindowAssigner

# The column a key selector's key goes in (dropped from the records functions see).
KEY_COLUMN = "__key"


def _callable(fn: Any, method: str, kind: type) -> Callable:
    if isinstance(fn, kind):
        return getattr(fn, method)
    if callable(fn):
        return fn
    raise TypeError(f"expected a function or a {kind.__name__}, not {fn!r}")


def _per_batch(func: Any, fn: Callable, run: Callable) -> b.PerBatch:
    """``run`` for each batch with ``fn``, and the hooks of ``func`` when it is a function
    object (a ``MapFunction`` etc., or any object with ``open``/``close``)."""
    target = None if inspect.isfunction(func) or inspect.ismethod(func) else func
    return b.PerBatch(target, fn, run)


def _without_key(batch: pa.RecordBatch) -> pa.RecordBatch:
    names = batch.schema.names
    if KEY_COLUMN not in names:
        return batch
    return batch.select([n for n in names if n != KEY_COLUMN])


def _schema(output_type: Optional[TypeInformation], what: str) -> Optional[pa.Schema]:
    return None if output_type is None else schema_of(output_type, what)


class DataStream:
    """A stream of records."""

    def __init__(self, native: Any, env: Any):
        self._n = native
        self._env = env

    # -- naming -------------------------------------------------------------------------------
    def name(self, name: str) -> "DataStream":
        """Names the operator that produced this stream (metrics and state go by it)."""
        return type(self)(self._n.name(name), self._env)

    def uid(self, uid: str) -> "DataStream":
        return type(self)(self._n.uid(uid), self._env)

    def set_parallelism(self, parallelism: int) -> "DataStream":
        return type(self)(self._n.set_parallelism(parallelism), self._env)

    # -- one record at a time -----------------------------------------------------------------
    def map(self, func: Union[Callable, MapFunction], output_type: Optional[TypeInformation] = None) -> "DataStream":
        """One record out per record in. Without ``output_type`` the result has the input's
        fields."""
        fn = _callable(func, "map", MapFunction)
        where = b.where(fn)
        run = _per_batch(func, fn, b.row_map(_schema(output_type, "map"), where))
        return self._batches("map", run, output_type, where)

    def flat_map(
        self, func: Union[Callable, FlatMapFunction], output_type: Optional[TypeInformation] = None
    ) -> "DataStream":
        """Any number of records out per record in (the function returns or yields them)."""
        fn = _callable(func, "flat_map", FlatMapFunction)
        where = b.where(fn)
        run = _per_batch(func, fn, b.row_flat_map(_schema(output_type, "flat_map"), where))
        return self._batches("flat_map", run, output_type, where)

    def filter(self, func: Union[Callable, FilterFunction]) -> "DataStream":
        """The records for which the function is true."""
        fn = _callable(func, "filter", FilterFunction)
        where = b.where(fn)
        return self._batches("filter", _per_batch(func, fn, b.row_filter(where)), None, where)

    def filter_expr(self, condition: str) -> "DataStream":
        """The records for which a SQL condition holds, e.g. ``"price > 100"`` (no Python)."""
        return DataStream(self._n.filter_expr(condition), self._env)

    def select(self, *fields: str) -> "DataStream":
        """The named fields, in this order (no Python)."""
        return DataStream(self._n.select(list(fields)), self._env)

    # -- whole batches ------------------------------------------------------------------------
    def map_batches(
        self, func: Callable[[pa.RecordBatch], pa.RecordBatch], output_type: Optional[TypeInformation] = None
    ) -> "DataStream":
        """The vectorized form: ``func`` gets each ``pyarrow.RecordBatch`` as it is in the
        engine (no copy) and returns one (of the input's schema, or ``output_type``'s). A
        callable object's ``open``/``close`` run once per subtask, as a ``MapFunction``'s do."""
        if not callable(func):
            raise TypeError(f"map_batches takes a function, not {func!r}")
        where = b.where(func)
        run = _per_batch(func, func, b.batch_map(_schema(output_type, "map_batches"), where))
        return self._batches("map_batches", run, output_type, where)

    def _batches(self, kind: str, run: Callable, output_type: Optional[TypeInformation], where: str) -> "DataStream":
        schema = _schema(output_type, kind)
        label = where.split(" ", 1)[0].replace("<lambda>", "lambda")
        return DataStream(self._n.map_batches(f"{kind}:{label}", run, schema), self._env)

    # -- partitioning -------------------------------------------------------------------------
    def key_by(
        self, key_selector: Union[str, Sequence[str], Callable, KeySelector], key_type: Optional[TypeInformation] = None
    ) -> "KeyedStream":
        """Partitions by key: field names (evaluated by the engine), or a function of the record
        (``key_type`` its result's type, default STRING)."""
        if isinstance(key_selector, str):
            return KeyedStream(self._n.key_by([key_selector]), self._env, [key_selector])
        if isinstance(key_selector, (list, tuple)) and all(isinstance(k, str) for k in key_selector):
            return KeyedStream(self._n.key_by(list(key_selector)), self._env, list(key_selector))
        fn = _callable(key_selector, "get_key", KeySelector)
        where = b.where(fn)
        arrow = key_type.arrow_type() if key_type is not None else pa.string()
        native = self._n.key_by_function(
            f"key_by:{where.split(' ', 1)[0]}",
            b.key_column(fn, arrow, KEY_COLUMN, where),
            pa.schema([pa.field(KEY_COLUMN, arrow)]),
        )
        return KeyedStream(native, self._env, [KEY_COLUMN])

    def rebalance(self) -> "DataStream":
        """Round-robin to the next operator's subtasks."""
        return DataStream(self._n.rebalance(), self._env)

    def shuffle(self) -> "DataStream":
        """Randomly to the next operator's subtasks."""
        return DataStream(self._n.shuffle(), self._env)

    def broadcast(self) -> "DataStream":
        """Every record to every subtask of the next operator."""
        return DataStream(self._n.broadcast(), self._env)

    def union(self, *streams: "DataStream") -> "DataStream":
        """This stream's records and those of ``streams`` (all of one schema)."""
        return DataStream(self._n.union([s._n for s in streams]), self._env)

    # -- sinks --------------------------------------------------------------------------------
    def sink_to(self, sink: Sink) -> "DataStreamSink":
        if not isinstance(sink, Sink):
            raise TypeError(f"sink_to takes a Sink descriptor, not {sink!r}")
        name = getattr(sink, "name", None) or sink.connector
        return DataStreamSink(self._n.sink(sink.connector, name, sink.options_json()))

    add_sink = sink_to

    def print(self) -> "DataStreamSink":
        """Records to standard output as JSON lines."""
        return DataStreamSink(self._n.print())

    def execute_and_collect(self, job_name: str = "collect", limit: Optional[int] = None) -> "CollectedRecords":
        """Runs the job and returns this stream's records (as rows), for tests and small
        results; the job must end (bounded sources)."""
        collected = self._n.collect("collect")
        self._env.execute(job_name)
        rows: List[Any] = []
        for batch in collected.batches():
            rows.extend(b.rows(_without_key(batch)))
        return CollectedRecords(rows[:limit] if limit is not None else rows)


class CollectedRecords:
    """The records ``execute_and_collect`` returned: iterable, and closable as PyFlink's."""

    def __init__(self, rows: List[Any]):
        self._rows = rows

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __enter__(self) -> "CollectedRecords":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        pass


class DataStreamSink:
    """The end of a stream."""

    def __init__(self, native: Any):
        self._n = native

    def name(self, name: str) -> "DataStreamSink":
        return DataStreamSink(self._n.name(name))

    def uid(self, uid: str) -> "DataStreamSink":
        return DataStreamSink(self._n.uid(uid))

    def set_parallelism(self, parallelism: int) -> "DataStreamSink":
        return DataStreamSink(self._n.set_parallelism(parallelism))


class KeyedStream(DataStream):
    """A stream partitioned by key: each key's records go to one subtask."""

    def __init__(self, native_keyed: Any, env: Any, keys: List[str]):
        super().__init__(native_keyed.stream(), env)
        self._k = native_keyed
        self._keys = keys

    def name(self, name: str) -> "DataStream":
        return DataStream(self._n.name(name), self._env)

    def process(self, func: KeyedProcessFunction, output_type: Optional[TypeInformation] = None) -> DataStream:
        """``func.process_element(value, ctx)`` per record and ``func.on_timer(timestamp, ctx)``
        per timer, with the current key's state (``ValueState``, ``ListState``, ``MapState`` from
        ``open``'s runtime context) and timers; both return or yield records of ``output_type``."""
        if not isinstance(func, KeyedProcessFunction):
            raise TypeError(f"process takes a KeyedProcessFunction, not {func!r}")
        if output_type is None:
            raise TypeError("process needs output_type=Types...(): Weir's streams are typed")
        schema = schema_of(output_type, "process")
        wrapper = _KeyedProcessWrapper(func, schema, b.where(func))
        name = self._env._unique(f"process:{type(func).__name__}")
        return DataStream(self._k.process(name, wrapper, schema), self._env)

    def reduce(self, reduce_function: Union[Callable, ReduceFunction]) -> DataStream:
        """Flink's rolling reduce: each record is folded into its key's running value
        (``reduce(running, record)``, a record of the input's fields), which goes out; a key's
        first record goes out as it is. The running value is keyed state (checkpointed)."""
        fn = _callable(reduce_function, "reduce", ReduceFunction)
        where = b.where(fn)
        name = self._env._unique(f"reduce:{where.split(' ', 1)[0]}")
        target = reduce_function if isinstance(reduce_function, ReduceFunction) else None
        return DataStream(self._k.reduce(name, _RollingReduce(target, fn, where)), self._env)

    def window(self, window_assigner: WindowAssigner) -> "WindowedStream":
        if not isinstance(window_assigner, WindowAssigner):
            raise TypeError(f"window takes a window assigner (e.g. TumblingEventTimeWindows.of(...)), not {window_assigner!r}")
        a = window_assigner
        native = self._k.window(a.kind, a.size_ms, a.slide_ms, a.processing_time, a.time_field)
        return WindowedStream(native, self._env, self._keys)


class WindowedStream:
    """A keyed stream cut into windows: what to compute per window."""

    def __init__(self, native: Any, env: Any, keys: List[str]):
        self._w = native
        self._env = env
        self._keys = keys

    def allowed_lateness(self, time_ms: Any) -> "WindowedStream":
        from weir.common.time import millis

        return WindowedStream(self._w.allowed_lateness(millis(time_ms, "allowed_lateness")), self._env, self._keys)

    def _key(self, key: list) -> Any:
        return key[0] if len(key) == 1 else tuple(key)

    def aggregate(
        self,
        aggregate_function: AggregateFunction,
        window_function: Optional[ProcessWindowFunction] = None,
        accumulator_type: Optional[TypeInformation] = None,
        output_type: Optional[TypeInformation] = None,
    ) -> DataStream:
        """Folds each window's records with ``aggregate_function``; its result (or what
        ``window_function`` makes of it) is the output, of ``output_type``."""
        if not isinstance(aggregate_function, AggregateFunction):
            raise TypeError(f"aggregate takes an AggregateFunction, not {aggregate_function!r}")
        if output_type is None:
            raise TypeError(
                "aggregate needs output_type=Types...(): Weir's streams are typed, and the result's "
                "type cannot be known before the first window fires"
            )
        schema = schema_of(output_type, "aggregate")
        agg = aggregate_function
        where = b.where(agg)
        wf_where = b.where(window_function) if window_function is not None else where
        key_of = self._key

        def run(key: list, start: int, end: int, batch: pa.RecordBatch) -> pa.RecordBatch:
            acc = agg.create_accumulator()
            for r in b.rows(_without_key(batch)):
                try:
                    acc = agg.add(r, acc)
                except Exception as e:
                    raise b.failure("aggregate (add)", where, r, e) from e
            try:
                result = agg.get_result(acc)
            except Exception as e:
                raise b.failure("aggregate (get_result)", where, acc, e) from e
            if window_function is None:
                return b.to_batch([result], schema, "aggregate", where)
            ctx = ProcessWindowFunction.Context(TimeWindow(start, end))
            try:
                out = list(window_function.process(key_of(key), ctx, [result]) or [])
            except Exception as e:
                raise b.failure("window (process)", wf_where, result, e) from e
            return b.to_batch(out, schema, "window", wf_where)

        return DataStream(self._w.process(self._env._unique(f"aggregate:{type(agg).__name__}"), run, schema), self._env)

    def process(self, process_function: ProcessWindowFunction, output_type: Optional[TypeInformation] = None) -> DataStream:
        """All records of each fired window to ``process_function.process(key, context,
        elements)``, which returns or yields the output records (of ``output_type``)."""
        if not isinstance(process_function, ProcessWindowFunction):
            raise TypeError(f"process takes a ProcessWindowFunction, not {process_function!r}")
        if output_type is None:
            raise TypeError("process needs output_type=Types...(): Weir's streams are typed")
        schema = schema_of(output_type, "process")
        where = b.where(process_function)
        key_of = self._key

        def run(key: list, start: int, end: int, batch: pa.RecordBatch) -> pa.RecordBatch:
            elements = b.rows(_without_key(batch))
            ctx = ProcessWindowFunction.Context(TimeWindow(start, end))
            try:
                out = list(process_function.process(key_of(key), ctx, elements) or [])
            except Exception as e:
                raise b.failure("window (process)", where, f"<{len(elements)} records>", e) from e
            return b.to_batch(out, schema, "window", where)

        return DataStream(self._w.process(self._env._unique(f"process:{type(process_function).__name__}"), run, schema), self._env)

    def reduce(self, reduce_function: Union[Callable, ReduceFunction]) -> DataStream:
        """Folds each window's records pairwise into one record of the input's type."""
        fn = _callable(reduce_function, "reduce", ReduceFunction)
        where = b.where(fn)

        def run(key: list, start: int, end: int, batch: pa.RecordBatch) -> pa.RecordBatch:
            rows = b.rows(batch)
            if not rows:
                return batch.slice(0, 0)
            names = tuple(batch.schema.names)
            acc = rows[0]
            for r in rows[1:]:
                try:
                    acc = b.as_row(fn(acc, r), names)
                except Exception as e:
                    raise b.failure("reduce", where, r, e) from e
            return b.to_batch([acc], batch.schema, "reduce", where)

        return DataStream(self._w.process(self._env._unique(f"reduce:{where.split(' ', 1)[0]}"), run, None), self._env)


class _KeyedProcessWrapper(b.Hooks):
    """What the engine calls for a ``KeyedProcessFunction``: sets the call's state context,
    opens the function once per subtask (the engine deep-copies this object per subtask),
    builds the record, and turns what the function yields into rows of plain values."""

    def __init__(self, fn: KeyedProcessFunction, schema: pa.Schema, where: str):
        super().__init__(fn)
        self.fn = fn
        self.schema = schema
        self.out_names = tuple(schema.names)
        self.where = where
        self.names: Optional[tuple] = None
        self.keep: Optional[List[int]] = None

    def _rows(self, produced: Any, what: str, record: Any) -> List[list]:
        out = []
        for v in produced or ():
            fields = list(b._fields_of(v, self.out_names))
            if len(fields) != len(self.schema):
                raise b.UserFunctionError(
                    f"{what} function {self.where} returned {v!r} with {len(fields)} fields; its output type has "
                    f"{len(self.schema)}: {', '.join(self.schema.names)}"
                )
            out.append([_plain(x) for x in fields])
        return out

    def element(self, ctx: Any, names: tuple, values: list, time: Optional[int]) -> List[list]:
        from weir.datastream.state import _current

        if self.names is not names:
            self.names = names
            self.keep = [i for i, n in enumerate(names) if n != KEY_COLUMN]
            self.visible = tuple(names[i] for i in self.keep)
        row = Row._make(self.visible, [values[i] for i in self.keep])
        _current.ctx = ctx
        try:
            self.open_once()
            context = _ProcessContext(ctx, time)
            try:
                return self._rows(self.fn.process_element(row, context), "process_element", row)
            except b.UserFunctionError:
                raise
            except Exception as e:
                raise b.failure("process_element", self.where, row, e) from e
        finally:
            _current.ctx = None

    def timer(self, ctx: Any, timestamp: int, event_time: bool) -> List[list]:
        from weir.datastream.functions import TimeDomain
        from weir.datastream.state import _current

        _current.ctx = ctx
        try:
            self.open_once()
            domain = TimeDomain.EVENT_TIME if event_time else TimeDomain.PROCESSING_TIME
            context = _TimerContext(ctx, timestamp, domain)
            try:
                return self._rows(self.fn.on_timer(timestamp, context), "on_timer", f"<timer at {timestamp}>")
            except b.UserFunctionError:
                raise
            except Exception as e:
                raise b.failure("on_timer", self.where, f"<timer at {timestamp}>", e) from e
        finally:
            _current.ctx = None


class _RollingReduce(b.Hooks):
    """What the engine calls per record of a rolling reduce: the running value and the record
    as lists of values of ``names``; a key selector's key column is hidden from the function
    and carried over to the result."""

    def __init__(self, target: Optional[ReduceFunction], fn: Callable, where: str):
        super().__init__(target)
        self.fn = fn
        self.where = where
        self.names: Optional[tuple] = None

    def __call__(self, names: tuple, running: list, value: list) -> list:
        self.open_once()
        if self.names is not names:
            self.names = names
            self.key_at = names.index(KEY_COLUMN) if KEY_COLUMN in names else None
            self.visible = tuple(n for n in names if n != KEY_COLUMN)
        key_at = self.key_at
        if key_at is not None:
            key = value[key_at]
            del running[key_at], value[key_at]
        record = Row._make(self.visible, value)
        try:
            result = self.fn(Row._make(self.visible, running), record)
        except Exception as e:
            raise b.failure("reduce", self.where, record, e) from e
        try:
            out = [_plain(x) for x in b.as_row(result, self.visible)]
        except TypeError as e:
            raise b.UserFunctionError(f"reduce function {self.where} {e}") from None
        if key_at is not None:
            out.insert(key_at, key)
        return out


def _plain(v: Any) -> Any:
    import datetime

    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return int(v.timestamp() * 1000)
    return v


class _ProcessContext(KeyedProcessFunction.Context):
    def __init__(self, ctx: Any, timestamp: Optional[int]):
        super().__init__(ctx, timestamp, None)

    def get_current_key(self) -> Any:
        key = self._ctx.current_key()
        return key[0] if len(key) == 1 else tuple(key)


class _TimerContext(KeyedProcessFunction.OnTimerContext):
    def __init__(self, ctx: Any, timestamp: int, domain: str):
        super().__init__(ctx, timestamp, None, domain)

    def get_current_key(self) -> Any:
        key = self._ctx.current_key()
        return key[0] if len(key) == 1 else tuple(key)
