"""Keyed state and timers from Python: KeyedProcessFunction with ValueState, ListState,
MapState and event-time timers, against references computed here, at several parallelisms."""

from __future__ import annotations

import collections
import random

import pytest

from weir.common import Types, WatermarkStrategy
from weir.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from weir.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

TYPE = Types.ROW_NAMED(["user", "page", "ts"], [Types.STRING(), Types.STRING(), Types.LONG()])


def clicks(n: int, seed: int):
    rnd = random.Random(seed)
    return [(f"u{rnd.randrange(6)}", f"p{rnd.randrange(4)}", 1_700_000_000_000 + i * 100) for i in range(n)]


class Sessions(KeyedProcessFunction):
    """Per user: a running count (ValueState), the pages seen (MapState of counts), the last
    three pages (ListState); a summary when the user has been quiet for 10 s of event time."""

    def open(self, runtime_context: RuntimeContext):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))
        self.pages = runtime_context.get_map_state(MapStateDescriptor("pages", Types.STRING(), Types.LONG()))
        self.recent = runtime_context.get_list_state(ListStateDescriptor("recent", Types.STRING()))
        self.deadline = runtime_context.get_state(ValueStateDescriptor("deadline", Types.LONG()))

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        self.pages.put(value.page, (self.pages.get(value.page) or 0) + 1)
        recent = self.recent.get()[-2:] + [value.page]
        self.recent.update(recent)
        old = self.deadline.value()
        if old is not None:
            ctx.timer_service().delete_event_time_timer(old)
        deadline = ctx.timestamp() + 10_000
        self.deadline.update(deadline)
        ctx.timer_service().register_event_time_timer(deadline)
        yield ("click", ctx.get_current_key(), n, ",".join(recent))

    def on_timer(self, timestamp, ctx):
        pages = sorted(self.pages.items())
        yield ("summary", ctx.get_current_key(), self.count.value(), ";".join(f"{p}={c}" for p, c in pages))
        self.count.clear()
        self.pages.clear()
        self.recent.clear()
        self.deadline.clear()


OUT = Types.ROW_NAMED(["kind", "user", "n", "detail"], [Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING()])


def reference(evts):
    out = []
    state = {}
    for user, page, ts in evts:
        s = state.setdefault(user, {"n": 0, "pages": collections.Counter(), "recent": [], "last": ts})
        if ts > s["last"] + 10_000:  # never: the events below are dense; kept for clarity
            raise AssertionError("test data has a gap")
        s["n"] += 1
        s["pages"][page] += 1
        s["recent"] = s["recent"][-2:] + [page]
        s["last"] = ts
        out.append(("click", user, s["n"], ",".join(s["recent"])))
    for user, s in state.items():
        out.append(("summary", user, s["n"], ";".join(f"{p}={c}" for p, c in sorted(s["pages"].items()))))
    return sorted(out)


@pytest.mark.parametrize("parallelism", [1, 2, 4])
def test_keyed_state_and_timers(parallelism):
    evts = clicks(2000, seed=parallelism)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.set_buffer_rows(128)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_field("ts")
    ds = env.from_collection(evts, type_info=TYPE, watermark_strategy=strategy)
    out = ds.key_by("user").process(Sessions(), output_type=OUT)
    assert sorted(tuple(r) for r in out.execute_and_collect()) == reference(evts)


def test_state_outside_a_call_is_refused_and_a_key_selector_key_is_the_current_key():
    kept = {}

    class Keep(KeyedProcessFunction):
        def open(self, runtime_context):
            self.seen = runtime_context.get_state(ValueStateDescriptor("seen"))
            kept["state"] = self.seen

        def process_element(self, value, ctx):
            first = self.seen.value() is None
            self.seen.update(True)
            if first:
                yield (ctx.get_current_key(),)

    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection([("a", 1), ("b", 2), ("A", 3)], type_info=Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.LONG()]))
    out = ds.key_by(lambda r: r.k.lower()).process(Keep(), output_type=Types.ROW_NAMED(["key"], [Types.STRING()]))
    assert sorted(r.key for r in out.execute_and_collect()) == ["a", "b"]
    with pytest.raises(RuntimeError, match="inside process_element or on_timer"):
        kept["state"].value()
