//! Broadcast state (Flink's broadcast state pattern): maps, named by their descriptors, that a
//! broadcast stream writes and every subtask holds whole — rules, thresholds, a dimension that
//! changes. Every subtask sees the same broadcast rows before each barrier, so each snapshot
//! holds the same maps; a restore at any parallelism takes one of them.

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::descriptors::MapStateDescriptor;
use crate::contract::UserResult;
use crate::contract::state::{decode, encode};

/// The broadcast state of one subtask: per descriptor name, encoded keys to encoded values.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BroadcastState {
    maps: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl BroadcastState {
    /// The value of `key` in the map `d` names.
    pub fn get<K: Eq + Hash + Serialize, V: DeserializeOwned>(
        &self,
        d: &MapStateDescriptor<K, V>,
        key: &K,
    ) -> UserResult<Option<V>> {
        let k = encode(key)?;
        match self.maps.get(&d.name).and_then(|m| m.get(&k)) {
            Some(v) => Ok(Some(decode(v)?)),
            None => Ok(None),
        }
    }

    /// Every entry of the map `d` names, in the order of their encoded keys.
    pub fn entries<K: Eq + Hash + DeserializeOwned, V: DeserializeOwned>(
        &self,
        d: &MapStateDescriptor<K, V>,
    ) -> UserResult<Vec<(K, V)>> {
        let Some(m) = self.maps.get(&d.name) else {
            return Ok(Vec::new());
        };
        m.iter().map(|(k, v)| Ok((decode(k)?, decode(v)?))).collect()
    }

    /// Sets `key` to `value` in the map `d` names.
    pub fn put<K: Eq + Hash + Serialize, V: Serialize>(
        &mut self,
        d: &MapStateDescriptor<K, V>,
        key: &K,
        value: &V,
    ) -> UserResult<()> {
        let (k, v) = (encode(key)?, encode(value)?);
        self.maps.entry(d.name.clone()).or_default().insert(k, v);
        Ok(())
    }

    /// Removes `key` from the map `d` names.
    pub fn remove<K: Eq + Hash + Serialize, V>(&mut self, d: &MapStateDescriptor<K, V>, key: &K) -> UserResult<()> {
        let k = encode(key)?;
        if let Some(m) = self.maps.get_mut(&d.name) {
            m.remove(&k);
        }
        Ok(())
    }

    /// The state's checkpoint bytes.
    pub fn to_bytes(&self) -> UserResult<Vec<u8>> {
        encode(&self.maps)
    }

    /// The state from [`BroadcastState::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> UserResult<Self> {
        Ok(BroadcastState { maps: decode(bytes)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_entries_round_trip_through_checkpoint_bytes() {
        let rules = MapStateDescriptor::<String, i64>::new("rules");
        let mut s = BroadcastState::default();
        s.put(&rules, &"b".to_string(), &2).unwrap();
        s.put(&rules, &"a".to_string(), &1).unwrap();
        s.put(&rules, &"a".to_string(), &3).unwrap();
        s.remove(&rules, &"b".to_string()).unwrap();
        let back = BroadcastState::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.get(&rules, &"a".to_string()).unwrap(), Some(3));
        assert_eq!(back.entries(&rules).unwrap(), vec![("a".to_string(), 3)]);
    }
}
