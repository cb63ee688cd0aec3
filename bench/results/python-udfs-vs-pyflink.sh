#!/usr/bin/env bash
# Python functions on Weir and on PyFlink 2.3.0 (the `apache-flink` package), the same function
# classes over the same rows (bench/python/udfs.py says what each workload does and how CPU and
# memory are measured): interleaved Weir, PyFlink… for ROUNDS rounds (default 3) at p = 1,
# ROWS rows per map job (default 10M) and REDUCE_ROWS per keyed reduce job (default 2M: PyFlink's
# reduce runs at a few tens of thousands of rows per second); each side runs a warm-up job of a
# quarter of the rows, at most 1M, first. Both engines
# run in one virtual environment (PYFLINK_VENV, made here on first use: apache-flink 2.3.0 with
# its pyarrow, numpy and pandas), so both see the same Python, pyarrow and numpy; Weir's native
# module is the release build of python/ (cargo build --release -p weir-python). Raw JSON lines
# go to RESULTS.jsonl (default 2026-12-07-python-udfs-vs-pyflink), the machine's facts beside
# them, then the table of medians.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${PYFLINK_VENV:-$HOME/.cache/weir/pyflink-venv}"
target="${CARGO_TARGET_DIR_BENCH:-$HOME/.cache/weir/target-bench}"
rounds="${ROUNDS:-3}"
rows="${ROWS:-10000000}"
reduce_rows="${REDUCE_ROWS:-2000000}"
workloads="${WORKLOADS:-map_row map_vectorized keyed_reduce}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pyflink" 2>/dev/null; then
  echo "== making $venv (apache-flink 2.3.0)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q apache-flink==2.3.0
fi

echo "== building Weir's Python module (release)" >&2
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -p weir-python -q)
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -r "$repo/python/weir" "$stage/weir"
cp "$target/release/lib_weir.so" "$stage/weir/_weir.abi3.so"

source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-07-python-udfs-vs-pyflink}"
for round in $(seq "$rounds"); do
  for w in $workloads; do
    n=$rows; [ "$w" = keyed_reduce ] && n=$reduce_rows
    echo "== round $round: $w" >&2
    PYTHONPATH="$stage" "$venv/bin/python" "$repo/bench/python/udfs.py" --engine weir --workload "$w" --rows "$n" \
      | tag weir "$round"
    "$venv/bin/python" "$repo/bench/python/udfs.py" --engine pyflink --workload "$w" --rows "$n" 2>/dev/null \
      | tag pyflink "$round"
  done
done
python3 - "$out" "$here" $workloads <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import load, median
rows = load(sys.argv[1])
print("| workload | rows | Weir rows out | Weir events per CPU-s (each round) | Weir peak RSS | PyFlink rows out | PyFlink events per CPU-s (each round) | PyFlink peak RSS | per-core ratio | RSS ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for w in sys.argv[3:]:
    side = {s: [r for r in rows if r["workload"] == w and r["side"] == s] for s in ("weir", "pyflink")}
    if not side["weir"] or not side["pyflink"]:
        continue
    def cell(rs):
        each = " ".join(f"{r['events_per_cpu_s'] / 1e3:.0f}K" for r in rs)
        return f"{median(rs, 'events_per_cpu_s') / 1e3:,.0f}K ({each})"
    wm, fm = median(side["weir"], "events_per_cpu_s"), median(side["pyflink"], "events_per_cpu_s")
    wr, fr = median(side["weir"], "peak_rss_mib"), median(side["pyflink"], "peak_rss_mib")
    n = side["weir"][0]["events"]
    print(f"| {w} | {n:,} | {side['weir'][0]['rows_out']:,} | {cell(side['weir'])} | {wr:,.0f} MiB "
          f"| {side['pyflink'][0]['rows_out']:,} | {cell(side['pyflink'])} | {fr:,.0f} MiB | **{wm / fm:.1f}×** | 1/{fr / wr:.1f} |")
PY
