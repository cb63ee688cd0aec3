#!/usr/bin/env bash
# Which LSM store for the disk state backend: build time and read-modify-write throughput of
# fjall and RocksDB (rust-rocksdb) on this machine, the same keys and operations on both
# (a running count per key: get, add one, put; write batches of 4096, no WAL sync, 256 MiB
# block cache, LZ4), run interleaved. Prints build times, then one line per run.
#   bench/lsm-choice/run.sh [KEYS] [OPS] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
keys=${1:-5000000} ops=${2:-10000000} rounds=${3:-2}
target=${LSM_TARGET:-$HOME/.cache/weir/lsm-choice}
for store in fjall rocksdb; do
    if [ ! -x "$target/$store/release/lsm-choice-$store" ]; then
        ( cd "$here/$store" && CARGO_TARGET_DIR="$target/$store" /usr/bin/time -f "$store build: %e s wall, %U s user CPU" cargo build --release -q )
    fi
done
for round in $(seq "$rounds"); do
    for store in fjall rocksdb; do
        printf '%s round %s: ' "$store" "$round"
        DIR="${TMPDIR:-/tmp}/lsm-choice-$store" /usr/bin/time -f "  (%e s wall, %U user %S sys, peak RSS %M KB)" \
            "$target/$store/release/lsm-choice-$store" "$keys" "$ops" 2>&1 | grep -v " ops, "
    done
done
