//! Data between workers: one gRPC stream per (edge, sending subtask, receiving subtask), with
//! credit-based flow control.
//!
//! The receiver opens with `capacity` credits and grants one more each time it has handed a
//! message on to its subtask's input channel (itself bounded), so at most `capacity` messages
//! are in flight and at most `capacity` wait in the input: a slow receiver stops the sender, and
//! nothing buffers without bound. Barriers, watermarks and the end of the stream travel in the
//! same stream, in order with the data.
//!
//! Every stream opens with the sender's job and generation. A receiver accepts only its current
//! generation: a zombie of an older run is refused (`FAILED_PRECONDITION`), a sender that is
//! ahead of a receiver still deploying is told to retry (`UNAVAILABLE`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use weir_proto::rpc::{self, exchange_client::ExchangeClient, frame::Kind};

use super::wire::{FrameDecoder, FrameEncoder};
use crate::contract::error::{Result, WeirError};
use crate::contract::message::Message;

/// One channel between two subtasks on different workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    /// The receiving node (head of its chain).
    pub node: u32,
    /// Which of its inputs.
    pub input: u32,
    /// Sending subtask.
    pub from: u32,
    /// Receiving subtask.
    pub to: u32,
}

/// Counters of the exchange on this worker (for the benchmark and `/metrics`).
#[derive(Debug, Default)]
pub struct ExchangeMetrics {
    /// Bytes of frames sent (protobuf-encoded).
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Frames sent.
    pub frames_out: std::sync::atomic::AtomicU64,
    /// Times a sender waited for credit (back-pressure).
    pub credit_waits: std::sync::atomic::AtomicU64,
}

struct InboundState {
    generation: u64,
    channels: HashMap<ChannelId, mpsc::Sender<Message>>,
}

/// The receiving side on this worker: the input channels of its subtasks of the current
/// generation, by channel id; the gRPC service hands each incoming stream to its channel.
#[derive(Clone)]
pub struct Inbound {
    job: String,
    capacity: usize,
    state: Arc<Mutex<InboundState>>,
    /// Exchange counters.
    pub metrics: Arc<ExchangeMetrics>,
}

impl Inbound {
    /// No channels until a generation is deployed.
    pub fn new(job: &str, capacity: usize) -> Self {
        Inbound {
            job: job.to_string(),
            capacity: capacity.max(1),
            state: Arc::new(Mutex::new(InboundState {
                generation: 0,
                channels: HashMap::new(),
            })),
            metrics: Arc::default(),
        }
    }

    /// Accepts streams of `generation` for these channels from now on (and no older ones).
    pub fn deploy(&self, generation: u64, channels: HashMap<ChannelId, mpsc::Sender<Message>>) {
        let mut s = self.state.lock().expect("inbound lock");
        s.generation = generation;
        s.channels = channels;
    }

    /// Drops the channels of `generation` that were never opened (the run is over).
    pub fn retire(&self, generation: u64) {
        let mut s = self.state.lock().expect("inbound lock");
        if s.generation == generation {
            s.channels.clear();
        }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.state.lock().expect("inbound lock").generation
    }

    fn take(&self, open: &rpc::Open) -> std::result::Result<mpsc::Sender<Message>, Status> {
        if open.job != self.job {
            return Err(Status::invalid_argument(format!(
                "this worker runs job '{}', not '{}'",
                self.job, open.job
            )));
        }
        let mut s = self.state.lock().expect("inbound lock");
        if open.generation < s.generation {
            return Err(Status::failed_precondition(format!(
                "generation {} is fenced: this worker runs generation {}",
                open.generation, s.generation
            )));
        }
        if open.generation > s.generation {
            return Err(Status::unavailable(format!(
                "generation {} is not deployed here yet (at {})",
                open.generation, s.generation
            )));
        }
        let id = ChannelId {
            node: open.node,
            input: open.input,
            from: open.from_subtask,
            to: open.to_subtask,
        };
        s.channels
            .remove(&id)
            .ok_or_else(|| Status::already_exists(format!("channel {id:?} is not expected here or already open")))
    }
}

#[tonic::async_trait]
impl rpc::exchange_server::Exchange for Inbound {
    type ChannelStream = ReceiverStream<std::result::Result<rpc::Credit, Status>>;

    async fn channel(
        &self,
        request: Request<Streaming<rpc::Frame>>,
    ) -> std::result::Result<Response<Self::ChannelStream>, Status> {
        let mut frames = request.into_inner();
        let open = match frames.message().await? {
            Some(rpc::Frame {
                kind: Some(Kind::Open(o)),
            }) => o,
            _ => return Err(Status::invalid_argument("a channel must start with an Open frame")),
        };
        let input = self.take(&open)?;
        let (credits, credit_rx) = mpsc::channel(4);
        let capacity = self.capacity;
        tokio::spawn(async move {
            if credits
                .send(Ok(rpc::Credit {
                    credits: capacity as u32,
                }))
                .await
                .is_err()
            {
                return;
            }
            let mut decoder = FrameDecoder::new();
            loop {
                let frame = match frames.message().await {
                    Ok(Some(f)) => f,
                    // The sender went away without ending the stream: dropping `input` tells
                    // the subtask its upstream failed.
                    Ok(None) | Err(_) => return,
                };
                let message = match decoder.decode(frame) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::error!(error = %e, channel = ?open, "undecodable frame; closing the channel");
                        return;
                    }
                };
                let end = matches!(message, Message::EndOfStream);
                if input.send(message).await.is_err() || end {
                    return;
                }
                if credits.send(Ok(rpc::Credit { credits: 1 })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(credit_rx)))
    }
}

/// Where a sending subtask's messages for one remote receiver go.
pub struct Outbound {
    /// The receiving worker's address (`host:port`).
    pub address: String,
    /// The stream's opening frame (job, generation, channel).
    pub open: rpc::Open,
}

/// How long a sender keeps retrying a receiver that is not reachable or not deployed yet.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Sends everything from `messages` to the remote receiver until the end of the stream, waiting
/// for credit before each message. Fails if the receiver refuses or goes away.
pub async fn send(
    outbound: Outbound,
    mut messages: mpsc::Receiver<Message>,
    metrics: Arc<ExchangeMetrics>,
) -> Result<()> {
    use prost::Message as _;
    use std::sync::atomic::Ordering::Relaxed;
    let (mut credits_in, frames) = connect(&outbound).await?;
    let mut credits: u64 = 0;
    let mut encoder = FrameEncoder::new();
    loop {
        if credits == 0 {
            metrics.credit_waits.fetch_add(1, Relaxed);
            tokio::select! {
                c = credits_in.message() => match c {
                    Ok(Some(c)) => { credits += u64::from(c.credits); continue; }
                    Ok(None) | Err(_) => return Err(gone(&outbound)),
                },
            }
        }
        // Take credit granted meanwhile without waiting.
        let message = tokio::select! {
            biased;
            c = credits_in.message() => match c {
                Ok(Some(c)) => { credits += u64::from(c.credits); continue; }
                Ok(None) | Err(_) => return Err(gone(&outbound)),
            },
            m = messages.recv() => m,
        };
        // The sending subtask dropped its end without ending the stream: it failed. Dropping the
        // stream without an end tells the receiver so.
        let Some(message) = message else {
            return Ok(());
        };
        let end = matches!(message, Message::EndOfStream);
        let frame = encoder.encode(&message)?;
        metrics.bytes_out.fetch_add(frame.encoded_len() as u64, Relaxed);
        metrics.frames_out.fetch_add(1, Relaxed);
        if frames.send(frame).await.is_err() {
            return Err(gone(&outbound));
        }
        credits -= 1;
        if end {
            // Wait until the receiver has taken the end (it closes its side), so the stream is
            // not reset with the end still in flight.
            while let Ok(Some(_)) = credits_in.message().await {}
            return Ok(());
        }
    }
}

fn gone(outbound: &Outbound) -> WeirError {
    WeirError::Exchange(format!(
        "the receiver at {} went away (channel {}:{} {}→{})",
        outbound.address, outbound.open.node, outbound.open.input, outbound.open.from_subtask, outbound.open.to_subtask
    ))
}

/// Opens the stream, retrying while the receiver is unreachable or still deploying.
async fn connect(outbound: &Outbound) -> Result<(Streaming<rpc::Credit>, mpsc::Sender<rpc::Frame>)> {
    let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
    let mut wait = Duration::from_millis(10);
    loop {
        let attempt = async {
            let mut client = ExchangeClient::new(super::channel_to(&outbound.address)?);
            // A fresh request stream per attempt: the open frame first, then the messages.
            let (tx, rx) = mpsc::channel::<rpc::Frame>(2);
            tx.send(rpc::Frame {
                kind: Some(Kind::Open(outbound.open.clone())),
            })
            .await
            .map_err(|_| WeirError::Exchange("request stream closed".into()))?;
            let response = client.channel(ReceiverStream::new(rx)).await;
            Ok::<_, WeirError>((response, tx))
        };
        let (response, tx) = attempt.await?;
        match response {
            Ok(r) => return Ok((r.into_inner(), tx)),
            Err(s) if s.code() == tonic::Code::FailedPrecondition || s.code() == tonic::Code::InvalidArgument => {
                return Err(WeirError::Exchange(format!(
                    "{} refused the channel: {}",
                    outbound.address,
                    s.message()
                )));
            }
            Err(s) if tokio::time::Instant::now() >= deadline => {
                return Err(WeirError::Exchange(format!(
                    "cannot open a channel to {} within {CONNECT_PATIENCE:?}: {}",
                    outbound.address,
                    s.message()
                )));
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    async fn serve(inbound: Inbound) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(rpc::exchange_server::ExchangeServer::new(inbound))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    fn open(generation: u64) -> rpc::Open {
        rpc::Open {
            job: "j".into(),
            generation,
            node: 1,
            input: 0,
            from_subtask: 0,
            to_subtask: 0,
        }
    }

    #[tokio::test]
    async fn a_slow_receiver_stops_the_sender_after_its_credit() {
        let capacity = 3;
        let inbound = Inbound::new("j", capacity);
        let (tx, mut rx) = mpsc::channel(capacity);
        let id = ChannelId {
            node: 1,
            input: 0,
            from: 0,
            to: 0,
        };
        inbound.deploy(7, [(id, tx)].into_iter().collect());
        let address = serve(inbound.clone()).await;
        let (producer, messages) = mpsc::channel(1);
        let metrics = inbound.metrics.clone();
        let sender = tokio::spawn(send(Outbound { address, open: open(7) }, messages, metrics.clone()));
        // Nobody reads: at most `capacity` messages wait in the receiver's input and `capacity`
        // are in flight (its credit), however long the producer tries.
        let pushed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = pushed.clone();
        let push = tokio::spawn(async move {
            for i in 0..1000 {
                producer.send(Message::Watermark(i)).await.unwrap();
                counter.fetch_add(1, Relaxed);
            }
            producer.send(Message::EndOfStream).await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = metrics.frames_out.load(Relaxed);
        // At most `capacity` messages wait in the receiver's input and `capacity` are in flight
        // (its credit), however long the producer tries…
        assert!(sent <= 2 * capacity as u64, "{sent} frames sent without credit");
        // …plus one in the producer's channel and one in the sender's hand.
        assert!(pushed.load(Relaxed) <= sent + 2, "{} pushed", pushed.load(Relaxed));
        assert!(metrics.credit_waits.load(Relaxed) > 0);
        // Reading lets everything through, in order, to the end.
        for i in 0..1000 {
            match rx.recv().await {
                Some(Message::Watermark(w)) => assert_eq!(w, i),
                other => panic!("expected watermark {i}, got {other:?}"),
            }
        }
        assert!(matches!(rx.recv().await, Some(Message::EndOfStream)));
        push.await.unwrap();
        sender.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn older_generations_are_refused_and_newer_ones_wait() {
        let inbound = Inbound::new("j", 2);
        let (tx, _rx) = mpsc::channel(2);
        let id = ChannelId {
            node: 1,
            input: 0,
            from: 0,
            to: 0,
        };
        inbound.deploy(5, [(id, tx)].into_iter().collect());
        let address = serve(inbound).await;
        let mut client = ExchangeClient::new(super::super::channel_to(&address).unwrap());
        let frame = |g| rpc::Frame {
            kind: Some(Kind::Open(open(g))),
        };
        let old = client.channel(futures::stream::iter(vec![frame(4)])).await.unwrap_err();
        assert_eq!(old.code(), tonic::Code::FailedPrecondition);
        assert!(old.message().contains("generation 4 is fenced"), "{}", old.message());
        let ahead = client.channel(futures::stream::iter(vec![frame(6)])).await.unwrap_err();
        assert_eq!(ahead.code(), tonic::Code::Unavailable);
        let mut other_job = open(5);
        other_job.job = "k".into();
        let wrong = client
            .channel(futures::stream::iter(vec![rpc::Frame {
                kind: Some(Kind::Open(other_job)),
            }]))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::InvalidArgument);
    }
}
