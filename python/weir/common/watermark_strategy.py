"""Event time for a source (PyFlink's ``WatermarkStrategy``)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

from weir.common.time import Duration, millis


class TimestampAssigner:
    """Extracts a record's event time in milliseconds (PyFlink's ``TimestampAssigner``)."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        raise NotImplementedError


class WatermarkStrategy:
    """How far behind the largest event time seen the watermark stays, and where a record's
    event time is: a field of the record (``with_timestamp_field``, evaluated by the engine) or a
    :class:`TimestampAssigner` (Python, for ``from_collection``)."""

    def __init__(self, out_of_orderness_ms: int):
        self._delay = out_of_orderness_ms
        self._field: Optional[str] = None
        self._assigner: Optional[Union[TimestampAssigner, Callable[[Any, int], int]]] = None
        self._idle_ms: Optional[int] = None

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> "WatermarkStrategy":
        return WatermarkStrategy(millis(max_out_of_orderness, "max_out_of_orderness"))

    @staticmethod
    def for_monotonous_timestamps() -> "WatermarkStrategy":
        return WatermarkStrategy(0)

    def with_timestamp_field(self, field: str) -> "WatermarkStrategy":
        """The record's field holding its event time (a timestamp, or epoch milliseconds)."""
        self._field = field
        return self

    def with_timestamp_assigner(
        self, assigner: Union[TimestampAssigner, Callable[[Any, int], int]]
    ) -> "WatermarkStrategy":
        self._assigner = assigner
        return self

    def with_idleness(self, idle_timeout: Duration) -> "WatermarkStrategy":
        self._idle_ms = millis(idle_timeout, "idle_timeout")
        return self
