//! What an operator, source or sink hands over at a checkpoint barrier and gets back on
//! restore, and the one encoding state is written in.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::UserResult;

/// The state of one operator subtask at a barrier, or what it restores.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OperatorState {
    /// Keyed state, by key group.
    pub keyed: BTreeMap<u32, Vec<u8>>,
    /// Non-keyed state: this subtask's own (on restore: the same subtask's, when the
    /// parallelism did not change).
    pub operator: Option<Vec<u8>>,
    /// On restore only: the non-keyed state of every old subtask (Flink's union
    /// redistribution), e.g. for the least watermark across them.
    pub union: Vec<Vec<u8>>,
}

impl OperatorState {
    /// Whether there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.operator.is_none()
    }
}

/// Encodes a value of state (postcard: compact, schema-less, stable).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> UserResult<Vec<u8>> {
    Ok(postcard::to_stdvec(value)?)
}

/// Decodes a value of state.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> UserResult<T> {
    postcard::from_bytes(bytes).map_err(|e| format!("restoring state: {e}").into())
}
