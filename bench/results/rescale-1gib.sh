#!/usr/bin/env bash
# Restore and rescale of 1 GiB of keyed state on disk (issue 19: "restore at the same
# parallelism and rescale 2 → 4 of 1 GiB (on disk) of state: seconds from the start of the
# restore to processing, target ≤ 5 s"). `weir-bench --query state`: a running count and sum
# per key over `id % keys`, 33M keys (1,068 MiB of checkpoint records) built at p = 2 on the disk
# backend (256 MiB budget), savepointed to local disk, restored at p = 2 and rescaled to p = 4,
# ROUNDS rounds (default 3). Raw JSON lines go to 2026-12-05-rescale-1gib.jsonl (`side`, `round`
# added), then the table of medians is printed.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-3}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-rescale-1gib}"
state_dir="${STATE_DIR:-${TMPDIR:-/tmp}/weir-bench-state}"
for round in $(seq "$rounds"); do
  rm -rf "$state_dir" && mkdir -p "$state_dir"
  "$bench" --query state -n 33000000 -p 2 --rescale-to 4 --json \
    --state-backend disk --state-memory 256m --state-dir "$state_dir" | tag disk-33m "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_side, load, median
print("| run | keys | rounds | savepoint MiB | savepoint s | restore at p = 2 s (each round) | rescale to p = 4 s (each round) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for s, rs in by_side(load(sys.argv[1])).items():
    each = lambda k: ", ".join(f"{r[k] / 1000:.2f}" for r in rs)
    print(f"| {s} | {rs[0]['keys']:,} | {len(rs)} | {median(rs, 'snapshot_mib'):,.0f} | "
          f"{median(rs, 'snapshot_ms') / 1000:.1f} | **{median(rs, 'restore_ms') / 1000:.2f}** ({each('restore_ms')}) | "
          f"**{median(rs, 'rescale_ms') / 1000:.2f}** ({each('rescale_ms')}) |")
PY
