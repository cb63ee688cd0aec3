#!/usr/bin/env bash
# Nexmark's join and Top-N queries (q3, q4, q5, q7, q8, q9) from their Flink SQL text on Weir
# (`weir-bench --sql`, every event kind generated: --no-pushdown) and on Apache Flink 2.3.0 (the
# peer kit ../shared/peers/flink-nexmark, copied to ~/nexmark-peer with its venv and build),
# interleaved Weir, Flink… for 3 rounds at p = 1, 2M events per job (each side runs a warm-up job
# of a quarter first). Raw JSON lines go
# to 2026-12-04-joins-vs-flink.jsonl, the machine's facts beside them, then the table of medians.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
peer="${NEXMARK_PEER:-$HOME/nexmark-peer}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-04-joins-vs-flink
for round in 1 2 3; do
  "$bench" --sql q3,q4,q5,q7,q8,q9 --no-pushdown -n 2000000 -p 1 --reps 1 --json | tag weir-sql "$round"
  (cd "$peer" && .venv/bin/python run.py --query q3,q4,q5,q7,q8,q9 --events 2000000 -p 1 --reps 1 --json 2>/dev/null) \
    | tag flink-sql "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_query, load, median
by = by_query(load(sys.argv[1]), 2_000_000)
print("| query | events | Weir SQL: events per CPU-s | Weir rows out (changelog) | Weir peak RSS | Flink SQL: events per CPU-s | Flink peak RSS | per-core ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for q in ("q3", "q4", "q5", "q7", "q8", "q9"):
    w, f = by.get((q, "weir-sql")), by.get((q, "flink-sql"))
    if not w or not f:
        continue
    med = median
    wm, fm = med(w, "events_per_cpu_s"), med(f, "events_per_cpu_s")
    print(f"| {q} | 2,000,000 | {wm / 1e6:.2f}M | {w[0]['rows_out']:,} | {med(w, 'peak_rss_mib'):.0f} MiB "
          f"| {fm / 1e6:.2f}M | {med(f, 'peak_rss_mib'):,.0f} MiB | **{wm / fm:.1f}×** |")
PY
