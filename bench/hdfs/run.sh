#!/usr/bin/env bash
# HDFS write throughput beside the local disk: the same job — ROWS generated rows of
# (id, k, v, s) written as JSON lines by the exactly-once file sink, checkpoints every second in
# the same place — once into a local directory, once into HDFS, interleaved ROUNDS times.
#
#   bench/hdfs/run.sh                     # ROWS=2000000 ROUNDS=3 RESULTS=<file>
#
# HDFS here is scripts/hdfs-up's single NameNode and DataNode on this machine (replication 1),
# so the figure is the client's and the protocol's cost, not a network's. Starts it unless
# WEIR_HDFS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${ROWS:-2000000}"
ROUNDS="${ROUNDS:-3}"
RESULTS="${RESULTS:-bench/results/$(date +%F)-hdfs.jsonl}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target-bench}"
cargo build --release --bin weir >&2
weir="$CARGO_TARGET_DIR/release/weir"
work=$(mktemp -d)
started=""
if [ -z "${WEIR_HDFS_URL:-}" ]; then
    eval "$(scripts/hdfs-up)"
    started=1
fi
trap 'rm -rf "$work"; [ -n "$started" ] && { kill "$WEIR_HDFS_PID"; rm -rf "$WEIR_HDFS_DIR"; }' EXIT

job() { # base
    cat <<YAML
name: write-$RANDOM
parallelism: 2
checkpoint: {interval_ms: 1000, storage: "$1/chk"}
sources:
  - id: gen
    connector: datagen
    rows: $ROWS
    seed: 3
    fields:
      - {name: id, kind: sequence}
      - {name: v, kind: random, min: 0, max: 999}
      - {name: s, kind: random, type: string, length: 16}
operators:
  - {id: rows, input: gen, select: ["id", "id % 100000 AS k", "v", "s"]}
sinks:
  - {id: out, input: rows, connector: file, path: "$1/out", format: json}
YAML
}
now() { date +%s.%N; }
echo "# $(date -Is) bench/hdfs/run.sh ROWS=$ROWS ROUNDS=$ROUNDS; $(nproc) cores" | tee -a "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for target in local hdfs; do
        if [ "$target" = local ]; then base="$work/local-$round"; else base="$WEIR_HDFS_URL/bench-$$-$round"; fi
        job "$base" > "$work/job.yaml"
        t0=$(now)
        out=$("$weir" run "$work/job.yaml" --progress=never 2>&1 | tail -1)
        t1=$(now)
        written=$(echo "$out" | sed -n 's/.*wrote \([0-9]*\) rows.*/\1/p')
        bytes=$([ "$target" = local ] && du -sb "$base/out" | cut -f1 || echo null)
        secs=$(python3 -c "print(round($t1 - $t0, 3))")
        echo "{\"bench\":\"hdfs\",\"target\":\"$target\",\"rows\":$ROWS,\"rows_written\":${written:-0},\"seconds\":$secs,\"rows_per_second\":$(python3 -c "print(round($ROWS / $secs))"),\"bytes\":$bytes}" | tee -a "$RESULTS"
    done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        runs.setdefault(r["target"], []).append(r)
for t, rs in runs.items():
    med = statistics.median(r["rows_per_second"] for r in rs)
    print(f"{t:6} median {med:>10,.0f} rows/s over {len(rs)} runs; rows written {rs[-1]['rows_written']:,}")
PY
