#!/usr/bin/env bash
# The datagen rows: passthrough and filter_project (the Flink peer ../shared/peers/flink's
# workloads, copied to ~/flink-peer with a venv holding apache-flink 2.3.0) on Weir
# (`weir-bench --query`) and on Flink (`run_flink_sql.py`), interleaved Weir, Flink… for 3 rounds at
# p = 1 and 2, 20M rows per job on both sides. Raw JSON lines go to
# 2026-12-04-datagen-vs-flink.jsonl (`side`, `round` added), the machine's facts beside them,
# then the table of medians is printed (Flink per CPU-second = its net rows/s over the cores it
# used, as its runner reports them).
set -euo pipefail
bench="${WEIR_BENCH:-$HOME/.cache/weir/target-bench/release/weir-bench}"
peer="${FLINK_PEER:-$HOME/flink-peer}"
source "$(dirname "$0")/rounds.sh"
results 2026-12-04-datagen-vs-flink
for round in 1 2 3; do
  for p in 1 2; do
    "$bench" --query passthrough,filter_project -n 20000000 -p "$p" --reps 1 --json | tag weir "$round"
    for w in passthrough filter_project; do
      (cd "$peer" && .venv/bin/python run_flink_sql.py --workload "$w" --rows 20000000 -p "$p" --reps 1 --json 2>/dev/null) \
        | tag flink "$round"
    done
  done
done
python3 - "$out" <<'PY'
import collections, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows:
    shape = r.get("shape") or r.get("workload")
    n = r.get("events") or r.get("rows")
    if n != 20000000:
        continue  # warm-up jobs
    if r["side"] == "flink":
        r["per_cpu"] = r["net_rows_per_s"] / r["flink_cpu_cores"]
    else:
        r["per_cpu"] = r["events_per_cpu_s"]
    by[(shape, r["parallelism"], r["side"])].append(r)
print("| shape | p | rows in | Weir events per CPU-s | Weir rows out | Weir peak RSS | Flink events per CPU-s (cores) | per-core ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for p in (1, 2):
    for s in ("passthrough", "filter_project"):
        w, f = by[(s, p, "weir")], by[(s, p, "flink")]
        if not w or not f:
            continue
        wm = statistics.median(x["per_cpu"] for x in w)
        fm = statistics.median(x["per_cpu"] for x in f)
        cores = statistics.median(x["flink_cpu_cores"] for x in f)
        rss = statistics.median(x["peak_rss_mib"] for x in w)
        print(f"| {s} | {p} | 20,000,000 | {wm / 1e6:.1f}M | {w[0]['rows_out']:,} | {rss:.0f} MiB | {fm / 1e6:.2f}M ({cores:.2f}) | **{wm / fm:.1f}×** |")
PY
