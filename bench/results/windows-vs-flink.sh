#!/usr/bin/env bash
# The windows and keyed-state rows of issue #3, re-measured with equal sizes on both sides and
# raw data: tumble_window and the keyed shapes (keyed_aggregate, keyed_count) against the datagen
# Flink kit (../shared/peers/flink, copied to ~/flink-peer with its venv: `tumble_window` and its
# updating `GROUP BY auction`, `keyed_count`), 10M rows per job both sides at p = 1 and 2; and the
# Nexmark q5 / q7 DataStream rewrites against Flink's SQL q5 / q7 (the Nexmark kit, ~/nexmark-peer),
# 3M events per job both sides at p = 1 (different work: labelled so in BENCHMARKS.md).
# Interleaved Weir, Flink… for 3 rounds. Raw JSON lines go to 2026-12-04-windows-vs-flink.jsonl
# (`side`, `round` added), the machine's facts beside them, then the tables of medians.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
datagen_peer="${FLINK_PEER:-$HOME/flink-peer}"
nexmark_peer="${NEXMARK_PEER:-$HOME/nexmark-peer}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-04-windows-vs-flink
for round in 1 2 3; do
  for p in 1 2; do
    "$bench" --query tumble_window,keyed_aggregate,keyed_count -n 10000000 -p "$p" --reps 1 --json | tag weir "$round"
    for w in tumble_window keyed_count; do
      (cd "$datagen_peer" && .venv/bin/python run_flink_sql.py --workload "$w" --rows 10000000 -p "$p" --reps 1 --json 2>/dev/null) \
        | tag flink "$round"
    done
  done
  "$bench" --query q5,q7 -n 3000000 -p 1 --reps 1 --json | tag weir "$round"
  (cd "$nexmark_peer" && .venv/bin/python run.py --query q5,q7 --events 3000000 -p 1 --reps 1 --json 2>/dev/null) \
    | tag flink "$round"
done
python3 "$here/windows-table.py" "$out"
