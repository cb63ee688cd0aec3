"""Weir: stream processing from Python over Weir's Rust engine.

The DataStream API follows PyFlink's module and method names (``weir.datastream``,
``weir.common``), so jobs written for PyFlink read the same. Python functions run inside the
engine's process on Arrow batches: row-at-a-time functions (``map``, ``filter``, ``flat_map``,
``key_by`` with a function, window ``aggregate``/``process``/``reduce``) see one :class:`Row` per
record, and ``map_batches`` hands a ``pyarrow.RecordBatch`` over without a copy.
"""

from weir._weir import __version__
from weir.common import Row, Types

__all__ = ["Row", "Types", "__version__"]
