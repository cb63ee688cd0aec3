"""A Python job on several worker processes: `weir cluster --workers 3 job.py` runs the script
in each worker (the script builds the job, `execute` runs that worker's share), and the output
equals the same script run in one process; a worker killed mid-run is started again and the job
resumes from its checkpoint, exactly once."""

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
    env.set_parallelism(3)
    env.set_buffer_rows(200)
    if os.environ.get("CHECKPOINTS"):
        env.enable_checkpointing(100)
        env.get_checkpoint_config().set_checkpoint_storage_dir(os.environ["CHECKPOINTS"])
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
    env.execute("python-cluster")
    """
)


def committed(out: Path):
    lines = []
    for f in sorted(out.iterdir()):
        if not f.name.startswith("."):
            lines.extend(l for l in f.read_text().splitlines() if l)
    return sorted(lines)


def weir_bin() -> str:
    path = os.environ.get("WEIR_BIN")
    assert path and Path(path).exists(), f"the weir binary is needed (WEIR_BIN={path!r}); cargo test builds it"
    return path


def test_weir_cluster_runs_a_python_job_on_three_workers(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    local = subprocess.run([sys.executable, str(script)], env=dict(os.environ, OUT=str(tmp_path / "local")))
    assert local.returncode == 0
    want = committed(tmp_path / "local")
    assert len(want) == 30000

    env = dict(os.environ, OUT=str(tmp_path / "cluster"), WEIR_PYTHON=sys.executable)
    done = subprocess.run(
        [weir_bin(), "cluster", "--workers", "3", str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert committed(tmp_path / "cluster") == want


def test_a_killed_python_worker_is_restarted_and_the_job_resumes_exactly_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    local = subprocess.run([sys.executable, str(script)], env=dict(os.environ, OUT=str(tmp_path / "local")))
    assert local.returncode == 0
    want = committed(tmp_path / "local")

    chk, pids = tmp_path / "chk", tmp_path / "pids"
    env = dict(os.environ, OUT=str(tmp_path / "cluster"), WEIR_PYTHON=sys.executable, CHECKPOINTS=str(chk), RATE="6000")
    cluster = subprocess.Popen(
        [weir_bin(), "cluster", "--workers", "3", "--pid-dir", str(pids), "--heartbeat-timeout-ms", "1000", str(script)],
        env=env,
    )
    deadline = time.monotonic() + 120
    while not list(chk.glob("*/chk-*/_metadata")):
        assert cluster.poll() is None, "the job ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint completed"
        time.sleep(0.05)
    os.kill(int((pids / "worker-2.pid").read_text()), signal.SIGKILL)
    assert cluster.wait(timeout=300) == 0
    assert committed(tmp_path / "cluster") == want
