//! Operators: one file each. Every operator implements [`Operator`]; a per-node
//! [`OperatorFactory`] checks the input schema at plan time and creates one instance per subtask.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

pub mod calc;
pub mod count_window;
pub mod expr;
pub mod filter;
pub mod flat_map;
pub mod global_window;
pub mod keyed_process;
pub mod map;
pub mod running_aggregate;
pub mod select;
pub mod session_window;
pub mod split;
pub mod window_aggregate;

/// Error type of user functions and operators; the engine adds the node and subtask.
pub type UserError = Box<dyn std::error::Error + Send + Sync>;
/// Result of user functions and operators.
pub type UserResult<T> = std::result::Result<T, UserError>;

/// Where an operator instance runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The node's counters (operators add what they count themselves, e.g. late records).
    pub metrics: std::sync::Arc<crate::runtime::metrics::NodeMetrics>,
    /// Node id (operator name).
    pub node: String,
    /// Index of this subtask, `0..parallelism`.
    pub subtask: usize,
    /// Parallelism of the node.
    pub parallelism: usize,
    /// Number of key groups of the job.
    pub max_parallelism: u32,
}

impl TaskContext {
    /// Counts records that arrived too late for any window.
    pub fn add_late(&self, n: u64) {
        self.metrics
            .late_records
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One running instance of an operator: batches in, batches out.
pub trait Operator: Send {
    /// Processes one batch, appending output batches to `out`.
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()>;

    /// Event time advanced to `watermark`; may emit.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(())
    }

    /// The earliest wall-clock time (ms) at which this operator wants
    /// [`Operator::on_processing_time`] called.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }

    /// The wall clock reached `now` (ms); may emit.
    fn on_processing_time(&mut self, _now: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(())
    }

    /// Rows put on the side output since the last call (a window's late records).
    fn take_side_output(&mut self) -> Vec<RecordBatch> {
        Vec::new()
    }

    /// All inputs ended; emit what is left.
    fn on_end(&mut self, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(())
    }

    /// The state to store for checkpoint `checkpoint_id`, taken when its barrier passes (so it
    /// holds exactly the effect of the records before the barrier).
    fn snapshot(&mut self, _checkpoint_id: u64) -> UserResult<crate::checkpoint::OperatorState> {
        Ok(Default::default())
    }

    /// Loads restored state before the first record: the key groups of this subtask's range,
    /// and the non-keyed state.
    fn restore(&mut self, _state: crate::checkpoint::OperatorState) -> UserResult<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete: everything before its barrier is durable.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> UserResult<()> {
        Ok(())
    }
}

/// Describes an operator in the logical graph; makes instances for subtasks. (`Any` lets the
/// planner recognise operators it can fuse.)
pub trait OperatorFactory: std::any::Any + Send + Sync {
    /// Kind of operator, for plans ("filter", "select", …).
    fn kind(&self) -> &'static str;
    /// The output schema for this input schema, or a planning error naming what is wrong.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;
    /// A new instance for one subtask.
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>>;
}
