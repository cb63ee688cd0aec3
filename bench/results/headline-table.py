"""Medians of a headline-vs-flink JSON-lines file as BENCHMARKS.md's headline table."""
import collections, json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows:
    q = r.get("query") or r.get("shape", "")
    p = r.get("parallelism") or r.get("p")
    by[(q, p, r["side"])].append(r)
# Flink's runner also prints its warm-up job (a quarter of the events): keep measured jobs.
for k, xs in by.items():
    most = max(x["events"] for x in xs)
    by[k] = [x for x in xs if x["events"] == most]

def med(q, p, side, f):
    xs = by.get((q, p, side), [])
    return statistics.median(x[f] for x in xs) if xs else None

def rows_out(q, p, side):
    xs = by.get((q, p, side), [])
    return xs[0].get("rows_out", "(blackhole)") if xs else "—"

print("| shape | p | events | Weir events per CPU-s | rows | Weir peak RSS | Flink events per CPU-s | Flink cores | Flink peak RSS | per-core ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for p in (1, 2):
    for q in ("q0", "q1", "q2"):
        w = med(q, p, "weir-datastream", "events_per_cpu_s")
        f = med(q, p, "flink-sql", "events_per_cpu_s")
        if w is None or f is None:
            continue
        print(f"| {q} | {p} | {by[(q, p, 'weir-datastream')][0]['events']:,} | {w / 1e6:.2f}M | {rows_out(q, p, 'weir-datastream')} "
              f"| {med(q, p, 'weir-datastream', 'peak_rss_mib'):.0f} MiB | {f / 1e6:.2f}M | {med(q, p, 'flink-sql', 'cores'):.2f} "
              f"| {med(q, p, 'flink-sql', 'peak_rss_mib'):,.0f} MiB | **{w / f:.1f}×** |")
