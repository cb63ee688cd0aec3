"""Reading the JSON lines the interleaved benchmark scripts here write (`tag` in rounds.sh):
the scripts' tables group and take medians through these."""
import collections
import json
import statistics


def load(path):
    """Every row of a results file."""
    return [json.loads(line) for line in open(path)]


def by_side(rows):
    """Rows per side, sides in the order they first ran."""
    sides = {}
    for r in rows:
        sides.setdefault(r["side"], []).append(r)
    return sides


def by_query(rows, events):
    """Rows per (query, side), of jobs over `events` only (warm-up jobs are smaller)."""
    by = collections.defaultdict(list)
    for r in rows:
        q = (r.get("query") or r.get("shape", "")).removeprefix("sql-").removesuffix("-no-pushdown")
        if r["events"] == events:
            by[(q, r["side"])].append(r)
    return by


def median(rows, key):
    """The median of `key` over `rows`."""
    return statistics.median(r[key] for r in rows)
