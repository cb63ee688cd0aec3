"""Parallel processing (the seed's example): two subtasks each map a share of the readings to
``(reading, 1)`` pairs at once; the pairs are counted per sensor.

    python examples/python/demo_server.py &
    python examples/python/parallel_processing.py
"""

import os

from weir.common import Types
from weir.datastream import HttpSink, RestSource, StreamExecutionEnvironment, TumblingEventTimeWindows, Time
from weir.common import Duration, WatermarkStrategy

SOURCE_URL = os.environ.get("WEIR_SOURCE_URL", "http://localhost:8080/data")
SINK_URL = os.environ.get("WEIR_SINK_URL", "http://localhost:8080/result")
POLLS = int(os.environ.get("WEIR_POLLS", "5"))

env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)

source = RestSource().set_url(SOURCE_URL).set_format("json").set_interval(200).set_polls(POLLS)
watermarks = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(1)).with_timestamp_field("ts")
data_stream = env.from_source(source, watermarks, "readings")

pairs = data_stream.rebalance().map(
    lambda x: (x.field1, 1, x.ts),
    output_type=Types.ROW_NAMED(["field1", "one", "ts"], [Types.STRING(), Types.LONG(), Types.LONG()]),
)
counts = (
    pairs.key_by("field1")
    .window(TumblingEventTimeWindows.of(Time.seconds(60)))
    .reduce(lambda a, b: (a.field1, a.one + b.one, max(a.ts, b.ts)))
)
counts.sink_to(HttpSink(SINK_URL))

result = env.execute("parallel-processing")
print(f"{result.records_out('readings')} readings in, posted to {SINK_URL}")
