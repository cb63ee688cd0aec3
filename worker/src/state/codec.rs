//! How a state table's entries become checkpoint bytes and back: postcard for entries that are
//! `Serialize`, or functions the operator gives (window contents of user functions encode
//! through the function).

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::contract::UserResult;
use crate::contract::state::{encode_into, take};

type Encode<V> = dyn Fn(&V, &mut Vec<u8>) -> UserResult<()> + Send + Sync;
type Decode<V> = dyn Fn(&mut &[u8]) -> UserResult<V> + Send + Sync;

/// Encodes entries of `V` (appending to a buffer) and decodes them (taking exactly one entry
/// from the front of the bytes); cheap to clone, usable on the checkpoint thread.
pub struct Codec<V> {
    encode: Arc<Encode<V>>,
    decode: Arc<Decode<V>>,
}

impl<V> Clone for Codec<V> {
    fn clone(&self) -> Self {
        Codec {
            encode: self.encode.clone(),
            decode: self.decode.clone(),
        }
    }
}

impl<V: Serialize + DeserializeOwned> Codec<V> {
    /// Entries as postcard.
    pub fn serde() -> Self {
        Codec::new(
            |v: &V, buf: &mut Vec<u8>| encode_into(v, buf),
            |bytes: &mut &[u8]| take::<V>(bytes),
        )
    }
}

impl<V> Codec<V> {
    /// Entries through `encode` and `decode`; `decode` must take exactly what `encode` wrote
    /// from the front of its bytes.
    pub fn new(
        encode: impl Fn(&V, &mut Vec<u8>) -> UserResult<()> + Send + Sync + 'static,
        decode: impl Fn(&mut &[u8]) -> UserResult<V> + Send + Sync + 'static,
    ) -> Self {
        Codec {
            encode: Arc::new(encode),
            decode: Arc::new(decode),
        }
    }

    /// Appends `value`'s bytes to `buf`.
    pub fn encode(&self, value: &V, buf: &mut Vec<u8>) -> UserResult<()> {
        (self.encode)(value, buf)
    }

    /// Takes one entry from the front of `bytes`.
    pub fn decode(&self, bytes: &mut &[u8]) -> UserResult<V> {
        (self.decode)(bytes)
    }
}
