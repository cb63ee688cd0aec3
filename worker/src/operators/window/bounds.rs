//! Window bounds in the time field's type: a window over integer milliseconds (`BIGINT`, a
//! `long` in Flink's DataStream API) writes `window_start` / `window_end` as integer
//! milliseconds; over a timestamp, as timestamps. Window operators build timestamp bounds;
//! [`MillisBounds`] turns them into integers on the way out when the time field is an integer.

use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::checkpoint::OperatorState;
use crate::contract::error::Result;
use crate::operators::{Operator, UserResult};

const BOUNDS: [&str; 2] = ["window_start", "window_end"];

/// Whether a window over `input`'s column `time_column` writes its bounds as integers.
fn integer_time(input: &SchemaRef, time_column: Option<usize>) -> bool {
    time_column.is_some_and(|c| input.field(c).data_type() == &DataType::Int64)
}

/// The schema a window over `input` (time in `time_column`) shows, its operator building
/// `output` (timestamp bounds).
pub(crate) fn shown_schema(input: &SchemaRef, time_column: Option<usize>, output: &SchemaRef) -> SchemaRef {
    if integer_time(input, time_column) {
        millis_schema(output)
    } else {
        output.clone()
    }
}

/// The window operator `op` (building `output`, with timestamp bounds) as a window over
/// `input` shows it.
pub(crate) fn shown(
    input: &SchemaRef,
    time_column: Option<usize>,
    output: &SchemaRef,
    op: Box<dyn Operator>,
) -> Box<dyn Operator> {
    if integer_time(input, time_column) {
        Box::new(MillisBounds::new(op, output))
    } else {
        op
    }
}

/// `output` with `window_start` / `window_end` as `Int64` milliseconds.
fn millis_schema(output: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = output
        .fields()
        .iter()
        .map(|f| {
            if BOUNDS.contains(&f.name().as_str()) {
                f.as_ref().clone().with_data_type(DataType::Int64)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, output.metadata().clone()))
}

/// A window operator whose bounds leave as integer milliseconds.
struct MillisBounds {
    inner: Box<dyn Operator>,
    output: SchemaRef,
}

impl MillisBounds {
    /// Wraps `inner`, whose output has timestamp bounds.
    fn new(inner: Box<dyn Operator>, timestamp_output: &SchemaRef) -> Self {
        MillisBounds {
            inner,
            output: millis_schema(timestamp_output),
        }
    }

    /// Converts the batches `inner` appended to `out` from index `from`.
    fn convert(&self, out: &mut [RecordBatch], from: usize) -> Result<()> {
        for batch in &mut out[from..] {
            let columns = batch
                .columns()
                .iter()
                .zip(self.output.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        cast(c, f.data_type())
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            *batch = RecordBatch::try_new(self.output.clone(), columns)?;
        }
        Ok(())
    }

    /// Runs `hook` on the inner operator and converts what it emitted.
    fn emitting(
        &mut self,
        out: &mut Vec<RecordBatch>,
        hook: impl FnOnce(&mut dyn Operator, &mut Vec<RecordBatch>) -> UserResult<()>,
    ) -> UserResult<()> {
        let from = out.len();
        hook(self.inner.as_mut(), out)?;
        Ok(self.convert(out, from)?)
    }
}

impl Operator for MillisBounds {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.emitting(out, |op, out| op.process_batch(batch, out))
    }
    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.emitting(out, |op, out| op.on_watermark(watermark, out))
    }
    fn next_processing_timer(&self) -> Option<i64> {
        self.inner.next_processing_timer()
    }
    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.emitting(out, |op, out| op.on_processing_time(now, out))
    }
    fn take_side_output(&mut self) -> Vec<RecordBatch> {
        self.inner.take_side_output()
    }
    fn on_end(&mut self, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.emitting(out, |op, out| op.on_end(out))
    }
    fn before_barrier(&mut self, checkpoint_id: u64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.emitting(out, |op, out| op.before_barrier(checkpoint_id, out))
    }
    fn snapshot(&mut self, checkpoint_id: u64, changes_only: bool) -> UserResult<crate::contract::state::Snapshot> {
        self.inner.snapshot(checkpoint_id, changes_only)
    }
    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        self.inner.restore(state)
    }
    fn restores_in_parts(&self) -> bool {
        self.inner.restores_in_parts()
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> UserResult<()> {
        self.inner.notify_checkpoint_complete(checkpoint_id)
    }
}
