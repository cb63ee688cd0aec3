#!/usr/bin/env bash
# Local recovery (issue 19), `weir-bench --query state` on the disk backend with a checkpoint
# every second into S3 (the project's S3 test server, moto, started here on this machine): once
# the state is built, the newest checkpoint is restored at the same parallelism twice — first
# downloading every file from S3 (local recovery off), then from the local copies local
# recovery kept. KEYS keys (default 4M), ROUNDS rounds. Raw JSON lines go to
# 2026-12-05-local-recovery.jsonl; the table printed at the end takes the medians.
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
rounds="${ROUNDS:-3}"
keys="${KEYS:-4000000}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$(dirname "$0")/rounds.sh"
results 2026-12-05-local-recovery
eval "$("$root/scripts/s3-up")"
trap 'kill "$WEIR_S3_PID" 2>/dev/null || true' EXIT
state_dir="${STATE_DIR:-${TMPDIR:-/tmp}/weir-bench-local-recovery}"
for round in $(seq "$rounds"); do
  rm -rf "$state_dir"
  "$bench" --query state -n "$keys" -p 1 --json --state-backend disk --state-dir "$state_dir" \
    --checkpoint-interval 1000 --checkpoint-storage "s3://$WEIR_S3_BUCKET/local-recovery-$round" |
    tag disk-s3 "$round"
done
python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import load, median
rows = load(sys.argv[1])
med = lambda k: median(rows, k)
print("| keys | restore downloading from S3, ms (median) | restore from local copies, ms (median) | MiB read locally | rounds |")
print("| ---: | ---: | ---: | ---: | ---: |")
print(f"| {rows[0]['keys']} | {med('checkpoint_download_restore_ms'):.0f} | {med('checkpoint_local_restore_ms'):.0f} | {med('checkpoint_local_restore_mib'):.0f} | {len(rows)} |")
PY
