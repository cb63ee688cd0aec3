"""The seed's examples (examples/python) run as users run them, against a local server that
serves their input and records what they post; the posted rows are checked against references
computed here."""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
from pathlib import Path


REPO = Path(os.environ.get("WEIR_REPO", Path(__file__).resolve().parents[2]))
POLLS = 3


def readings(n: int = 40, seed: int = 5):
    rnd = random.Random(seed)
    base = 1_767_225_600_000
    return [
        {"field1": f"sensor-{rnd.randrange(4)}", "temperature": round(15 + rnd.random() * 10, 2), "ts": base + i * 700}
        for i in range(n)
    ]


def run_example(name: str, server) -> None:
    env = dict(os.environ)
    env.update(
        WEIR_SOURCE_URL=server.url("/data"),
        WEIR_SINK_URL=server.url("/result"),
        WEIR_POLLS=str(POLLS),
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / name)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{POLLS * len(server.pages['/data'])} readings in" in done.stdout, done.stdout


def test_window_operation(http_server):
    data = readings()
    http_server.pages["/data"] = data
    run_example("window_operation.py", http_server)
    sums = collections.defaultdict(lambda: [0.0, 0])
    for r in data * POLLS:
        w = sums[(r["field1"], r["ts"] - r["ts"] % 5000)]
        w[0] += r["temperature"]
        w[1] += 1
    want = sorted((k, s, round(t / n, 3)) for (k, s), (t, n) in sums.items())
    got = sorted((r["field1"], r["window_start"], r["avg_temperature"]) for r in http_server.posted_rows("/result"))
    assert got == want


def test_data_partitioning(http_server):
    data = readings(seed=6)
    http_server.pages["/data"] = data
    run_example("data_partitioning.py", http_server)
    want = sorted((r["field1"], r["ts"], round(r["temperature"] * 9 / 5 + 32, 2)) for r in data * POLLS)
    got = sorted((r["field1"], r["ts"], r["fahrenheit"]) for r in http_server.posted_rows("/result"))
    assert got == want


def test_parallel_processing(http_server):
    data = readings(seed=7)
    http_server.pages["/data"] = data
    run_example("parallel_processing.py", http_server)
    counts = collections.Counter()
    latest = {}
    for r in data * POLLS:
        key = (r["field1"], r["ts"] - r["ts"] % 60_000)
        counts[key] += 1
        latest[key] = max(latest.get(key, 0), r["ts"])
    want = sorted((k, counts[(k, s)], latest[(k, s)]) for (k, s) in counts)
    got = sorted((r["field1"], r["one"], r["ts"]) for r in http_server.posted_rows("/result"))
    assert got == want


def test_the_http_sink_sends_refused_rows_to_the_dead_letter_output(http_server, tmp_path):
    from weir.common import Types
    from weir.datastream import HttpSink, StreamExecutionEnvironment

    # The server refuses any request holding a negative amount; the job goes on.
    http_server.answer = lambda body: 422 if b'"amount":-' in body else 200
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_dead_letter(str(tmp_path / "dlq"))
    rows = [(i, -i if i % 10 == 3 else i) for i in range(50)]
    ds = env.from_collection(rows, type_info=Types.ROW_NAMED(["id", "amount"], [Types.LONG(), Types.LONG()]))
    ds.sink_to(HttpSink(http_server.url("/result"), max_rows=5, body="json_lines"))
    result = env.execute("http-dead-letters")
    taken = {r["id"] for r in http_server.posted_rows("/result")}
    import json

    dead = [json.loads(l) for f in (tmp_path / "dlq").iterdir() for l in f.read_text().splitlines()]
    refused = {json.loads(d["raw"])["id"] for d in dead}
    assert taken | refused == set(range(50)) and not taken & refused
    assert {3, 13, 23, 33, 43} <= refused
    assert result.dead_letters == len(refused) and all("422" in d["reason"] for d in dead)


def test_state(http_server):
    data = readings(seed=8)
    http_server.pages["/data"] = data
    run_example("state.py", http_server)
    # Per sensor the posted counts are 1..n and each maximum is the maximum of the readings
    # up to it; the order within a sensor is the order readings arrived (poll after poll).
    per_sensor = collections.defaultdict(list)
    for r in data * POLLS:
        per_sensor[r["field1"]].append(r["temperature"])
    want = set()
    for sensor, temps in per_sensor.items():
        highest = None
        for i, t in enumerate(temps):
            highest = t if highest is None else max(highest, t)
            want.add((sensor, i + 1, highest))
    got = {(r["field1"], r["count"], r["max_temperature"]) for r in http_server.posted_rows("/result")}
    assert got == want and len(http_server.posted_rows("/result")) == len(data) * POLLS
