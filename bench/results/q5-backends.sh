#!/usr/bin/env bash
# Nexmark q5 (the DataStream shape: sliding-window bid counts per auction, then the hottest
# auctions of each window) with keyed state in memory and on disk, without and with a
# checkpoint every second (incremental), interleaved, ROUNDS rounds (issue 19). The disk
# backend gets a 256 MiB budget. Raw JSON lines go to 2026-12-05-q5-backends.jsonl (`side`,
# `round` added; RESULTS names another file); the table printed at the end takes the medians.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-3}"
events="${EVENTS:-10000000}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-q5-backends}"
state_dir="${STATE_DIR:-${TMPDIR:-/tmp}/weir-bench-state}"
mkdir -p "$state_dir"
disk=(--state-backend disk --state-memory 256m --state-dir "$state_dir")
for round in $(seq "$rounds"); do
  "$bench" --query q5 -n "$events" -p 1 --reps 1 --json | tag memory "$round"
  "$bench" --query q5 -n "$events" -p 1 --reps 1 --json "${disk[@]}" | tag disk "$round"
  "$bench" --query q5 -n "$events" -p 1 --reps 1 --json --checkpoint-interval 1000 | tag memory-checkpointed "$round"
  "$bench" --query q5 -n "$events" -p 1 --reps 1 --json "${disk[@]}" --checkpoint-interval 1000 | tag disk-checkpointed "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_side, load, median
print("| run | events | rows out | events per CPU-s (median) | peak RSS MiB | checkpoints | mean ms | max ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for s, rs in by_side(load(sys.argv[1])).items():
    m = lambda k: median(rs, k)
    print(f"| {s} ({len(rs)} runs) | {rs[0]['events']} | {rs[0]['rows_out']} | {m('events_per_cpu_s'):.0f} | {m('peak_rss_mib'):.0f} | {m('checkpoints'):.0f} | {m('checkpoint_mean_ms'):.0f} | {m('checkpoint_max_ms'):.0f} |")
PY
