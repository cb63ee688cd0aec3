#!/usr/bin/env bash
# Rows per second into PostgreSQL: Weir's postgres sink appending (at-least-once), upserting by
# primary key, and appending exactly-once, beside PostgreSQL's own COPY of the same rows (the
# limit: one COPY FROM a CSV file on the server's machine, no per-row protocol).
#
#   bench/postgres/run.sh                     # ROWS=1000000 ROUNDS=3 RESULTS=<file>
#
# Each round runs every mode once, interleaved (COPY, append, upsert, exactly-once, COPY, …); the
# table is created fresh for each run. The rows: id (a sequence), k = id % 100000, v (random
# 0..999), s (a 16-character text), from Weir's datagen (values a function of seed and row), and
# the CSV that COPY reads is that same job's output. The figure is rows / wall seconds of the
# whole `weir run` (planning and connecting included) and of the `\copy`. Starts a throwaway
# cluster with scripts/pg-up unless WEIR_PG_URL is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${ROWS:-1000000}"
ROUNDS="${ROUNDS:-3}"
PARALLELISM="${PARALLELISM:-2}"
RESULTS="${RESULTS:-bench/results/$(date +%F)-postgres.jsonl}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target-bench}"
cargo build --release --bin weir >&2
weir="$CARGO_TARGET_DIR/release/weir"
started=""
if [ -z "${WEIR_PG_URL:-}" ]; then
    eval "$(scripts/pg-up)"
    started=1
fi
psql=("$WEIR_PG_BIN/psql" "$WEIR_PG_URL" -q -v ON_ERROR_STOP=1)
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "$started" ] && scripts/pg-down "$WEIR_PG_DIR"' EXIT

source_yaml() {
    cat <<YAML
parallelism: $PARALLELISM
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
YAML
}

# The CSV for COPY: the same rows, written by the same generator.
{ echo "name: to-csv"; source_yaml; cat <<YAML
sinks:
  - {id: csv, input: rows, connector: file, path: "$work/csv", format: csv, header: false}
YAML
} > "$work/csv.yaml"
"$weir" run "$work/csv.yaml" --progress=never >&2
cat "$work"/csv/part-* > "$work/rows.csv"
chmod 644 "$work/rows.csv"
echo "CSV: $(wc -l < "$work/rows.csv") rows" >&2

fresh() { "${psql[@]}" -c "DROP TABLE IF EXISTS bench_$1; CREATE TABLE bench_$1 (id bigint $2, k bigint, v bigint, s text)"; }
now() { date +%s.%N; }
record() { # mode seconds rows
    local rate; rate=$(python3 -c "print(round($3 / $2))")
    echo "{\"bench\":\"postgres\",\"mode\":\"$1\",\"rows\":$ROWS,\"rows_in_table\":$3,\"seconds\":$2,\"rows_per_second\":$rate,\"parallelism\":$PARALLELISM}" | tee -a "$RESULTS"
}

run_weir() { # mode primary_key delivery
    local mode=$1 pk=$2 delivery=$3 table="bench_$1"
    fresh "$mode" "$([ -n "$pk" ] && echo 'PRIMARY KEY')"
    { echo "name: pg-$mode"; source_yaml
      [ "$delivery" = exactly_once ] && echo "checkpoint: {interval_ms: 1000, storage: \"$work/chk-$mode-$RANDOM\"}"
      cat <<YAML
sinks:
  - {id: pg, input: rows, connector: postgres, url: "$WEIR_PG_URL", table: $table, delivery: $delivery,
     primary_key: [$pk], batch_rows: 500}
YAML
    } > "$work/$mode.yaml"
    local t0 t1; t0=$(now)
    "$weir" run "$work/$mode.yaml" --progress=never >&2
    t1=$(now)
    record "$mode" "$(python3 -c "print(round($t1 - $t0, 3))")" "$("${psql[@]}" -At -c "SELECT count(*) FROM $table")"
}

run_copy() {
    fresh copy ""
    local t0 t1; t0=$(now)
    "${psql[@]}" -c "\\copy bench_copy FROM '$work/rows.csv' WITH (FORMAT csv)"
    t1=$(now)
    record copy "$(python3 -c "print(round($t1 - $t0, 3))")" "$("${psql[@]}" -At -c "SELECT count(*) FROM bench_copy")"
}

echo "# $(date -Is) bench/postgres/run.sh ROWS=$ROWS ROUNDS=$ROUNDS PARALLELISM=$PARALLELISM; $(nproc) cores; $("${psql[@]}" -At -c 'SHOW server_version')" | tee -a "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round" >&2
    run_copy
    run_weir append "" at_least_once
    run_weir upsert id at_least_once
    run_weir exactly_once "" exactly_once
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        runs.setdefault(r["mode"], []).append(r)
for mode, rs in runs.items():
    med = statistics.median(r["rows_per_second"] for r in rs)
    print(f"{mode:13} median {med:>10,.0f} rows/s over {len(rs)} runs; rows in table {rs[-1]['rows_in_table']:,}")
PY
