//! Keyed state held in memory with copy-on-write snapshots: a checkpoint freezes the state in
//! O(1) on the task and encodes it on another thread while processing goes on.
//!
//! The table is a small in-memory LSM: `live` holds the changes since the last snapshot,
//! `frozen` the changes handed to snapshots that are still being written, `base` everything
//! older. [`KeyedTable::freeze`] moves `live` into `frozen` and hands a [`TableView`] (shared,
//! read-only layers) to the writer; the first write to a key after that copies its value up
//! into `live`, so the cost of a checkpoint on the task is one copy of each value changed since,
//! not an encoding of everything. Once no view holds the layers any more, the frozen changes
//! are folded into `base` ([`KeyedTable::settle`], on the next freeze or when the operator asks).
//!
//! Every entry carries its key group, so a snapshot groups by key group without hashing keys
//! again.

use std::sync::Arc;

use hashbrown::HashMap;

type Map<V> = HashMap<Box<[u8]>, V, foldhash::fast::RandomState>;
/// Changes: key → (key group, value, or `None` when removed).
type Layer<V> = Map<(u32, Option<V>)>;
/// Settled state: key → (key group, value), always `Some` once settled. The same type as a
/// layer, so a layer larger than the base becomes the base as it is (see
/// [`KeyedTable::settle`]).
type Base<V> = Layer<V>;

/// Keyed state of one operator subtask, from key (bytes) to `V`, with copy-on-write snapshots.
pub struct KeyedTable<V> {
    live: Layer<V>,
    /// Changes handed to snapshots, oldest first.
    frozen: Vec<Arc<Layer<V>>>,
    base: Arc<Base<V>>,
    /// Keys with a value (not removed).
    len: usize,
}

impl<V> Default for KeyedTable<V> {
    fn default() -> Self {
        KeyedTable {
            live: Map::default(),
            frozen: Vec::new(),
            base: Arc::new(Map::default()),
            len: 0,
        }
    }
}

/// The value of `key` in the layers under `live`: newest frozen first, then the base. `None`
/// when absent or removed.
fn lower<'a, V>(frozen: &'a [Arc<Layer<V>>], base: &'a Base<V>, key: &[u8]) -> Option<(u32, &'a V)> {
    for layer in frozen.iter().rev() {
        if let Some((g, v)) = layer.get(key) {
            return v.as_ref().map(|v| (*g, v));
        }
    }
    base.get(key).and_then(|(g, v)| v.as_ref().map(|v| (*g, v)))
}

impl<V: Clone> KeyedTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `additional` more keys (before a restore).
    pub fn reserve(&mut self, additional: usize) {
        self.live.reserve(additional);
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        match self.live.get(key) {
            Some((_, v)) => v.as_ref(),
            None => lower(&self.frozen, &self.base, key).map(|(_, v)| v),
        }
    }

    /// The value of `key` to change in place, copied up from an older layer on its first
    /// change since the last snapshot.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if !self.live.contains_key(key) {
            let (g, v) = lower(&self.frozen, &self.base, key)?;
            let copy = v.clone();
            self.live.insert(key.into(), (g, Some(copy)));
        }
        self.live.get_mut(key).and_then(|(_, v)| v.as_mut())
    }

    /// The value of `key` (in key group `group`) to change in place, made with `make` when the
    /// key has none.
    pub fn get_or_insert_with(&mut self, group: u32, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        self.entry(group, key, make).0
    }

    /// Like [`KeyedTable::get_or_insert_with`], also telling whether the key had a value.
    pub fn entry(&mut self, group: u32, key: &[u8], make: impl FnOnce() -> V) -> (&mut V, bool) {
        let KeyedTable {
            live,
            frozen,
            base,
            len,
        } = self;
        let slot = live.entry_ref(key).or_insert_with(|| match lower(frozen, base, key) {
            Some((g, v)) => (g, Some(v.clone())),
            None => (group, None),
        });
        let existed = slot.1.is_some();
        if !existed {
            *len += 1;
            slot.0 = group;
        }
        (slot.1.get_or_insert_with(make), existed)
    }

    /// Sets the value of `key` (in key group `group`).
    pub fn insert(&mut self, group: u32, key: &[u8], value: V) {
        let existed = match self.live.insert(key.into(), (group, Some(value))) {
            Some((_, old)) => old.is_some(),
            None => lower(&self.frozen, &self.base, key).is_some(),
        };
        if !existed {
            self.len += 1;
        }
    }

    /// Removes `key`; returns whether it had a value.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let older = lower(&self.frozen, &self.base, key).map(|(g, _)| g);
        let had = match self.live.get(key) {
            Some((_, v)) => v.is_some(),
            None => older.is_some(),
        };
        match older {
            // An older layer holds it: a tombstone hides it.
            Some(g) => {
                self.live.insert(key.into(), (g, None));
            }
            None => {
                self.live.remove(key);
            }
        }
        if had {
            self.len -= 1;
        }
        had
    }

    /// Every key with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        merged(Some(&self.live), &self.frozen, &self.base).map(|(_, k, v)| (k, v))
    }

    /// Every key with its key group and value, in no particular order.
    pub fn iter_grouped(&self) -> impl Iterator<Item = (u32, &[u8], &V)> {
        merged(Some(&self.live), &self.frozen, &self.base)
    }

    /// Freezes the table as it is now for a snapshot: O(1) here; later changes copy values up.
    /// The view also tells what changed since the previous freeze (for incremental snapshots).
    pub fn freeze(&mut self) -> TableView<V> {
        self.settle();
        let mut changed = None;
        if !self.live.is_empty() {
            let capacity = self.live.len();
            let layer = Arc::new(std::mem::replace(
                &mut self.live,
                Map::with_capacity_and_hasher(capacity, Default::default()),
            ));
            changed = Some(layer.clone());
            self.frozen.push(layer);
        }
        TableView {
            frozen: self.frozen.clone(),
            base: self.base.clone(),
            changed,
        }
    }

    /// Folds frozen changes into the base once no snapshot reads them any more: cheap when
    /// there is nothing to fold or a snapshot is still being written.
    pub fn settle(&mut self) {
        if self.frozen.is_empty() {
            return;
        }
        let Some(base) = Arc::get_mut(&mut self.base) else {
            return; // a snapshot still reads the base
        };
        for layer in self.frozen.drain(..) {
            match Arc::try_unwrap(layer) {
                // A layer larger than the base becomes the base, and the older base goes in
                // under it: the fold hashes the smaller of the two, and the larger table is
                // kept rather than grown (rehashing and fresh pages are most of its cost).
                Ok(mut layer) if layer.len() > base.len() => {
                    std::mem::swap(base, &mut layer);
                    for (key, older) in layer {
                        base.entry(key).or_insert(older);
                    }
                    // The layer's removals go now that nothing older is under them.
                    base.retain(|_, (_, v)| v.is_some());
                }
                Ok(layer) => {
                    for (key, (g, v)) in layer {
                        match v {
                            Some(v) => base.insert(key, (g, Some(v))),
                            None => base.remove(&key),
                        };
                    }
                }
                Err(shared) => {
                    for (key, (g, v)) in shared.iter() {
                        match v {
                            Some(v) => base.insert(key.clone(), (*g, Some(v.clone()))),
                            None => base.remove(key),
                        };
                    }
                }
            }
        }
    }
}

/// A frozen, read-only table for a snapshot writer on another thread.
pub struct TableView<V> {
    frozen: Vec<Arc<Layer<V>>>,
    base: Arc<Base<V>>,
    /// The changes since the previous freeze.
    changed: Option<Arc<Layer<V>>>,
}

impl<V> TableView<V> {
    /// Every key with its key group and value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u8], &V)> {
        merged(None, &self.frozen, &self.base)
    }

    /// What changed between the previous freeze and this one: each key written since, with its
    /// key group and value, or `None` when it was removed.
    pub fn changes(&self) -> impl Iterator<Item = (u32, &[u8], Option<&V>)> {
        self.changed
            .iter()
            .flat_map(|layer| layer.iter().map(|(k, (g, v))| (*g, k.as_ref(), v.as_ref())))
    }
}

/// The entries of the layers, newest first, each key once, removed keys left out.
fn merged<'a, V>(
    live: Option<&'a Layer<V>>,
    frozen: &'a [Arc<Layer<V>>],
    base: &'a Base<V>,
) -> impl Iterator<Item = (u32, &'a [u8], &'a V)> {
    let layers: Vec<&'a Layer<V>> = live
        .into_iter()
        .chain(frozen.iter().rev().map(|l| l.as_ref()))
        .collect();
    let newer = layers.clone();
    let changed = layers.into_iter().enumerate().flat_map(move |(i, layer)| {
        let above = newer[..i].to_vec();
        layer.iter().filter_map(move |(k, (g, v))| {
            let shadowed = above.iter().any(|l| l.contains_key(k.as_ref()));
            match (shadowed, v) {
                (false, Some(v)) => Some((*g, k.as_ref(), v)),
                _ => None,
            }
        })
    });
    let layers: Vec<&'a Layer<V>> = live.into_iter().chain(frozen.iter().map(|l| l.as_ref())).collect();
    let settled = base
        .iter()
        .filter(move |(k, _)| !layers.iter().any(|l| l.contains_key(k.as_ref())))
        .filter_map(|(k, (g, v))| v.as_ref().map(|v| (*g, k.as_ref(), v)));
    changed.chain(settled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn contents(t: &KeyedTable<i64>) -> BTreeMap<Vec<u8>, i64> {
        t.iter().map(|(k, v)| (k.to_vec(), *v)).collect()
    }

    fn view_contents(v: &TableView<i64>) -> BTreeMap<Vec<u8>, (u32, i64)> {
        v.iter().map(|(g, k, v)| (k.to_vec(), (g, *v))).collect()
    }

    #[test]
    fn a_frozen_view_keeps_the_state_of_its_moment_while_the_table_changes() {
        let mut t = KeyedTable::new();
        t.insert(1, b"a", 1);
        t.insert(2, b"b", 2);
        let first = t.freeze();
        *t.get_mut(b"a").unwrap() += 10;
        t.remove(b"b");
        t.insert(3, b"c", 3);
        let second = t.freeze();
        *t.get_or_insert_with(4, b"b", || 0) += 5;
        assert_eq!(
            view_contents(&first),
            BTreeMap::from([(b"a".to_vec(), (1, 1)), (b"b".to_vec(), (2, 2))])
        );
        assert_eq!(
            view_contents(&second),
            BTreeMap::from([(b"a".to_vec(), (1, 11)), (b"c".to_vec(), (3, 3))])
        );
        assert_eq!(
            contents(&t),
            BTreeMap::from([(b"a".to_vec(), 11), (b"b".to_vec(), 5), (b"c".to_vec(), 3)])
        );
        assert_eq!(t.len(), 3);
        // Views still held: nothing folds; dropped: everything folds into the base.
        t.settle();
        assert_eq!(t.frozen.len(), 2);
        drop((first, second));
        let third = t.freeze();
        assert_eq!(t.frozen.len(), 1, "the two older layers folded, the newest frozen");
        assert_eq!(view_contents(&third).len(), 3);
        drop(third);
        t.settle();
        assert!(t.frozen.is_empty() && t.live.is_empty());
        assert_eq!(t.base.len(), 3);
        assert_eq!(t.get(b"b"), Some(&5));
    }

    #[test]
    fn a_layer_larger_than_the_base_becomes_the_base_with_its_removals_applied() {
        let mut t = KeyedTable::new();
        t.insert(1, b"a", 1);
        t.insert(2, b"b", 2);
        drop(t.freeze());
        drop(t.freeze()); // folds the first layer into the empty base: it becomes the base
        assert_eq!((t.base.len(), t.frozen.len()), (2, 0));
        t.remove(b"a");
        for (g, k) in [(3, b"c"), (4, b"d"), (5, b"e")] {
            t.insert(g, k, i64::from(g));
        }
        drop(t.freeze());
        t.settle(); // four changes over a base of two: the changes become the base
        assert!(t.frozen.is_empty());
        assert_eq!(t.get(b"a"), None);
        assert_eq!(t.len(), 4);
        assert_eq!(
            contents(&t),
            BTreeMap::from([
                (b"b".to_vec(), 2),
                (b"c".to_vec(), 3),
                (b"d".to_vec(), 4),
                (b"e".to_vec(), 5)
            ])
        );
        assert!(t.base.values().all(|(_, v)| v.is_some()), "no removal left in the base");
        assert_eq!(t.iter_grouped().map(|(g, _, _)| g).sum::<u32>(), 2 + 3 + 4 + 5);
    }

    #[test]
    fn a_view_tells_what_changed_since_the_previous_freeze() {
        let mut t = KeyedTable::new();
        t.insert(1, b"a", 1);
        t.insert(2, b"b", 2);
        let first = t.freeze();
        assert_eq!(first.changes().count(), 2);
        *t.get_mut(b"a").unwrap() += 1;
        t.remove(b"b");
        let second = t.freeze();
        let mut changes: Vec<(u32, Vec<u8>, Option<i64>)> =
            second.changes().map(|(g, k, v)| (g, k.to_vec(), v.copied())).collect();
        changes.sort();
        assert_eq!(changes, vec![(1, b"a".to_vec(), Some(2)), (2, b"b".to_vec(), None)]);
        assert_eq!(t.freeze().changes().count(), 0, "nothing changed since");
    }

    /// Random operations against a plain map, with freezes and settles in between.
    #[test]
    fn behaves_as_a_map_through_any_sequence_of_changes_and_snapshots() {
        let mut rng = crate::splitmix::SplitMix::for_record(7, 0);
        let mut t: KeyedTable<i64> = KeyedTable::new();
        let mut model: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        type Expected = BTreeMap<Vec<u8>, i64>;
        let mut views: Vec<(TableView<i64>, Expected)> = Vec::new();
        for step in 0..20_000u64 {
            let key = vec![(rng.next64() % 50) as u8];
            match rng.next64() % 10 {
                0..=3 => {
                    *t.get_or_insert_with(u32::from(key[0]), &key, || 0) += 1;
                    *model.entry(key.clone()).or_insert(0) += 1;
                }
                4 | 5 => {
                    if let Some(v) = t.get_mut(&key) {
                        *v *= 2;
                    }
                    if let Some(v) = model.get_mut(&key) {
                        *v *= 2;
                    }
                }
                6 => assert_eq!(t.remove(&key), model.remove(&key).is_some()),
                7 => {
                    if views.len() < 3 {
                        views.push((t.freeze(), model.clone()));
                    }
                }
                8 => {
                    if !views.is_empty() {
                        let (view, expected) = views.remove((rng.next64() % views.len() as u64) as usize);
                        let got: BTreeMap<Vec<u8>, i64> = view.iter().map(|(_, k, v)| (k.to_vec(), *v)).collect();
                        assert_eq!(got, expected, "step {step}");
                        assert!(view.iter().all(|(g, k, _)| g == u32::from(k[0])));
                    }
                }
                _ => t.settle(),
            }
            assert_eq!(t.get(&key), model.get(&key), "step {step}");
            assert_eq!(t.len(), model.len(), "step {step}");
        }
        assert_eq!(contents(&t), model);
    }
}
