"""Durations (PyFlink's ``Time`` and ``Duration``), kept as milliseconds."""

from __future__ import annotations


class Duration:
    """A length of time (PyFlink's ``pyflink.common.Duration``)."""

    __slots__ = ("_ms",)

    def __init__(self, milliseconds: int):
        if milliseconds < 0:
            raise ValueError(f"a duration cannot be negative ({milliseconds} ms)")
        self._ms = int(milliseconds)

    @staticmethod
    def of_millis(ms: int) -> "Duration":
        return Duration(ms)

    @staticmethod
    def of_seconds(s: float) -> "Duration":
        return Duration(round(s * 1000))

    @staticmethod
    def of_minutes(m: float) -> "Duration":
        return Duration(round(m * 60_000))

    @staticmethod
    def of_hours(h: float) -> "Duration":
        return Duration(round(h * 3_600_000))

    @staticmethod
    def of_days(d: float) -> "Duration":
        return Duration(round(d * 86_400_000))

    def to_milliseconds(self) -> int:
        return self._ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other._ms == self._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __repr__(self) -> str:
        return f"Duration({self._ms} ms)"


class Time(Duration):
    """A window size (PyFlink's ``pyflink.datastream.window.Time``)."""

    __slots__ = ()

    @staticmethod
    def milliseconds(ms: int) -> "Time":
        return Time(ms)

    @staticmethod
    def seconds(s: float) -> "Time":
        return Time(round(s * 1000))

    @staticmethod
    def minutes(m: float) -> "Time":
        return Time(round(m * 60_000))

    @staticmethod
    def hours(h: float) -> "Time":
        return Time(round(h * 3_600_000))

    @staticmethod
    def days(d: float) -> "Time":
        return Time(round(d * 86_400_000))


def millis(value: object, what: str) -> int:
    """Milliseconds of a ``Duration``/``Time`` or a number of milliseconds."""
    if isinstance(value, Duration):
        return value.to_milliseconds()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TypeError(f"{what} must be a Duration/Time or milliseconds, not {value!r}")
