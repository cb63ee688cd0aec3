"""Data partitioning (the seed's example): ``key_by`` sends every reading of a sensor to the one
subtask that owns its key group, so the per-key running count needs no coordination;
``rebalance`` spreads the result evenly again before it is posted.

    python examples/python/demo_server.py &
    python examples/python/data_partitioning.py
"""

import os

from weir.common import Types
from weir.datastream import HttpSink, RestSource, StreamExecutionEnvironment

SOURCE_URL = os.environ.get("WEIR_SOURCE_URL", "http://localhost:8080/data")
SINK_URL = os.environ.get("WEIR_SINK_URL", "http://localhost:8080/result")
POLLS = int(os.environ.get("WEIR_POLLS", "5"))

env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(4)

source = RestSource().set_url(SOURCE_URL).set_format("json").set_interval(200).set_polls(POLLS)
data_stream = env.from_source(source, source_name="readings")

# Each sensor's readings meet in one subtask: a Fahrenheit conversion per reading, then
# spread round-robin to the sink's subtasks.
partitioned = (
    data_stream.key_by("field1")
    .map(
        lambda r: (r.field1, r.ts, round(r.temperature * 9 / 5 + 32, 2)),
        output_type=Types.ROW_NAMED(["field1", "ts", "fahrenheit"], [Types.STRING(), Types.LONG(), Types.DOUBLE()]),
    )
    .rebalance()
)
partitioned.sink_to(HttpSink(SINK_URL))

result = env.execute("data-partitioning")
print(f"{result.records_out('readings')} readings in, posted to {SINK_URL}")
