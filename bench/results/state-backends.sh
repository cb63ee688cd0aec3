#!/usr/bin/env bash
# State backends (issue 19), `weir-bench --query state`: a running count and sum per key
# (`id % keys`), built, savepointed, restored at the same parallelism and rescaled.
#   1. memory at 8M keys vs disk at 8M keys (same work), interleaved, ROUNDS rounds;
#   2. disk at 50M keys in a cgroup limited to 1 GiB (state far larger than memory: the memory
#      backend needs ~185 B a key, 9 GiB here), p = 2, rescaled to 4, with a 256 MiB budget
#      (at 512 MiB the process's RSS reached ~730 MiB while building and the savepoint's
#      buffers on top crossed 1 GiB: the budget is approximate);
#   3. the disk backend's checkpoint cost: 8M keys updated twice, without and with a checkpoint
#      every second (incremental), interleaved;
#   4. the same, with only the first checkpoint full (`--full-every 1000`; jobs default to every
#      100th), to tell the cost of the incremental checkpoints from the periodic full ones;
#   5. phase 2 without and with a checkpoint every second (incremental), interleaved: the
#      checkpoint cost of a state far larger than memory that only grows (NO_LIMIT=1: outside
#      the 1 GiB cgroup).
# Raw JSON lines go to 2026-12-05-state-backends.jsonl (`side`, `round` added). PHASES="2 3"
# runs only those phases, appending; RESULTS names another results file (started afresh).
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-2}"
source "$(dirname "$0")/rounds.sh"
phases="${PHASES:-1 2 3}"
if [[ " $phases " == *" 1 "* || -n "${RESULTS:-}" ]]; then
  results "${RESULTS:-2026-12-05-state-backends}"
else
  out="$here/2026-12-05-state-backends.jsonl"
fi
state_dir="${STATE_DIR:-${TMPDIR:-/tmp}/weir-bench-state}"
mkdir -p "$state_dir"
disk=(--state-backend disk --state-memory 512m --state-dir "$state_dir")

# Runs its arguments in a memory cgroup (v1 or v2) limited to 1 GiB, page cache included.
limited() {
  local cg
  if [ -d /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/weir-bench; mkdir -p "$cg"
    echo $((1 << 30)) > "$cg/memory.limit_in_bytes"
  else
    cg=/sys/fs/cgroup/weir-bench; mkdir -p "$cg"
    echo $((1 << 30)) > "$cg/memory.max"
  fi
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

if [[ " $phases " == *" 1 "* ]]; then
  for round in $(seq "$rounds"); do
    "$bench" --query state -n 8000000 -p 1 --json | tag memory-8m "$round"
    "$bench" --query state -n 8000000 -p 1 --json "${disk[@]}" | tag disk-8m "$round"
  done
fi
if [[ " $phases " == *" 2 "* ]]; then
  limited "$bench" --query state -n 50000000 -p 2 --rescale-to 4 --json \
    --state-backend disk --state-memory 256m --state-dir "$state_dir" | tag disk-50m-1gib 1
fi
[[ " $phases " == *" 3 "* ]] && for round in $(seq "$rounds"); do
  "$bench" --query state -n 8000000 --passes 2 -p 1 --json "${disk[@]}" | tag disk-8m-x2 "$round"
  "$bench" --query state -n 8000000 --passes 2 -p 1 --json "${disk[@]}" --checkpoint-interval 1000 | tag disk-8m-x2-checkpointed "$round"
done
[[ " $phases " == *" 4 "* ]] && for round in $(seq "$rounds"); do
  "$bench" --query state -n 8000000 --passes 2 -p 1 --json "${disk[@]}" | tag disk-8m-x2 "$round"
  "$bench" --query state -n 8000000 --passes 2 -p 1 --json "${disk[@]}" --checkpoint-interval 1000 --full-every 1000 \
    | tag disk-8m-x2-checkpointed-first-full "$round"
done
# Phase 5 in the 1 GiB cgroup, or with NO_LIMIT=1 without it.
run5() { if [ "${NO_LIMIT:-}" = 1 ]; then "$@"; else limited "$@"; fi; }
side5="disk-50m$([ "${NO_LIMIT:-}" = 1 ] || echo -1gib)"
[[ " $phases " == *" 5 "* ]] && for round in $(seq "$rounds"); do
  run5 "$bench" --query state -n 50000000 -p 2 --rescale-to 4 --json \
    --state-backend disk --state-memory 256m --state-dir "$state_dir" | tag "$side5" "$round"
  run5 "$bench" --query state -n 50000000 -p 2 --rescale-to 4 --json --checkpoint-interval 1000 \
    --state-backend disk --state-memory 256m --state-dir "$state_dir" | tag "$side5-checkpointed" "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_side, load, median
print("| run | keys | passes | p | events per CPU-s (median) | state RSS MiB | peak RSS MiB | checkpoints | p50 ms | p99 ms | savepoint ms | MiB | restore ms | rescaled to | restore ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for s, rs in by_side(load(sys.argv[1])).items():
    m = lambda k: median(rs, k)
    r = rs[0]
    print(f"| {s} ({len(rs)} runs) | {r['keys']} | {r['passes']} | {r['parallelism']} | {m('build_events_per_cpu_s'):.0f} | {m('state_rss_mib'):.0f} | {m('peak_rss_mib'):.0f} | {m('checkpoints'):.0f} | {m('checkpoint_p50_ms'):.0f} | {m('checkpoint_p99_ms'):.0f} | {m('snapshot_ms'):.0f} | {m('snapshot_mib'):.0f} | {m('restore_ms'):.0f} | {r['rescale_to']} | {m('rescale_ms'):.0f} |")
PY
