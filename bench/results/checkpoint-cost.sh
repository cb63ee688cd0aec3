#!/usr/bin/env bash
# What checkpoints cost (issue 19): the Nexmark q5 DataStream shape (`weir-bench --query q5`,
# every event kind generated, 10M events, p = 1) without checkpoints, with a checkpoint every
# second (incremental, the default), and with a full checkpoint every second, interleaved
# none, incremental, full, none… for 5 rounds on the same machine. Raw JSON lines go to
# 2026-12-05-checkpoint-cost.jsonl (`side` and `round` added), the machine's facts to
# 2026-12-05-checkpoint-cost.machine.txt, then the table of medians is printed. RESULTS names
# another results file; ROUNDS sets the rounds, EVENTS the events per run (10M makes only two
# checkpoints at today's speed: 40M measures the cost of ~20), FULL=0 leaves out the full side.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-checkpoint-cost}"
for round in $(seq "${ROUNDS:-5}"); do
  n="${EVENTS:-10000000}"
  "$bench" --query q5 -n "$n" -p 1 --reps 1 --json | tag none "$round"
  "$bench" --query q5 -n "$n" -p 1 --reps 1 --json --checkpoint-interval 1000 | tag incremental "$round"
  [ "${FULL:-1}" = 0 ] || "$bench" --query q5 -n "$n" -p 1 --reps 1 --json --checkpoint-interval 1000 --full-checkpoints | tag full "$round"
done
python3 "$here/checkpoint-cost-table.py" "$out"
