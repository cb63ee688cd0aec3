"""The Table API: Flink SQL over the same engine and job as the DataStream API (PyFlink's
``pyflink.table``)."""

from __future__ import annotations

import re
from typing import Any, Iterator, List, Optional

from weir import _weir
from weir.datastream import _batches as b
from weir.datastream.data_stream import DataStream
from weir.datastream.stream_execution_environment import StreamExecutionEnvironment

__all__ = [
    "EnvironmentSettings",
    "StatementSet",
    "StreamTableEnvironment",
    "Table",
    "TableConfig",
    "TableEnvironment",
    "TableResult",
]

_RUNS = re.compile(r"^\s*(insert|select|with|execute)\b", re.IGNORECASE)


def _statements(sql: str) -> List[str]:
    """``sql`` split at semicolons outside quotes."""
    out, cur, quote = [], [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [s for s in out if s.strip()]


class EnvironmentSettings:
    """Streaming is Weir's only mode; kept for PyFlink's ``TableEnvironment.create``."""

    @staticmethod
    def in_streaming_mode() -> "EnvironmentSettings":
        return EnvironmentSettings()

    @staticmethod
    def new_instance() -> "EnvironmentSettings":
        return EnvironmentSettings()

    def build(self) -> "EnvironmentSettings":
        return self


class TableConfig:
    """``t_env.get_config().set(key, value)``: a ``SET`` statement."""

    def __init__(self, t_env: "TableEnvironment"):
        self._t_env = t_env

    def set(self, key: str, value: str) -> "TableConfig":
        key, value = str(key).replace("'", "''"), str(value).replace("'", "''")
        self._t_env._n.execute_sql(f"SET '{key}' = '{value}'")
        return self


class TableResult:
    """What ``execute_sql`` returns; an ``INSERT`` has run to its end when it is returned."""

    def __init__(self, result: Any = None, rows: Optional[List[Any]] = None):
        self._result = result
        self._rows = rows

    def wait(self, timeout_ms: Optional[int] = None) -> None:
        """The statement ran when ``execute_sql`` returned: nothing to wait for."""

    def get_job_client(self) -> None:
        return None

    def collect(self) -> Iterator[Any]:
        return iter(self._rows or [])

    def print(self) -> None:
        for r in self._rows or []:
            print(r)


class Table:
    """A planned query."""

    def __init__(self, native: Any, t_env: "TableEnvironment"):
        self._n = native
        self._t_env = t_env

    def get_column_names(self) -> List[str]:
        return self._n.columns()

    def explain(self) -> str:
        return self._n.explain()

    def execute(self) -> TableResult:
        """Runs the query (its job must end) and keeps its rows: an append-only query's rows,
        or an updating one's changelog (an ``op`` field first: ``+I``, ``-U``, ``+U``, ``-D``)."""
        t = self._t_env
        try:
            stream = t._n.to_data_stream(self._n)
        except ValueError:
            stream = t._n.to_changelog_stream(self._n)
        collected = stream.collect("collect")
        t._env.execute("sql-query")
        rows: List[Any] = []
        for batch in collected.batches():
            rows.extend(b.rows(batch))
        return TableResult(rows=rows)


class StatementSet:
    """Several ``INSERT``s run as one job."""

    def __init__(self, t_env: "TableEnvironment"):
        self._t_env = t_env
        self._added = 0

    def add_insert_sql(self, statement: str) -> "StatementSet":
        self._t_env._n.execute_sql(statement)
        self._added += 1
        return self

    def execute(self) -> TableResult:
        if not self._added:
            raise ValueError("the statement set has no INSERT")
        return TableResult(self._t_env._env.execute("sql-job"))


class TableEnvironment:
    """SQL statements and queries (``execute_sql``, ``sql_query``) over an environment's job."""

    def __init__(self, env: StreamExecutionEnvironment):
        self._env = env
        self._n = _weir.TableEnv(env._n)

    @staticmethod
    def create(environment_settings: Optional[EnvironmentSettings] = None) -> "TableEnvironment":
        return TableEnvironment(StreamExecutionEnvironment.get_execution_environment())

    def get_config(self) -> TableConfig:
        return TableConfig(self)

    def execute_sql(self, stmt: str) -> TableResult:
        """Runs SQL statements: DDL, views and ``SET`` change the catalog; an ``INSERT`` (or a
        bare ``SELECT``, printed) runs its job to the end before this returns."""
        self._n.execute_sql(stmt)
        if any(_RUNS.match(s) for s in _statements(stmt)):
            return TableResult(self._env.execute("sql-job"))
        return TableResult()

    def sql_query(self, query: str) -> Table:
        return Table(self._n.sql_query(query), self)

    def create_statement_set(self) -> StatementSet:
        return StatementSet(self)


class StreamTableEnvironment(TableEnvironment):
    """The Table API beside a ``StreamExecutionEnvironment``'s DataStreams."""

    @staticmethod
    def create(
        stream_execution_environment: Optional[StreamExecutionEnvironment] = None,
        environment_settings: Optional[EnvironmentSettings] = None,
    ) -> "StreamTableEnvironment":
        env = stream_execution_environment or StreamExecutionEnvironment.get_execution_environment()
        return StreamTableEnvironment(env)

    def create_temporary_view(self, view_path: str, data_stream: DataStream) -> None:
        self._n.create_temporary_view(view_path, data_stream._n)

    def from_data_stream(self, data_stream: DataStream) -> Table:
        return Table(self._n.from_data_stream(data_stream._n), self)

    def to_data_stream(self, table: Table) -> DataStream:
        return DataStream(self._n.to_data_stream(table._n), self._env)

    def to_changelog_stream(self, table: Table) -> DataStream:
        return DataStream(self._n.to_changelog_stream(table._n), self._env)
