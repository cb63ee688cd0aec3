//! Generates batches column by column.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use super::config::{DatagenConfig, DatagenField, FieldKind};
use crate::connectors::format::parse_type;
use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::splitmix::{SplitMix, mix64};
use crate::throttle::Throttle;

/// One field, checked.
#[derive(Debug, Clone)]
enum Gen {
    Sequence(i64),
    Int { min: i64, span: u64, int32: bool },
    Float { min: f64, width: f64 },
    Str(usize),
    Bool,
    EventTime { start: i64, rows_per_ms: u64 },
    WallClock,
}

/// The datagen source factory.
pub struct Datagen {
    node: String,
    config: DatagenConfig,
    gens: Vec<Gen>,
    schema: SchemaRef,
    rows: Option<u64>,
}

impl Datagen {
    /// Checks `config` and makes the source `node`.
    pub fn new(node: &str, config: DatagenConfig) -> Result<Self> {
        let bad = |m: String| WeirError::config("datagen", node, m);
        if config.fields.is_empty() {
            return Err(bad("fields: at least one field is needed".into()));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut gens = Vec::new();
        let mut fields = Vec::new();
        let mut rows = config.rows;
        for f in &config.fields {
            let (g, dt) = field_gen(f, now).map_err(|m| bad(format!("field '{}': {m}", f.name)))?;
            if let (FieldKind::Sequence, Some(end)) = (f.kind, f.end) {
                let n = (end - f.start.unwrap_or(0) + 1).max(0) as u64;
                rows = Some(rows.map_or(n, |r| r.min(n)));
            }
            gens.push(g);
            fields.push(Field::new(&f.name, dt, false));
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(Datagen {
            node: node.into(),
            config,
            gens,
            schema,
            rows,
        })
    }
}

fn field_gen(f: &DatagenField, now: i64) -> std::result::Result<(Gen, DataType), String> {
    use arrow::datatypes::TimeUnit;
    Ok(match f.kind {
        FieldKind::Sequence => (Gen::Sequence(f.start.unwrap_or(0)), DataType::Int64),
        FieldKind::Timestamp => {
            let g = match f.rows_per_ms {
                Some(0) => return Err("rows_per_ms must be at least 1".into()),
                Some(r) => Gen::EventTime {
                    start: f.start.unwrap_or(now),
                    rows_per_ms: r,
                },
                None => Gen::WallClock,
            };
            (g, DataType::Timestamp(TimeUnit::Millisecond, None))
        }
        FieldKind::Random => {
            let dt = match &f.data_type {
                Some(t) => parse_type(t).map_err(|e| e.to_string())?,
                None => DataType::Int64,
            };
            let (min, max) = (f.min.unwrap_or(0.0), f.max.unwrap_or(1000.0));
            if max < min {
                return Err(format!("max ({max}) is below min ({min})"));
            }
            let g = match dt {
                DataType::Int64 | DataType::Int32 => Gen::Int {
                    min: min as i64,
                    span: (max as i64 - min as i64) as u64 + 1,
                    int32: dt == DataType::Int32,
                },
                DataType::Float64 => Gen::Float { min, width: max - min },
                DataType::Utf8 => Gen::Str(f.length.unwrap_or(10)),
                DataType::Boolean => Gen::Bool,
                other => {
                    return Err(format!(
                        "type {other} is not generated; use bigint, int, double, string or boolean"
                    ));
                }
            };
            (g, dt)
        }
    })
}

#[async_trait]
impl SourceFactory for Datagen {
    fn connector(&self) -> &'static str {
        "datagen"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }
    fn create(&self, _schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>> {
        let _ = &self.node;
        Ok(Box::new(DatagenReader {
            gens: self.gens.clone(),
            schema: self.schema.clone(),
            seed: self.config.seed,
            rows: self.rows,
            rate: self.config.rows_per_second.map(|r| r as f64 / ctx.parallelism as f64),
            subtask: ctx.subtask as u64,
            parallelism: ctx.parallelism as u64,
        }))
    }
}

struct DatagenReader {
    gens: Vec<Gen>,
    schema: SchemaRef,
    seed: i64,
    rows: Option<u64>,
    rate: Option<f64>,
    subtask: u64,
    parallelism: u64,
}

impl DatagenReader {
    fn batch(&self, rows: &[u64]) -> Result<RecordBatch> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Each field draws from its own stream per row: (seed, row) mixed with the field index.
        let stream =
            |row: u64, field: usize| SplitMix::for_record(self.seed, mix64(row ^ ((field as u64 + 1) << 56)) as i64);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.gens.len());
        for (fi, g) in self.gens.iter().enumerate() {
            let col: ArrayRef = match g {
                Gen::Sequence(start) => Arc::new(
                    rows.iter()
                        .map(|r| Some(start + *r as i64))
                        .collect::<arrow::array::Int64Array>(),
                ),
                Gen::Int { min, span, int32 } => {
                    if *int32 {
                        let mut b = Int32Builder::with_capacity(rows.len());
                        rows.iter()
                            .for_each(|r| b.append_value((min + (stream(*r, fi).next64() % span) as i64) as i32));
                        Arc::new(b.finish())
                    } else {
                        let mut b = Int64Builder::with_capacity(rows.len());
                        rows.iter()
                            .for_each(|r| b.append_value(min + (stream(*r, fi).next64() % span) as i64));
                        Arc::new(b.finish())
                    }
                }
                Gen::Float { min, width } => {
                    let mut b = Float64Builder::with_capacity(rows.len());
                    rows.iter()
                        .for_each(|r| b.append_value(min + stream(*r, fi).next_double() * width));
                    Arc::new(b.finish())
                }
                Gen::Str(len) => {
                    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * len);
                    let mut s = String::with_capacity(*len);
                    for r in rows {
                        let mut rng = stream(*r, fi);
                        s.clear();
                        (0..*len).for_each(|_| s.push((b'a' + rng.next_int(26) as u8) as char));
                        b.append_value(&s);
                    }
                    Arc::new(b.finish())
                }
                Gen::Bool => {
                    let mut b = BooleanBuilder::with_capacity(rows.len());
                    rows.iter()
                        .for_each(|r| b.append_value(stream(*r, fi).next64() & 1 == 1));
                    Arc::new(b.finish())
                }
                Gen::EventTime { start, rows_per_ms } => {
                    let mut b = TimestampMillisecondBuilder::with_capacity(rows.len());
                    rows.iter()
                        .for_each(|r| b.append_value(start + (r / rows_per_ms) as i64));
                    Arc::new(b.finish())
                }
                Gen::WallClock => {
                    let mut b = TimestampMillisecondBuilder::with_capacity(rows.len());
                    rows.iter().for_each(|_| b.append_value(now));
                    Arc::new(b.finish())
                }
            };
            cols.push(col);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

#[async_trait]
impl Source for DatagenReader {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let mut throttle = Throttle::new(self.rate);
        let batch_size = throttle.batch_size(ctx.batch_size());
        let limit = self.rows.unwrap_or(u64::MAX);
        // The next row number this subtask emits (rows subtask, subtask + p, …).
        let mut next = ctx.restored_position::<u64>()?.unwrap_or(self.subtask);
        let mut rows = Vec::with_capacity(batch_size);
        while next < limit && !ctx.is_cancelled() {
            rows.clear();
            while rows.len() < batch_size && next < limit {
                rows.push(next);
                next += self.parallelism;
            }
            let batch = self.batch(&rows)?;
            ctx.collect(batch).await?;
            ctx.set_position(&next)?;
            throttle.emitted(rows.len()).await;
        }
        Ok(())
    }
}
