//! Messages on the wire: a channel's [`Message`]s as gRPC [`Frame`]s, record batches as one
//! Arrow IPC stream per channel (the schema once, then dictionary and batch messages), so bytes
//! on the wire are Arrow's columnar buffers and decoding is zero-copy where aligned.

use arrow::buffer::Buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamEncoder;
use arrow::record_batch::RecordBatch;
use weir_proto::rpc::{self, frame::Kind};

use crate::contract::error::{Result, WeirError};
use crate::contract::message::{Barrier, Message};

/// Turns one channel's messages into frames.
pub struct FrameEncoder {
    ipc: Option<StreamEncoder>,
}

impl FrameEncoder {
    /// An encoder for a new channel.
    pub fn new() -> Self {
        FrameEncoder { ipc: None }
    }

    /// The frame for `message`.
    pub fn encode(&mut self, message: &Message) -> Result<rpc::Frame> {
        let kind = match message {
            Message::Data(batch) => Kind::Batch(rpc::Batch {
                ipc: self.encode_batch(batch)?,
            }),
            Message::Watermark(w) => Kind::Watermark(*w),
            Message::Barrier(b) => Kind::Barrier(rpc::Barrier {
                checkpoint_id: b.checkpoint_id,
                timestamp_ms: b.timestamp_ms,
                savepoint: b.savepoint,
                stop: b.stop,
            }),
            Message::Idle => Kind::Idle(rpc::Empty {}),
            Message::EndOfStream => Kind::End(rpc::Empty {}),
        };
        Ok(rpc::Frame { kind: Some(kind) })
    }

    fn encode_batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let encoder = match &mut self.ipc {
            Some(e) => e,
            None => self
                .ipc
                .insert(StreamEncoder::try_new(batch.schema().as_ref()).map_err(wire_error)?),
        };
        let buffers = encoder.encode(batch).map_err(wire_error)?;
        let mut bytes = Vec::with_capacity(buffers.iter().map(|b| b.len()).sum());
        for b in &buffers {
            bytes.extend_from_slice(b.as_slice());
        }
        Ok(bytes)
    }
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Turns one channel's frames back into messages.
pub struct FrameDecoder {
    ipc: StreamDecoder,
}

impl FrameDecoder {
    /// A decoder for a new channel.
    pub fn new() -> Self {
        FrameDecoder {
            ipc: StreamDecoder::new(),
        }
    }

    /// The message in `frame`.
    pub fn decode(&mut self, frame: rpc::Frame) -> Result<Message> {
        Ok(match frame.kind {
            Some(Kind::Batch(b)) => {
                let mut buffer = Buffer::from(b.ipc);
                let mut out = None;
                while !buffer.is_empty() {
                    if let Some(batch) = self.ipc.decode(&mut buffer).map_err(wire_error)? {
                        out = Some(batch);
                    }
                }
                Message::Data(out.ok_or_else(|| WeirError::Exchange("a batch frame held no record batch".into()))?)
            }
            Some(Kind::Watermark(w)) => Message::Watermark(w),
            Some(Kind::Barrier(b)) => Message::Barrier(Barrier {
                checkpoint_id: b.checkpoint_id,
                timestamp_ms: b.timestamp_ms,
                savepoint: b.savepoint,
                stop: b.stop,
            }),
            Some(Kind::Idle(_)) => Message::Idle,
            Some(Kind::End(_)) => Message::EndOfStream,
            Some(Kind::Open(_)) | None => {
                return Err(WeirError::Exchange(
                    "unexpected frame in the middle of a channel".into(),
                ));
            }
        })
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn wire_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Exchange(format!("arrow ipc: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn every_message_round_trips_in_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let batch = |n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec![format!("a{n}"), "b".into()])),
                    Arc::new(Int64Array::from(vec![Some(n), None])),
                ],
            )
            .unwrap()
        };
        let messages = vec![
            Message::Data(batch(1)),
            Message::Watermark(42),
            Message::Data(batch(2)),
            Message::Barrier(Barrier {
                checkpoint_id: 7,
                timestamp_ms: 9,
                savepoint: true,
                stop: true,
            }),
            Message::Idle,
            Message::EndOfStream,
        ];
        let (mut enc, mut dec) = (FrameEncoder::new(), FrameDecoder::new());
        for m in &messages {
            let got = dec.decode(enc.encode(m).unwrap()).unwrap();
            assert_eq!(format!("{got:?}"), format!("{m:?}"));
        }
        // The second batch does not repeat the schema.
        let mut enc = FrameEncoder::new();
        let first = enc.encode(&Message::Data(batch(1))).unwrap();
        let second = enc.encode(&Message::Data(batch(1))).unwrap();
        let len = |f: &rpc::Frame| match &f.kind {
            Some(Kind::Batch(b)) => b.ipc.len(),
            _ => 0,
        };
        assert!(len(&second) < len(&first), "{} vs {}", len(&second), len(&first));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = FrameDecoder::new();
        let frame = rpc::Frame {
            kind: Some(Kind::Batch(rpc::Batch {
                ipc: vec![1, 2, 3, 4, 5],
            })),
        };
        assert!(dec.decode(frame).is_err());
        assert!(dec.decode(rpc::Frame { kind: None }).is_err());
    }
}
