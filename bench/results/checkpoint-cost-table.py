"""Medians of a checkpoint-cost run (checkpoint-cost.sh) as the BENCHMARKS.md table."""
import collections, json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows:
    by[r["side"]].append(r)
none = statistics.median(r["events_per_cpu_s"] for r in by["none"])
print("| checkpoints | runs | events | rows out | events per CPU-s (median) | vs none | checkpoints done | mean ms | max ms | bytes written by the last | peak RSS MiB |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for side in ["none", "incremental", "full"]:
    xs = by.get(side, [])
    if not xs:
        continue
    m = statistics.median(r["events_per_cpu_s"] for r in xs)
    med = lambda k: statistics.median(r[k] for r in xs)
    print(f"| {side} | {len(xs)} | {xs[0]['events']:,} | {xs[0]['rows_out']} | {m / 1e6:.2f}M | {100 * (m / none - 1):+.1f} % "
          f"| {med('checkpoints'):.0f} | {med('checkpoint_mean_ms'):.0f} | {med('checkpoint_max_ms'):.0f} "
          f"| {med('checkpoint_bytes') / 1e6:.1f} MB | {med('peak_rss_mib'):.0f} |")
