"""The DataStream API from Python, end to end through the engine."""

from __future__ import annotations

import collections
import json
import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from weir.common import Duration, Row, Types, WatermarkStrategy
from weir.datastream import (
    AggregateFunction,
    FileSink,
    MapFunction,
    ProcessWindowFunction,
    ReduceFunction,
    StreamExecutionEnvironment,
    TumblingEventTimeWindows,
    SlidingEventTimeWindows,
    EventTimeSessionWindows,
    Time,
)


def events(n: int, keys: int, seed: int):
    """(user, amount, ts) with event times spread over ~n/2 seconds, a little out of order."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = 1_700_000_000_000 + i * 500 + rnd.randint(0, 400)
        out.append((f"u{rnd.randrange(keys)}", rnd.randint(1, 100), ts))
    return out


def test_map_filter_flat_map_row_at_a_time():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([(1, "a b"), (2, "c"), (3, "d e f")], type_info=Types.ROW_NAMED(["id", "text"], [Types.LONG(), Types.STRING()]))
    words = (
        ds.filter(lambda r: r.id != 2)
        .flat_map(lambda r: ((r.id, w) for w in r.text.split()), output_type=Types.ROW_NAMED(["id", "word"], [Types.LONG(), Types.STRING()]))
        .map(lambda r: (r["word"].upper(), r[0] * 10), output_type=Types.TUPLE([Types.STRING(), Types.LONG()]))
    )
    got = sorted(tuple(r) for r in words.execute_and_collect())
    assert got == [("A", 10), ("B", 10), ("D", 30), ("E", 30), ("F", 30)]


def test_a_map_function_class_and_a_single_valued_output_type():
    class Double(MapFunction):
        def map(self, value):
            return value.f0 * 2

    env = StreamExecutionEnvironment.get_execution_environment()
    got = [r.f0 for r in env.from_collection([1, 2, 3]).map(Double(), output_type=Types.LONG()).execute_and_collect()]
    assert sorted(got) == [2, 4, 6]


def test_map_batches_hands_over_pyarrow_batches_and_takes_them_back():
    seen = []

    def add_tax(batch: pa.RecordBatch) -> pa.RecordBatch:
        seen.append(type(batch))
        taxed = pc.multiply(batch.column("price"), 1.25)
        return pa.RecordBatch.from_arrays([batch.column("id"), taxed], names=["id", "gross"])

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_buffer_rows(100)
    rows = [(i, float(i)) for i in range(1000)]
    ds = env.from_collection(rows, type_info=Types.ROW_NAMED(["id", "price"], [Types.LONG(), Types.DOUBLE()]))
    out = ds.map_batches(add_tax, output_type=Types.ROW_NAMED(["id", "gross"], [Types.LONG(), Types.DOUBLE()]))
    got = sorted(tuple(r) for r in out.execute_and_collect())
    assert got == [(i, i * 1.25) for i in range(1000)]
    # Called once per batch, not per row.
    assert len(seen) == 10 and all(t is pa.RecordBatch for t in seen)


class SumAmount(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value.amount, accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


def reference_windows(evts, size_ms, slide_ms=None):
    slide_ms = slide_ms or size_ms
    out = collections.Counter()
    counts = collections.Counter()
    for user, amount, ts in evts:
        last = ts - ts % slide_ms
        start = last
        while start > ts - size_ms:
            out[(user, start)] += amount
            counts[(user, start)] += 1
            start -= slide_ms
    return sorted((u, s, out[(u, s)], counts[(u, s)]) for (u, s) in out)


class WithWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        for total, count in elements:
            yield (key, context.window().start, total, count)


OUT = Types.ROW_NAMED(["user", "start", "total", "n"], [Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG()])
TYPE = Types.ROW_NAMED(["user", "amount", "ts"], [Types.STRING(), Types.LONG(), Types.LONG()])


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_event_time_windows_aggregate_per_key_like_a_reference(parallelism):
    evts = events(3000, 7, seed=parallelism)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.set_buffer_rows(256)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(1)).with_timestamp_field("ts")
    ds = env.from_collection(evts, type_info=TYPE, watermark_strategy=strategy)
    out = ds.key_by("user").window(TumblingEventTimeWindows.of(Time.seconds(10))).aggregate(
        SumAmount(), window_function=WithWindow(), output_type=OUT
    )
    got = sorted(tuple(r) for r in out.execute_and_collect())
    assert got == reference_windows(evts, 10_000)


def test_sliding_windows_with_a_key_selector_and_a_timestamp_assigner():
    evts = events(1500, 3, seed=11)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(1)).with_timestamp_assigner(
        lambda r, _: r.ts
    )
    ds = env.from_collection(evts, type_info=TYPE, watermark_strategy=strategy)
    out = ds.key_by(lambda r: r.user.upper()).window(SlidingEventTimeWindows.of(Time.seconds(10), Time.seconds(5))).aggregate(
        SumAmount(), window_function=WithWindow(), output_type=OUT
    )
    got = sorted(tuple(r) for r in out.execute_and_collect())
    want = [(u.upper(), s, t, n) for (u, s, t, n) in reference_windows(evts, 10_000, 5_000)]
    assert got == sorted(want)


def test_session_windows_reduce_keeps_the_record_type():
    evts = [("a", 1, 1000), ("a", 2, 2000), ("a", 4, 9000), ("b", 8, 1500)]
    env = StreamExecutionEnvironment.get_execution_environment()
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field("ts")
    ds = env.from_collection(evts, type_info=TYPE, watermark_strategy=strategy)
    out = ds.key_by("user").window(EventTimeSessionWindows.with_gap(Time.seconds(3))).reduce(
        lambda a, b: Row(user=a.user, amount=a.amount + b.amount, ts=max(a.ts, b.ts))
    )
    got = sorted(tuple(r) for r in out.execute_and_collect())
    assert got == [("a", 3, 2000), ("a", 4, 9000), ("b", 8, 1500)]


def test_a_failing_function_fails_the_job_naming_its_file_line_and_record():
    def explode(r):
        if r.f0 == 3:
            raise ValueError("three is not allowed")
        return r.f0

    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1, 2, 3, 4]).map(explode, output_type=Types.LONG())
    with pytest.raises(RuntimeError) as e:
        ds.execute_and_collect()
    text = str(e.value)
    assert "explode" in text and "test_datastream.py" in text, text
    assert "ValueError: three is not allowed" in text and "Row(f0=3)" in text, text


def test_a_result_that_does_not_fit_the_output_type_names_the_field():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([1, 2]).map(lambda r: ("x", "not a number"), output_type=Types.TUPLE([Types.STRING(), Types.LONG()]))
    with pytest.raises(RuntimeError) as e:
        ds.execute_and_collect()
    assert "'not a number'" in str(e.value) and "field 'f1'" in str(e.value), str(e.value)


def test_bad_arguments_are_refused_before_the_job_runs():
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(ValueError, match="parallelism must be at least 1"):
        env.set_parallelism(0)
    ds = env.from_collection([1, 2])
    with pytest.raises(TypeError, match="output_type"):
        ds.key_by("f0").window(TumblingEventTimeWindows.of(Time.seconds(1))).aggregate(SumAmount())
    with pytest.raises(ValueError, match="with_timestamp_field"):
        env.from_collection([1], watermark_strategy=WatermarkStrategy.for_monotonous_timestamps())


def test_partitioning_keeps_every_record(tmp_path):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    ds = env.from_collection([(i, i % 5) for i in range(500)], type_info=Types.ROW_NAMED(["id", "k"], [Types.LONG(), Types.LONG()]))
    a = ds.rebalance().map(lambda r: r)
    b = ds.shuffle().filter(lambda r: r.k == 0)
    a.union(b).key_by("k").map(lambda r: (r.id, r.k * 2), output_type=Types.ROW_NAMED(["id", "k2"], [Types.LONG(), Types.LONG()])).sink_to(
        FileSink.for_row_format(str(tmp_path / "out")).build()
    )
    env.execute("partitioning")
    lines = [json.loads(l) for f in sorted((tmp_path / "out").iterdir()) for l in f.read_text().splitlines() if l]
    want = sorted([(i, (i % 5) * 2) for i in range(500)] + [(i, 0) for i in range(0, 500, 5)])
    assert sorted((d["id"], d["k2"]) for d in lines) == want


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_a_rolling_reduce_emits_each_keys_running_value(parallelism):
    rnd = random.Random(7)
    rows = [(rnd.randrange(6), rnd.randint(1, 50)) for _ in range(600)]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    ds = env.from_collection(rows, type_info=Types.ROW_NAMED(["k", "v"], [Types.LONG(), Types.LONG()]))
    got = sorted(tuple(r) for r in ds.key_by("k").reduce(lambda a, b: Row(k=a.k, v=a.v + b.v)).execute_and_collect())
    running = collections.Counter()
    want = []
    for k, v in rows:
        running[k] += v
        want.append((k, running[k]))
    assert got == sorted(want)


def test_a_rolling_reduce_by_a_key_selector_hides_the_key_and_names_a_bad_result():
    class Longest(ReduceFunction):
        def reduce(self, a, b):
            return (a.word if len(a.word) >= len(b.word) else b.word, a.n + b.n)

    words = ["a", "bb", "ccc", "dd", "e", "ffff"]
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([(w, 1) for w in words], type_info=Types.ROW_NAMED(["word", "n"], [Types.STRING(), Types.LONG()]))
    out = list(ds.key_by(lambda r: len(r.word) % 2, key_type=Types.LONG()).reduce(Longest()).execute_and_collect())
    assert all(r._names == ("word", "n") for r in out)
    assert sorted(tuple(r) for r in out) == sorted(
        [("a", 1), ("ccc", 2), ("ccc", 3), ("bb", 1), ("bb", 2), ("ffff", 3)]
    )

    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([(1, 2), (1, 3)], type_info=Types.ROW_NAMED(["k", "v"], [Types.LONG(), Types.LONG()]))
    with pytest.raises(RuntimeError, match=r"reduce function .*returned 5, which is not a record of fields k, v"):
        list(ds.key_by("k").reduce(lambda a, b: 5).execute_and_collect())


def test_function_objects_are_opened_and_closed_once_per_subtask(tmp_path):
    class Counting(MapFunction):
        def open(self, runtime_context):
            self.rows = 0

        def map(self, value):
            self.rows += 1
            return value

        def close(self):
            (tmp_path / f"map-{id(self)}").write_text(str(self.rows))

    class BatchRows:
        def open(self, runtime_context):
            self.rows = 0

        def __call__(self, batch):
            self.rows += batch.num_rows
            return batch

        def close(self):
            (tmp_path / f"batches-{id(self)}").write_text(str(self.rows))

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_buffer_rows(100)  # ten batches, dealt round-robin to the two subtasks
    ds = env.from_collection(list(range(1000)), type_info=Types.LONG())
    out = ds.rebalance().map(Counting()).map_batches(BatchRows()).execute_and_collect()
    assert sorted(r.f0 for r in out) == list(range(1000))
    for kind in ("map", "batches"):
        counts = [int(f.read_text()) for f in tmp_path.glob(f"{kind}-*")]
        assert len(counts) == 2 and sum(counts) == 1000 and min(counts) > 0, (kind, counts)

    class Summing(ReduceFunction):
        def open(self, runtime_context):
            self.calls = 0

        def reduce(self, a, b):
            self.calls += 1
            return (a.f0 + b.f0,)

        def close(self):
            (tmp_path / f"reduce-{id(self)}").write_text(str(self.calls))

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    ds = env.from_collection(list(range(1000)), type_info=Types.LONG())
    out = list(ds.key_by(lambda r: r.f0 % 4, key_type=Types.LONG()).reduce(Summing()).execute_and_collect())
    assert len(out) == 1000 and max(r.f0 for r in out) == sum(range(3, 1000, 4))
    counts = [int(f.read_text()) for f in tmp_path.glob("reduce-*")]
    assert sum(counts) == 1000 - 4, counts
