//! A window checked against its input: key, time and aggregate columns, the output schema,
//! and the per-batch helpers every window operator shares.

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use crate::contract::Clock;
use crate::contract::error::Result;
use crate::operators::UserResult;
use crate::window::aggregate::{PlannedAgg, Values};

/// A window operator checked against its input.
pub(crate) struct Planned {
    pub(crate) key_columns: Vec<usize>,
    /// None: processing time.
    pub(crate) time_column: Option<usize>,
    pub(crate) aggs: Vec<PlannedAgg>,
    pub(crate) output: SchemaRef,
}

impl Planned {
    /// Every aggregate's input values in `batch`.
    pub(crate) fn values(&self, batch: &RecordBatch) -> Result<Vec<Values>> {
        self.aggs.iter().map(|a| a.values(batch)).collect()
    }

    /// Time of every row as milliseconds: its event time, or processing time on `clock` when
    /// the stream has no event time.
    pub(crate) fn times(&self, batch: &RecordBatch, clock: &dyn Clock) -> UserResult<arrow::array::Int64Array> {
        match self.event_times(batch)? {
            Some(t) => Ok(t),
            None => Ok(arrow::array::Int64Array::from_value(clock.now_ms(), batch.num_rows())),
        }
    }

    /// Event time of every row as milliseconds, when the stream has event time.
    pub(crate) fn event_times(&self, batch: &RecordBatch) -> UserResult<Option<arrow::array::Int64Array>> {
        let Some(column) = self.time_column else {
            return Ok(None);
        };
        let time = batch.column(column);
        let time = match time.data_type() {
            DataType::Timestamp(u, _) if *u != TimeUnit::Millisecond => {
                cast(time, &DataType::Timestamp(TimeUnit::Millisecond, None))?
            }
            _ => time.clone(),
        };
        Ok(Some(cast(&time, &DataType::Int64)?.as_primitive::<Int64Type>().clone()))
    }

    /// The key group of every row's key (none without keys): stored with new state entries so
    /// a snapshot groups them without hashing again.
    pub(crate) fn key_groups(
        &self,
        keyed: bool,
        batch: &RecordBatch,
        max_parallelism: u32,
    ) -> UserResult<Option<Vec<u32>>> {
        if !keyed {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = self.key_columns.iter().map(|c| batch.column(*c).clone()).collect();
        Ok(Some(crate::keys::key_groups(
            &columns,
            batch.num_rows(),
            max_parallelism,
        )?))
    }

    /// The key of every row in Arrow's row format (none without keys).
    pub(crate) fn keys(
        &self,
        converter: Option<&RowConverter>,
        batch: &RecordBatch,
    ) -> UserResult<Option<arrow::row::Rows>> {
        match converter {
            Some(c) => {
                let cols: Vec<ArrayRef> = self.key_columns.iter().map(|k| batch.column(*k).clone()).collect();
                Ok(Some(c.convert_columns(&cols)?))
            }
            None => Ok(None),
        }
    }
}
