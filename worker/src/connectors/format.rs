//! Record formats shared by connectors: JSON lines and CSV, decoding with per-record error
//! reporting (bad records go to the dead-letter output) and encoding for sinks; schemas given
//! in configs or inferred from samples.

use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use crate::contract::error::{Result, WeirError};

/// Record format of a file, socket or HTTP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Json,
    /// Comma-separated values (first line a header in files).
    Csv,
    /// Plain text: one row per line in a `line` column.
    Text,
    /// Apache Parquet files (the file connector only; snappy-compressed when written).
    Parquet,
}

impl Format {
    /// File extension for sinks.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Json => "jsonl",
            Format::Csv => "csv",
            Format::Text => "txt",
            Format::Parquet => "parquet",
        }
    }
}

/// A schema as written in a config: a list of `{name, type}` or `"name TYPE, name TYPE"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SchemaSpec {
    /// `"auction BIGINT, price DOUBLE"`.
    Text(String),
    /// `[{name: auction, type: bigint}]`.
    Fields(Vec<FieldSpec>),
    /// An Arrow schema in its JSON form (what SQL tables pass: nested types included).
    Arrow(arrow::datatypes::Schema),
}

/// One field of a [`SchemaSpec`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Name.
    pub name: String,
    /// SQL-style type name.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether nulls are allowed (default true).
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

/// Parses a type name: `bigint`, `int`, `double`, `float`, `string`, `boolean`, `timestamp`…
pub fn parse_type(name: &str) -> Result<DataType> {
    let t = name.trim().to_ascii_lowercase();
    Ok(match t.as_str() {
        "bigint" | "int64" | "long" => DataType::Int64,
        "int" | "integer" | "int32" => DataType::Int32,
        "smallint" | "int16" => DataType::Int16,
        "tinyint" | "int8" => DataType::Int8,
        "double" | "float64" | "double precision" => DataType::Float64,
        "float" | "real" | "float32" => DataType::Float32,
        "string" | "varchar" | "text" | "utf8" | "char" => DataType::Utf8,
        "boolean" | "bool" => DataType::Boolean,
        "timestamp" | "timestamp(3)" | "timestamp_ms" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "timestamp_ltz" | "timestamp_ltz(3)" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "date" => DataType::Date32,
        _ => {
            return Err(WeirError::plan(format!(
                "unknown type '{name}' (use bigint, int, smallint, tinyint, double, float, string, boolean, timestamp, timestamp_ltz or date)"
            )));
        }
    })
}

impl SchemaSpec {
    /// The Arrow schema.
    pub fn to_schema(&self) -> Result<SchemaRef> {
        let fields = match self {
            SchemaSpec::Arrow(s) => s.fields().iter().map(|f| f.as_ref().clone()).collect(),
            SchemaSpec::Fields(fs) => fs
                .iter()
                .map(|f| Ok(Field::new(&f.name, parse_type(&f.data_type)?, f.nullable)))
                .collect::<Result<Vec<_>>>()?,
            SchemaSpec::Text(t) => t
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    let p = p.trim();
                    let (name, ty) = p
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| WeirError::plan(format!("schema: '{p}' should be 'name TYPE'")))?;
                    Ok(Field::new(name, parse_type(ty)?, true))
                })
                .collect::<Result<Vec<_>>>()?,
        };
        if fields.is_empty() {
            return Err(WeirError::plan("schema: no fields"));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// The schema of the text format.
pub fn text_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
}

/// Infers a schema from sample records (malformed ones are skipped).
pub fn infer_schema(format: Format, samples: &[&str], csv_header: Option<&str>) -> Result<SchemaRef> {
    match format {
        Format::Text => Ok(text_schema()),
        Format::Parquet => Err(WeirError::plan(
            "a Parquet file carries its schema; records are not sampled",
        )),
        Format::Json => {
            let values = samples
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v.is_object());
            let schema = arrow::json::reader::infer_json_schema_from_iterator(values.map(Ok))?;
            if schema.fields().is_empty() {
                return Err(WeirError::plan(
                    "cannot infer a schema: no JSON object found in the input; give a schema",
                ));
            }
            Ok(Arc::new(schema))
        }
        Format::Csv => {
            let mut text = String::new();
            if let Some(h) = csv_header {
                text.push_str(h);
                text.push('\n');
            }
            for l in samples {
                text.push_str(l);
                text.push('\n');
            }
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(csv_header.is_some())
                .infer_schema(Cursor::new(text.as_bytes()), Some(samples.len().max(1)))?;
            Ok(Arc::new(schema))
        }
    }
}

/// Decodes records into batches of a fixed schema; records that do not fit are returned with
/// the reason instead of failing the batch.
pub struct RecordDecoder {
    format: Format,
    schema: SchemaRef,
}

/// Decoded rows and the records that were refused.
pub struct Decoded {
    /// The good rows (None when there were none).
    pub batch: Option<RecordBatch>,
    /// `(record, reason)` for each bad record.
    pub bad: Vec<(String, String)>,
}

impl Decoded {
    /// Sends the bad records to the dead-letter output, then emits the good rows: no record
    /// is lost.
    pub async fn emit(self, ctx: &mut dyn crate::contract::SourceContext) -> Result<()> {
        for (raw, reason) in self.bad {
            ctx.dead_letter(&raw, &reason).await?;
        }
        match self.batch {
            Some(b) => ctx.collect(b).await,
            None => Ok(()),
        }
    }
}

impl RecordDecoder {
    /// A decoder for `schema`.
    pub fn new(format: Format, schema: SchemaRef) -> Self {
        RecordDecoder { format, schema }
    }

    /// The schema decoded into.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes records (one per element, without the newline).
    pub fn decode(&self, records: &[String]) -> Result<Decoded> {
        let records: Vec<&String> = records.iter().filter(|r| !r.trim().is_empty()).collect();
        if records.is_empty() {
            return Ok(Decoded {
                batch: None,
                bad: vec![],
            });
        }
        if self.format == Format::Text {
            let arr = arrow::array::StringArray::from_iter_values(records.iter().map(|s| s.as_str()));
            return Ok(Decoded {
                batch: Some(RecordBatch::try_new(self.schema.clone(), vec![Arc::new(arr)])?),
                bad: vec![],
            });
        }
        // Fast path: the whole chunk at once.
        if let Ok(batch) = self.decode_chunk(&records) {
            return Ok(Decoded {
                batch: Some(batch),
                bad: vec![],
            });
        }
        // Slow path: one by one, to find the bad records.
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for r in records {
            match self.decode_chunk(&[r]) {
                Ok(b) => good.push(b),
                Err(reason) => bad.push((r.clone(), reason)),
            }
        }
        let batch = if good.is_empty() {
            None
        } else {
            Some(arrow::compute::concat_batches(&self.schema, &good)?)
        };
        Ok(Decoded { batch, bad })
    }

    /// Decodes records one per element, keeping every record's place: the indices of the
    /// records behind the batch's rows (in order) come back beside it. An empty record is
    /// malformed unless the format is text (where it is an empty line).
    pub fn decode_indexed(&self, records: &[String]) -> Result<(Decoded, Vec<usize>)> {
        if self.format == Format::Text {
            let arr = arrow::array::StringArray::from_iter_values(records.iter().map(|s| s.as_str()));
            let batch = (!records.is_empty())
                .then(|| RecordBatch::try_new(self.schema.clone(), vec![Arc::new(arr)]))
                .transpose()?;
            return Ok((Decoded { batch, bad: vec![] }, (0..records.len()).collect()));
        }
        let mut bad = Vec::new();
        let mut kept: Vec<usize> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if r.trim().is_empty() {
                bad.push((r.clone(), "empty record".to_string()));
            } else {
                kept.push(i);
            }
        }
        let refs: Vec<&String> = kept.iter().map(|i| &records[*i]).collect();
        if refs.is_empty() {
            return Ok((Decoded { batch: None, bad }, Vec::new()));
        }
        if let Ok(batch) = self.decode_chunk(&refs) {
            return Ok((
                Decoded {
                    batch: Some(batch),
                    bad,
                },
                kept,
            ));
        }
        let mut good = Vec::new();
        let mut good_index = Vec::new();
        for (r, i) in refs.iter().zip(&kept) {
            match self.decode_chunk(&[r]) {
                Ok(b) => {
                    good.push(b);
                    good_index.push(*i);
                }
                Err(reason) => bad.push(((*r).clone(), reason)),
            }
        }
        let batch = if good.is_empty() {
            None
        } else {
            Some(arrow::compute::concat_batches(&self.schema, &good)?)
        };
        Ok((Decoded { batch, bad }, good_index))
    }

    fn decode_chunk(&self, records: &[&String]) -> std::result::Result<RecordBatch, String> {
        let mut text = String::with_capacity(records.iter().map(|r| r.len() + 1).sum());
        for r in records {
            text.push_str(r);
            text.push('\n');
        }
        let batch = match self.format {
            Format::Json => {
                for r in records {
                    // The arrow decoder accepts a bare scalar as a row of nulls; a record must be an object.
                    if !r.trim_start().starts_with('{') {
                        return Err("not a JSON object".into());
                    }
                }
                let mut d = arrow::json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(records.len() + 1)
                    .build_decoder()
                    .map_err(|e| e.to_string())?;
                let consumed = d.decode(text.as_bytes()).map_err(|e| e.to_string())?;
                if consumed != text.len() {
                    return Err("trailing data after the JSON object".into());
                }
                d.flush().map_err(|e| e.to_string())?
            }
            Format::Csv => {
                let mut d = arrow::csv::ReaderBuilder::new(self.schema.clone())
                    .with_header(false)
                    .with_batch_size(records.len() + 1)
                    .build_decoder();
                d.decode(text.as_bytes()).map_err(|e| e.to_string())?;
                d.flush().map_err(|e| e.to_string())?
            }
            Format::Text => unreachable!("handled above"),
            Format::Parquet => return Err("Parquet is read by files, not by records".into()),
        };
        match batch {
            Some(b) if b.num_rows() == records.len() => Ok(b),
            Some(b) => Err(format!("decoded {} rows from {} records", b.num_rows(), records.len())),
            None => Err("no row decoded".into()),
        }
    }
}

/// Encodes batches for a sink; CSV writes a header at the start of each file.
pub fn encode(format: Format, batch: &RecordBatch, header: bool) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match format {
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
            w.write(batch)?;
            w.finish()?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(header).build(&mut buf);
            w.write(batch)?;
        }
        Format::Parquet => {
            // A whole file: what the file sink writes per part (see `ParquetPart`).
            let bad = |e: parquet::errors::ParquetError| WeirError::internal(format!("parquet: {e}"));
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).map_err(bad)?;
            w.write(batch).map_err(bad)?;
            w.close().map_err(bad)?;
        }
        Format::Text => {
            let col = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
            let col = arrow::array::AsArray::as_string::<i32>(&col);
            for v in col.iter() {
                buf.extend_from_slice(v.unwrap_or("").as_bytes());
                buf.push(b'\n');
            }
        }
    }
    Ok(buf)
}

/// Parses a connector's options (from the pipeline form) into its config type, naming the node
/// and the offending field on error.
pub fn parse_options<T: serde::de::DeserializeOwned>(
    connector: &str,
    node: &str,
    options: &serde_json::Map<String, serde_json::Value>,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(options.clone())).map_err(|e| {
        // serde names the bad value but not the field for an unknown enum variant: find it.
        let text = e.to_string();
        let field = text
            .strip_prefix("unknown variant `")
            .and_then(|rest| rest.split('`').next())
            .and_then(|bad| options.iter().find(|(_, v)| v.as_str() == Some(bad)).map(|(k, _)| k));
        match field {
            Some(field) => WeirError::config(connector, node, format!("options: field '{field}': {text}")),
            None => WeirError::config(connector, node, format!("options: {text}")),
        }
    })
}
