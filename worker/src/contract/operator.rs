//! The operator contract: what the runtime calls on an operator instance, and what describes
//! an operator in the logical graph. One operator, one file under `operators/`.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::clock::SharedClock;
use super::error::Result;
pub use super::error::{UserError, UserResult};
use super::metrics::NodeMetrics;
use super::state::{OperatorState, Snapshot};

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// The watermark.
    EventTime,
    /// The job's processing-time clock (the wall clock unless a test sets another).
    ProcessingTime,
}

/// Where an operator instance runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The node's counters (operators add what they count themselves, e.g. late records).
    pub metrics: Arc<NodeMetrics>,
    /// Node id (operator name).
    pub node: String,
    /// Index of this subtask, `0..parallelism`.
    pub subtask: usize,
    /// Parallelism of the node.
    pub parallelism: usize,
    /// Number of key groups of the job.
    pub max_parallelism: u32,
    /// The clock processing time follows.
    pub clock: SharedClock,
    /// Where keyed state lives (the job's `state.backend`).
    pub state: super::state_backend::StateBackend,
    /// The job's dead-letter directory (a path or URL), where sinks put rows their system
    /// refused (a constraint violated) and go on; none: such rows are only logged and counted.
    pub dead_letter: Option<String>,
}

impl TaskContext {
    /// Counts records that arrived too late for any window.
    pub fn add_late(&self, n: u64) {
        self.metrics
            .late_records
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Processing time now, ms since the epoch (the job's clock).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// One running instance of an operator: batches in, batches out.
///
/// An operator with one input (or a union of inputs read as one stream) implements
/// [`Operator::process_batch`]. An operator whose inputs differ (a join, a connected stream,
/// broadcast state; its factory says so with [`OperatorFactory::distinct_inputs`]) implements
/// [`Operator::process_input`] and may watch each input's watermark with
/// [`Operator::on_input_watermark`]; the combined watermark (the least over inputs) still
/// arrives at [`Operator::on_watermark`].
pub trait Operator: Send {
    /// Processes one batch, appending output batches to `out`.
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()>;

    /// Processes one batch from input `input` (the index of the node's input edge). Defaults
    /// to [`Operator::process_batch`], for operators that do not tell inputs apart.
    fn process_input(&mut self, _input: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.process_batch(batch, out)
    }

    /// Input `input`'s watermark (the least over its channels) advanced to `watermark`. Called
    /// before [`Operator::on_watermark`] whenever the combined watermark moves too.
    fn on_input_watermark(&mut self, _input: usize, _watermark: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(())
    }

    /// Event time (the least watermark over all inputs) advanced to `watermark`; may emit.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(())
    }

    /// The earliest processing time (ms, on the job's clock) at which this operator wants
    /// [`Operator::on_processing_time`] called.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }

    /// Processing time reached `now` (ms); may emit.
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

    /// A checkpoint barrier is about to pass: emit what is buffered only to save work (Flink's
    /// `prepareSnapshotPreBarrier`), so the snapshot that follows need not hold it.
    fn before_barrier(&mut self, _checkpoint_id: u64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Ok(())
    }

    /// The state to store for checkpoint `checkpoint_id`, taken when its barrier passes (so it
    /// holds exactly the effect of the records before the barrier): encoded now (an
    /// [`OperatorState`] `.into()` a [`Snapshot`]), or a view frozen at the barrier that the
    /// checkpoint thread encodes while the task goes on ([`Snapshot::deferred`], for
    /// copy-on-write state). When `changes_only`, the operator may return just what changed since
    /// its previous snapshot ([`Snapshot::changes`]); the runtime asks only when that snapshot
    /// was stored.
    fn snapshot(&mut self, _checkpoint_id: u64, _changes_only: bool) -> UserResult<Snapshot> {
        Ok(OperatorState::default().into())
    }

    /// Loads restored state before the first record: the key groups of this subtask's range,
    /// and the non-keyed state.
    fn restore(&mut self, _state: OperatorState) -> UserResult<()> {
        Ok(())
    }

    /// Whether [`Operator::restore`] may be called several times, each with the key groups of
    /// one part of this subtask's range (their full state and changes together, the non-keyed
    /// state each time), so that large keyed state is never read whole into memory. Operators
    /// whose restore only adds entries say yes.
    fn restores_in_parts(&self) -> bool {
        false
    }

    /// Checkpoint `checkpoint_id` is complete: everything before its barrier is durable.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> UserResult<()> {
        Ok(())
    }
}

/// Plans a SQL condition against an input schema (a boolean expression).
pub type PlanCondition = dyn Fn(&SchemaRef) -> Result<Arc<dyn PhysicalExpr>> + Send + Sync;
/// Plans a SQL projection against an input schema: the expressions and the output schema.
pub type PlanProjection = dyn Fn(&SchemaRef) -> Result<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)> + Send + Sync;

/// What an operator contributes to a fused Calc step (Flink's Calc): the planner fuses each run
/// of conditions, optionally ending in a projection, within one chain into one operator.
pub enum CalcPart {
    /// A row filter by a SQL condition.
    Filter(Box<PlanCondition>),
    /// A projection by SQL expressions.
    Project(Box<PlanProjection>),
}

/// Describes an operator in the logical graph; makes instances for subtasks.
pub trait OperatorFactory: Send + Sync {
    /// Kind of operator, for plans ("filter", "select", …).
    fn kind(&self) -> &'static str;
    /// The output schema for this input schema, or a planning error naming what is wrong.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;
    /// A new instance for one subtask.
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>>;

    /// Whether the node's inputs are distinct streams (a join: each input keeps its schema,
    /// batches arrive with their input index) rather than one stream merged from all of them
    /// (a union: equal schemas). Distinct-input operators are planned with
    /// [`OperatorFactory::output_schema_of`] and created with [`OperatorFactory::create_of`].
    fn distinct_inputs(&self) -> bool {
        false
    }
    /// The output schema for each input's schema (distinct inputs). Defaults to
    /// [`OperatorFactory::output_schema`] of the first.
    fn output_schema_of(&self, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        self.output_schema(&inputs[0])
    }
    /// A new instance for one subtask, given each input's schema (distinct inputs). Defaults to
    /// [`OperatorFactory::create`] with the first.
    fn create_of(&self, inputs: &[SchemaRef], ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        self.create(&inputs[0], ctx)
    }

    /// The part this operator plays in a fused Calc step, if it can be fused (SQL filters and
    /// projections). The planner fuses through this hook; it never inspects concrete types.
    fn calc_part(&self) -> Option<CalcPart> {
        None
    }
}
