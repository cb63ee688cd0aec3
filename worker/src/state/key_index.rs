//! Keys of one operator subtask listed by a time at which the operator looks at them again (a
//! state TTL's expiry, a temporal join's next due row): each listing is a key and its key group.

use std::collections::BTreeMap;

/// A key and its key group.
pub type GroupKey = (u32, Box<[u8]>);

/// Keys by time, earliest first.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    due: BTreeMap<i64, Vec<GroupKey>>,
}

impl KeyIndex {
    /// Lists `key` (of key group `group`) at `at`.
    pub fn list(&mut self, at: i64, group: u32, key: &[u8]) {
        self.due.entry(at).or_default().push((group, key.into()));
    }

    /// The earliest listed time.
    pub fn next(&self) -> Option<i64> {
        self.due.keys().next().copied()
    }

    /// Takes the listings at or before `now`: (listed time, key group, key), earliest first.
    pub fn take_due(&mut self, now: i64) -> Vec<(i64, u32, Box<[u8]>)> {
        let mut taken = Vec::new();
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > now {
                break;
            }
            let at = *entry.key();
            taken.extend(entry.remove().into_iter().map(|(g, k)| (at, g, k)));
        }
        taken
    }
}
