"""A Python job the checkpoint and cluster tests run as a separate process, and how they read
its output. The job: generated rows (one source subtask, so each key's rows arrive in one order
every run), a running sum per key in a Python ``KeyedProcessFunction``'s ``ValueState``, JSON
files out. ``OUT`` names the output directory; ``CHECKPOINTS`` turns checkpoints on; ``RATE``
throttles the source (rows per second); ``RESUME`` resumes from the newest checkpoint."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import List

RUNNING_SUM = textwrap.dedent(
    """
    import os
    from weir.common import Types
    from weir.datastream import FileSink, KeyedProcessFunction, Source, StreamExecutionEnvironment
    from weir.datastream.state import ValueStateDescriptor

    class RunningSum(KeyedProcessFunction):
        def open(self, runtime_context):
            self.total = runtime_context.get_state(ValueStateDescriptor("total"))

        def process_element(self, value, ctx):
            total = (self.total.value() or 0) + value.v
            self.total.update(total)
            yield (value.id, value.k, total)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(int(os.environ.get("PARALLELISM", "2")))
    env.set_buffer_rows(200)
    if os.environ.get("CHECKPOINTS"):
        env.enable_checkpointing(100)
        env.get_checkpoint_config().set_checkpoint_storage_dir(os.environ["CHECKPOINTS"])
    if os.environ.get("RESUME"):
        env.set_restore("latest")
    source = Source(
        "datagen",
        rows=30000,
        rows_per_second=int(os.environ.get("RATE", "1000000")),
        seed=5,
        fields=[
            {"name": "id", "kind": "sequence"},
            {"name": "k", "kind": "random", "min": 0, "max": 11},
            {"name": "v", "kind": "random", "min": 0, "max": 99},
        ],
    )
    env.from_source(source, source_name="numbers").set_parallelism(1).key_by("k").process(
        RunningSum(),
        output_type=Types.ROW_NAMED(["id", "k", "total"], [Types.LONG(), Types.LONG(), Types.LONG()]),
    ).sink_to(FileSink.for_row_format(os.environ["OUT"]).build())
    env.execute("python-running-sum")
    """
)

ROWS = 30000


def committed(out: Path) -> List[str]:
    """The sorted lines of an exactly-once file sink's committed (visible) files."""
    lines: List[str] = []
    for f in sorted(out.iterdir()):
        if not f.name.startswith("."):
            lines.extend(l for l in f.read_text().splitlines() if l)
    return sorted(lines)


def wait_for_checkpoint(chk: Path, process, seconds: float = 120) -> None:
    """Waits until a checkpoint under ``chk`` is complete, failing if ``process`` ends first."""
    import time

    deadline = time.monotonic() + seconds
    while not list(chk.glob("*/chk-*/_metadata")):
        assert process.poll() is None, "the job ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint completed"
        time.sleep(0.05)
