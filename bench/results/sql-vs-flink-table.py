"""Medians of bench/results/2026-12-04-sql-vs-flink.jsonl as the BENCHMARKS.md table."""
import collections, json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows:
    q = r.get("query") or r.get("shape", "")
    q = q.removeprefix("sql-").removesuffix("-no-pushdown")
    by[(q, r["side"])].append(r)
# The Flink runner also prints its warm-up job (a quarter of the events): keep measured jobs.
for k, xs in by.items():
    most = max(x["events"] for x in xs)
    by[k] = [x for x in xs if x["events"] == most]

def per_cpu(r):
    return r.get("events_per_cpu_s") or 0.0

def out_rows(r):
    return r.get("rows_out", r.get("output_rows", r.get("rows", "?")))

def med(side, q):
    xs = by.get((q, side), [])
    return (statistics.median(per_cpu(x) for x in xs), xs[0]) if xs else (None, None)

print("| query | events | Weir SQL: events per CPU-s | rows | Weir DataStream | rows | SQL / DataStream "
      "| Flink SQL: events per CPU-s | rows | Weir SQL / Flink | Weir SQL with push-down (different work) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for q in ["q0", "q1", "q2", "q11", "q12"]:
    s, sr = med("weir-sql", q)
    d, dr = med("weir-datastream", q)
    f, fr = med("flink-sql", q)
    p, _ = med("weir-sql-pushdown", q)
    if s is None:
        continue
    fmt = lambda v: f"{v / 1e6:.2f}M" if v else "—"
    print(f"| {q} | {sr['events']:,} | {fmt(s)} | {out_rows(sr)} | {fmt(d)} | {out_rows(dr) if dr else '—'} "
          f"| {f'{s / d:.2f}' if d else '—'} | {fmt(f)} | {out_rows(fr) if fr else '—'} "
          f"| {f'**{s / f:.1f}×**' if f else '—'} | {fmt(p)} |")
