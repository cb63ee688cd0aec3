"""Source and sink descriptors for Weir's built-in connectors.

Every connector of the engine is reachable through :class:`Source` and :class:`Sink` with the
same options as a YAML pipeline (``Source("kafka", bootstrap_servers=..., topics=[...])``);
the classes below give the common ones PyFlink-style builders, among them the REST source and
the HTTP sink the seed's examples use.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Union

import pyarrow as pa

from weir.common.typeinfo import RowTypeInfo

_TYPE_NAMES = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.int16(): "smallint",
    pa.int8(): "tinyint",
    pa.float64(): "double",
    pa.float32(): "float",
    pa.bool_(): "boolean",
    pa.timestamp("ms"): "timestamp",
    pa.date32(): "date",
}


def schema_option(schema: Union[str, RowTypeInfo, pa.Schema]) -> Any:
    """A schema as connector options take it: ``"name TYPE, …"`` or a list of fields."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, RowTypeInfo):
        schema = schema.schema()
    if isinstance(schema, pa.Schema):
        fields = []
        for f in schema:
            name = _TYPE_NAMES.get(f.type)
            if name is None:
                raise TypeError(f"field '{f.name}': type {f.type} cannot be a connector's schema")
            fields.append({"name": f.name, "type": name, "nullable": f.nullable})
        return fields
    raise TypeError(f"a schema is 'name TYPE, …', Types.ROW_NAMED(...) or a pyarrow.Schema, not {schema!r}")


class Source:
    """A built-in source connector with its options (the YAML pipeline's names)."""

    def __init__(self, connector: str, **options: Any):
        self.connector = connector
        self.options: Dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        if "schema" in self.options:
            self.options["schema"] = schema_option(self.options["schema"])

    def options_json(self) -> str:
        return json.dumps(self.options)

    def __repr__(self) -> str:
        return f"Source({self.connector!r}, {self.options!r})"


class Sink:
    """A built-in sink connector with its options (the YAML pipeline's names)."""

    def __init__(self, connector: str, **options: Any):
        self.connector = connector
        self.options: Dict[str, Any] = {k: v for k, v in options.items() if v is not None}

    def options_json(self) -> str:
        return json.dumps(self.options)

    def __repr__(self) -> str:
        return f"Sink({self.connector!r}, {self.options!r})"


class RestSource(Source):
    """Polls a REST endpoint that answers JSON (an array of objects, or one object) and emits
    the objects as records: ``RestSource().set_url(url).set_format("json")``."""

    def __init__(self) -> None:
        super().__init__("http")

    def set_url(self, url: str) -> "RestSource":
        self.options["url"] = url
        return self

    def set_format(self, fmt: str) -> "RestSource":
        if fmt.lower() != "json":
            raise ValueError(f"the REST source reads JSON, not '{fmt}'")
        return self

    def set_interval(self, milliseconds: int) -> "RestSource":
        """Time between polls (default 1000 ms)."""
        self.options["interval_ms"] = milliseconds
        return self

    def set_polls(self, polls: int) -> "RestSource":
        """Stop after this many polls (default: poll until the job is stopped)."""
        self.options["polls"] = polls
        return self

    def set_pointer(self, pointer: str) -> "RestSource":
        """Where the records are inside the answer, as a JSON pointer (e.g. ``/data``)."""
        self.options["pointer"] = pointer
        return self

    def set_schema(self, schema: Union[str, RowTypeInfo, pa.Schema]) -> "RestSource":
        """The records' fields (default: inferred from the first answer)."""
        self.options["schema"] = schema_option(schema)
        return self

    def set_headers(self, headers: Dict[str, str]) -> "RestSource":
        self.options["headers"] = dict(headers)
        return self


class HttpSink(Sink):
    """Sends records to a URL as JSON, a request per batch (at most ``max_rows`` rows), retried
    with back-off while the server is unavailable; rows of a request the server refuses (4xx)
    go to the dead-letter output."""

    def __init__(
        self,
        url: str,
        method: str = "POST",
        body: str = "json_array",
        max_rows: Optional[int] = None,
        headers: Optional[Dict[str, str]] = None,
        max_retries: Optional[int] = None,
        retry_backoff_ms: Optional[int] = None,
        timeout_ms: Optional[int] = None,
    ):
        super().__init__(
            "http",
            url=url,
            method=method,
            body=body,
            max_rows=max_rows,
            headers=headers,
            max_retries=max_retries,
            retry_backoff_ms=retry_backoff_ms,
            timeout_ms=timeout_ms,
        )


class FileSource(Source):
    """Files of JSON lines, CSV, Parquet or text under a path (local, ``s3://``, ``hdfs://``)."""

    @staticmethod
    def for_path(
        path: str, format: str = "json", schema: Union[None, str, RowTypeInfo, pa.Schema] = None, header: bool = False
    ) -> "FileSource":
        return FileSource("file", path=path, format=format, schema=schema, header=header or None)


class Encoder:
    """How a row-format file sink writes records (PyFlink's ``Encoder``)."""

    def __init__(self, fmt: str):
        self.format = fmt

    @staticmethod
    def simple_string_encoder() -> "Encoder":
        """One JSON object per line."""
        return Encoder("json")

    @staticmethod
    def csv() -> "Encoder":
        return Encoder("csv")


class FileSink(Sink):
    """Files under a path, rolled by size; exactly-once with checkpoints."""

    class _Builder:
        def __init__(self, path: str, fmt: str):
            self._options: Dict[str, Any] = {"path": path, "format": fmt}

        def with_roll_bytes(self, n: int) -> "FileSink._Builder":
            self._options["roll_bytes"] = n
            return self

        def build(self) -> "FileSink":
            return FileSink("file", **self._options)

    @staticmethod
    def for_row_format(base_path: str, encoder: Union[Encoder, str] = "json") -> "FileSink._Builder":
        fmt = encoder.format if isinstance(encoder, Encoder) else encoder
        return FileSink._Builder(base_path, fmt)


class KafkaSource(Source):
    """Records of Kafka topics (JSON or CSV values)."""

    def __init__(self, bootstrap_servers: str, topics: Sequence[str], format: str = "json", **options: Any):
        super().__init__("kafka", bootstrap_servers=bootstrap_servers, topics=list(topics), format=format, **options)


class KafkaSink(Sink):
    """Records to a Kafka topic."""

    def __init__(self, bootstrap_servers: str, topic: str, format: str = "json", **options: Any):
        super().__init__("kafka", bootstrap_servers=bootstrap_servers, topic=topic, format=format, **options)


class NexmarkSource(Source):
    """The Nexmark benchmark's generator (persons, auctions, bids)."""

    def __init__(self, events: Optional[int] = None, stream: Optional[str] = None, **options: Any):
        super().__init__("nexmark", events=events, stream=stream, **options)


class DataGenSource(Source):
    """Generated rows: ``fields`` as the YAML pipeline's datagen takes them."""

    def __init__(self, fields: List[Dict[str, Any]], rows: Optional[int] = None, **options: Any):
        super().__init__("datagen", fields=fields, rows=rows, **options)


class PrintSink(Sink):
    """Records to standard output, one JSON object per line."""

    def __init__(self, prefix: bool = False):
        super().__init__("stdout", prefix=prefix or None)
