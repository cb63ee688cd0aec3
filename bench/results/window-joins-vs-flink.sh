#!/usr/bin/env bash
# Nexmark q7 and q8 from their Flink SQL text after Weir plans them on the interval join (q7:
# bids joined with each window's maximum within the window; q8: a semi join of windowed persons
# and auctions on their windows), on Weir (`weir-bench --sql`, every event kind generated:
# --no-pushdown) and on Apache Flink 2.3.0 (the peer kit ../shared/peers/flink-nexmark, copied to
# ~/nexmark-peer with its venv and build), interleaved Weir, Flink… for ROUNDS rounds (default
# 3) at p = 1, 2M events per job (each side runs a warm-up job of a quarter first). Raw JSON lines
# go to 2026-12-05-window-joins-vs-flink.jsonl, the machine's facts beside them, then the table
# of medians. QUERIES picks the queries (default "q7 q8"; q5 runs on the interval join too
# since its semi join's condition runs inside it).
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
peer="${NEXMARK_PEER:-$HOME/nexmark-peer}"
rounds="${ROUNDS:-3}"
queries="${QUERIES:-q7 q8}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-window-joins-vs-flink}"
# Each query in its own process on both sides, so one's peak memory is not another's.
for round in $(seq "$rounds"); do
  for q in $queries; do
    "$bench" --sql "$q" --no-pushdown -n 2000000 -p 1 --reps 1 --json | tag weir-sql "$round"
    (cd "$peer" && .venv/bin/python run.py --query "$q" --events 2000000 -p 1 --reps 1 --json 2>/dev/null) \
      | tag flink-sql "$round"
  done
done
python3 - "$out" "$here" $queries <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_query, load, median
by = by_query(load(sys.argv[1]), 2_000_000)
print("| query | events | Weir SQL: events per CPU-s | Weir rows out | Weir peak RSS | Flink SQL: events per CPU-s | Flink peak RSS | per-core ratio | RSS ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for q in sys.argv[3:]:
    w, f = by.get((q, "weir-sql")), by.get((q, "flink-sql"))
    if not w or not f:
        continue
    wm, fm = median(w, "events_per_cpu_s"), median(f, "events_per_cpu_s")
    wr, fr = median(w, "peak_rss_mib"), median(f, "peak_rss_mib")
    print(f"| {q} | 2,000,000 | {wm / 1e6:.2f}M | {w[0]['rows_out']:,} | {wr:.0f} MiB "
          f"| {fm / 1e6:.2f}M | {fr:,.0f} MiB | **{wm / fm:.1f}×** | 1/{fr / wr:.0f} |")
PY
