//! A source of given `(key, ts, value)` rows with event time, and helpers for window tests.

use std::sync::Arc;

use arrow::array::{Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use proptest::prelude::*;
use weir::connectors::{Source, SourceFactory};
use weir::contract::SourceContext;
use weir::prelude::*;

/// Emits given `(key, ts, value)` rows in order, in batches of `batch` rows.
#[derive(Clone)]
pub struct Rows {
    pub rows: Vec<(i64, i64, i64)>,
    pub batch: usize,
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("v", DataType::Int64, false),
    ]))
}

#[async_trait]
impl SourceFactory for Rows {
    fn connector(&self) -> &'static str {
        "rows"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(schema())
    }
    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
    fn create(&self, _schema: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Source for Rows {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        for chunk in self.rows.chunks(self.batch.max(1)) {
            let b = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                    Arc::new(TimestampMillisecondArray::from_iter_values(chunk.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.2))),
                ],
            )
            .unwrap();
            ctx.collect(b).await?;
        }
        Ok(())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `"1970-01-01T00:00:01.500"` → 1500 (timestamps as the JSON writer prints them).
pub fn millis(v: &serde_json::Value) -> i64 {
    let s = v.as_str().unwrap();
    let (date, t) = s.split_once('T').unwrap();
    // Windows near the epoch may start the day before it.
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let day = days_from_civil(d[0], d[1], d[2]) * 86_400_000;
    let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    day + (p[0] * 3600 + p[1] * 60 + p[2]) * 1000 + ms
}

pub fn events() -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
    // Mostly increasing time with jitter, so some records are out of order and some late.
    prop::collection::vec((0i64..4, 0i64..400, -50i64..50), 1..300).prop_map(|mut v| {
        for (i, r) in v.iter_mut().enumerate() {
            r.1 = (i as i64 * 20 + r.1 - 200).max(0);
        }
        v
    })
}
