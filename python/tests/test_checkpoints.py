"""Python keyed state in checkpoints: a job with a Python KeyedProcessFunction is killed with
SIGKILL after a checkpoint completed, resumed from it, and its exactly-once file output equals
a failure-free run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

JOB = textwrap.dedent(
    """
    import os, sys
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

    out, checkpoints = sys.argv[1], sys.argv[2]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_buffer_rows(200)
    env.enable_checkpointing(100)
    env.get_checkpoint_config().set_checkpoint_storage_dir(checkpoints)
    if os.environ.get("RESUME"):
        env.set_restore("latest")
    source = Source(
        "datagen",
        rows=30000,
        rows_per_second=int(os.environ.get("RATE", "1000000")),
        seed=3,
        fields=[
            {"name": "id", "kind": "sequence"},
            {"name": "k", "kind": "random", "min": 0, "max": 9},
            {"name": "v", "kind": "random", "min": 0, "max": 99},
        ],
    )
    # One source subtask: each key's records reach the running sum in one order every run.
    env.from_source(source, source_name="numbers").set_parallelism(1).key_by("k").process(
        RunningSum(),
        output_type=Types.ROW_NAMED(["id", "k", "total"], [Types.LONG(), Types.LONG(), Types.LONG()]),
    ).sink_to(FileSink.for_row_format(out).build())
    env.execute("python-running-sum")
    """
)


def committed(out: Path):
    lines = []
    for f in sorted(out.iterdir()):
        if not f.name.startswith("."):
            lines.extend(l for l in f.read_text().splitlines() if l)
    return sorted(lines)


def run(script: Path, out: Path, checkpoints: Path, **env_vars: str) -> subprocess.Popen:
    env = dict(os.environ, **env_vars)
    return subprocess.Popen([sys.executable, str(script), str(out), str(checkpoints)], env=env)


def test_python_state_survives_a_sigkill_and_resumes_exactly_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    # The failure-free run.
    clean = run(script, tmp_path / "clean", tmp_path / "clean-chk")
    assert clean.wait(timeout=300) == 0
    want = committed(tmp_path / "clean")
    assert len(want) == 30000

    # A throttled run killed once a checkpoint is complete, then resumed (to the end).
    out, chk = tmp_path / "out", tmp_path / "chk"
    job = run(script, out, chk, RATE="5000")
    deadline = time.monotonic() + 120
    while not list(chk.glob("*/chk-*/_metadata")):
        assert job.poll() is None, "the throttled run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint completed"
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert len(committed(out)) < 30000, "the kill came after the job's end"
    resumed = run(script, out, chk, RESUME="1")
    assert resumed.wait(timeout=300) == 0
    assert committed(out) == want


def test_an_exception_in_a_function_restarts_the_job_from_its_checkpoint(tmp_path):
    from weir.common import Types
    from weir.datastream import FileSink, Source, StreamExecutionEnvironment

    marker = tmp_path / "failed-once"

    def flaky(r):
        if r.id == 20000 and not marker.exists():
            marker.write_text("failed here once")
            raise RuntimeError("a transient failure")
        return (r.id, r.id * 2)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_buffer_rows(500)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "chk"))
    source = Source("datagen", rows=40000, fields=[{"name": "id", "kind": "sequence"}])
    env.from_source(source, source_name="ids").map(
        flaky, output_type=Types.ROW_NAMED(["id", "double"], [Types.LONG(), Types.LONG()])
    ).sink_to(FileSink.for_row_format(str(tmp_path / "out")).build())
    result = env.execute("flaky")
    assert marker.exists() and result.restarts == 1
    ids = sorted(int(l.split('"id":')[1].split(",")[0]) for l in committed(tmp_path / "out"))
    assert ids == list(range(40000)), "every row exactly once after the restart"
