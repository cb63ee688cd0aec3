"""The job being built and run (PyFlink's ``StreamExecutionEnvironment``)."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional

import pyarrow as pa

from weir import _weir
from weir.common.row import Row
from weir.common.typeinfo import TypeInformation, schema_of
from weir.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from weir.datastream.connectors import Source
from weir.datastream.data_stream import DataStream

# The column a TimestampAssigner's event time goes in, for from_collection.
TIME_COLUMN = "__event_time"


class CheckpointConfig:
    """Where and how often checkpoints are taken."""

    def __init__(self, env: "StreamExecutionEnvironment"):
        self._env = env

    def set_checkpoint_storage_dir(self, url: str) -> "CheckpointConfig":
        """A path, ``file://``, ``s3://bucket/prefix`` or ``hdfs://`` URL."""
        self._env._n.set_checkpoint_storage(url)
        return self

    def set_checkpoint_interval(self, interval_ms: int) -> "CheckpointConfig":
        self._env._n.enable_checkpointing(interval_ms)
        return self


class JobExecutionResult:
    """What a finished job reports: its name, run time and each operator's counters."""

    def __init__(self, report: Dict[str, Any]):
        self._report = report

    def get_job_name(self) -> str:
        return self._report["name"]

    def get_net_runtime(self) -> int:
        """Milliseconds from start to end."""
        return self._report["duration_ms"]

    @property
    def restarts(self) -> int:
        return self._report["restarts"]

    @property
    def nodes(self) -> List[Dict[str, Any]]:
        """Per operator: ``name``, ``records_in``, ``records_out``, ``dead_letters``…"""
        return self._report["nodes"]

    def records_out(self, name: str) -> int:
        for n in self.nodes:
            if n["name"] == name:
                return n["records_out"]
        raise KeyError(f"no operator named '{name}' (operators: {', '.join(n['name'] for n in self.nodes)})")

    @property
    def dead_letters(self) -> int:
        return sum(n["dead_letters"] for n in self.nodes)

    def __repr__(self) -> str:
        return f"JobExecutionResult({self.get_job_name()!r}, {self.get_net_runtime()} ms)"


def _watermark(strategy: Optional[WatermarkStrategy], field: Optional[str]):
    if strategy is None:
        return None
    field = field or strategy._field
    if field is None:
        raise ValueError(
            "the watermark strategy needs the record's time: .with_timestamp_field(name), or a "
            "TimestampAssigner (from_collection only)"
        )
    return (field, strategy._delay, strategy._idle_ms)


class StreamExecutionEnvironment:
    """A job being built: settings, sources, and ``execute``."""

    def __init__(self) -> None:
        self._n = _weir.Env()
        self._sources = 0
        self._names: Dict[str, int] = {}

    def _unique(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``… when an operator of this job has it already."""
        n = self._names.get(name, 0) + 1
        self._names[name] = n
        return name if n == 1 else f"{name}-{n}"

    @staticmethod
    def get_execution_environment(configuration: Any = None) -> "StreamExecutionEnvironment":
        return StreamExecutionEnvironment()

    # -- settings -----------------------------------------------------------------------------
    def set_parallelism(self, parallelism: int) -> "StreamExecutionEnvironment":
        self._n.set_parallelism(parallelism)
        return self

    def get_parallelism(self) -> int:
        return self._n.parallelism()

    def set_max_parallelism(self, max_parallelism: int) -> "StreamExecutionEnvironment":
        self._n.set_max_parallelism(max_parallelism)
        return self

    def set_buffer_rows(self, rows: int) -> "StreamExecutionEnvironment":
        """Rows per batch (Weir's unit of work between operators)."""
        self._n.set_batch_size(rows)
        return self

    def enable_checkpointing(self, interval: int) -> "StreamExecutionEnvironment":
        """Checkpoints every ``interval`` milliseconds (exactly-once state)."""
        self._n.enable_checkpointing(interval)
        return self

    def get_checkpoint_config(self) -> CheckpointConfig:
        return CheckpointConfig(self)

    def set_restore(self, source: str) -> "StreamExecutionEnvironment":
        """Where the job's state starts from: ``"latest"`` resumes from its newest complete
        checkpoint (afresh when there is none), a path resumes from that checkpoint or
        savepoint, ``"fresh"`` (the default) starts empty."""
        self._n.set_restore(source)
        return self

    def set_dead_letter(self, location: str) -> "StreamExecutionEnvironment":
        """Where malformed records go (a directory or object-store URL)."""
        self._n.set_dead_letter(location)
        return self

    # -- sources ------------------------------------------------------------------------------
    def _name(self, given: Optional[str], default: str) -> str:
        self._sources += 1
        return given or (default if self._sources == 1 else f"{default}-{self._sources}")

    def from_source(
        self, source: Source, watermark_strategy: Optional[WatermarkStrategy] = None, source_name: Optional[str] = None
    ) -> DataStream:
        """Records of a built-in connector; ``watermark_strategy`` names their event time."""
        if not isinstance(source, Source):
            raise TypeError(f"from_source takes a Source descriptor, not {source!r}")
        if watermark_strategy is not None and watermark_strategy._assigner is not None:
            raise ValueError(
                "a TimestampAssigner runs on from_collection's records; for a connector, name the "
                "time field with WatermarkStrategy...with_timestamp_field(name)"
            )
        name = self._name(source_name, source.connector)
        native = self._n.source(source.connector, name, source.options_json(), _watermark(watermark_strategy, None))
        return DataStream(native, self)

    def add_source(self, source: Source, source_name: Optional[str] = None, type_info: Any = None) -> DataStream:
        return self.from_source(source, None, source_name)

    def from_collection(
        self,
        collection: Iterable[Any],
        type_info: Optional[TypeInformation] = None,
        watermark_strategy: Optional[WatermarkStrategy] = None,
        source_name: Optional[str] = None,
    ) -> DataStream:
        """A bounded stream of the given records (rows, tuples, dicts or single values). Without
        ``type_info`` the fields' types are inferred from the values (fields ``f0``, ``f1``…
        for tuples, the keys for dicts and named rows)."""
        items = list(collection)
        schema = schema_of(type_info, "from_collection") if type_info is not None else _infer(items)
        from weir.datastream._batches import to_batch

        batch = to_batch(items, schema, "from_collection", "(collection)")
        strategy = watermark_strategy
        field = None
        if strategy is not None and strategy._assigner is not None:
            assigner = strategy._assigner
            extract = assigner.extract_timestamp if isinstance(assigner, TimestampAssigner) else assigner
            rows = [Row._make(tuple(schema.names), tuple(r.values())) for r in batch.to_pylist()]
            times = [int(extract(r, 0)) for r in rows]
            batch = pa.RecordBatch.from_arrays(
                list(batch.columns) + [pa.array(times, type=pa.int64())],
                schema=schema.append(pa.field(TIME_COLUMN, pa.int64(), nullable=False)),
            )
            field = TIME_COLUMN
        name = self._name(source_name, "collection")
        native = self._n.collection(name, batch.schema, [batch], _watermark(strategy, field))
        return DataStream(native, self)

    # -- running ------------------------------------------------------------------------------
    def execute(self, job_name: str = "weir-job") -> JobExecutionResult:
        """Runs the job to its end in this process (Ctrl-C stops it)."""
        return JobExecutionResult(json.loads(self._n.execute(job_name)))

    def get_execution_plan(self) -> str:
        return self._n.explain()


def _infer(items: List[Any]) -> pa.Schema:
    if not items:
        raise ValueError("from_collection of no records needs type_info (there is nothing to infer the types from)")
    first = items[0]
    if isinstance(first, dict):
        names = list(first)
        columns = [[i.get(n) if isinstance(i, dict) else None for i in items] for n in names]
    elif isinstance(first, Row) and first._names:
        names = list(first._names)
        columns = [[i[k] for i in items] for k in range(len(names))]
    elif isinstance(first, (tuple, list)):
        names = [f"f{k}" for k in range(len(first))]
        columns = [[i[k] for i in items] for k in range(len(names))]
    else:
        names = ["f0"]
        columns = [items]
    fields = []
    for name, column in zip(names, columns):
        try:
            t = pa.array(column).type
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise TypeError(f"from_collection: field '{name}' has values of mixed types ({e}); give type_info") from None
        if pa.types.is_null(t):
            raise TypeError(f"from_collection: field '{name}' is always None; give type_info")
        fields.append(pa.field(name, t))
    return pa.schema(fields)
