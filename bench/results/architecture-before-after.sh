#!/usr/bin/env bash
# Interleaved before/after rounds of q0, q5, keyed_count at p=1 for the architecture change
# (issue #16), raw JSON lines kept in 2026-12-04-architecture-before-after.jsonl.
#
# "before" is `weir bench` of commit 335684a (git worktree add /tmp/w/before 335684a; cargo
# build --release --bin weir; cp target/release/weir /tmp/w/weir-before); "after" is
# `cargo build --release -p weir-bench`. Both run the same shapes (the harness moved crates,
# unchanged) over the same generated events; rows out are printed beside the figures.
# Machine: 2 cores, Intel(R) Xeon(R) Processor, 24 GiB (this project's `polyglot` kind).
set -euo pipefail
out=/work/main/bench/results/2026-12-04-architecture-before-after.jsonl
: > "$out"
for round in 1 2 3; do
  for side in before after; do
    if [[ $side == before ]]; then
      cmd=(/tmp/w/weir-before bench)
    else
      cmd=("$HOME/.cache/weir/target-bench/release/weir-bench")
    fi
    "${cmd[@]}" --query q0,q5,keyed_count -n 5000000 -p 1 --reps 1 --json \
      | grep '^{' | python3 -c "
import json,sys
for l in sys.stdin:
    d=json.loads(l); d['side']='$side'; d['round']=$round; print(json.dumps(d))" >> "$out"
  done
done
python3 - "$out" <<'PY'
import json,sys,statistics,collections
rows=[json.loads(l) for l in open(sys.argv[1])]
by=collections.defaultdict(list)
for r in rows: by[(r['shape'],r['side'])].append(r)
print('| shape | events | rows out (before / after) | before: events per CPU-s, median of 3 | after | after/before |')
print('| --- | ---: | ---: | ---: | ---: | ---: |')
for shape in ['q0','q5','keyed_count']:
    b=by[(shape,'before')]; a=by[(shape,'after')]
    mb=statistics.median(x['events_per_cpu_s'] for x in b); ma=statistics.median(x['events_per_cpu_s'] for x in a)
    print(f"| {shape} | {b[0]['events']} | {b[0]['rows_out']} / {a[0]['rows_out']} | {mb:,.0f} | {ma:,.0f} | {ma/mb:.2f} |")
PY
