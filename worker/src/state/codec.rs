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
type Weigh<V> = dyn Fn(&V) -> usize + Send + Sync;

/// Encodes entries of `V` (appending to a buffer) and decodes them (taking exactly one entry
/// from the front of the bytes); cheap to clone, usable on the checkpoint thread. Optionally
/// weighs an entry (the bytes it holds in memory), for entries that grow after they are made
/// (a join's rows of a key), so the disk backend's cache counts them as they grow.
pub struct Codec<V> {
    encode: Arc<Encode<V>>,
    decode: Arc<Decode<V>>,
    weigh: Option<Arc<Weigh<V>>>,
}

impl<V> Clone for Codec<V> {
    fn clone(&self) -> Self {
        Codec {
            encode: self.encode.clone(),
            decode: self.decode.clone(),
            weigh: self.weigh.clone(),
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
            weigh: None,
        }
    }

    /// The same codec, weighing entries with `weigh` (bytes an entry holds beyond a small
    /// fixed overhead; it should be cheap, as it runs after each change of an entry).
    pub fn weighed(mut self, weigh: impl Fn(&V) -> usize + Send + Sync + 'static) -> Self {
        self.weigh = Some(Arc::new(weigh));
        self
    }

    /// Whether entries are weighed.
    pub fn weighs(&self) -> bool {
        self.weigh.is_some()
    }

    /// Bytes `value` holds, when entries are weighed.
    pub fn weight(&self, value: &V) -> Option<usize> {
        self.weigh.as_ref().map(|w| w(value))
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
