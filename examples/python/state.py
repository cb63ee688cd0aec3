"""State (the seed's example): a running count and the highest temperature per sensor in keyed
state (ValueState), kept by Weir's engine, part of its checkpoints, and redistributed by key
group when the job rescales; each reading is posted with the sensor's count and maximum so far.

    python examples/python/demo_server.py &
    python examples/python/state.py
"""

import os

from weir.common import Types
from weir.datastream import HttpSink, KeyedProcessFunction, RestSource, RuntimeContext, StreamExecutionEnvironment
from weir.datastream.state import ValueStateDescriptor

SOURCE_URL = os.environ.get("WEIR_SOURCE_URL", "http://localhost:8080/data")
SINK_URL = os.environ.get("WEIR_SINK_URL", "http://localhost:8080/result")
POLLS = int(os.environ.get("WEIR_POLLS", "5"))


class CountAndMax(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))
        self.max_temperature = runtime_context.get_state(ValueStateDescriptor("max", Types.DOUBLE()))

    def process_element(self, value, ctx):
        count = (self.count.value() or 0) + 1
        self.count.update(count)
        highest = max(self.max_temperature.value() or value.temperature, value.temperature)
        self.max_temperature.update(highest)
        yield (value.field1, value.ts, count, highest)


env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(2)

source = RestSource().set_url(SOURCE_URL).set_format("json").set_interval(200).set_polls(POLLS)
data_stream = env.from_source(source, source_name="readings")

data_stream.key_by("field1").process(
    CountAndMax(),
    output_type=Types.ROW_NAMED(
        ["field1", "ts", "count", "max_temperature"], [Types.STRING(), Types.LONG(), Types.LONG(), Types.DOUBLE()]
    ),
).sink_to(HttpSink(SINK_URL))

result = env.execute("state")
print(f"{result.records_out('readings')} readings in, posted to {SINK_URL}")
