"""A Python job on several worker processes: `weir cluster --workers 3 job.py` runs the script
in each worker (the script builds the job, `execute` runs that worker's share), and the output
equals the same script run in one process; a worker killed mid-run is started again and the job
resumes from its checkpoint, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from jobs import ROWS, RUNNING_SUM, committed, wait_for_checkpoint


def weir_bin() -> str:
    path = os.environ.get("WEIR_BIN")
    assert path and Path(path).exists(), f"the weir binary is needed (WEIR_BIN={path!r}); cargo test builds it"
    return path


def one_process_output(tmp_path: Path, script: Path):
    local = subprocess.run([sys.executable, str(script)], env=dict(os.environ, OUT=str(tmp_path / "local"), PARALLELISM="3"))
    assert local.returncode == 0
    want = committed(tmp_path / "local")
    assert len(want) == ROWS
    return want


def cluster_env(tmp_path: Path, **extra: str):
    return dict(os.environ, OUT=str(tmp_path / "cluster"), PARALLELISM="3", WEIR_PYTHON=sys.executable, **extra)


def test_weir_cluster_runs_a_python_job_on_three_workers(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(RUNNING_SUM)
    want = one_process_output(tmp_path, script)
    done = subprocess.run(
        [weir_bin(), "cluster", "--workers", "3", str(script)],
        env=cluster_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert committed(tmp_path / "cluster") == want


def test_a_killed_python_worker_is_restarted_and_the_job_resumes_exactly_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(RUNNING_SUM)
    want = one_process_output(tmp_path, script)
    chk, pids = tmp_path / "chk", tmp_path / "pids"
    # The checkpoint settings come from weir cluster's flags (each Python worker applies them over
    # the script's, as a StreamJob's pods apply its WEIR_CHECKPOINT_* variables).
    cluster = subprocess.Popen(
        [
            weir_bin(), "cluster", "--workers", "3", "--pid-dir", str(pids), "--heartbeat-timeout-ms", "1000",
            "--checkpoint-interval", "100", "--checkpoint-storage", str(chk), str(script),
        ],
        env=cluster_env(tmp_path, RATE="6000"),
    )
    wait_for_checkpoint(chk, cluster)
    os.kill(int((pids / "worker-2.pid").read_text()), signal.SIGKILL)
    assert cluster.wait(timeout=300) == 0
    assert committed(tmp_path / "cluster") == want
