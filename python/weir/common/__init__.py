"""Types, rows, time and watermarks shared by the APIs (PyFlink's ``pyflink.common``)."""

from weir.common.row import Row
from weir.common.time import Duration, Time
from weir.common.typeinfo import RowTypeInfo, TypeInformation, Types
from weir.common.watermark_strategy import TimestampAssigner, WatermarkStrategy

__all__ = [
    "Duration",
    "Row",
    "RowTypeInfo",
    "Time",
    "TimestampAssigner",
    "TypeInformation",
    "Types",
    "WatermarkStrategy",
]
