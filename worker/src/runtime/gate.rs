//! The input side of a subtask: all channels from upstream subtasks, merged fairly.
//!
//! The gate turns per-channel control messages into per-subtask events: the watermark is the
//! minimum over the channels still open and not idle, a barrier passes once every open channel
//! delivered it, and the end comes when every channel ended.
//!
//! A node with several inputs (a join's sides) has channels per input: data arrives tagged
//! with its input's index, and each input's own watermark (the least over its channels) is
//! reported before the combined one moves.
//!
//! Barriers are aligned (exactly-once): a channel that delivered barrier `n` is not read again
//! until every other open channel has delivered `n` too, so the snapshot taken when the barrier
//! passes holds exactly the records before it on every input.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Receiver;

use crate::contract::message::{Barrier, Message};

/// What the gate hands to the subtask.
#[derive(Debug)]
pub enum GateEvent {
    /// Rows from input `0`.
    Data(usize, RecordBatch),
    /// Input `0`'s watermark advanced (only for nodes with several inputs).
    InputWatermark(usize, i64),
    /// The combined watermark advanced.
    Watermark(i64),
    /// Every open channel delivered this barrier.
    Barrier(Barrier),
    /// Every open channel is idle: downstream should not wait for this subtask's watermark.
    Idle,
    /// Every channel ended.
    End,
    /// An upstream subtask went away without ending its stream (it failed).
    UpstreamFailed,
}

/// Merges the channels into one subtask.
pub struct InputGate {
    receivers: Vec<Receiver<Message>>,
    /// The input (edge index) of each channel.
    input_of: Vec<usize>,
    /// The channels of each input (several inputs only).
    channels_of: Vec<Vec<usize>>,
    /// Each input's watermark as last reported (several inputs only).
    input_current: Vec<i64>,
    /// Events computed but not yet handed out.
    pending: VecDeque<GateEvent>,
    watermarks: Vec<i64>,
    ended: Vec<bool>,
    idle: Vec<bool>,
    announced_idle: bool,
    open: usize,
    next: usize,
    current: i64,
    /// Channels holding back after delivering the barrier being aligned.
    blocked: Vec<bool>,
    /// The barrier being aligned and how many channels delivered it.
    aligning: Option<(Barrier, usize)>,
    /// When the barrier being aligned first arrived.
    aligning_since: Option<std::time::Instant>,
    /// How long the last released barrier took to align.
    last_alignment: std::time::Duration,
}

impl InputGate {
    /// A gate over these channels, all of one input.
    pub fn new(receivers: Vec<Receiver<Message>>) -> Self {
        Self::with_inputs(receivers.into_iter().map(|r| (0, r)).collect())
    }

    /// A gate over channels tagged with the input (edge index) each belongs to.
    pub fn with_inputs(channels: Vec<(usize, Receiver<Message>)>) -> Self {
        let n = channels.len();
        let inputs = channels.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        let (input_of, receivers): (Vec<usize>, _) = channels.into_iter().unzip();
        let tracked = if inputs > 1 { inputs } else { 0 };
        let channels_of = (0..tracked)
            .map(|input| (0..n).filter(|c| input_of[*c] == input).collect())
            .collect();
        InputGate {
            receivers,
            input_of,
            channels_of,
            input_current: vec![i64::MIN; tracked],
            pending: VecDeque::new(),
            watermarks: vec![i64::MIN; n],
            ended: vec![false; n],
            idle: vec![false; n],
            announced_idle: false,
            open: n,
            next: 0,
            current: i64::MIN,
            blocked: vec![false; n],
            aligning: None,
            aligning_since: None,
            last_alignment: std::time::Duration::ZERO,
        }
    }

    /// The next event.
    pub async fn next(&mut self) -> GateEvent {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return e;
            }
            if self.open == 0 {
                return GateEvent::End;
            }
            let (index, msg) = poll_fn(|cx| {
                let n = self.receivers.len();
                for k in 0..n {
                    let i = (self.next + k) % n;
                    if self.ended[i] || self.blocked[i] {
                        continue;
                    }
                    if let Poll::Ready(m) = self.receivers[i].poll_recv(cx) {
                        self.next = (i + 1) % n;
                        return Poll::Ready((i, m));
                    }
                }
                Poll::Pending
            })
            .await;
            if matches!(msg, Some(Message::Data(_) | Message::Watermark(_))) && self.idle[index] {
                self.idle[index] = false;
                self.announced_idle = false;
            }
            match msg {
                Some(Message::Data(b)) => return GateEvent::Data(self.input_of[index], b),
                Some(Message::Idle) => {
                    self.idle[index] = true;
                    if let Some(w) = self.advance() {
                        self.pending.push_back(GateEvent::Watermark(w));
                        continue;
                    }
                    let all_idle = (0..self.idle.len()).all(|i| self.ended[i] || self.idle[i]);
                    if all_idle && !self.announced_idle {
                        self.announced_idle = true;
                        return GateEvent::Idle;
                    }
                }
                Some(Message::Watermark(w)) => {
                    self.watermarks[index] = self.watermarks[index].max(w);
                    if let Some(w) = self.advance() {
                        self.pending.push_back(GateEvent::Watermark(w));
                    }
                }
                Some(Message::Barrier(b)) => {
                    let seen = match &mut self.aligning {
                        Some((pending, seen)) if pending.checkpoint_id == b.checkpoint_id => {
                            *seen += 1;
                            *seen
                        }
                        _ => {
                            self.aligning = Some((b, 1));
                            self.aligning_since = Some(std::time::Instant::now());
                            1
                        }
                    };
                    self.blocked[index] = true;
                    if let Some(b) = self.release_if_aligned(seen) {
                        return GateEvent::Barrier(b);
                    }
                }
                Some(Message::EndOfStream) => {
                    self.ended[index] = true;
                    self.open -= 1;
                    // An input that ends no longer holds a pending barrier back.
                    if let Some((_, seen)) = self.aligning
                        && let Some(b) = self.release_if_aligned(seen)
                    {
                        return GateEvent::Barrier(b);
                    }
                    if let Some(w) = self.advance() {
                        self.pending.push_back(GateEvent::Watermark(w));
                    }
                }
                None => return GateEvent::UpstreamFailed,
            }
        }
    }

    /// Releases the aligned barrier once every open channel delivered it.
    fn release_if_aligned(&mut self, seen: usize) -> Option<Barrier> {
        if seen < self.open {
            return None;
        }
        let (b, _) = self.aligning.take()?;
        self.last_alignment = self.aligning_since.take().map(|t| t.elapsed()).unwrap_or_default();
        self.blocked.iter_mut().for_each(|x| *x = false);
        Some(b)
    }

    /// How long the barrier last handed out waited for every input's (zero with one channel).
    pub fn last_alignment(&self) -> std::time::Duration {
        self.last_alignment
    }

    /// The least watermark over channels `of` that are open and not idle (the end of time when
    /// all have ended; none when every open one is idle).
    fn least(&self, of: &[usize]) -> Option<i64> {
        if of.iter().all(|i| self.ended[*i]) {
            return Some(i64::MAX);
        }
        of.iter()
            .filter(|i| !self.ended[**i] && !self.idle[**i])
            .map(|i| self.watermarks[*i])
            .min()
    }

    /// Queues each input's watermark that moved (several inputs only), then returns the
    /// combined watermark if it moved.
    fn advance(&mut self) -> Option<i64> {
        for input in 0..self.channels_of.len() {
            if let Some(w) = self.least(&self.channels_of[input])
                && w > self.input_current[input]
            {
                self.input_current[input] = w;
                self.pending.push_back(GateEvent::InputWatermark(input, w));
            }
        }
        self.combined()
    }

    fn combined(&mut self) -> Option<i64> {
        // An ended input is at the end of time; when all have ended, so is the gate.
        let min = if self.open == 0 {
            i64::MAX
        } else {
            (0..self.watermarks.len())
                .filter(|i| !self.ended[*i] && !self.idle[*i])
                .map(|i| self.watermarks[i])
                .min()?
        };
        if min > self.current {
            self.current = min;
            Some(min)
        } else {
            None
        }
    }
}
