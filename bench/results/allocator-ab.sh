#!/usr/bin/env bash
# Weir alone, two builds of the same commit that differ only in the allocator: A (default
# /tmp/wb-v3: mimalloc v3, the crate's default, purge delay 1 s) and B (/tmp/wb-v2: mimalloc v2,
# features ["no_thp", "v2"], purge delay 10 ms), the order alternating each round, Nexmark SQL
# queries at p = 1 with every event kind generated (2M events; q0/q1 10M). One JSON line per run
# with "alloc" and "round" added, appended to OUT.
#   QUERIES="q0 q3 q5 q7 q9" ROUNDS=3 OUT=bench/results/2026-12-07-mimalloc-v2-vs-v3.jsonl bench/results/allocator-ab.sh
set -euo pipefail
a="${A:-/tmp/wb-v3}" b="${B:-/tmp/wb-v2}"
out="${OUT:-allocator-ab.jsonl}"
for round in $(seq "${ROUNDS:-3}"); do
  if (( round % 2 )); then order="v3 v2"; else order="v2 v3"; fi
  for q in ${QUERIES:-q7}; do
    n=2000000; [[ $q == q0 || $q == q1 ]] && n=10000000
    for alloc in $order; do
      bin=$a; [[ $alloc == v2 ]] && bin=$b
      "$bin" --sql "$q" --no-pushdown -n "$n" -p 1 --reps 1 --json ${EXTRA:-} 2>/dev/null | python3 -c "
import json, sys
for l in sys.stdin:
    l = l.strip()
    if l.startswith('{'):
        d = json.loads(l); d['alloc'] = '$alloc'; d['round'] = $round; print(json.dumps(d))" >> "$out"
    done
  done
done
