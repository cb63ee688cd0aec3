//! The connectors of `CREATE TABLE … WITH ('connector' = …)`, by Flink's names and option
//! names, mapped onto Weir's connectors (the pipeline form's names and options). Unknown
//! connectors and options are errors naming them and listing the known ones.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Schema};
use serde_json::{Map, Value, json};

use super::ddl::TableDef;
use crate::contract::error::{Result, WeirError};

/// What a sink accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    /// Inserts only.
    Append,
    /// Inserts, updates and deletes (the `op` column is written or ignored).
    Changelog,
}

/// A connector of the pipeline form with its options.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// Weir's connector name.
    pub connector: &'static str,
    /// Its options.
    pub options: Map<String, Value>,
    /// `scan.parallelism` / `sink.parallelism`: the node's own parallelism.
    pub parallelism: Option<usize>,
    /// Sinks: write Debezium JSON (`{"before", "after", "op"}` per row) for a changelog.
    /// Sources: read it (the connector decodes the message layout, see [`Mapped::changes`]).
    pub debezium: bool,
    /// Sources reading Debezium JSON: the message layout the connector decodes (with
    /// `'debezium-json.schema-include' = 'true'`, the change is under `payload`).
    pub changes: Option<arrow::datatypes::SchemaRef>,
    /// `lookup.join.cache.ttl` (filesystem tables): a lookup join reads the table again after
    /// this many ms; none: once per run.
    pub lookup_ttl_ms: Option<i64>,
    /// `lookup.partial-cache.max-rows` (http tables): keys a lookup join keeps answers for.
    pub lookup_max_rows: Option<usize>,
}

impl Mapped {
    fn new(connector: &'static str, options: Map<String, Value>) -> Self {
        Mapped {
            connector,
            options,
            parallelism: None,
            debezium: false,
            changes: None,
            lookup_ttl_ms: None,
            lookup_max_rows: None,
        }
    }
}

/// Source connectors SQL tables may name.
pub const SOURCES: &[&str] = &[
    "nexmark",
    "nexmark-peer",
    "datagen",
    "filesystem",
    "kafka",
    "socket",
    "http",
    "jdbc",
];
/// Sink connectors SQL tables may name.
pub const SINKS: &[&str] = &["blackhole", "print", "filesystem", "kafka", "upsert-kafka", "jdbc"];

struct Options<'a> {
    table: &'a TableDef,
    left: BTreeMap<String, String>,
    known: Vec<&'static str>,
}

impl<'a> Options<'a> {
    fn new(table: &'a TableDef) -> Self {
        let mut left = table.options.clone();
        left.remove("connector");
        Options {
            table,
            left,
            known: vec!["connector"],
        }
    }
    fn take(&mut self, key: &'static str) -> Option<String> {
        self.known.push(key);
        self.left.remove(key)
    }
    fn required(&mut self, key: &'static str) -> Result<String> {
        self.take(key)
            .ok_or_else(|| self.error(format!("option '{key}' is required")))
    }
    fn parsed<T: std::str::FromStr>(&mut self, key: &'static str) -> Result<Option<T>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.error(format!("option '{key}' = '{v}' is not a valid value"))),
        }
    }
    fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.error(format!("option '{key}' = '{v}' should be 'true' or 'false'"))),
            },
        }
    }
    /// Options starting with `prefix`, removed and returned without it.
    fn prefixed(&mut self, prefix: &str) -> BTreeMap<String, String> {
        let keys: Vec<String> = self.left.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.into_iter()
            .map(|k| {
                let v = self.left.remove(&k).expect("listed");
                (k[prefix.len()..].to_string(), v)
            })
            .collect()
    }
    fn error(&self, message: String) -> WeirError {
        WeirError::plan(format!(
            "table '{}' ('connector' = '{}'): {message}",
            self.table.name,
            self.table.options.get("connector").map(String::as_str).unwrap_or("")
        ))
    }
    fn finish(self) -> Result<()> {
        if let Some(k) = self.left.keys().next() {
            let mut known = self.known.clone();
            known.sort();
            known.dedup();
            return Err(self.error(format!("unknown option '{k}' (known: {})", known.join(", "))));
        }
        Ok(())
    }
}

fn connector(table: &TableDef) -> Result<&str> {
    table
        .options
        .get("connector")
        .map(String::as_str)
        .ok_or_else(|| WeirError::plan(format!("table '{}': the WITH options name no 'connector'", table.name)))
}

fn format(o: &mut Options, formats: &[&str]) -> Result<String> {
    let f = o
        .take("format")
        .or_else(|| o.take("value.format"))
        .unwrap_or_else(|| "json".into());
    if !formats.contains(&f.as_str()) {
        return Err(o.error(format!(
            "format '{f}' is not supported here (supported: {})",
            formats.join(", ")
        )));
    }
    // Flink's JSON options that match Weir's behaviour.
    o.take("json.fail-on-missing-field");
    o.take("json.ignore-parse-errors");
    o.take("csv.ignore-parse-errors");
    Ok(f)
}

/// The connector's `format` and `schema` for a source in format `f`: the table's rows, or for
/// `debezium-json` the message layout (returned: the planner turns changes into rows).
fn read_changes(
    o: &mut Options,
    f: &str,
    physical: &Schema,
    m: &mut Map<String, Value>,
) -> Result<Option<arrow::datatypes::SchemaRef>> {
    if f == "raw" {
        raw_column(o, physical)?;
    }
    if f != "debezium-json" {
        m.insert("format".into(), json!(if f == "raw" { "text" } else { f }));
        m.insert("schema".into(), schema_value(physical));
        return Ok(None);
    }
    let schema_include = o.bool("debezium-json.schema-include")?.unwrap_or(false);
    let layout = super::debezium::envelope(physical, schema_include);
    m.insert("format".into(), json!("json"));
    m.insert("schema".into(), schema_value(&layout));
    Ok(Some(layout))
}

/// Flink's `raw` format: the table is one text column, a record's value as it is.
fn raw_column(o: &Options, physical: &Schema) -> Result<()> {
    match physical.fields().iter().collect::<Vec<_>>().as_slice() {
        [f] if *f.data_type() == DataType::Utf8 => Ok(()),
        [f] => Err(o.error(format!(
            "format 'raw' reads one STRING column; column '{}' is {} (BYTES is not supported yet)",
            f.name(),
            f.data_type()
        ))),
        fields => Err(o.error(format!(
            "format 'raw' reads one STRING column; the table has {}",
            fields.len()
        ))),
    }
}

fn schema_value(schema: &Schema) -> Value {
    serde_json::to_value(schema).expect("a schema serializes")
}

/// The Nexmark stream a source reads: `all` (the unified table) unless the planner narrows it.
pub fn source(table: &TableDef, physical: &Schema, nexmark_stream: Option<&str>) -> Result<Mapped> {
    let mut o = Options::new(table);
    let parallelism = node_parallelism(&mut o, "scan.parallelism")?;
    let mapped = match connector(table)? {
        "nexmark" | "nexmark-peer" => {
            let mut m = Map::new();
            m.insert(
                "events".into(),
                json!(
                    o.required("events.num")?
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| o.error("option 'events.num' is not a number".into()))?
                ),
            );
            if let Some(r) = o.parsed::<i64>("first-event.rate")? {
                m.insert("rate".into(), json!(r));
            }
            if let Some(r) = o.parsed::<i64>("base-time")? {
                m.insert("base_time".into(), json!(r));
            }
            if let Some(r) = o.parsed::<i64>("seed")? {
                m.insert("seed".into(), json!(r));
            }
            if let Some(q) = o.bool("bidder-offset-quirk")? {
                m.insert("bidder_offset_quirk".into(), json!(q));
            }
            if let Some(r) = o.parsed::<u64>("rows-per-second")? {
                m.insert("rows_per_second".into(), json!(r));
            }
            m.insert("stream".into(), json!(nexmark_stream.unwrap_or("all")));
            Mapped::new("nexmark", m)
        }
        "datagen" => {
            let mut m = Map::new();
            if let Some(n) = o.parsed::<u64>("number-of-rows")? {
                m.insert("rows".into(), json!(n));
            }
            if let Some(n) = o.parsed::<u64>("rows-per-second")? {
                m.insert("rows_per_second".into(), json!(n));
            }
            if let Some(n) = o.parsed::<i64>("seed")? {
                m.insert("seed".into(), json!(n));
            }
            let mut per_field: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (k, v) in o.prefixed("fields.") {
                let Some((field, opt)) = k.split_once('.') else {
                    return Err(o.error(format!("option 'fields.{k}' should be 'fields.<column>.<option>'")));
                };
                per_field
                    .entry(field.to_string())
                    .or_default()
                    .insert(opt.to_string(), v);
            }
            let mut fields = Vec::new();
            for f in physical.fields() {
                let opts = per_field.remove(f.name()).unwrap_or_default();
                let mut d = Map::new();
                d.insert("name".into(), json!(f.name()));
                let ty = match f.data_type() {
                    DataType::Int64 => "bigint",
                    DataType::Int32 | DataType::Int16 | DataType::Int8 => "int",
                    DataType::Float64 | DataType::Float32 => "double",
                    DataType::Utf8 => "string",
                    DataType::Boolean => "boolean",
                    DataType::Timestamp(..) => "timestamp",
                    other => return Err(o.error(format!("column '{}': datagen makes no {other} values", f.name()))),
                };
                let kind = match (opts.get("kind").map(String::as_str), ty) {
                    (Some("sequence"), _) => "sequence",
                    (Some("random") | None, "timestamp") => "timestamp",
                    (Some("random") | None, _) => "random",
                    (Some(other), _) => {
                        return Err(o.error(format!(
                            "option 'fields.{}.kind' = '{other}' (known: random, sequence)",
                            f.name()
                        )));
                    }
                };
                d.insert("kind".into(), json!(kind));
                if kind == "random" {
                    d.insert("type".into(), json!(ty));
                }
                for (opt, v) in opts {
                    match opt.as_str() {
                        "kind" => {}
                        "start" | "end" => {
                            d.insert(
                                opt.clone(),
                                json!(v.parse::<i64>().map_err(|_| {
                                    o.error(format!("option 'fields.{}.{opt}' is not an integer", f.name()))
                                })?),
                            );
                        }
                        "min" | "max" => {
                            d.insert(
                                opt.clone(),
                                json!(v.parse::<f64>().map_err(|_| {
                                    o.error(format!("option 'fields.{}.{opt}' is not a number", f.name()))
                                })?),
                            );
                        }
                        "length" => {
                            d.insert(
                                opt.clone(),
                                json!(v.parse::<usize>().map_err(|_| {
                                    o.error(format!("option 'fields.{}.length' is not a number", f.name()))
                                })?),
                            );
                        }
                        // Flink's timestamps are drawn from the last `max-past`; Weir's are the
                        // wall clock when the row is made, which is Flink's '0'.
                        "max-past" if kind == "timestamp" => {
                            if v.trim() != "0" {
                                return Err(o.error(format!(
                                    "option 'fields.{}.max-past' = '{v}': only '0' (the time the row is made) is supported",
                                    f.name()
                                )));
                            }
                        }
                        other => {
                            return Err(o.error(format!(
                                "unknown option 'fields.{}.{other}' (known: kind, start, end, min, max, length, and max-past of a timestamp)",
                                f.name()
                            )));
                        }
                    }
                }
                fields.push(Value::Object(d));
            }
            if let Some(f) = per_field.keys().next() {
                return Err(o.error(format!("options 'fields.{f}.*' name no column of the table")));
            }
            m.insert("fields".into(), Value::Array(fields));
            Mapped::new("datagen", m)
        }
        "filesystem" => {
            let path = o.required("path")?;
            let f = format(&mut o, &["json", "csv", "parquet", "debezium-json"])?;
            o.take("source.monitor-interval");
            let lookup_ttl_ms = duration_ms(&mut o, "lookup.join.cache.ttl")?;
            let mut m = Map::new();
            m.insert("path".into(), json!(path.strip_prefix("file://").unwrap_or(&path)));
            let changes = read_changes(&mut o, &f, physical, &mut m)?;
            if f == "csv" {
                // Flink's `csv` format has no header line.
                m.insert("header".into(), json!(false));
            }
            Mapped {
                changes,
                lookup_ttl_ms,
                ..Mapped::new("file", m)
            }
        }
        "kafka" => {
            let mut m = kafka_common(&mut o)?;
            let f = format(&mut o, &["json", "csv", "raw", "debezium-json"])?;
            let changes = read_changes(&mut o, &f, physical, &mut m)?;
            if let Some(g) = o.take("properties.group.id") {
                m.insert("group_id".into(), json!(g));
            }
            let start = match o.take("scan.startup.mode").as_deref() {
                None | Some("earliest-offset") => "earliest",
                Some("latest-offset") => "latest",
                Some("group-offsets") => "group",
                Some("timestamp") => "timestamp",
                Some(other) => {
                    return Err(o.error(format!(
                        "option 'scan.startup.mode' = '{other}' (known: earliest-offset, latest-offset, group-offsets, timestamp)"
                    )));
                }
            };
            m.insert("start_from".into(), json!(start));
            if let Some(ts) = o.parsed::<i64>("scan.startup.timestamp-millis")? {
                m.insert("start_timestamp_ms".into(), json!(ts));
            }
            if let Some(b) = o.take("scan.bounded.mode") {
                m.insert("bounded".into(), json!(b == "latest-offset"));
            }
            let props = properties(&mut o);
            m.insert("properties".into(), json!(props));
            Mapped {
                changes,
                ..Mapped::new("kafka", m)
            }
        }
        "socket" => {
            let mut m = Map::new();
            m.insert("host".into(), json!(o.required("hostname")?));
            m.insert(
                "port".into(),
                json!(
                    o.parsed::<u16>("port")?
                        .ok_or_else(|| o.error("option 'port' is required".into()))?
                ),
            );
            let f = format(&mut o, &["json", "csv", "text"])?;
            m.insert("format".into(), json!(f));
            m.insert("schema".into(), schema_value(physical));
            Mapped::new("socket", m)
        }
        "http" => {
            let mut m = Map::new();
            m.insert("url".into(), json!(o.required("url")?));
            if let Some(i) = o.parsed::<u64>("interval-ms")? {
                m.insert("interval_ms".into(), json!(i));
            }
            if let Some(i) = o.parsed::<u64>("polls")? {
                m.insert("polls".into(), json!(i));
            }
            if let Some(p) = o.take("json-pointer") {
                m.insert("pointer".into(), json!(p));
            }
            format(&mut o, &["json"])?;
            m.insert("schema".into(), schema_value(physical));
            // As a lookup table (Flink's partial cache options).
            if let Some(c) = o.take("lookup.cache")
                && !c.eq_ignore_ascii_case("partial")
            {
                return Err(o.error(format!(
                    "option 'lookup.cache' = '{c}': an http table caches per key ('PARTIAL')"
                )));
            }
            let lookup_ttl_ms = duration_ms(&mut o, "lookup.partial-cache.expire-after-write")?;
            let lookup_max_rows = o.parsed::<usize>("lookup.partial-cache.max-rows")?;
            Mapped {
                lookup_ttl_ms,
                lookup_max_rows,
                ..Mapped::new("http", m)
            }
        }
        "jdbc" => {
            // A bounded scan of the table, split by `scan.partition.column` ranges.
            let mut m = jdbc_common(&mut o)?;
            m.insert("schema".into(), schema_value(physical));
            if let Some(c) = o.take("scan.partition.column") {
                m.insert("partition_column".into(), json!(c));
            }
            if let Some(n) = o.parsed::<usize>("scan.partition.num")? {
                m.insert("partitions".into(), json!(n));
            }
            if let Some(n) = o.parsed::<i64>("scan.partition.lower-bound")? {
                m.insert("lower_bound".into(), json!(n));
            }
            if let Some(n) = o.parsed::<i64>("scan.partition.upper-bound")? {
                m.insert("upper_bound".into(), json!(n));
            }
            if let Some(n) = o.parsed::<usize>("scan.fetch-size")? {
                m.insert("fetch_rows".into(), json!(n));
            }
            // As a lookup table: read whole and kept per worker (Flink's FULL cache), read
            // again after the reload interval.
            if let Some(c) = o.take("lookup.cache")
                && !c.eq_ignore_ascii_case("full")
            {
                return Err(o.error(format!(
                    "option 'lookup.cache' = '{c}': a jdbc lookup table is read whole ('FULL')"
                )));
            }
            o.take("lookup.full-cache.reload-strategy");
            let lookup_ttl_ms = duration_ms(&mut o, "lookup.full-cache.periodic-reload.interval")?;
            Mapped {
                lookup_ttl_ms,
                ..Mapped::new("postgres", m)
            }
        }
        other => {
            return Err(WeirError::plan(format!(
                "table '{}': unknown source connector '{other}' (known: {})",
                table.name,
                SOURCES.join(", ")
            )));
        }
    };
    o.finish()?;
    Ok(Mapped { parallelism, ..mapped })
}

/// Flink's JDBC connector's common options (`url`, `table-name`, `username`, `password`) as
/// the `postgres` connector's; PostgreSQL is the database Weir reads and writes.
fn jdbc_common(o: &mut Options) -> Result<Map<String, Value>> {
    let url = o.required("url")?;
    let url = url.strip_prefix("jdbc:").unwrap_or(&url).to_string();
    if !url.starts_with("postgresql://") && !url.starts_with("postgres://") {
        return Err(o.error(format!(
            "option 'url' = '{url}': only PostgreSQL (jdbc:postgresql://host:port/database) is supported"
        )));
    }
    o.take("driver");
    let mut m = Map::new();
    m.insert("url".into(), json!(url));
    m.insert("table".into(), json!(o.required("table-name")?));
    if let Some(u) = o.take("username") {
        m.insert("user".into(), json!(u));
    }
    if let Some(p) = o.take("password") {
        m.insert("password".into(), json!(p));
    }
    Ok(m)
}

/// A duration option (`'10 min'`, `'30s'`) in ms, if given.
fn duration_ms(o: &mut Options, key: &'static str) -> Result<Option<i64>> {
    match o.take(key) {
        None => Ok(None),
        Some(t) => match super::duration(&t) {
            Some(d) => Ok(Some(d.as_millis() as i64)),
            None => Err(o.error(format!(
                "option '{key}' = '{t}' is not a duration (such as '10 min' or '30s')"
            ))),
        },
    }
}

fn node_parallelism(o: &mut Options, key: &'static str) -> Result<Option<usize>> {
    match o.parsed::<usize>(key)? {
        Some(0) => Err(o.error(format!("option '{key}' must be at least 1"))),
        p => Ok(p),
    }
}

fn kafka_common(o: &mut Options) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    m.insert(
        "bootstrap_servers".into(),
        json!(o.required("properties.bootstrap.servers")?),
    );
    m.insert("topic".into(), json!(o.required("topic")?));
    Ok(m)
}

/// `sink.delivery-guarantee` as a sink's `delivery`.
fn delivery(o: &mut Options) -> Result<Option<&'static str>> {
    let Some(d) = o.take("sink.delivery-guarantee") else {
        return Ok(None);
    };
    Ok(Some(match d.as_str() {
        "exactly-once" => "exactly_once",
        "at-least-once" | "none" => "at_least_once",
        other => {
            return Err(o.error(format!(
                "option 'sink.delivery-guarantee' = '{other}' (known: exactly-once, at-least-once, none)"
            )));
        }
    }))
}

fn properties(o: &mut Options) -> BTreeMap<String, String> {
    o.prefixed("properties.")
}

/// The sink for `table`, and what it accepts.
pub fn sink(table: &TableDef, physical: &Schema) -> Result<(Mapped, SinkMode)> {
    let mut o = Options::new(table);
    let parallelism = node_parallelism(&mut o, "sink.parallelism")?;
    let (mapped, mode) = match connector(table)? {
        "blackhole" => (Mapped::new("blackhole", Map::new()), SinkMode::Changelog),
        "print" => {
            o.take("print-identifier");
            o.take("standard-error");
            (Mapped::new("stdout", Map::new()), SinkMode::Changelog)
        }
        "filesystem" => {
            let path = o.required("path")?;
            let f = format(&mut o, &["json", "csv", "parquet", "debezium-json"])?;
            o.take("sink.rolling-policy.file-size");
            o.take("parquet.compression");
            let debezium = f == "debezium-json";
            let f = if debezium { "json".to_string() } else { f };
            let mut m = Map::new();
            m.insert("path".into(), json!(path.strip_prefix("file://").unwrap_or(&path)));
            if f == "csv" {
                m.insert("header".into(), json!(false));
            }
            m.insert("format".into(), json!(f));
            (
                Mapped {
                    debezium,
                    ..Mapped::new("file", m)
                },
                if debezium {
                    SinkMode::Changelog
                } else {
                    SinkMode::Append
                },
            )
        }
        c @ ("kafka" | "upsert-kafka") => {
            let mut m = kafka_common(&mut o)?;
            let known: &[&str] = if c == "kafka" {
                &["json", "csv", "raw", "debezium-json"]
            } else {
                &["json", "csv"]
            };
            let f = format(&mut o, known)?;
            let debezium = f == "debezium-json";
            if f == "raw" {
                raw_column(&o, physical)?;
            }
            let weir_format = match f.as_str() {
                "debezium-json" => "json",
                "raw" => "text",
                other => other,
            };
            m.insert("format".into(), json!(weir_format));
            o.take("key.format");
            if let Some(key) = o.take("key.fields") {
                m.insert(
                    "key_fields".into(),
                    json!(key.split(';').map(str::trim).collect::<Vec<_>>()),
                );
            } else if !table.primary_key.is_empty() {
                m.insert("key_fields".into(), json!(table.primary_key));
            }
            let value_fields = match o
                .take("value.fields-include")
                .map(|v| v.to_ascii_uppercase())
                .as_deref()
            {
                None | Some("ALL") if !debezium => "all",
                // Debezium JSON values are the change envelope; the key lives in the key.
                None | Some("ALL") | Some("EXCEPT_KEY") => "except_key",
                Some(other) => {
                    return Err(o.error(format!(
                        "option 'value.fields-include' = '{other}' (known: ALL, EXCEPT_KEY)"
                    )));
                }
            };
            m.insert("value_fields".into(), json!(value_fields));
            if let Some(d) = delivery(&mut o)? {
                m.insert("delivery".into(), json!(d));
            }
            if let Some(p) = o.take("sink.transactional-id-prefix") {
                m.insert("transactional_id_prefix".into(), json!(p));
            }
            let props = properties(&mut o);
            m.insert("properties".into(), json!(props));
            let mode = if c == "upsert-kafka" {
                if table.primary_key.is_empty() {
                    return Err(o.error("upsert-kafka needs a PRIMARY KEY (.. ) NOT ENFORCED".into()));
                }
                SinkMode::Changelog
            } else if debezium {
                SinkMode::Changelog
            } else {
                SinkMode::Append
            };
            (
                Mapped {
                    debezium,
                    ..Mapped::new("kafka", m)
                },
                mode,
            )
        }
        "jdbc" => {
            let mut m = jdbc_common(&mut o)?;
            if let Some(n) = o.take("sink.buffer-flush.max-rows") {
                let n: usize = n
                    .parse()
                    .map_err(|_| o.error(format!("option 'sink.buffer-flush.max-rows' = '{n}': not a row count")))?;
                m.insert("batch_rows".into(), json!(n));
            }
            // Batches are written as they arrive; retries are the job's restart strategy.
            o.take("sink.buffer-flush.interval");
            o.take("sink.max-retries");
            if let Some(d) = delivery(&mut o)? {
                m.insert("delivery".into(), json!(d));
            }
            let mode = if table.primary_key.is_empty() {
                SinkMode::Append
            } else {
                m.insert("primary_key".into(), json!(table.primary_key));
                SinkMode::Changelog
            };
            (Mapped::new("postgres", m), mode)
        }
        other => {
            return Err(WeirError::plan(format!(
                "table '{}': unknown sink connector '{other}' (known: {})",
                table.name,
                SINKS.join(", ")
            )));
        }
    };
    o.finish()?;
    Ok((Mapped { parallelism, ..mapped }, mode))
}
