//! The savepoint policy's decisions, as pure functions of the history and the clock: when a
//! periodic savepoint is due, which savepoints the history no longer keeps, and which state
//! namespaces (left behind by stateless upgrades) nothing can restore from any more. The
//! reconciler carries them out through the coordinator.

use std::ops::Range;

use crate::crd::{SavepointEntry, SavepointPolicy};

/// Whether a periodic savepoint is due at `now` (unix seconds): the interval has passed since
/// the newest savepoint of any kind, or since the deployment started running when none was
/// taken since.
pub fn periodic_due(policy: &SavepointPolicy, newest: Option<i64>, running_since: Option<i64>, now: i64) -> bool {
    if policy.interval_seconds <= 0 {
        return false;
    }
    let Some(since) = newest.max(running_since) else {
        return false;
    };
    now - since >= policy.interval_seconds
}

/// The savepoints to dispose at `now`: beyond `historyMaxCount` (oldest first) or older than
/// `historyMaxAgeSeconds`; never the newest, nor one in `keep` (what a deployment or a change
/// in progress restores from).
pub fn to_dispose(history: &[SavepointEntry], policy: &SavepointPolicy, now: i64, keep: &[&str]) -> Vec<String> {
    let Some((_newest, older)) = history.split_last() else {
        return Vec::new();
    };
    let over = history.len().saturating_sub(policy.history_max_count.max(1) as usize);
    older
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            let too_many = *i < over;
            let too_old = policy.history_max_age_seconds > 0
                && unix(&e.time).is_some_and(|t| now - t > policy.history_max_age_seconds);
            too_many || too_old
        })
        .map(|(_, e)| e.path.clone())
        .filter(|p| !keep.contains(&p.as_str()))
        .collect()
}

/// The state namespaces (epochs) whose checkpoints may go: those below the deployed one, once
/// the deployed one is also the last stable one (so no rollback goes back to an older one) and
/// a checkpoint completed in it.
pub fn epochs_to_dispose(deployed: i64, disposed_below: i64, stable: Option<i64>, checkpointed: bool) -> Range<i64> {
    if checkpointed && stable == Some(deployed) && disposed_below < deployed {
        disposed_below..deployed
    } else {
        0..0
    }
}

/// An RFC 3339 time as unix seconds.
pub fn unix(time: &str) -> Option<i64> {
    time.parse::<k8s_openapi::jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SavepointCause;

    fn policy(interval: i64, count: i64, age: i64) -> SavepointPolicy {
        SavepointPolicy {
            interval_seconds: interval,
            history_max_count: count,
            history_max_age_seconds: age,
            on_delete: false,
        }
    }

    fn entry(n: i64) -> SavepointEntry {
        SavepointEntry {
            path: format!("s3://b/j/savepoints/savepoint-{n}"),
            time: k8s_openapi::jiff::Timestamp::from_second(n * 100).unwrap().to_string(),
            cause: SavepointCause::Periodic,
        }
    }

    #[test]
    fn a_periodic_savepoint_is_due_an_interval_after_the_newest_one_or_the_start() {
        let p = policy(60, 10, 0);
        assert!(!periodic_due(&policy(0, 10, 0), Some(0), Some(0), 1_000), "off");
        assert!(!periodic_due(&p, None, None, 1_000), "not running");
        assert!(!periodic_due(&p, None, Some(1_000), 1_059));
        assert!(periodic_due(&p, None, Some(1_000), 1_060));
        // A savepoint of any kind (a manual one, a change's) starts the interval again.
        assert!(!periodic_due(&p, Some(1_050), Some(1_000), 1_100));
        assert!(periodic_due(&p, Some(1_050), Some(1_000), 1_110));
        // A redeployment after the newest savepoint counts from its start.
        assert!(!periodic_due(&p, Some(1_000), Some(2_000), 2_030));
    }

    #[test]
    fn the_history_keeps_the_newest_count_and_age_and_never_the_newest_or_a_kept_one() {
        let history: Vec<SavepointEntry> = (1..=5).map(entry).collect();
        let paths = |ns: &[i64]| -> Vec<String> { ns.iter().map(|n| entry(*n).path).collect() };
        assert_eq!(to_dispose(&history, &policy(0, 10, 0), 600, &[]), paths(&[]));
        assert_eq!(to_dispose(&history, &policy(0, 3, 0), 600, &[]), paths(&[1, 2]));
        assert_eq!(to_dispose(&history, &policy(0, 1, 0), 600, &[]), paths(&[1, 2, 3, 4]));
        // Age: older than 250 s at t = 600 → savepoints 1, 2, 3 (times 100, 200, 300).
        assert_eq!(to_dispose(&history, &policy(0, 10, 250), 600, &[]), paths(&[1, 2, 3]));
        // Everything too old: the newest stays anyway.
        assert_eq!(
            to_dispose(&history, &policy(0, 10, 1), 10_000, &[]),
            paths(&[1, 2, 3, 4])
        );
        let kept = entry(2).path;
        assert_eq!(to_dispose(&history, &policy(0, 1, 0), 600, &[&kept]), paths(&[1, 3, 4]));
        assert!(to_dispose(&[], &policy(0, 1, 1), 600, &[]).is_empty());
    }

    #[test]
    fn old_state_namespaces_go_once_the_new_one_is_stable_and_checkpointed() {
        assert_eq!(epochs_to_dispose(2, 0, Some(2), true), 0..2);
        assert_eq!(epochs_to_dispose(2, 1, Some(2), true), 1..2);
        assert!(epochs_to_dispose(2, 2, Some(2), true).is_empty(), "done already");
        assert!(
            epochs_to_dispose(2, 0, Some(1), true).is_empty(),
            "a rollback may need epoch 1"
        );
        assert!(epochs_to_dispose(2, 0, None, true).is_empty());
        assert!(
            epochs_to_dispose(2, 0, Some(2), false).is_empty(),
            "no checkpoint in epoch 2 yet"
        );
        assert!(epochs_to_dispose(0, 0, Some(0), true).is_empty());
    }
}
