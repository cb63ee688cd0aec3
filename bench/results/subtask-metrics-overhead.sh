#!/usr/bin/env bash
# The cost of the per-subtask metrics (issue #23: idle and back-pressured time, records and
# watermarks per subtask): Nexmark q0 and q5 from their Flink SQL text (`weir-bench --sql`,
# every event kind generated: --no-pushdown), a build without them (WITHOUT, default the build
# of 0ccc433 kept at ~/.cache/weir/weir-bench-0ccc433) and one with them (WITH, default the
# current release build), interleaved for ROUNDS rounds (default 5) at p = 1, 10M events for q0
# and 2M for q5. Raw JSON lines go to 2026-12-07-subtask-metrics-overhead.jsonl, then the
# medians.
set -euo pipefail
without="${WITHOUT:-$HOME/.cache/weir/weir-bench-0ccc433}"
with="${WITH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-5}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-07-subtask-metrics-overhead
for round in $(seq "$rounds"); do
  for q in "q0 10000000" "q5 2000000"; do
    set -- $q
    "$without" --sql "$1" --no-pushdown -n "$2" -p 1 --reps 1 --json | tag without "$round"
    "$with" --sql "$1" --no-pushdown -n "$2" -p 1 --reps 1 --json | tag with "$round"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| query | events | without: events per CPU-s (each round) | with: events per CPU-s (each round) | rows out (both) | with / without |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for shape in sorted({r["shape"] for r in rows}):
    sides = {s: [r for r in rows if r["shape"] == shape and r["side"] == s] for s in ("without", "with")}
    med = {s: statistics.median(r["events_per_cpu_s"] for r in v) for s, v in sides.items()}
    each = {s: " ".join(f"{r['events_per_cpu_s'] / 1e6:.2f}" for r in v) for s, v in sides.items()}
    outs = {r["rows_out"] for v in sides.values() for r in v}
    print(f"| {shape} | {sides['with'][0]['events']:,} | {med['without'] / 1e6:.2f}M ({each['without']}) "
          f"| {med['with'] / 1e6:.2f}M ({each['with']}) | {', '.join(f'{o:,}' for o in sorted(outs))} "
          f"| {med['with'] / med['without']:.3f} |")
PY
