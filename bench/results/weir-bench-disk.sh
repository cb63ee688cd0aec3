#!/usr/bin/env bash
# weir-bench with keyed state on the disk backend and a memory budget of STATE_MEMORY (default
# 64m): for the interleaved scripts, as WEIR_BENCH=bench/results/weir-bench-disk.sh.
exec "${WEIR_BENCH_BIN:-$HOME/.cache/weir/target-bench/release/weir-bench}" "$@" \
  --state-backend disk --state-memory "${STATE_MEMORY:-64m}"
