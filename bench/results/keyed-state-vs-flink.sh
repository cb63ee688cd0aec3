#!/usr/bin/env bash
# A keyed running aggregate over millions of keys (issue 19's state benchmark, beside Flink's
# RocksDB): the Flink peer kit's `keyed_count` SQL (../shared/peers/flink, copied to
# ~/flink-peer with a venv holding apache-flink 2.3.0) —
#   SELECT auction, COUNT(*) AS cnt, SUM(price) AS total FROM bid GROUP BY auction
# over its datagen `bid` table with `auction` uniform in [0, KEYS) — run as the same SQL text by
# `weir run` (state in memory, and on disk with a 512 MiB budget) and by Flink 2.3.0 (RocksDB,
# and its heap backend), interleaved for ROUNDS rounds (default 2) at p = 1, ROWS rows per job
# (default 10M over 10M keys: ~6.3M distinct keys, each updated ~1.6 times). Weir's CPU seconds
# and peak RSS come from /usr/bin/time; Flink's from the kit (net rows/s over the cores it used).
# Both sides draw their own random values from the same distributions. Raw JSON lines go to
# 2026-12-05-keyed-state-vs-flink.jsonl, the machine's facts beside them, then the medians.
set -euo pipefail
weir="${WEIR:-$HOME/.cache/weir/target-bench/release/weir}"
peer="${FLINK_PEER:-$HOME/flink-peer}"
rounds="${ROUNDS:-2}"
rows="${ROWS:-10000000}"
keys="${KEYS:-10000000}"
source "$(dirname "$0")/rounds.sh"
results "${RESULTS:-2026-12-05-keyed-state-vs-flink}"
state_dir="${STATE_DIR:-${TMPDIR:-/tmp}/weir-bench-state}"
job="$(mktemp -d)"
trap 'rm -rf "$job"' EXIT

# The kit's DDL and query, with Weir's state backend set first.
sql() {
  cat <<SQL
SET 'parallelism.default' = '1';
$1
CREATE TEMPORARY TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '$rows',
  'rows-per-second' = '1000000000000',
  'fields.auction.min' = '0', 'fields.auction.max' = '$((keys - 1))',
  'fields.bidder.min' = '0', 'fields.bidder.max' = '999999',
  'fields.price.min' = '1', 'fields.price.max' = '100000',
  'fields.ts.max-past' = '0'
);
CREATE TEMPORARY TABLE sink (auction BIGINT, cnt BIGINT, total BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT auction, COUNT(*) AS cnt, SUM(price) AS total FROM bid GROUP BY auction;
SQL
}
sql "" > "$job/memory.sql"
sql "SET 'state.backend.type' = 'disk';
SET 'state.backend.memory' = '512m';
SET 'state.backend.local-dir' = '$state_dir';" > "$job/disk.sql"

# One Weir run as a JSON line: wall and CPU seconds, peak RSS, and the rows it says it wrote.
weir_run() {
  rm -rf "$state_dir" && mkdir -p "$state_dir"
  /usr/bin/time -f '%e %U %S %M' -o "$job/time" "$weir" run "$job/$1.sql" > "$job/out" 2> "$job/err"
  python3 - "$1" "$rows" "$keys" "$job" <<'PY'
import json, re, sys
backend, rows, keys, job = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
wall, user, sys_, rss_kb = open(f"{job}/time").read().split()[-4:]
cpu = float(user) + float(sys_)
text = open(f"{job}/err").read() + open(f"{job}/out").read()
out = re.findall(r"wrote (\d+) rows", text)
print(json.dumps({"engine": "weir", "state_backend": backend, "rows": rows, "keys": keys,
                  "seconds": float(wall), "cpu_seconds": cpu, "rows_per_cpu_s": rows / cpu,
                  "peak_rss_mib": int(rss_kb) / 1024,
                  "rows_out": int(out[-1].replace(",", "")) if out else None}))
PY
}

for round in $(seq "$rounds"); do
  weir_run memory | tag weir-memory "$round"
  weir_run disk | tag weir-disk "$round"
  for backend in rocksdb hashmap; do
    (cd "$peer" && .venv/bin/python run_flink_sql.py --workload keyed_count --rows "$rows" --keys "$keys" \
      -p 1 --reps 1 --state-backend "$backend" --json 2>/dev/null) | tag "flink-$backend" "$round"
  done
done
python3 - "$out" "$here" "$rows" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from tables import by_side, load, median
rows = int(sys.argv[3])
print("| side | rows in | keys | rows out | events per CPU-s | cores | peak RSS MiB |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for s, rs in by_side(load(sys.argv[1])).items():
    rs = [r for r in rs if r.get("rows") == rows]
    if s.startswith("flink"):
        for r in rs:
            r["per_cpu"] = r["net_rows_per_s"] / r["flink_cpu_cores"]
        cores, out = f"{median(rs, 'flink_cpu_cores'):.2f}", "not counted"
        rss = f"{median(rs, 'peak_rss_mib'):,.0f}" if "peak_rss_mib" in rs[0] else "—"
    else:
        for r in rs:
            r["per_cpu"] = r["rows_per_cpu_s"]
        cores = f"{median(rs, 'cpu_seconds') / median(rs, 'seconds'):.2f}"
        out = f"{rs[0]['rows_out']:,}" if rs[0]["rows_out"] is not None else "—"
        rss = f"{median(rs, 'peak_rss_mib'):,.0f}"
    print(f"| {s} | {rows:,} | {rs[0].get('keys', '')} | {out} | {median(rs, 'per_cpu'):,.0f} | {cores} | {rss} |")
PY
