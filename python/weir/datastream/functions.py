"""User function interfaces (PyFlink's ``pyflink.datastream.functions``). Plain callables work
wherever a function object does."""

from __future__ import annotations

from typing import Any, Iterable


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
