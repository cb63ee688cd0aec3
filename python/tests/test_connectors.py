"""Built-in connectors and partitionings from Python: a broadcast stream reaches every subtask,
files are written and read back, and a Kafka topic is written and read back on the broker
scripts/test starts (KAFKA_BOOTSTRAP; without it the Kafka test fails, it does not skip)."""

from __future__ import annotations

import json
import os
import uuid

from weir.common import Types
from weir.datastream import FileSink, FileSource, KafkaSink, KafkaSource, StreamExecutionEnvironment

KV = Types.ROW_NAMED(["id", "word"], [Types.LONG(), Types.STRING()])
ROWS = [(i, f"w{i % 7}") for i in range(300)]


def test_broadcast_sends_every_record_to_every_subtask():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    ds = env.from_collection(ROWS, type_info=KV)
    got = sorted(tuple(r) for r in ds.broadcast().map(lambda r: r).execute_and_collect())
    assert got == sorted(ROWS * 3)


def test_files_are_written_and_read_back(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection(ROWS, type_info=KV).sink_to(FileSink.for_row_format(str(tmp_path / "out")).build())
    env.execute("write")
    env = StreamExecutionEnvironment.get_execution_environment()
    source = FileSource.for_path(str(tmp_path / "out"), format="json", schema=KV)
    got = sorted(tuple(r) for r in env.from_source(source, source_name="files").execute_and_collect())
    assert got == ROWS


def test_a_kafka_topic_is_written_and_read_back():
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    assert bootstrap, "KAFKA_BOOTSTRAP is set by scripts/test (it starts a Kafka broker)"
    topic = f"python-{uuid.uuid4().hex[:12]}"
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection(ROWS, type_info=KV).sink_to(KafkaSink(bootstrap, topic))
    env.execute("produce")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = KafkaSource(bootstrap, [topic], schema=KV, bounded=True)
    got = sorted(tuple(r) for r in env.from_source(source, source_name="topic").execute_and_collect())
    assert got == ROWS, json.dumps(got[:5])
