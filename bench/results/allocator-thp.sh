#!/usr/bin/env bash
# Transparent huge pages in the allocator (issue 19 follow-up): Nexmark q5 (DataStream shape,
# 20M events, p = 1, no checkpoints) with mimalloc's default (THP allowed) and with
# MIMALLOC_ALLOW_THP=0, interleaved, ROUNDS rounds. Raw JSON lines go to
# 2026-12-05-allocator-thp.jsonl; the table printed at the end takes the medians.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-5}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-05-allocator-thp
for round in $(seq "$rounds"); do
  "$bench" --query q5 -n 20000000 -p 1 --reps 1 --json | tag thp-allowed "$round"
  MIMALLOC_ALLOW_THP=0 "$bench" --query q5 -n 20000000 -p 1 --reps 1 --json | tag thp-off "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_side, load, median
sides = by_side(load(sys.argv[1]))
print("| allocator | events | rows out | events per CPU-s (median) | per round | peak RSS MiB (median) |")
print("| --- | ---: | ---: | ---: | --- | ---: |")
for s in ("thp-allowed", "thp-off"):
    rs = sides[s]
    per = " ".join(f"{r['events_per_cpu_s'] / 1e6:.2f}M" for r in rs)
    print(f"| {s} | {rs[0]['events']} | {rs[0]['rows_out']} | {median(rs, 'events_per_cpu_s'):.0f} | {per} | {median(rs, 'peak_rss_mib'):.0f} |")
PY
