#!/usr/bin/env bash
# The headline Nexmark rows: q0, q1, q2 as Weir's DataStream shapes (`weir-bench --query`)
# against Apache Flink 2.3.0's SQL on the same generator model (the peer kit
# ../shared/peers/flink-nexmark, copied to ~/nexmark-peer with its venv and build), interleaved
# Weir, Flink, Weir, Flink… for 3 rounds at p = 1 and p = 2, 10M events per job. Raw JSON lines go
# to 2026-12-04-headline-vs-flink.jsonl (`side`, `round` added), the machine's facts to
# 2026-12-04-headline-vs-flink.machine.txt, then the table of medians is printed.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
peer="${NEXMARK_PEER:-$HOME/nexmark-peer}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-04-headline-vs-flink
for round in 1 2 3; do
  for p in 1 2; do
    "$bench" --query q0,q1,q2 -n 10000000 -p "$p" --reps 1 --json | tag weir-datastream "$round"
    (cd "$peer" && .venv/bin/python run.py --query q0,q1,q2 --events 10000000 -p "$p" --reps 1 --json 2>/dev/null) \
      | tag flink-sql "$round"
  done
done
python3 "$here/headline-table.py" "$out"
