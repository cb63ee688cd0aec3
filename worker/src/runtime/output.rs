//! The output side of a subtask: one partitioner and one channel per receiver, per edge.

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Sender;

use crate::contract::error::Result;
use crate::contract::message::Message;
use crate::partition::Partitioner;

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
        Outputs { edges }
    }

    /// Routes a batch; waits while a receiver's channel is full (back-pressure).
    pub async fn send_data(&mut self, batch: RecordBatch) -> SendResult {
        for edge in &mut self.edges {
            let n = edge.senders.len();
            edge.scratch.clear();
            let r: Result<()> = edge.partitioner.partition(&batch, n, &mut edge.scratch);
            r.map_err(SendError::Partition)?;
            for (target, part) in edge.scratch.drain(..) {
                edge.senders[target]
                    .send(Message::Data(part))
                    .await
                    .map_err(|_| SendError::Gone(ReceiverGone))?;
            }
        }
        Ok(())
    }

    /// Sends a control message (watermark, barrier, end) to every receiver.
    pub async fn broadcast(&mut self, msg: Message) -> SendResult {
        for edge in &self.edges {
            for s in &edge.senders {
                s.send(msg.clone()).await.map_err(|_| SendError::Gone(ReceiverGone))?;
            }
        }
        Ok(())
    }
}
