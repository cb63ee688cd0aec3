//! The output side of a subtask: one partitioner and one channel per receiver, per edge.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::contract::error::Result;
use crate::contract::message::Message;
use crate::partition::Partitioner;
use crate::runtime::metrics::SubtaskMetrics;

/// Returned when a receiver is gone: the job is failing elsewhere.
#[derive(Debug)]
pub struct ReceiverGone;

/// One outgoing edge of a subtask.
pub struct OutputEdge {
    partitioner: Partitioner,
    senders: Vec<Sender<Message>>,
    scratch: Vec<(usize, RecordBatch)>,
}

impl OutputEdge {
    /// An edge to these receivers.
    pub fn new(partitioner: Partitioner, senders: Vec<Sender<Message>>) -> Self {
        OutputEdge {
            partitioner,
            senders,
            scratch: Vec::new(),
        }
    }
}

/// All outgoing edges of a subtask.
#[derive(Default)]
pub struct Outputs {
    edges: Vec<OutputEdge>,
    /// The subtask's counters: records out, time waiting for room, watermarks sent.
    meter: Option<Arc<SubtaskMetrics>>,
}

/// Sends `msg`, counting the time spent waiting for room (back-pressure) in `meter`.
async fn send(sender: &Sender<Message>, msg: Message, meter: Option<&SubtaskMetrics>) -> SendResult {
    match sender.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Closed(_)) => Err(SendError::Gone(ReceiverGone)),
        Err(TrySendError::Full(msg)) => {
            let waited = Instant::now();
            let sent = sender.send(msg).await.map_err(|_| SendError::Gone(ReceiverGone));
            if let Some(m) = meter {
                m.backpressured(waited.elapsed());
            }
            sent
        }
    }
}

/// Outcome of a send.
pub type SendResult = std::result::Result<(), SendError>;

/// Why a send did not complete.
#[derive(Debug)]
pub enum SendError {
    /// Partitioning failed (e.g. an unhashable key value).
    Partition(crate::contract::error::WeirError),
    /// A receiver is gone.
    Gone(ReceiverGone),
}

impl Outputs {
    /// Outputs over these edges.
    pub fn new(edges: Vec<OutputEdge>) -> Self {
        Outputs { edges, meter: None }
    }

    /// Counts what this subtask sends, and how long it waits to, in `meter`.
    pub fn with_meter(mut self, meter: Arc<SubtaskMetrics>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Routes a batch; waits while a receiver's channel is full (back-pressure).
    pub async fn send_data(&mut self, batch: RecordBatch) -> SendResult {
        let meter = self.meter.as_deref();
        if let Some(m) = meter {
            m.records_out.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            m.bytes_out
                .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        }
        for edge in &mut self.edges {
            let n = edge.senders.len();
            edge.scratch.clear();
            let r: Result<()> = edge.partitioner.partition(&batch, n, &mut edge.scratch);
            r.map_err(SendError::Partition)?;
            for (target, part) in edge.scratch.drain(..) {
                send(&edge.senders[target], Message::Data(part), meter).await?;
            }
        }
        Ok(())
    }

    /// Sends a control message (watermark, barrier, end) to every receiver.
    pub async fn broadcast(&mut self, msg: Message) -> SendResult {
        let meter = self.meter.as_deref();
        if let (Some(m), Message::Watermark(w)) = (meter, &msg) {
            m.output_watermark(*w);
        }
        for edge in &self.edges {
            for s in &edge.senders {
                send(s, msg.clone(), meter).await?;
            }
        }
        Ok(())
    }
}
