//! Leader election with a `coordination.k8s.io/v1` Lease, so several operator replicas can run
//! and only one reconciles: the leader renews the Lease every third of its duration; a replica
//! takes it over once it was not renewed for a whole duration. Every write carries the Lease's
//! `resourceVersion`, so of two replicas racing for it one wins and the other gets a conflict.
//! A leader that cannot renew in time stops reconciling by exiting (the Deployment restarts it
//! as a follower): two leaders never act at once for longer than the clock skew.
//!
//! The decision is a pure function ([`decide`]) of the Lease and the time, tested without a
//! cluster; [`Elector`] carries it out against the API server.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// What a replica does with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Someone else's and expired (or released): take it over.
    TakeOver,
    /// Someone else's and live: wait.
    Follow(String),
}

/// What to do with `lease` (`None`: there is none) as `me` at `now`.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Step {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return if lease.is_some() { Step::TakeOver } else { Step::Create };
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    if now.as_second() - renewed >= duration {
        Step::TakeOver
    } else {
        Step::Follow(holder)
    }
}

/// Why an election round failed.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The API server refused or failed.
    #[error("lease {name}: {source}")]
    Kube {
        /// The Lease.
        name: String,
        /// What the API server said.
        source: kube::Error,
    },
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    /// This replica's identity (its pod name and a random suffix).
    pub me: String,
    duration: Duration,
}

impl Elector {
    /// A replica `me` electing through Lease `name` in `namespace`, held for `duration` unless
    /// renewed.
    pub fn new(client: Client, namespace: &str, name: &str, me: String, duration: Duration) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            me,
            duration,
        }
    }

    fn err(&self, source: kube::Error) -> ElectionError {
        ElectionError::Kube {
            name: self.name.clone(),
            source,
        }
    }

    /// One round: whether this replica holds the Lease afterwards (`Ok(false)`: another does,
    /// or won a race for it).
    pub async fn round(&self) -> Result<bool, ElectionError> {
        let now = Timestamp::now();
        let lease = self.api.get_opt(&self.name).await.map_err(|e| self.err(e))?;
        let step = decide(lease.as_ref(), &self.me, now);
        let held = |acquired: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.me.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let result = match (step, lease) {
            (Step::Follow(holder), _) => {
                tracing::debug!(leader = %holder, "following");
                return Ok(false);
            }
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held(None, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (Step::Renew, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(held(old.acquire_time, old.lease_transitions.unwrap_or(0)));
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (Step::TakeOver, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(held(None, old.lease_transitions.unwrap_or(0) + 1));
                tracing::info!(from = ?old.holder_identity, "taking the lease over");
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (Step::Renew | Step::TakeOver, None) => return Ok(false),
        };
        match result {
            Ok(()) => Ok(true),
            // Another replica wrote it first (create or replace with an older resourceVersion).
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        let mut announced = false;
        loop {
            match self.round().await {
                Ok(true) => return,
                Ok(false) if !announced => {
                    tracing::info!(lease = %self.name, me = %self.me, "another replica leads; waiting for the lease");
                    announced = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.retry()).await;
        }
    }

    /// Renews the Lease until it cannot be renewed within its duration; returns then (the
    /// caller must stop acting as the leader).
    pub async fn hold(&self) -> String {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry()).await;
            match self.round().await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => return "another replica holds the lease".into(),
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the lease");
                    // Stop while the lease is still ours: another replica may take it over
                    // once it expires.
                    if last.elapsed() + self.retry() >= self.duration {
                        return format!("the lease could not be renewed: {e}");
                    }
                }
            }
        }
    }

    fn retry(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_at: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_replica_creates_renews_follows_or_takes_over_by_the_lease_and_the_time() {
        let at = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(decide(None, "a", at(100)), Step::Create);
        assert_eq!(decide(Some(&lease("a", 90, 15)), "a", at(100)), Step::Renew);
        assert_eq!(
            decide(Some(&lease("b", 90, 15)), "a", at(100)),
            Step::Follow("b".into())
        );
        assert_eq!(
            decide(Some(&lease("b", 85, 15)), "a", at(100)),
            Step::TakeOver,
            "expired"
        );
        assert_eq!(
            decide(Some(&lease("", 99, 15)), "a", at(100)),
            Step::TakeOver,
            "released"
        );
        let empty = Lease::default();
        assert_eq!(decide(Some(&empty), "a", at(100)), Step::TakeOver, "no spec");
    }
}
