//! Discards rows and counts them (the benchmark sink).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::connectors::{Sink, SinkFactory};
use crate::error::Result;
use crate::operators::TaskContext;

/// A sink that counts rows and keeps nothing.
#[derive(Debug, Default, Clone)]
pub struct Blackhole {
    count: Arc<AtomicU64>,
}

impl Blackhole {
    /// A new blackhole.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows received so far, over all subtasks.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl SinkFactory for Blackhole {
    fn connector(&self) -> &'static str {
        "blackhole"
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl Sink for Blackhole {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.count.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
