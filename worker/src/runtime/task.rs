//! The two kinds of task a subtask runs as: a [`SourceTask`] (a source driving its chain) and an
//! [`OperatorTask`] (an input gate feeding a chain). Each returns its chain when its input ended,
//! for the job's final commit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::metrics::CheckpointMetrics;
use crate::checkpoint::restore::Restore;
use crate::contract::Source;
use crate::contract::clock::SharedClock;
use crate::contract::error::{Result, WeirError};
use crate::runtime::chain::Chain;
use crate::runtime::gate::{GateEvent, InputGate};
use crate::runtime::metrics::SubtaskMetrics;
use crate::runtime::source_emitter::SourceEmitter;

/// A source subtask: restores the chain after it, runs the source, then ends the chain.
pub struct SourceTask {
    /// The connector's instance.
    pub source: Box<dyn Source>,
    /// What it emits into.
    pub emitter: SourceEmitter,
    /// State to load first, if the job restores.
    pub restore: Option<Arc<Restore>>,
    /// Where restore time is recorded.
    pub metrics: Arc<CheckpointMetrics>,
}

impl SourceTask {
    /// Runs the subtask to the end of its input (or until the job stops).
    pub async fn run(mut self) -> Result<Option<Chain>> {
        load_state(self.emitter.chain_mut(), self.restore.as_deref(), &self.metrics).await?;
        self.source.run(&mut self.emitter).await?;
        self.emitter.finish().await?;
        Ok(Some(self.emitter.into_chain()))
    }
}

/// An operator subtask: events from its input gate through its chain, with processing-time
/// timers and checkpoint completions in between.
pub struct OperatorTask {
    /// The chain of fused operators, ending in outputs or a sink.
    pub chain: Chain,
    /// The channels from upstream.
    pub gate: InputGate,
    /// State to load first, if the job restores.
    pub restore: Option<Arc<Restore>>,
    /// Where restore time is recorded.
    pub metrics: Arc<CheckpointMetrics>,
    /// Fires when the job is stopping.
    pub stopping: CancellationToken,
    /// The clock processing-time timers follow.
    pub clock: SharedClock,
    /// This subtask's counters: records in, time waiting for input, watermarks received.
    pub meter: Arc<SubtaskMetrics>,
    /// Whether the subtask counts its records and times its waits ([`crate::runtime::metrics::subtask_timing`]).
    pub timed: bool,
}

/// Adds the time since `waiting` (when timed) to the subtask's idle time.
fn idle_since(meter: &SubtaskMetrics, waiting: Option<Instant>) {
    if let Some(w) = waiting {
        meter.idle(w.elapsed());
    }
}

impl OperatorTask {
    /// Runs the subtask until every input ended (or an upstream failed).
    pub async fn run(mut self) -> Result<Option<Chain>> {
        let chain = &mut self.chain;
        load_state(chain, self.restore.as_deref(), &self.metrics).await?;
        let mut completions = chain.completions();
        loop {
            // Processing-time timers of the chain's operators wake the task too; due ones go
            // first, so a busy input cannot starve them.
            let timer = chain.next_timer();
            let now = self.clock.now_ms();
            if timer.is_some_and(|t| t <= now) {
                chain.processing_time(now).await?;
                continue;
            }
            let wake = timer.map(|t| self.clock.sleep_until(t));
            let timer_due = async move {
                match wake {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            };
            // Without per-subtask timing (`WEIR_SUBTASK_METRICS=off`) no clock is read.
            let waiting = self.timed.then(Instant::now);
            let event = tokio::select! {
                biased;
                e = self.gate.next() => e,
                _ = timer_due => {
                    idle_since(&self.meter, waiting);
                    chain.processing_time(self.clock.now_ms()).await?;
                    continue;
                }
                Some(id) = completed(&mut completions) => {
                    idle_since(&self.meter, waiting);
                    chain.notify_complete(id).await?;
                    continue;
                }
            };
            idle_since(&self.meter, waiting);
            match event {
                GateEvent::Data(input, b) => {
                    if self.timed {
                        self.meter.records_in.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                        self.meter
                            .bytes_in
                            .fetch_add(b.get_array_memory_size() as u64, Ordering::Relaxed);
                    }
                    chain.push_from(input, b).await?
                }
                GateEvent::InputWatermark(input, w) => {
                    self.meter.input_watermark(w);
                    chain.input_watermark(input, w).await?
                }
                // Stopping a checkpointing job is not the end of event time.
                GateEvent::Watermark(i64::MAX) if self.stopping.is_cancelled() && chain.checkpointing() => {}
                GateEvent::Watermark(w) => {
                    self.meter.input_watermark(w);
                    chain.watermark(w).await?
                }
                GateEvent::Idle => chain.idle().await?,
                GateEvent::Barrier(b) => {
                    chain.aligned(b.checkpoint_id, self.gate.last_alignment());
                    chain.barrier(b).await?
                }
                GateEvent::End => {
                    chain.end(self.stopping.is_cancelled()).await?;
                    return Ok(Some(self.chain));
                }
                GateEvent::UpstreamFailed => return Err(WeirError::UpstreamGone),
            }
        }
    }
}

/// Loads a task's restored state (or starts its sink fresh), timing it.
pub(crate) async fn load_state(
    chain: &mut Chain,
    restore: Option<&Restore>,
    metrics: &CheckpointMetrics,
) -> Result<()> {
    let started = Instant::now();
    match restore {
        Some(r) => chain.restore(r).await?,
        None => chain.start_fresh().await?,
    }
    if restore.is_some() {
        metrics.restore_ms.fetch_max(
            started.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    Ok(())
}

/// The next completed checkpoint id (pending forever without checkpoints).
async fn completed(rx: &mut Option<watch::Receiver<u64>>) -> Option<u64> {
    match rx {
        Some(rx) => {
            rx.changed().await.ok()?;
            Some(*rx.borrow_and_update())
        }
        None => std::future::pending().await,
    }
}

/// Runs a task, turning a panic into an error that names the task.
pub(crate) async fn guard<T>(label: String, subtask: usize, task: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(task).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(WeirError::operator(&label, subtask, format!("panicked: {msg}")))
        }
    }
}
