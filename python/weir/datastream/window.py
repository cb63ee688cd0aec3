"""Window assigners (PyFlink's ``pyflink.datastream.window``)."""

from __future__ import annotations

from typing import Optional

from weir.common.time import Time, millis
from weir.datastream.functions import TimeWindow

__all__ = [
    "EventTimeSessionWindows",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "Time",
    "TimeWindow",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "WindowAssigner",
]


class WindowAssigner:
    """Which windows a record belongs to."""

    def __init__(self, kind: str, size_ms: int, slide_ms: Optional[int], processing_time: bool):
        if size_ms <= 0:
            raise ValueError(f"a window's size must be positive, not {size_ms} ms")
        if slide_ms is not None and slide_ms <= 0:
            raise ValueError(f"a window's slide must be positive, not {slide_ms} ms")
        self.kind = kind
        self.size_ms = size_ms
        self.slide_ms = slide_ms
        self.processing_time = processing_time
        self.time_field: Optional[str] = None

    def on(self, field: str) -> "WindowAssigner":
        """Event time from this field instead of the source's watermark field."""
        self.time_field = field
        return self

    def __repr__(self) -> str:
        clock = "processing" if self.processing_time else "event"
        slide = f", slide {self.slide_ms} ms" if self.slide_ms is not None else ""
        return f"{self.kind} {clock}-time windows of {self.size_ms} ms{slide}"


class TumblingEventTimeWindows:
    @staticmethod
    def of(size: Time) -> WindowAssigner:
        return WindowAssigner("tumbling", millis(size, "size"), None, False)


class TumblingProcessingTimeWindows:
    @staticmethod
    def of(size: Time) -> WindowAssigner:
        return WindowAssigner("tumbling", millis(size, "size"), None, True)


class SlidingEventTimeWindows:
    @staticmethod
    def of(size: Time, slide: Time) -> WindowAssigner:
        return WindowAssigner("sliding", millis(size, "size"), millis(slide, "slide"), False)


class SlidingProcessingTimeWindows:
    @staticmethod
    def of(size: Time, slide: Time) -> WindowAssigner:
        return WindowAssigner("sliding", millis(size, "size"), millis(slide, "slide"), True)


class EventTimeSessionWindows:
    @staticmethod
    def with_gap(gap: Time) -> WindowAssigner:
        return WindowAssigner("session", millis(gap, "gap"), None, False)
