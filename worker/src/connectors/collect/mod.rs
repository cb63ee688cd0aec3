//! Collects rows in memory (Flink's `executeAndCollect`): for tests, notebooks and small jobs.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::connectors::{Sink, SinkFactory};
use crate::contract::TaskContext;
use crate::contract::error::Result;

/// A sink keeping every batch, tagged with the subtask that wrote it.
#[derive(Debug, Default, Clone)]
pub struct Collect {
    batches: Arc<Mutex<Vec<(usize, RecordBatch)>>>,
}

impl Collect {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// All batches so far, with the writing subtask.
    pub fn batches(&self) -> Vec<(usize, RecordBatch)> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// All rows as JSON objects (one string each), in arrival order.
    pub fn rows_json(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, b) in self.batches() {
            let bytes = crate::connectors::format::encode(crate::connectors::format::Format::Json, &b, false)
                .expect("JSON encoding of a batch");
            out.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_string));
        }
        out
    }

    /// Number of rows so far.
    pub fn len(&self) -> usize {
        self.batches().iter().map(|(_, b)| b.num_rows()).sum()
    }

    /// Whether nothing arrived.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SinkFactory for Collect {
    fn connector(&self) -> &'static str {
        "collect"
    }
    fn create(&self, _input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CollectWriter {
            target: self.batches.clone(),
            subtask: ctx.subtask,
        }))
    }
}

struct CollectWriter {
    target: Arc<Mutex<Vec<(usize, RecordBatch)>>>,
    subtask: usize,
}

#[async_trait]
impl Sink for CollectWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.subtask, batch));
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
