#!/usr/bin/env bash
# Nexmark q13–q22 from their Flink SQL text (examples/sql/nexmark/) on Weir alone — no peer runs
# these queries, so there is no ratio — at p = 1, 2M events, every event kind generated
# (--no-pushdown), one process per query. Raw JSON lines go to
# 2026-12-05-sql-q13-q22-weir.jsonl, the machine's facts beside them.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-1}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-sql-q13-q22-weir}"
for round in $(seq "$rounds"); do
  for q in q13 q14 q15 q16 q17 q18 q19 q20 q21 q22; do
    "$bench" --sql "$q" --no-pushdown -n 2000000 -p 1 --reps 1 --json | tag weir-sql "$round"
  done
done
python3 - "$out" <<'PY'
import json, sys
print("| query | events | Weir SQL: events per CPU-s | rows out | peak RSS |")
print("| --- | ---: | ---: | ---: | ---: |")
for line in open(sys.argv[1]):
    r = json.loads(line)
    q = r["shape"].removeprefix("sql-").removesuffix("-no-pushdown")
    print(f"| {q} | {r['events']:,} | {r['events_per_cpu_s'] / 1e6:.2f}M | {r['rows_out']:,} | {r['peak_rss_mib']:.0f} MiB |")
PY
