#!/usr/bin/env bash
# Nexmark q0, q1, q2, q11, q12 from their Flink SQL text on Weir (`weir-bench --sql`, the
# Nexmark source generating every event kind as Flink's does: --no-pushdown), Weir's hand-built
# DataStream shapes of q0-q2 (`--query`), and Apache Flink 2.3.0's SQL (the peer kit
# ../shared/peers/flink-nexmark, copied to ~/nexmark-peer with its venv and build), interleaved
# round by round on the same machine, p = 1. Raw JSON lines go to 2026-12-04-sql-vs-flink.jsonl
# (one per measured job; `side` and `round` added), then a table of medians is printed.
# Events per job: 10M for q0, q1, q2, q12; 3M for q11 (the peer's matrix). Machine: 2 cores,
# 24 GiB (this project's `polyglot` kind).
set -euo pipefail
bench="$HOME/.cache/weir/target-bench/release/weir-bench"
peer="$HOME/nexmark-peer"
source "$(dirname "$0")/rounds.sh"
results 2026-12-04-sql-vs-flink
for round in 1 2 3; do
  for events in 10000000 3000000; do
    if [[ $events == 10000000 ]]; then queries=q0,q1,q2,q12; else queries=q11; fi
    "$bench" --sql "$queries" --no-pushdown -n "$events" -p 1 --reps 1 --json | tag weir-sql "$round"
    "$bench" --sql "$queries" -n "$events" -p 1 --reps 1 --json | tag weir-sql-pushdown "$round"
    if [[ $events == 10000000 ]]; then
      "$bench" --query q0,q1,q2 -n "$events" -p 1 --reps 1 --json | tag weir-datastream "$round"
    fi
    (cd "$peer" && .venv/bin/python run.py --query "$queries" --events "$events" -p 1 --reps 1 --json 2>/dev/null) \
      | tag flink-sql "$round"
  done
done
python3 "$(dirname "$0")/sql-vs-flink-table.py" "$out"
