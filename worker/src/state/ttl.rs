//! Time-to-live of SQL operators' keyed state (`table.exec.state.ttl`): an entry not written
//! for the TTL (processing time, on the job's clock) is dropped, as in Flink's `OnCreateAndWrite`
//! / `NeverReturnExpired` TTL. Reads do not extend it.
//!
//! Operators list each key once, at the time its oldest entry would expire, and store that time
//! in the key's value (so a restore lists it again). When the time comes the operator drops what
//! expired and lists the key again at the next expiry; a listing whose time no longer matches
//! the key's value is stale (the key was removed or listed anew) and is skipped. The index holds
//! about one listing per live key, however often keys are written.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StateTable;
use super::key_index::KeyIndex;
use crate::contract::UserResult;
use crate::contract::clock::SharedClock;
use crate::contract::state::OperatorState;

/// A key's value whose entries expire: what [`Expiry`] needs of it.
pub trait Expiring {
    /// When the key is listed (`None`: not listed, as without a TTL).
    fn listed(&self) -> Option<i64>;
    /// Records when the key is listed.
    fn set_listed(&mut self, at: Option<i64>);
    /// Drops the entries expired at `now`; when the oldest one left expires, or `None` when
    /// nothing is left (the key is then removed).
    fn expire(&mut self, expiry: &Expiry, now: i64) -> Option<i64>;
}

/// When a key's value, which expires as a whole (an aggregate's group, a Top-N partition), was
/// last written and when the index looks at it again.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Stamp {
    written: i64,
    listed: Option<i64>,
}

/// A key's value carrying a [`Stamp`]: it expires a TTL after its last write.
pub trait Stamped {
    /// The value's stamp.
    fn stamp(&self) -> &Stamp;
    /// The value's stamp, to change.
    fn stamp_mut(&mut self) -> &mut Stamp;
}

/// Implements [`Stamped`] for value types whose stamp is their `stamp` field.
macro_rules! stamped {
    ($($t:ty),+) => {
        $(impl $crate::state::ttl::Stamped for $t {
            fn stamp(&self) -> &$crate::state::ttl::Stamp {
                &self.stamp
            }
            fn stamp_mut(&mut self) -> &mut $crate::state::ttl::Stamp {
                &mut self.stamp
            }
        })+
    };
}
pub(crate) use stamped;

impl<T: Stamped> Expiring for T {
    fn listed(&self) -> Option<i64> {
        self.stamp().listed
    }
    fn set_listed(&mut self, at: Option<i64>) {
        self.stamp_mut().listed = at;
    }
    fn expire(&mut self, expiry: &Expiry, now: i64) -> Option<i64> {
        let written = self.stamp().written;
        (!expiry.expired(written, now)).then(|| expiry.expires_at(written))
    }
}

/// An operator's state TTL, if it has one, on the job's clock: the calls a keyed SQL operator
/// makes at each batch, write, timer and restore (each does nothing without a TTL).
pub struct Ttl {
    expiry: Option<Expiry>,
    clock: SharedClock,
}

impl Ttl {
    /// `ttl_ms`: how long an entry lives after its last write (`None`: forever).
    pub fn new(ttl_ms: Option<i64>, clock: &SharedClock) -> Self {
        Ttl {
            expiry: ttl_ms.map(Expiry::new),
            clock: clock.clone(),
        }
    }

    /// At the start of a batch: drops from `table` what expired, and returns the processing
    /// time the batch's writes carry (0 without a TTL: the clock is not read).
    pub fn begin<V>(&mut self, table: &mut StateTable<V>) -> UserResult<i64>
    where
        V: Expiring + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let Some(expiry) = &mut self.expiry else {
            return Ok(0);
        };
        let now = self.clock.now_ms();
        expiry.sweep(table, now)?;
        Ok(now)
    }

    /// After a write of `value` at `now` whose entries carry their own write times.
    pub fn written<V: Expiring>(&mut self, value: &mut V, group: u32, key: &[u8], now: i64) {
        if let Some(expiry) = &mut self.expiry {
            expiry.written(value, group, key, now);
        }
    }

    /// After a write of a value that expires as a whole, at `now`: stamps it.
    pub fn touch<V: Stamped>(&mut self, value: &mut V, group: u32, key: &[u8], now: i64) {
        if let Some(expiry) = &mut self.expiry {
            value.stamp_mut().written = now;
            expiry.written(value, group, key, now);
        }
    }

    /// The operator's next processing-time timer: the earliest listing.
    pub fn next(&self) -> Option<i64> {
        self.expiry.as_ref().and_then(Expiry::next)
    }

    /// On the processing-time timer at `now`: drops from `table` what expired.
    pub fn on_time<V>(&mut self, table: &mut StateTable<V>, now: i64) -> UserResult<()>
    where
        V: Expiring + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        if let Some(expiry) = &mut self.expiry {
            expiry.sweep(table, now)?;
        }
        Ok(())
    }

    /// Restores `table` from `state`, listing each key where its value says.
    pub fn restore<V>(&mut self, table: &mut StateTable<V>, state: &OperatorState) -> UserResult<()>
    where
        V: Expiring + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let Some(expiry) = &mut self.expiry else {
            return table.restore(state);
        };
        table.restore_observing(state, |group, key, value| {
            // Entries a later change replaced are listed too; their listing is skipped as stale
            // (or finds the key's current value) when it comes due.
            if let Some(at) = value.listed() {
                expiry.list(at, group, key);
            }
            Ok(())
        })
    }
}

/// The keys of one operator subtask to look at, by the time their oldest entry expires.
#[derive(Debug, Clone)]
pub struct Expiry {
    ttl: i64,
    due: KeyIndex,
}

impl Expiry {
    /// An index for entries that live `ttl_ms` after their last write.
    pub fn new(ttl_ms: i64) -> Self {
        Expiry {
            ttl: ttl_ms.max(1),
            due: KeyIndex::default(),
        }
    }

    /// When an entry last written at `written` expires.
    pub fn expires_at(&self, written: i64) -> i64 {
        written.saturating_add(self.ttl)
    }

    /// Whether an entry last written at `written` has expired at `now`.
    pub fn expired(&self, written: i64, now: i64) -> bool {
        self.expires_at(written) <= now
    }

    /// Lists `key` (of key group `group`) to be looked at once processing time reaches `at`.
    pub fn list(&mut self, at: i64, group: u32, key: &[u8]) {
        self.due.list(at, group, key);
    }

    /// The earliest listed time, for the operator's processing-time timer.
    pub fn next(&self) -> Option<i64> {
        self.due.next()
    }

    /// After a write of `value` (key `key` of group `group`) at `now`: a key not listed yet is
    /// listed at its expiry (a listed one already is, at or before it).
    pub fn written<V: Expiring>(&mut self, value: &mut V, group: u32, key: &[u8], now: i64) {
        if value.listed().is_none() {
            let at = self.expires_at(now);
            value.set_listed(Some(at));
            self.list(at, group, key);
        }
    }

    /// Drops from `table` what expired by `now`: each key due is expired, then removed if
    /// empty or listed again at its next expiry. Returns the keys removed.
    pub fn sweep<V>(&mut self, table: &mut StateTable<V>, now: i64) -> UserResult<usize>
    where
        V: Expiring + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    {
        let mut removed = 0;
        for (at, group, key) in self.take_due(now) {
            let Some(value) = table.get_mut(group, &key)? else {
                continue;
            };
            if value.listed() != Some(at) {
                continue; // stale: the key was listed again since
            }
            match value.expire(self, now) {
                Some(next) => {
                    let next = next.max(now.saturating_add(1));
                    value.set_listed(Some(next));
                    self.list(next, group, &key);
                }
                None => {
                    table.remove(group, &key)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Takes the listings due at `now`: (listed time, key group, key), earliest first.
    pub fn take_due(&mut self, now: i64) -> Vec<(i64, u32, Box<[u8]>)> {
        self.due.take_due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_come_due_in_time_order_and_only_once() {
        let mut e = Expiry::new(1_000);
        assert_eq!(e.expires_at(500), 1_500);
        assert!(!e.expired(500, 1_499));
        assert!(e.expired(500, 1_500));
        e.list(2_000, 1, b"b");
        e.list(1_500, 0, b"a");
        e.list(1_500, 2, b"c");
        assert_eq!(e.next(), Some(1_500));
        assert!(e.take_due(1_499).is_empty());
        let due: Vec<_> = e
            .take_due(1_800)
            .into_iter()
            .map(|(at, g, k)| (at, g, k.to_vec()))
            .collect();
        assert_eq!(due, vec![(1_500, 0, b"a".to_vec()), (1_500, 2, b"c".to_vec())]);
        assert!(e.take_due(1_800).is_empty());
        assert_eq!(e.next(), Some(2_000));
    }
}
