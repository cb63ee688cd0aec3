"""The Table API from Python: SQL over Python streams and back, an updating query's changelog,
and DDL + INSERT running a job."""

from __future__ import annotations

import json

from weir.common import Types
from weir.datastream import StreamExecutionEnvironment
from weir.table import EnvironmentSettings, StreamTableEnvironment, TableEnvironment

KV = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.LONG()])


def test_sql_over_a_python_stream_and_back_to_python():
    env = StreamExecutionEnvironment.get_execution_environment()
    t_env = StreamTableEnvironment.create(env)
    ds = env.from_collection([("a", 1), ("b", 2), ("a", 3)], type_info=KV)
    t_env.create_temporary_view("t", ds)
    table = t_env.sql_query("SELECT k, v * 10 AS v10 FROM t WHERE v > 1")
    assert table.get_column_names() == ["k", "v10"]
    out = t_env.to_data_stream(table).map(
        lambda r: (r.k.upper(), r.v10), output_type=Types.ROW_NAMED(["k", "v10"], [Types.STRING(), Types.LONG()])
    )
    assert sorted(tuple(r) for r in out.execute_and_collect()) == [("A", 30), ("B", 20)]


def test_an_updating_query_collects_its_changelog():
    env = StreamExecutionEnvironment.get_execution_environment()
    t_env = StreamTableEnvironment.create(env)
    rows = [(k, v) for v, k in enumerate("abcabca")]
    t_env.create_temporary_view("t", env.from_collection(rows, type_info=KV))
    final = {}
    for r in t_env.sql_query("SELECT k, SUM(v) AS total FROM t GROUP BY k").execute().collect():
        if r.op in ("+I", "+U"):
            final[r.k] = r.total
        elif r.op == "-D":
            final.pop(r.k, None)
    want = {}
    for k, v in rows:
        want[k] = want.get(k, 0) + v
    assert final == want


def test_ddl_and_an_insert_run_a_job(tmp_path):
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.execute_sql(
        "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100', "
        "'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '100')"
    )
    t_env.execute_sql(
        f"CREATE TABLE dst (id BIGINT, half BIGINT) WITH ('connector' = 'filesystem', 'path' = '{tmp_path / 'out'}', "
        "'format' = 'json')"
    )
    t_env.execute_sql("INSERT INTO dst SELECT id, id / 2 AS half FROM src WHERE id % 10 = 0").wait()
    rows = [json.loads(l) for f in sorted((tmp_path / "out").iterdir()) if not f.name.startswith(".") for l in f.read_text().splitlines() if l]
    assert sorted((r["id"], r["half"]) for r in rows) == [(i, i // 2) for i in range(10, 101, 10)]
