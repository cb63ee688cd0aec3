//! The rows a lookup join looks keys up in: a bounded table read whole through its source
//! connector (Flink's full lookup cache), indexed by its key columns, and read again when its
//! time to live passes on the job's clock.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use datafusion::logical_expr::Expr;
use tokio_util::sync::CancellationToken;

use super::TaskContext;
use super::expr::plan_logical;
use crate::contract::error::{Result, WeirError};
use crate::contract::source::{SourceContext, SourceFactory};
use crate::contract::watermark::SplitWatermarks;

/// A table to look keys up in.
#[derive(Clone)]
pub struct LookupTable {
    /// The table's name (in logs and errors).
    pub name: String,
    /// Reads the table (a bounded connector).
    pub factory: Arc<dyn SourceFactory>,
    /// The columns the join shows: an expression over the connector's rows and its name.
    pub columns: Vec<(Expr, String)>,
    /// The key of each row, one expression per join key (cast to the key's type).
    pub keys: Vec<Expr>,
    /// Rows the join may see, if not all (a condition on the table alone).
    pub filter: Option<Expr>,
    /// Read the table again (HTTP: ask for a key again) after this many ms of processing
    /// time; none: once per run.
    pub ttl_ms: Option<i64>,
    /// Ask for each key over HTTP instead of reading the table whole.
    pub http: Option<HttpLookup>,
}

/// Where and how to ask for a key's rows.
#[derive(Debug, Clone)]
pub struct HttpLookup {
    /// The URL; the keys are added as query parameters.
    pub url: String,
    /// The query parameter of each join key (the table's key column names).
    pub params: Vec<String>,
    /// JSON pointer to the rows inside an answer.
    pub pointer: Option<String>,
    /// The connector's row schema (what answers are decoded into).
    pub schema: SchemaRef,
    /// Keys kept at most (the oldest answers go first).
    pub max_rows: usize,
}

/// The table as read: its rows and an index from encoded key to row numbers.
pub struct Loaded {
    /// The rows, in [`LookupTable::columns`].
    pub rows: RecordBatch,
    /// Encoded key → the rows with that key.
    pub index: HashMap<Box<[u8]>, Vec<u32>>,
    /// Malformed records the connector skipped (sent nowhere else: the table is re-read).
    pub rejected: u64,
}

impl Loaded {
    /// No rows (a join that asks for keys over HTTP reads nothing whole).
    pub fn empty() -> Self {
        Loaded {
            rows: RecordBatch::new_empty(Arc::new(Schema::empty())),
            index: HashMap::new(),
            rejected: 0,
        }
    }
}

impl LookupTable {
    /// The schema of [`LookupTable::columns`] over the connector's `input` schema.
    pub fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let mut fields = Vec::new();
        for (e, name) in &self.columns {
            let (_, field) = plan_logical(e, input)?;
            fields.push(Field::new(name, field.data_type().clone(), true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The types of the keys over the connector's `input` schema.
    pub fn key_types(&self, input: &SchemaRef) -> Result<Vec<DataType>> {
        self.keys
            .iter()
            .map(|e| Ok(plan_logical(e, input)?.1.data_type().clone()))
            .collect()
    }

    /// The connector's schema (it may read the input to infer it).
    pub fn input_schema(&self) -> Result<SchemaRef> {
        let factory = self.factory.clone();
        off_runtime(move |rt| rt.block_on(factory.schema()))
    }

    /// Reads the whole table and indexes it (blocking: on a thread of its own, so it may be
    /// called from the task's runtime).
    pub fn load(&self, ctx: &TaskContext) -> Result<Loaded> {
        let factory = self.factory.clone();
        let task = TaskContext {
            subtask: 0,
            parallelism: 1,
            node: format!("{}/lookup-{}", ctx.node, self.name),
            ..ctx.clone()
        };
        let (schema, batches, rejected) = off_runtime(move |rt| {
            rt.block_on(async move {
                let schema = factory.schema().await?;
                let mut source = factory.create(&schema, &task)?;
                let mut reader = Collect {
                    task,
                    batches: Vec::new(),
                    rejected: 0,
                    cancel: CancellationToken::new(),
                };
                source.run(&mut reader).await?;
                Ok((schema, reader.batches, reader.rejected))
            })
        })?;
        let bad = |e: arrow::error::ArrowError| WeirError::plan(format!("lookup table '{}': {e}", self.name));
        let all = concat_batches(&schema, &batches).map_err(bad)?;
        let (rows, keys) = self.shape(all)?;
        let converter = key_converter(&keys.iter().map(|k| k.data_type().clone()).collect::<Vec<_>>())?;
        let encoded = converter.convert_columns(&keys).map_err(bad)?;
        let mut index: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for i in 0..rows.num_rows() {
            if keys.iter().any(|k| k.is_null(i)) {
                continue;
            }
            index.entry(encoded.row(i).as_ref().into()).or_default().push(i as u32);
        }
        Ok(Loaded { rows, index, rejected })
    }
}

impl LookupTable {
    /// The connector's rows `all` as the join sees them: filtered, in [`LookupTable::columns`],
    /// with each row's key columns beside.
    pub fn shape(&self, mut all: RecordBatch) -> Result<(RecordBatch, Vec<ArrayRef>)> {
        let schema = all.schema();
        let bad = |e: arrow::error::ArrowError| WeirError::plan(format!("lookup table '{}': {e}", self.name));
        if let Some(f) = &self.filter {
            let (cond, _) = plan_logical(f, &schema)?;
            let mask = cond.evaluate(&all).and_then(|v| v.into_array(all.num_rows()));
            let mask = mask.map_err(|e| WeirError::plan(format!("lookup table '{}': {e}", self.name)))?;
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| WeirError::plan(format!("lookup table '{}': the filter is not boolean", self.name)))?
                .clone();
            all = filter_record_batch(&all, &mask).map_err(bad)?;
        }
        let eval = |e: &Expr| -> Result<ArrayRef> {
            let (p, _) = plan_logical(e, &schema)?;
            p.evaluate(&all)
                .and_then(|v| v.into_array(all.num_rows()))
                .map_err(|e| WeirError::plan(format!("lookup table '{}': {e}", self.name)))
        };
        let columns = self.columns.iter().map(|(e, _)| eval(e)).collect::<Result<Vec<_>>>()?;
        let keys = self.keys.iter().map(eval).collect::<Result<Vec<_>>>()?;
        let rows = RecordBatch::try_new(self.output_schema(&schema)?, columns).map_err(bad)?;
        Ok((rows, keys))
    }
}

/// Encodes join keys of these types (the same on both sides of a lookup).
pub fn key_converter(types: &[DataType]) -> Result<RowConverter> {
    RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())
        .map_err(|e| WeirError::plan(format!("lookup join keys: {e}")))
}

/// Runs `f` with a runtime of its own on a thread of its own and waits for it.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| WeirError::plan(format!("lookup table: a runtime to read it: {e}")))?;
            f(&rt)
        })
        .join()
        .unwrap_or_else(|_| Err(WeirError::plan("lookup table: the thread reading it panicked")))
    })
}

/// Keeps what a source emits.
struct Collect {
    task: TaskContext,
    batches: Vec<RecordBatch>,
    rejected: u64,
    cancel: CancellationToken,
}

#[async_trait]
impl SourceContext for Collect {
    fn task(&self) -> &TaskContext {
        &self.task
    }
    fn batch_size(&self) -> usize {
        8192
    }
    fn checkpointing(&self) -> bool {
        false
    }
    async fn collect(&mut self, batch: RecordBatch) -> Result<()> {
        self.batches.push(batch);
        Ok(())
    }
    async fn emit_watermark(&mut self, _watermark: i64) -> Result<()> {
        Ok(())
    }
    async fn mark_idle(&mut self) -> Result<()> {
        Ok(())
    }
    fn idle_deadline(&self) -> Option<i64> {
        None
    }
    async fn dead_letter(&mut self, raw: &str, reason: &str) -> Result<()> {
        self.rejected += 1;
        tracing::warn!(node = %self.task.node, %reason, raw, "malformed row in a lookup table, skipped");
        Ok(())
    }
    async fn checkpoint_if_due(&mut self) -> Result<()> {
        Ok(())
    }
    fn take_split_watermarks(&mut self) -> Option<SplitWatermarks> {
        None
    }
    fn set_position_bytes(&mut self, _position: Vec<u8>) {}
    fn restored_position_bytes(&self) -> Option<&[u8]> {
        None
    }
    fn restored_positions_union_bytes(&self) -> &[Vec<u8>] {
        &[]
    }
    fn take_committed_position_bytes(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
