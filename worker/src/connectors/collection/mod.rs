//! Rows given by the program itself (Flink's `from_collection`): a bounded, non-parallel source
//! over batches in memory, for tests, examples and small lookup data. Its position in
//! checkpoints is the number of rows emitted, so a restored job goes on after them.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};

/// A source of the rows of `batches` (all of one schema), in order.
#[derive(Debug, Clone)]
pub struct Collection {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Collection {
    /// A source of `batches`, each of `schema` (checked, naming the node `name`).
    pub fn new(name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        for (i, b) in batches.iter().enumerate() {
            if b.schema().fields() != schema.fields() {
                return Err(WeirError::config(
                    "collection",
                    name,
                    format!(
                        "batch {i} has schema {:?}, not the collection's {:?}",
                        b.schema(),
                        schema
                    ),
                ));
            }
        }
        Ok(Collection { schema, batches })
    }

    /// Rows in the collection.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

#[async_trait]
impl SourceFactory for Collection {
    fn connector(&self) -> &'static str {
        "collection"
    }
    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }
    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }
    fn create(&self, _schema: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Source for Collection {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let size = ctx.batch_size().max(1);
        let mut skip = ctx.restored_position::<u64>()?.unwrap_or(0) as usize;
        let mut emitted = skip as u64;
        for batch in &self.batches {
            if skip >= batch.num_rows() {
                skip -= batch.num_rows();
                continue;
            }
            let mut at = std::mem::take(&mut skip);
            while at < batch.num_rows() {
                if ctx.is_cancelled() {
                    return Ok(());
                }
                let n = size.min(batch.num_rows() - at);
                ctx.collect(batch.slice(at, n)).await?;
                at += n;
                emitted += n as u64;
                ctx.set_position(&emitted)?;
            }
        }
        Ok(())
    }
}
