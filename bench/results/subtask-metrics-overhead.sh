#!/usr/bin/env bash
# The cost of the per-subtask metrics (issue #23: each subtask times its waits for input and for
# room downstream and counts its records): Nexmark q0 and q5 from their Flink SQL text
# (`weir-bench --sql`, every event kind generated: --no-pushdown), one release build (BENCH,
# default the current one) run with the metrics on and with them switched off
# (WEIR_SUBTASK_METRICS=off), at p = 1, QUERIES (default "q0:10000000 q5:4000000", query:events),
# for ROUNDS rounds (default 20), the order alternating each round (on/off, then off/on) so drift
# cancels. Raw JSON lines go to RESULTS.jsonl (default 2026-12-07-subtask-metrics-on-off), then
# the medians and the median of the per-round ratios with a bootstrap 95 % interval.
set -euo pipefail
bench="${BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-20}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-07-subtask-metrics-on-off}"
run() { # SIDE ROUND QUERY EVENTS
  if [ "$1" = off ]; then
    WEIR_SUBTASK_METRICS=off "$bench" --sql "$3" --no-pushdown -n "$4" -p 1 --reps 1 --json | tag off "$2"
  else
    "$bench" --sql "$3" --no-pushdown -n "$4" -p 1 --reps 1 --json | tag on "$2"
  fi
}
for round in $(seq "$rounds"); do
  for q in ${QUERIES:-q0:10000000 q5:4000000}; do
    set -- ${q%%:*} ${q##*:}
    if (( round % 2 )); then run on "$round" "$1" "$2"; run off "$round" "$1" "$2"
    else run off "$round" "$1" "$2"; run on "$round" "$1" "$2"; fi
  done
done
python3 - "$out" <<'PY'
import json, random, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| query | events | metrics off: events per CPU-s (median) | on (median) | rows out (both) | on / off, per round (median) | 95 % interval (bootstrap) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for shape in sorted({r["shape"] for r in rows}):
    by = {(r["side"], r["round"]): r for r in rows if r["shape"] == shape}
    rounds = sorted({k[1] for k in by if ("on", k[1]) in by and ("off", k[1]) in by})
    ratios = [by[("on", k)]["events_per_cpu_s"] / by[("off", k)]["events_per_cpu_s"] for k in rounds]
    med = {s: statistics.median(by[(s, k)]["events_per_cpu_s"] for k in rounds) for s in ("off", "on")}
    outs = {r["rows_out"] for r in by.values()}
    rng = random.Random(7)
    boot = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    lo, hi = boot[50], boot[1949]
    print(f"| {shape} | {by[('on', rounds[0])]['events']:,} | {med['off'] / 1e6:.2f}M | {med['on'] / 1e6:.2f}M "
          f"| {', '.join(f'{o:,}' for o in sorted(outs))} | {statistics.median(ratios):.3f} | {lo:.3f}–{hi:.3f} |")
PY
