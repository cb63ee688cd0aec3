//! Watermark strategies (Flink's `WatermarkStrategy`): bounded out-of-orderness on a timestamp
//! field, monotonous (no disorder), with optional idleness. A source with no strategy runs in
//! processing time and emits no watermarks.

use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::compute::kernels::aggregate::max;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::error::{Result, WeirError};
use super::schema::field_index;

/// How a source derives watermarks from its records.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkStrategy {
    /// The event-time field: a timestamp, or integer milliseconds since the epoch.
    pub field: String,
    /// How far behind the largest timestamp seen the watermark stays.
    pub max_out_of_orderness: Duration,
    /// After this long without records the source is idle: it stops holding back event time
    /// downstream until it produces again.
    pub idle_timeout: Option<Duration>,
}

impl WatermarkStrategy {
    /// Timestamps may arrive up to `max_delay` out of order.
    pub fn bounded_out_of_orderness(field: &str, max_delay: Duration) -> Self {
        WatermarkStrategy {
            field: field.to_string(),
            max_out_of_orderness: max_delay,
            idle_timeout: None,
        }
    }

    /// Timestamps never decrease.
    pub fn monotonous(field: &str) -> Self {
        Self::bounded_out_of_orderness(field, Duration::ZERO)
    }

    /// Marks the source idle after `timeout` without records.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The index of the event-time field in `schema`, checking its type.
    pub fn resolve(&self, schema: &SchemaRef) -> Result<usize> {
        let i = field_index(schema, &self.field, "watermark")?;
        match schema.field(i).data_type() {
            DataType::Timestamp(_, _) | DataType::Int64 | DataType::Date64 => Ok(i),
            other => Err(WeirError::plan(format!(
                "watermark: field '{}' is {other}; event time needs a timestamp or integer milliseconds",
                self.field
            ))),
        }
    }
}

/// Tracks the largest timestamp seen by one source subtask and the watermark it implies.
#[derive(Debug)]
pub struct WatermarkGenerator {
    column: usize,
    delay_ms: i64,
    max_seen: i64,
    emitted: i64,
}

impl WatermarkGenerator {
    /// A generator reading column `column`.
    pub fn new(strategy: &WatermarkStrategy, column: usize) -> Self {
        WatermarkGenerator {
            column,
            delay_ms: strategy.max_out_of_orderness.as_millis() as i64,
            max_seen: i64::MIN,
            emitted: i64::MIN,
        }
    }

    /// Observes a batch; returns a new watermark when it advanced. As in Flink, the watermark
    /// is `max timestamp - max out-of-orderness - 1` ms: a record at the watermark is late.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<Option<i64>> {
        let col = batch.column(self.column);
        let millis = match col.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 | DataType::Date64 => {
                cast(col, &DataType::Int64)?
            }
            DataType::Timestamp(_, _) => {
                let ms = cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
                cast(&ms, &DataType::Int64)?
            }
            other => {
                return Err(WeirError::plan(format!(
                    "watermark: column type {other} is not event time"
                )));
            }
        };
        let Some(m) = max(millis.as_primitive::<Int64Type>()) else {
            return Ok(None);
        };
        self.max_seen = self.max_seen.max(m);
        let wm = self.max_seen.saturating_sub(self.delay_ms).saturating_sub(1);
        if wm > self.emitted {
            self.emitted = wm;
            return Ok(Some(wm));
        }
        Ok(None)
    }

    /// The event-time column.
    pub fn column(&self) -> usize {
        self.column
    }

    /// Rows with a null event time (they cannot be placed in time).
    pub fn null_count(&self, batch: &RecordBatch) -> usize {
        batch.column(self.column).null_count()
    }
}

/// Event time of every row of `column` as milliseconds (timestamps of any unit, or integers).
pub fn event_millis(column: &arrow::array::ArrayRef) -> Result<arrow::array::Int64Array> {
    let millis = match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 | DataType::Date64 => {
            cast(column, &DataType::Int64)?
        }
        DataType::Timestamp(_, _) => {
            let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            cast(&ms, &DataType::Int64)?
        }
        other => {
            return Err(WeirError::plan(format!(
                "watermark: column type {other} is not event time"
            )));
        }
    };
    Ok(millis.as_primitive::<Int64Type>().clone())
}

/// Computes a batch's event-time column (one value per row) from a source's batch.
pub type EventTimeFn = std::sync::Arc<dyn Fn(&RecordBatch) -> Result<arrow::array::ArrayRef> + Send + Sync>;

/// Watermarks per split (a Kafka partition), as Flink's per-split watermarks: each split
/// tracks its own largest timestamp; the source subtask's watermark is the least over its
/// splits that are not idle, so a partition that lags does not have its records made late by
/// a faster one, and an empty partition (idle after the strategy's timeout) does not hold
/// event time back.
pub struct SplitWatermarks {
    column: usize,
    /// Computes the event time of a source's batches when the watermark column is not one of
    /// them (a SQL table's computed rowtime): one value per row of the batch.
    derive: Option<EventTimeFn>,
    delay_ms: i64,
    idle_timeout: Option<std::time::Duration>,
    /// Split → (largest timestamp, last time it had data).
    splits: std::collections::BTreeMap<String, (i64, std::time::Instant)>,
    emitted: i64,
}

impl std::fmt::Debug for SplitWatermarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitWatermarks")
            .field("column", &self.column)
            .field("derived", &self.derive.is_some())
            .field("delay_ms", &self.delay_ms)
            .field("splits", &self.splits)
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl SplitWatermarks {
    /// Per-split watermarks by `strategy` on column `column`.
    pub fn new(strategy: &WatermarkStrategy, column: usize) -> Self {
        SplitWatermarks {
            column,
            derive: None,
            delay_ms: strategy.max_out_of_orderness.as_millis() as i64,
            idle_timeout: strategy.idle_timeout,
            splits: std::collections::BTreeMap::new(),
            emitted: i64::MIN,
        }
    }

    /// Event time computed by `derive` from the source's batches instead of read from a column
    /// of them (the rows a SQL table computes from a connector's records).
    pub fn with_event_time(mut self, derive: EventTimeFn) -> Self {
        self.derive = Some(derive);
        self
    }

    /// Each row's event time in milliseconds (null where it has none), or `None` when it cannot
    /// be told per row (the step that computes it dropped rows): the caller then leaves the
    /// splits' watermarks where they were, which holds event time back but makes nothing late.
    pub fn event_times(&self, batch: &RecordBatch) -> Result<Option<arrow::array::Int64Array>> {
        let column = match &self.derive {
            Some(derive) => derive(batch)?,
            None => batch.column(self.column).clone(),
        };
        if column.len() != batch.num_rows() {
            return Ok(None);
        }
        event_millis(&column).map(Some)
    }

    /// A split starts being read (it holds event time back until it has data or is idle).
    pub fn add_split(&mut self, split: &str) {
        self.splits
            .entry(split.to_string())
            .or_insert((i64::MIN, std::time::Instant::now()));
    }

    /// Split `split` had records up to event time `max_ts`.
    pub fn observe(&mut self, split: &str, max_ts: i64) {
        let e = self
            .splits
            .entry(split.to_string())
            .or_insert((i64::MIN, std::time::Instant::now()));
        e.0 = e.0.max(max_ts);
        e.1 = std::time::Instant::now();
    }

    fn idle(&self, last: std::time::Instant) -> bool {
        self.idle_timeout.is_some_and(|t| last.elapsed() >= t)
    }

    /// Whether every split is idle.
    pub fn all_idle(&self) -> bool {
        !self.splits.is_empty() && self.splits.values().all(|(_, last)| self.idle(*last))
    }

    /// The subtask's watermark when it advanced: the least over active splits.
    pub fn advance(&mut self) -> Option<i64> {
        let least = self
            .splits
            .values()
            .filter(|(_, last)| !self.idle(*last))
            .map(|(max, _)| max.saturating_sub(self.delay_ms).saturating_sub(1))
            .min()?;
        if least > self.emitted {
            self.emitted = least;
            Some(least)
        } else {
            None
        }
    }
}
