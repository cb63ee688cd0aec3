//! The status's conditions and phase as pure functions of what the reconciler saw, so they are
//! tested without a cluster. Condition types and reasons are enums: their spelling lives here
//! once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use weir_proto::rpc::JobPhase;

use crate::crd::{Phase, StreamJobStatus, UpgradeReason};

/// The condition types a StreamJob's status carries, one condition each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// The job runs as the spec asks (or has finished, or is suspended as asked).
    Ready,
    /// A change (rescale, upgrade, suspend, resume) is in progress.
    Progressing,
    /// Something is wrong: a failing job, an unreachable coordinator, a refused spec.
    Degraded,
}

impl ConditionType {
    /// The `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
        }
    }
}

/// A condition's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Ready and Progressing give the phase as their reason.
    Phase(Phase),
    /// Progressing: no change in progress.
    Stable,
    /// Degraded: nothing wrong.
    Healthy,
    /// Degraded: the job fails and restarts (the coordinator's last error is the message).
    JobFailing,
    /// Degraded: the spec cannot be turned into objects.
    InvalidSpec,
    /// Degraded: the API server refused or failed.
    ApiError,
    /// Degraded: the coordinator answered with an error.
    CoordinatorRefused,
    /// Degraded: the coordinator could not be reached.
    CoordinatorUnreachable,
    /// Degraded: the spec asks for something Weir cannot run.
    Unsupported,
    /// Degraded: a change failed (rolled back, or waiting for a newer spec).
    ChangeFailed,
    /// Degraded: an object the job needs exists and belongs to someone else.
    ObjectConflict,
    /// Degraded: the health check restarted the job (too many restarts, stalled checkpoints).
    Unhealthy,
}

impl Reason {
    /// The `reason` field (also an event's reason for failures).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Phase(p) => p.as_str(),
            Reason::Stable => "Stable",
            Reason::Healthy => "Healthy",
            Reason::JobFailing => "JobFailing",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::ApiError => "ApiError",
            Reason::CoordinatorRefused => "CoordinatorRefused",
            Reason::CoordinatorUnreachable => "CoordinatorUnreachable",
            Reason::Unsupported => "Unsupported",
            Reason::ChangeFailed => "ChangeFailed",
            Reason::ObjectConflict => "ObjectConflict",
            Reason::Unhealthy => "Unhealthy",
        }
    }
}

/// Sets condition `type_` in `status`, keeping its `lastTransitionTime` when its status did
/// not change (the Kubernetes convention: the time says when it last flipped).
pub fn set(
    status: &mut StreamJobStatus,
    type_: ConditionType,
    ok: bool,
    reason: Reason,
    message: &str,
    now: Timestamp,
) {
    let value = if ok { "True" } else { "False" };
    let generation = status.observed_generation;
    match status.conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Time(now);
            }
            c.status = value.into();
            c.reason = reason.as_str().into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => status.conditions.push(Condition {
            type_: type_.as_str().into(),
            status: value.into(),
            reason: reason.as_str().into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
}

/// The phase shown for a job whose StatefulSet runs `parallelism` pods, given the
/// coordinator's phase (`None`: not reachable), whether every pod is Ready, the change in
/// progress and whether a failed change was rolled back.
pub fn phase(
    parallelism: i32,
    coordinator: Option<JobPhase>,
    pods_ready: bool,
    upgrade: Option<UpgradeReason>,
    rolled_back: bool,
) -> Phase {
    if let Some(reason) = upgrade {
        return match reason {
            UpgradeReason::Rescale => Phase::Rescaling,
            UpgradeReason::Suspend => Phase::Suspending,
            UpgradeReason::Resume => Phase::Resuming,
            UpgradeReason::Upgrade | UpgradeReason::Rollback => Phase::Upgrading,
        };
    }
    if parallelism == 0 {
        return Phase::Suspended;
    }
    match coordinator {
        Some(JobPhase::Running) if rolled_back => Phase::RolledBack,
        Some(JobPhase::Running) => Phase::Running,
        Some(JobPhase::Finished) => Phase::Finished,
        Some(JobPhase::Stopped) => Phase::Stopped,
        Some(JobPhase::Failed) => Phase::Failed,
        Some(JobPhase::Restarting) => Phase::Restarting,
        None if pods_ready => Phase::Unreachable,
        Some(JobPhase::Unspecified | JobPhase::WaitingForWorkers | JobPhase::Deploying | JobPhase::Finishing)
        | None => Phase::Deploying,
    }
}

/// Sets Ready and Progressing from the phase (Degraded is set where errors are seen).
pub fn from_phase(status: &mut StreamJobStatus, phase: Phase, now: Timestamp) {
    status.phase = Some(phase);
    let ready = matches!(phase, Phase::Running | Phase::Finished | Phase::Suspended);
    let why = match phase {
        Phase::Running => "the job runs on every worker",
        Phase::Finished => "the job ended",
        Phase::Suspended => "stopped; resumes from its savepoint or newest checkpoint",
        Phase::Failed => "the job failed; see the coordinator's last error",
        Phase::Unreachable => "every worker pod is Ready but the coordinator does not answer",
        Phase::RolledBack => "a change failed; the last stable spec runs (see status.rolledBack)",
        _ => "waiting for the job to run",
    };
    set(status, ConditionType::Ready, ready, Reason::Phase(phase), why, now);
    match &status.upgrade {
        Some(u) => {
            let message = format!(
                "{} {} → {} workers: {}",
                u.reason, u.from_parallelism, u.to_parallelism, u.step
            );
            set(
                status,
                ConditionType::Progressing,
                true,
                Reason::Phase(phase),
                &message,
                now,
            );
        }
        None => set(
            status,
            ConditionType::Progressing,
            false,
            Reason::Stable,
            "no change in progress",
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Upgrade, UpgradeStep};

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_it_flips() {
        let mut s = StreamJobStatus::default();
        let deploying = Reason::Phase(Phase::Deploying);
        set(&mut s, ConditionType::Ready, false, deploying, "w", at(10));
        set(&mut s, ConditionType::Ready, false, deploying, "w", at(20));
        assert_eq!(s.conditions[0].last_transition_time.0, at(10));
        set(
            &mut s,
            ConditionType::Ready,
            true,
            Reason::Phase(Phase::Running),
            "r",
            at(30),
        );
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].last_transition_time.0, at(30));
        assert_eq!(s.conditions[0].reason, "Running");
    }

    #[test]
    fn the_phase_follows_the_upgrade_then_the_coordinator() {
        use JobPhase as J;
        use UpgradeReason as U;
        #[rustfmt::skip]
        type Case = (i32, Option<J>, bool, Option<U>, bool, Phase);
        let cases: &[Case] = &[
            (3, Some(J::Running), true, Some(U::Rescale), false, Phase::Rescaling),
            (2, Some(J::Running), true, Some(U::Upgrade), false, Phase::Upgrading),
            (2, Some(J::Running), true, Some(U::Rollback), false, Phase::Upgrading),
            (0, None, true, Some(U::Suspend), false, Phase::Suspending),
            (2, None, false, Some(U::Resume), false, Phase::Resuming),
            (0, None, true, None, false, Phase::Suspended),
            (2, Some(J::Running), true, None, false, Phase::Running),
            (2, Some(J::Running), true, None, true, Phase::RolledBack),
            (2, Some(J::Restarting), true, None, false, Phase::Restarting),
            (2, Some(J::Finished), true, None, false, Phase::Finished),
            (2, Some(J::Stopped), true, None, false, Phase::Stopped),
            (2, Some(J::Failed), true, None, false, Phase::Failed),
            (2, Some(J::WaitingForWorkers), true, None, false, Phase::Deploying),
            (2, Some(J::Finishing), true, None, false, Phase::Deploying),
            (2, Some(J::Unspecified), true, None, false, Phase::Deploying),
            (2, None, false, None, false, Phase::Deploying),
            (2, None, true, None, false, Phase::Unreachable),
        ];
        for (p, coordinator, ready, upgrade, rolled_back, want) in cases {
            assert_eq!(
                phase(*p, *coordinator, *ready, *upgrade, *rolled_back),
                *want,
                "{p} {coordinator:?} {ready} {upgrade:?} {rolled_back}"
            );
        }
    }

    #[test]
    fn progressing_names_the_change() {
        let mut s = StreamJobStatus {
            upgrade: Some(Upgrade {
                reason: UpgradeReason::Rescale,
                step: UpgradeStep::Savepoint,
                from_parallelism: 2,
                to_parallelism: 3,
                started_at: "2026-11-25T00:00:00Z".into(),
                savepoint: None,
                step_started_at: None,
                failed: None,
            }),
            ..StreamJobStatus::default()
        };
        from_phase(&mut s, Phase::Rescaling, at(1));
        let p = s.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!(
            (p.status.as_str(), p.message.as_str(), p.reason.as_str()),
            ("True", "rescale 2 → 3 workers: savepoint", "Rescaling")
        );
        let r = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(r.status, "False");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["phase"], "Rescaling");
        assert_eq!(json["upgrade"]["reason"], "rescale");
        assert_eq!(json["upgrade"]["step"], "savepoint");
    }
}
