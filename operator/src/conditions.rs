//! The status's conditions and phase as pure functions of what the reconciler saw, so they are
//! tested without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::StreamJobStatus;

/// Sets condition `type_` in `status`, keeping its `lastTransitionTime` when its status did
/// not change (the Kubernetes convention: the time says when it last flipped).
pub fn set(status: &mut StreamJobStatus, type_: &str, ok: bool, reason: &str, message: &str, now: Timestamp) {
    let value = if ok { "True" } else { "False" };
    let generation = status.observed_generation;
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Time(now);
            }
            c.status = value.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => status.conditions.push(Condition {
            type_: type_.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
}

/// The phase shown for a job whose StatefulSet runs `parallelism` pods, given the
/// coordinator's state (`None`: not reachable) and the change in progress.
pub fn phase(parallelism: i32, coordinator: Option<&str>, upgrade: Option<&str>) -> &'static str {
    if let Some(reason) = upgrade {
        return match reason {
            "rescale" => "Rescaling",
            "suspend" => "Suspending",
            "resume" => "Resuming",
            _ => "Upgrading",
        };
    }
    if parallelism == 0 {
        return "Suspended";
    }
    match coordinator {
        Some("running") => "Running",
        Some("finished") => "Finished",
        Some("stopped") => "Stopped",
        Some("failed") => "Failed",
        Some("restarting") => "Restarting",
        _ => "Deploying",
    }
}

/// Sets Ready and Progressing from the phase (Degraded is set where errors are seen).
pub fn from_phase(status: &mut StreamJobStatus, phase: &str, now: Timestamp) {
    status.phase = Some(phase.to_string());
    let ready = matches!(phase, "Running" | "Finished" | "Suspended");
    let why = match phase {
        "Running" => "the job runs on every worker",
        "Finished" => "the job ended",
        "Suspended" => "stopped; resumes from its savepoint or newest checkpoint",
        "Failed" => "the job failed; see the coordinator's last error",
        _ => "waiting for the job to run",
    };
    set(status, "Ready", ready, phase, why, now);
    match &status.upgrade {
        Some(u) => {
            let message = format!(
                "{} {} → {} workers: {}",
                u.reason, u.from_parallelism, u.to_parallelism, u.step
            );
            set(status, "Progressing", true, phase, &message, now);
        }
        None => set(status, "Progressing", false, "Stable", "no change in progress", now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Upgrade;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_it_flips() {
        let mut s = StreamJobStatus::default();
        set(&mut s, "Ready", false, "Deploying", "w", at(10));
        set(&mut s, "Ready", false, "Deploying", "w", at(20));
        assert_eq!(s.conditions[0].last_transition_time.0, at(10));
        set(&mut s, "Ready", true, "Running", "r", at(30));
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].last_transition_time.0, at(30));
        assert_eq!(s.conditions[0].reason, "Running");
    }

    #[test]
    fn the_phase_follows_the_upgrade_then_the_coordinator() {
        assert_eq!(phase(3, Some("running"), Some("rescale")), "Rescaling");
        assert_eq!(phase(0, None, Some("suspend")), "Suspending");
        assert_eq!(phase(0, None, None), "Suspended");
        assert_eq!(phase(2, Some("running"), None), "Running");
        assert_eq!(phase(2, None, None), "Deploying");
        assert_eq!(phase(2, Some("failed"), None), "Failed");
    }

    #[test]
    fn progressing_names_the_change() {
        let mut s = StreamJobStatus {
            upgrade: Some(Upgrade {
                reason: "rescale".into(),
                step: "savepoint".into(),
                from_parallelism: 2,
                to_parallelism: 3,
                started_at: "2026-11-25T00:00:00Z".into(),
                savepoint: None,
            }),
            ..StreamJobStatus::default()
        };
        from_phase(&mut s, "Rescaling", at(1));
        let p = s.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!(
            (p.status.as_str(), p.message.as_str()),
            ("True", "rescale 2 → 3 workers: savepoint")
        );
        let r = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(r.status, "False");
    }
}
