#!/usr/bin/env bash
# Nexmark q5 and q9 from their Flink SQL text on Weir (`weir-bench --sql`, every event kind
# generated: --no-pushdown) with keyed state in memory and on disk (256 MiB budget), and on
# Apache Flink 2.3.0 with its RocksDB state backend (the peer kit ../shared/peers/flink-nexmark,
# copied to ~/nexmark-peer with its venv and build, `--state-backend rocksdb`), interleaved Weir
# memory, Weir disk, Flink RocksDB for 3 rounds at p = 1, 2M events per job (each side runs a
# warm-up job of a quarter first), no checkpoints (issue 19). Raw JSON lines go to
# 2026-12-05-backends-vs-flink-rocksdb.jsonl, the machine's facts beside them, then the table of
# medians. QUERIES=q5 runs only q5 (Flink's q9 on RocksDB did not finish a 2M-event job in 13
# CPU-minutes here). RESULTS names another results file.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
peer="${NEXMARK_PEER:-$HOME/nexmark-peer}"
rounds="${ROUNDS:-3}"
queries="${QUERIES:-q5,q9}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-backends-vs-flink-rocksdb}"
state_dir="${STATE_DIR:-${TMPDIR:-/tmp}/weir-bench-state}"
mkdir -p "$state_dir"
for round in $(seq "$rounds"); do
  "$bench" --sql "$queries" --no-pushdown -n 2000000 -p 1 --reps 1 --json | tag weir-memory "$round"
  "$bench" --sql "$queries" --no-pushdown -n 2000000 -p 1 --reps 1 --json \
    --state-backend disk --state-memory 256m --state-dir "$state_dir" | tag weir-disk "$round"
  (cd "$peer" && .venv/bin/python run.py --query "$queries" --events 2000000 -p 1 --reps 1 --state-backend rocksdb --json 2>/dev/null) \
    | tag flink-rocksdb "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_query, load, median
by = by_query(load(sys.argv[1]), 2_000_000)
med = median
print("| query | events | Weir memory: events per CPU-s | Weir disk: events per CPU-s | Weir rows out (memory / disk) | Weir peak RSS (memory / disk) | Flink RocksDB: events per CPU-s | Flink peak RSS | Weir disk / Flink RocksDB per core |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for q in ("q5", "q9"):
    m, d, f = by.get((q, "weir-memory")), by.get((q, "weir-disk")), by.get((q, "flink-rocksdb"))
    if not m or not d or not f:
        continue
    mm, dm, fm = med(m, "events_per_cpu_s"), med(d, "events_per_cpu_s"), med(f, "events_per_cpu_s")
    print(f"| {q} | 2,000,000 | {mm / 1e6:.2f}M | {dm / 1e6:.2f}M | {m[0]['rows_out']:,} / {d[0]['rows_out']:,} "
          f"| {med(m, 'peak_rss_mib'):.0f} / {med(d, 'peak_rss_mib'):.0f} MiB | {fm / 1e6:.2f}M "
          f"| {med(f, 'peak_rss_mib'):,.0f} MiB | **{dm / fm:.1f}×** |")
PY
