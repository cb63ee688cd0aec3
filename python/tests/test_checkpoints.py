"""Python keyed state in checkpoints: a job with a Python KeyedProcessFunction is killed with
SIGKILL after a checkpoint completed, resumed from it, and its exactly-once file output equals
a failure-free run's; an exception in a Python function restarts a checkpointed job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from jobs import ROWS, RUNNING_SUM, committed, wait_for_checkpoint


def run(script, **env_vars: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, **env_vars))


def test_python_state_survives_a_sigkill_and_resumes_exactly_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(RUNNING_SUM)
    clean = run(script, OUT=str(tmp_path / "clean"), CHECKPOINTS=str(tmp_path / "clean-chk"))
    assert clean.wait(timeout=300) == 0
    want = committed(tmp_path / "clean")
    assert len(want) == ROWS

    # A throttled run killed once a checkpoint is complete, then resumed (to the end).
    out, chk = tmp_path / "out", tmp_path / "chk"
    job = run(script, OUT=str(out), CHECKPOINTS=str(chk), RATE="5000")
    wait_for_checkpoint(chk, job)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert len(committed(out)) < ROWS, "the kill came after the job's end"
    resumed = run(script, OUT=str(out), CHECKPOINTS=str(chk), RESUME="1")
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
