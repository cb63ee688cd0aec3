"""User function interfaces (PyFlink's ``pyflink.datastream.functions``). Plain callables work
wherever a function object does."""

from __future__ import annotations

from typing import Any, Iterable, Optional


class Function:
    """Base of user functions."""

    def open(self, runtime_context: Any = None) -> None:  # noqa: B027 - optional hook
        pass

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class MapFunction(Function):
    def map(self, value: Any) -> Any:
        raise NotImplementedError


class FlatMapFunction(Function):
    def flat_map(self, value: Any) -> Iterable[Any]:
        raise NotImplementedError


class FilterFunction(Function):
    def filter(self, value: Any) -> bool:
        raise NotImplementedError


class KeySelector(Function):
    def get_key(self, value: Any) -> Any:
        raise NotImplementedError


class ReduceFunction(Function):
    def reduce(self, value1: Any, value2: Any) -> Any:
        raise NotImplementedError


class AggregateFunction(Function):
    """Folds a window's records into an accumulator, then a result (PyFlink's
    ``AggregateFunction``): ``add`` returns the new accumulator."""

    def create_accumulator(self) -> Any:
        raise NotImplementedError

    def add(self, value: Any, accumulator: Any) -> Any:
        raise NotImplementedError

    def get_result(self, accumulator: Any) -> Any:
        raise NotImplementedError

    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        raise NotImplementedError


class ProcessWindowFunction(Function):
    """All records of a fired window at once (PyFlink's ``ProcessWindowFunction``)."""

    class Context:
        def __init__(self, window: "TimeWindow"):
            self._window = window

        def window(self) -> "TimeWindow":
            return self._window

    def process(self, key: Any, context: "ProcessWindowFunction.Context", elements: Iterable[Any]) -> Iterable[Any]:
        raise NotImplementedError


class TimeWindow:
    """A window's bounds in epoch milliseconds: ``start`` inclusive, ``end`` exclusive."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start = start
        self.end = end

    def max_timestamp(self) -> int:
        return self.end - 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindow) and (other.start, other.end) == (self.start, self.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __repr__(self) -> str:
        return f"TimeWindow(start={self.start}, end={self.end})"


class TimeDomain:
    """Which clock a timer is on."""

    EVENT_TIME = "EVENT_TIME"
    PROCESSING_TIME = "PROCESSING_TIME"


class RuntimeContext:
    """What ``open`` gets: where the function's keyed state comes from."""

    def get_state(self, state_descriptor):
        from weir.datastream.state import ValueState, ValueStateDescriptor

        if not isinstance(state_descriptor, ValueStateDescriptor):
            raise TypeError(f"get_state takes a ValueStateDescriptor, not {state_descriptor!r}")
        return ValueState(state_descriptor.name)

    def get_list_state(self, state_descriptor):
        from weir.datastream.state import ListState, ListStateDescriptor

        if not isinstance(state_descriptor, ListStateDescriptor):
            raise TypeError(f"get_list_state takes a ListStateDescriptor, not {state_descriptor!r}")
        return ListState(state_descriptor.name)

    def get_map_state(self, state_descriptor):
        from weir.datastream.state import MapState, MapStateDescriptor

        if not isinstance(state_descriptor, MapStateDescriptor):
            raise TypeError(f"get_map_state takes a MapStateDescriptor, not {state_descriptor!r}")
        return MapState(state_descriptor.name)


class TimerService:
    """The current key's timers and clocks."""

    def __init__(self, ctx: Any):
        self._ctx = ctx

    def current_watermark(self) -> int:
        return self._ctx.current_watermark()

    def current_processing_time(self) -> int:
        return self._ctx.current_processing_time()

    def register_event_time_timer(self, timestamp: int) -> None:
        self._ctx.register_event_time_timer(int(timestamp))

    def register_processing_time_timer(self, timestamp: int) -> None:
        self._ctx.register_processing_time_timer(int(timestamp))

    def delete_event_time_timer(self, timestamp: int) -> None:
        self._ctx.delete_event_time_timer(int(timestamp))

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self._ctx.delete_processing_time_timer(int(timestamp))


class KeyedProcessFunction(Function):
    """Called per record and per timer with the current key's state (PyFlink's
    ``KeyedProcessFunction``); both return or yield output records."""

    class Context:
        def __init__(self, ctx: Any, timestamp: Optional[int], key: Any):
            self._ctx = ctx
            self._timestamp = timestamp
            self._key = key

        def timestamp(self) -> Optional[int]:
            """The record's event time (ms), if the stream has one."""
            return self._timestamp

        def timer_service(self) -> TimerService:
            return TimerService(self._ctx)

        def get_current_key(self) -> Any:
            return self._key

    class OnTimerContext(Context):
        def __init__(self, ctx: Any, timestamp: int, key: Any, domain: str):
            super().__init__(ctx, timestamp, key)
            self._domain = domain

        def time_domain(self) -> str:
            return self._domain

    def process_element(self, value: Any, ctx: "KeyedProcessFunction.Context") -> Iterable[Any]:
        raise NotImplementedError

    def on_timer(self, timestamp: int, ctx: "KeyedProcessFunction.OnTimerContext") -> Iterable[Any]:
        return ()
