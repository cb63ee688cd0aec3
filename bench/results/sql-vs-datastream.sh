#!/usr/bin/env bash
# Nexmark q0, q1, q2 from their Flink SQL text on Weir (`weir-bench --sql`, every event kind
# generated: --no-pushdown) against Weir's hand-built DataStream shapes of the same queries
# (`--query`), interleaved SQL, DataStream, SQL, DataStream… for 5 rounds on the same machine,
# p = 1, 10M events per job (each after a warm-up job of 2.5M). Raw JSON lines go to
# 2026-12-04-sql-vs-datastream.jsonl (`side` and `round` added), the machine's facts to
# 2026-12-04-sql-vs-datastream.machine.txt, then the table of medians is printed.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-04-sql-vs-datastream
for round in 1 2 3 4 5; do
  "$bench" --sql q0,q1,q2 --no-pushdown -n 10000000 -p 1 --reps 1 --json | tag weir-sql "$round"
  "$bench" --query q0,q1,q2 -n 10000000 -p 1 --reps 1 --json | tag weir-datastream "$round"
done
python3 "$here/sql-vs-flink-table.py" "$out"
