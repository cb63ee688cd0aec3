#!/usr/bin/env python3
"""Python functions on Weir and on PyFlink, the same functions over the same rows.

One process runs one engine (``--engine weir`` in a Python with Weir's package importable,
``--engine pyflink`` in one with ``apache-flink`` installed): a warm-up job of a quarter of the
rows (at most 1M), then the measured job, and prints one JSON line. Every workload reads the same rows, a
sequence ``n = 0 .. rows-1`` from the engine's own data generator (Weir's ``datagen``, Flink's
``datagen`` table, no rate limit), runs the function classes below (the very same code on both
engines, only the imports differ), and writes to the engine's blackhole sink:

- ``map_row``: ``map`` of a ``MapFunction`` per row: ``Row(k=n % 10000, v=n * 3)``.
- ``map_vectorized``: the same arithmetic on whole batches: Weir's ``map_batches`` on a
  ``pyarrow.RecordBatch`` against PyFlink's Pandas UDF (``func_type="pandas"``, a row result),
  both through numpy.
- ``keyed_reduce``: ``key_by(lambda r: r.n % 10000)`` (a Python key selector on both: PyFlink
  has no other) and a rolling ``reduce`` of a ``ReduceFunction``: ``Row(n=a.n + b.n)``.

Each function counts the rows it produced (or the reduce calls it made) and writes the count
from ``close()``, so ``rows_out`` is the functions' own count, summed over subtasks.

CPU is the whole process tree's (this process, PyFlink's JVM and its Python workers: user +
system time of the living processes plus what they reaped) over the measured job only, less the
memory sampler's own; peak RSS is the largest sum of the tree's resident memory, sampled every
20 ms during that job.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import threading
import time

WORKLOADS = ("map_row", "map_vectorized", "keyed_reduce")
KEYS = 10_000
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the process tree's CPU and memory -------------------------------------------------------
def _stat(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[1] = ppid; [11..14] = utime, stime, cutime, cstime (state is fields[0]).
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def _tree(root: int):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(int(entry))
            if s is not None:
                parents[int(entry)] = s[0]
    tree, todo = {root}, [root]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def tree_cpu_s(root: int) -> float:
    total = 0
    for pid in _tree(root):
        s = _stat(pid)
        if s is not None:
            total += s[1]
    return total / TICK


def rss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


class Meter:
    """CPU and peak resident memory of this process's tree between start and stop. The sampler
    finds the tree's processes once a second and reads their memory every 20 ms; its own CPU
    time is taken out of the figure."""

    def __enter__(self):
        self.root = os.getpid()
        self.pids = _tree(self.root)
        self.peak = rss_bytes(self.pids)
        self.stop = threading.Event()
        self.sampler_cpu = 0.0
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.cpu0 = tree_cpu_s(self.root)
        self.wall0 = time.monotonic()
        self.thread.start()
        return self

    def _sample(self):
        start = time.thread_time()
        tick = 0
        while not self.stop.wait(0.02):
            tick += 1
            if tick % 50 == 0:
                self.pids = _tree(self.root)
            self.peak = max(self.peak, rss_bytes(self.pids))
        self.sampler_cpu = time.thread_time() - start

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.wall0
        cpu = tree_cpu_s(self.root) - self.cpu0
        self.stop.set()
        self.thread.join()
        self.cpu = cpu - self.sampler_cpu
        self.peak = max(self.peak, rss_bytes(_tree(self.root)))


# -- the functions, the same on both engines --------------------------------------------------
def functions(Row, MapFunction, ReduceFunction, ScalarFunction):
    """The workloads' function classes over an engine's base classes."""

    class Counted:
        def __init__(self, count_dir: str):
            self.count_dir = count_dir

        def open(self, runtime_context):
            self.count = 0

        def close(self):
            path = os.path.join(self.count_dir, f"{type(self).__name__}-{os.getpid()}-{id(self)}")
            with open(path, "w") as f:
                f.write(str(self.count))

    class RowMap(Counted, MapFunction):
        def map(self, r):
            self.count += 1
            n = r.n
            return Row(k=n % KEYS, v=n * 3)

    class BatchMap(Counted):
        """Weir's ``map_batches``: a ``pyarrow.RecordBatch`` in and out."""

        def __call__(self, batch):
            import pyarrow as pa

            n = batch.column(0).to_numpy()
            self.count += len(n)
            return pa.RecordBatch.from_arrays([pa.array(n % KEYS), pa.array(n * 3)], names=["k", "v"])

    class PandasMap(Counted, ScalarFunction):
        """PyFlink's Pandas UDF: a ``pandas.Series`` in, a ``DataFrame`` (a row result) out."""

        def eval(self, n):
            import pandas as pd

            self.count += len(n)
            return pd.DataFrame({"k": n % KEYS, "v": n * 3})

    class Sum(Counted, ReduceFunction):
        def reduce(self, a, b):
            self.count += 1
            return Row(n=a.n + b.n)

    def key(r):
        return r.n % KEYS

    return RowMap, BatchMap, PandasMap, Sum, key


def counted(count_dir: str) -> int:
    return sum(int(open(p).read()) for p in glob.glob(os.path.join(count_dir, "*")))


# -- Weir ---------------------------------------------------------------------------------------
def run_weir(workload: str, rows: int, parallelism: int, count_dir: str):
    from weir.common import Row, Types
    from weir.datastream import MapFunction, ReduceFunction, StreamExecutionEnvironment
    from weir.datastream.connectors import DataGenSource, Sink

    RowMap, BatchMap, _, Sum, key = functions(Row, MapFunction, ReduceFunction, object)
    kv = Types.ROW_NAMED(["k", "v"], [Types.LONG(), Types.LONG()])

    def job():
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        ds = env.from_source(DataGenSource([{"name": "n", "kind": "sequence", "start": 0, "end": rows - 1}]), source_name="seq")
        if workload == "map_row":
            out = ds.map(RowMap(count_dir), output_type=kv)
        elif workload == "map_vectorized":
            out = ds.map_batches(BatchMap(count_dir), output_type=kv)
        else:
            out = ds.key_by(key, key_type=Types.LONG()).reduce(Sum(count_dir))
        out.sink_to(Sink("blackhole"))
        return env

    return job


# -- PyFlink ------------------------------------------------------------------------------------
def run_pyflink(workload: str, rows: int, parallelism: int, count_dir: str):
    from pyflink.common import Row, Types
    from pyflink.datastream import MapFunction, ReduceFunction, StreamExecutionEnvironment
    from pyflink.table import DataTypes, StreamTableEnvironment
    from pyflink.table.udf import ScalarFunction, udf

    RowMap, _, PandasMap, Sum, key = functions(Row, MapFunction, ReduceFunction, ScalarFunction)

    def job():
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        t_env = StreamTableEnvironment.create(env)
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE seq (n BIGINT) WITH ('connector' = 'datagen', "
            f"'fields.n.kind' = 'sequence', 'fields.n.start' = '0', 'fields.n.end' = '{rows - 1}', "
            f"'rows-per-second' = '1000000000000')"
        )
        t_env.execute_sql("CREATE TEMPORARY TABLE sink_kv (k BIGINT, v BIGINT) WITH ('connector' = 'blackhole')")
        t_env.execute_sql("CREATE TEMPORARY TABLE sink_n (n BIGINT) WITH ('connector' = 'blackhole')")
        if workload == "map_vectorized":
            row = DataTypes.ROW([DataTypes.FIELD("k", DataTypes.BIGINT()), DataTypes.FIELD("v", DataTypes.BIGINT())])
            t_env.create_temporary_function("vec", udf(PandasMap(count_dir), result_type=row, func_type="pandas"))
            return lambda: t_env.execute_sql("INSERT INTO sink_kv SELECT r.k, r.v FROM (SELECT vec(n) AS r FROM seq)").wait()
        ds = t_env.to_data_stream(t_env.from_path("seq"))
        if workload == "map_row":
            out = ds.map(RowMap(count_dir), output_type=Types.ROW_NAMED(["k", "v"], [Types.LONG(), Types.LONG()]))
            sink = "sink_kv"
        else:
            out = ds.key_by(key, key_type=Types.LONG()).reduce(Sum(count_dir))
            sink = "sink_n"
        return lambda: t_env.from_data_stream(out).execute_insert(sink).wait()

    return job


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("weir", "pyflink"), required=True)
    p.add_argument("--workload", choices=WORKLOADS, required=True)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("-p", "--parallelism", type=int, default=1)
    p.add_argument("--no-warmup", action="store_true")
    a = p.parse_args()
    make = run_weir if a.engine == "weir" else run_pyflink

    def run(rows: int):
        with tempfile.TemporaryDirectory() as count_dir:
            built = make(a.workload, rows, a.parallelism, count_dir)()
            start = built.execute if a.engine == "weir" else built
            with Meter() as m:
                start()
            return m, counted(count_dir)

    if not a.no_warmup:
        run(max(min(a.rows // 4, 1_000_000), 1))
    m, rows_out = run(a.rows)
    print(
        json.dumps(
            {
                "engine": a.engine,
                "workload": a.workload,
                "events": a.rows,
                "parallelism": a.parallelism,
                "rows_out": rows_out,
                "cpu_s": round(m.cpu, 3),
                "wall_s": round(m.wall, 3),
                "events_per_cpu_s": round(a.rows / m.cpu) if m.cpu > 0 else None,
                "peak_rss_mib": round(m.peak / 2**20, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
