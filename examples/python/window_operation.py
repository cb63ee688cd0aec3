"""Window operation (the seed's example): readings from a REST endpoint, keyed by sensor,
averaged per 5-second event-time window by a Python AggregateFunction, posted to another
endpoint as JSON.

    python examples/python/demo_server.py &      # or any endpoint serving such readings
    python examples/python/window_operation.py
"""

import os

from weir.common import Duration, Types, WatermarkStrategy
from weir.datastream import (
    AggregateFunction,
    HttpSink,
    ProcessWindowFunction,
    RestSource,
    StreamExecutionEnvironment,
    Time,
    TumblingEventTimeWindows,
)

SOURCE_URL = os.environ.get("WEIR_SOURCE_URL", "http://localhost:8080/data")
SINK_URL = os.environ.get("WEIR_SINK_URL", "http://localhost:8080/result")
POLLS = int(os.environ.get("WEIR_POLLS", "5"))


class AverageAggregate(AggregateFunction):
    """Sum and count per window, the average at the end."""

    def create_accumulator(self):
        return (0.0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value.temperature, accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator[0] / accumulator[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class WithWindow(ProcessWindowFunction):
    """The key and the window's start beside the average."""

    def process(self, key, context, averages):
        for average in averages:
            yield (key, context.window().start, round(average, 3))


env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)

source = (
    RestSource()
    .set_url(SOURCE_URL)
    .set_format("json")
    .set_schema("field1 STRING, temperature DOUBLE, ts BIGINT")
    .set_interval(200)
    .set_polls(POLLS)
)
watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(1)).with_timestamp_field("ts")
data_stream = env.from_source(source, watermarks, "readings")

my_agg_func = AverageAggregate()
windowed = (
    data_stream.key_by("field1")
    .window(TumblingEventTimeWindows.of(Time.seconds(5)))
    .aggregate(
        my_agg_func,
        window_function=WithWindow(),
        output_type=Types.ROW_NAMED(["field1", "window_start", "avg_temperature"], [Types.STRING(), Types.LONG(), Types.DOUBLE()]),
    )
)
windowed.sink_to(HttpSink(SINK_URL))

result = env.execute("window-operation")
print(f"{result.records_out('readings')} readings in, posted to {SINK_URL}")
