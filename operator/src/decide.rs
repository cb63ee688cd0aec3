//! What a reconcile does, decided by pure functions of the spec, the status and what was
//! observed (pods, the coordinator's phase). The reconciler carries the decisions out against
//! the API server and the coordinator; the decisions themselves are table-tested here for every
//! state a job can be in.

use weir_proto::rpc::JobPhase;

use crate::crd::{
    Deployed, HealthCheck, HealthSeen, RestartSample, StreamJobSpec, StreamJobStatus, UpgradeMode, UpgradeReason,
    UpgradeStep,
};

/// What this reconcile does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The spec asks for something the workers cannot run.
    Unsupported(String),
    /// Nothing is deployed yet: create the objects.
    FirstDeploy,
    /// The spec went back to what runs before the job was stopped: drop the change, then keep
    /// things as they are.
    Cancel,
    /// Nothing to change: keep the objects, follow the job, handle the nonces.
    Steady,
    /// Start a change at its first step.
    Start(UpgradeReason, UpgradeStep),
    /// Carry a recorded change on from its step.
    Continue(UpgradeStep),
    /// The spec changed again while a change waits for its new pods: deploy the newer spec
    /// (keeping the change's savepoint), instead of waiting for a deployment no longer wanted.
    Supersede,
}

/// What the spec asks for, as the reconciler computed it (the StatefulSet size and the hash of
/// everything that needs new pods).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Worker pods wanted (0 when suspended).
    pub parallelism: i32,
    /// Hash of the job, image, checkpointing, resources and pod template.
    pub hash: &'a str,
}

/// Decides what this reconcile does.
pub fn decide(spec: &StreamJobSpec, status: &StreamJobStatus, target: Target<'_>) -> Decision {
    if spec.job.builtin.is_some() {
        return Decision::Unsupported(
            "spec.job.builtin: worker pods run SQL (spec.job.sql), pipelines (spec.job.pipeline) and Python scripts (spec.job.python); built-in jobs are not wired into `weir worker` yet".into(),
        );
    }
    let Some(deployed) = &status.deployed else {
        return Decision::FirstDeploy;
    };
    let unchanged = deployed.parallelism == target.parallelism && deployed.job_hash == target.hash;
    // The spec still asks for what failed and was rolled back: the stable deployment stays.
    let failed_before = asks_for_rolled_back(status, target);
    match &status.upgrade {
        Some(u) if unchanged && u.step == UpgradeStep::Savepoint => Decision::Cancel,
        Some(u) if u.step == UpgradeStep::Restore && !unchanged && !failed_before => Decision::Supersede,
        Some(u) => Decision::Continue(u.step),
        None if unchanged || failed_before => Decision::Steady,
        None => {
            let reason = reason(deployed, target);
            Decision::Start(reason, first_step(spec, deployed))
        }
    }
}

/// Whether the spec (as `target`) still asks for the change that failed and was rolled back.
pub fn asks_for_rolled_back(status: &StreamJobStatus, target: Target<'_>) -> bool {
    status
        .rolled_back
        .as_ref()
        .is_some_and(|r| r.job_hash == target.hash && r.parallelism == target.parallelism)
}

/// Why what runs differs from the spec.
pub fn reason(deployed: &Deployed, target: Target<'_>) -> UpgradeReason {
    if target.parallelism == 0 {
        UpgradeReason::Suspend
    } else if deployed.parallelism == 0 {
        UpgradeReason::Resume
    } else if deployed.job_hash != target.hash {
        UpgradeReason::Upgrade
    } else {
        UpgradeReason::Rescale
    }
}

/// A running, checkpointing job in savepoint mode stops with a savepoint first; otherwise the
/// change deploys at once (last-state resumes from the newest checkpoint; stateless starts
/// afresh).
pub fn first_step(spec: &StreamJobSpec, deployed: &Deployed) -> UpgradeStep {
    if deployed.parallelism > 0 && spec.upgrade_mode == UpgradeMode::Savepoint && spec.checkpoint.is_some() {
        UpgradeStep::Savepoint
    } else {
        UpgradeStep::Deploy
    }
}

/// What the savepoint step does, given the coordinator's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointAction {
    /// The job was stopped with a savepoint already (by an operator that stopped before it
    /// could record it): use the coordinator's last savepoint.
    UseLast,
    /// Stop the job with a savepoint now.
    Take,
    /// The job ended or failed: no savepoint can be taken; it resumes from its newest
    /// checkpoint.
    ResumeFromCheckpoint,
    /// The job is between states (deploying, restarting…): try again later.
    Wait,
}

/// The savepoint step's action for a job in `phase`.
pub fn savepoint_action(phase: JobPhase) -> SavepointAction {
    match phase {
        JobPhase::Stopped => SavepointAction::UseLast,
        JobPhase::Running => SavepointAction::Take,
        JobPhase::Finished | JobPhase::Failed => SavepointAction::ResumeFromCheckpoint,
        JobPhase::Unspecified
        | JobPhase::WaitingForWorkers
        | JobPhase::Deploying
        | JobPhase::Restarting
        | JobPhase::Finishing => SavepointAction::Wait,
    }
}

/// Pods of a job as the restore step sees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodCount {
    /// Every pod of the job, of any deployment.
    pub total: usize,
    /// Ready pods of the current deployment, not being deleted.
    pub ready_current: usize,
}

/// Whether the restore step is done: every pod of the new deployment is up and Ready and the
/// coordinator says it runs the job (or finished it). A coordinator that cannot be asked
/// (`None`) never completes a change: pods that are Ready prove nothing about the job.
pub fn restore_done(parallelism: i32, pods: PodCount, coordinator: Option<JobPhase>) -> bool {
    let p = parallelism.max(0) as usize;
    if p == 0 {
        return pods.total == 0;
    }
    if pods.ready_current < p || pods.total != p {
        return false;
    }
    matches!(coordinator, Some(JobPhase::Running | JobPhase::Finished))
}

/// Where the restore step stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job runs again.
    Done,
    /// Not yet; within the deadline.
    Wait,
    /// The change failed (the reason, for the status and the event).
    Failed(String),
}

/// What the restore step sees: the new pods, the coordinator's phase and last error, the first
/// crash-looping worker container (if any), and how long the step has taken against its
/// deadline. Workers that crash-loop or a job that failed fail the change at once; anything
/// else still missing when the deadline passes fails it with what was missing.
pub fn restore_outcome(
    parallelism: i32,
    pods: PodCount,
    coordinator: Option<(JobPhase, Option<&str>)>,
    crash_looping: Option<&str>,
    elapsed_seconds: i64,
    timeout_seconds: i64,
) -> Outcome {
    if restore_done(parallelism, pods, coordinator.map(|c| c.0)) {
        return Outcome::Done;
    }
    if let Some(c) = crash_looping {
        return Outcome::Failed(format!("a worker crash-loops: {c}"));
    }
    if let Some((JobPhase::Failed, error)) = coordinator {
        return Outcome::Failed(format!("the job failed: {}", error.unwrap_or("no error reported")));
    }
    if elapsed_seconds < timeout_seconds {
        return Outcome::Wait;
    }
    let p = parallelism.max(0) as usize;
    let missing = if p == 0 {
        format!("{} pods of the old deployment are still there", pods.total)
    } else if pods.ready_current < p || pods.total != p {
        format!(
            "{} of {p} new worker pods Ready ({} pods in all)",
            pods.ready_current, pods.total
        )
    } else {
        match coordinator {
            None => "the coordinator does not answer".to_string(),
            Some((phase, _)) => format!("the job is {}", phase.name()),
        }
    };
    Outcome::Failed(format!("not done within {timeout_seconds} s: {missing}"))
}

/// Updates what the health check has seen with the coordinator's `restarts` and newest
/// `checkpoint` at `now` (unix seconds), and says why the job is unhealthy, if it is: more than
/// `restartsThreshold` restarts within the window, or no new checkpoint for
/// `checkpointProgressSeconds` (when `checkpointing`). A job restarted by the check within the
/// window is not judged again until the window passed.
pub fn health(
    seen: &mut HealthSeen,
    check: &HealthCheck,
    restarts: u64,
    checkpoint: u64,
    checkpointing: bool,
    now: i64,
) -> Option<String> {
    let window = check.window_seconds.max(1);
    seen.restarts.retain(|s| now - s.time <= window);
    seen.restarts.push(RestartSample { time: now, restarts });
    if checkpoint != seen.checkpoint || seen.checkpoint_since == 0 {
        seen.checkpoint = checkpoint;
        seen.checkpoint_since = now;
    }
    if !check.enabled || (seen.last_restart > 0 && now - seen.last_restart < window) {
        return None;
    }
    // The count resets when the coordinator restarts: count from the lowest sample after it.
    let low = seen
        .restarts
        .iter()
        .rev()
        .take_while(|s| s.restarts <= restarts)
        .map(|s| s.restarts)
        .min()
        .unwrap_or(restarts);
    let recent = restarts - low;
    if recent as i64 >= check.restarts_threshold {
        return Some(format!(
            "{recent} restarts in the last {window} s (healthCheck.restartsThreshold {})",
            check.restarts_threshold
        ));
    }
    let stalled = now - seen.checkpoint_since;
    if checkpointing && check.checkpoint_progress_seconds > 0 && stalled >= check.checkpoint_progress_seconds {
        return Some(format!(
            "no checkpoint completed in {stalled} s (healthCheck.checkpointProgressSeconds {})",
            check.checkpoint_progress_seconds
        ));
    }
    None
}

/// The message of a Degraded condition for a steady job: the coordinator's last error while the
/// job fails or restarts; none when healthy.
pub fn degraded(coordinator: Option<(JobPhase, Option<&str>)>) -> Option<String> {
    match coordinator {
        Some((JobPhase::Failed | JobPhase::Restarting, Some(error))) => Some(error.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CheckpointSpec, JobSource, JobState, Upgrade};

    fn spec(mode: UpgradeMode, checkpointing: bool) -> StreamJobSpec {
        StreamJobSpec {
            image: "weir-worker:dev".into(),
            parallelism: 2,
            max_parallelism: 128,
            job: JobSource {
                pipeline: Some("name: j".into()),
                ..JobSource::default()
            },
            checkpoint: checkpointing.then(|| CheckpointSpec {
                interval_ms: 1000,
                storage: "s3://bucket/jobs".into(),
                credentials_secret: None,
            }),
            upgrade_mode: mode,
            upgrade: Default::default(),
            health_check: Default::default(),
            state: JobState::Running,
            restart_nonce: None,
            savepoint_trigger_nonce: None,
            savepoint: Default::default(),
            initial_savepoint_path: None,
            state_backend: None,
            resources: None,
            pod_template: None,
            autoscaler: None,
        }
    }

    fn deployed(parallelism: i32, hash: &str) -> Deployed {
        Deployed {
            parallelism,
            job_hash: hash.into(),
            serial: 1,
            ..Deployed::default()
        }
    }

    fn status(d: Option<Deployed>, step: Option<UpgradeStep>) -> StreamJobStatus {
        StreamJobStatus {
            deployed: d,
            upgrade: step.map(|step| Upgrade {
                reason: UpgradeReason::Rescale,
                step,
                from_parallelism: 2,
                to_parallelism: 3,
                started_at: "2026-12-04T00:00:00Z".into(),
                savepoint: None,
                step_started_at: None,
                failed: None,
            }),
            ..StreamJobStatus::default()
        }
    }

    /// `s` after a change to (2, "h2") failed and was rolled back.
    fn rolled_back(mut s: StreamJobStatus) -> StreamJobStatus {
        s.rolled_back = Some(crate::crd::RolledBack {
            job_hash: "h2".into(),
            parallelism: 2,
            reason: "boom".into(),
            time: "2026-12-06T00:00:00Z".into(),
        });
        s
    }

    fn target(parallelism: i32, hash: &str) -> Target<'_> {
        Target { parallelism, hash }
    }

    #[test]
    fn every_state_and_spec_change_has_one_decision() {
        use Decision as D;
        use UpgradeMode::{LastState, Savepoint, Stateless};
        use UpgradeReason::*;
        use UpgradeStep as S;
        let running = Some(deployed(2, "h1"));
        let suspended = Some(deployed(0, "h1"));
        #[rustfmt::skip]
        let cases: Vec<(&str, StreamJobSpec, StreamJobStatus, Target<'_>, Decision)> = vec![
            ("nothing deployed", spec(Savepoint, true), status(None, None), target(2, "h1"), D::FirstDeploy),
            ("as deployed", spec(Savepoint, true), status(running.clone(), None), target(2, "h1"), D::Steady),
            ("scaled, savepoint mode", spec(Savepoint, true), status(running.clone(), None), target(3, "h1"), D::Start(Rescale, S::Savepoint)),
            ("scaled, last-state", spec(LastState, true), status(running.clone(), None), target(3, "h1"), D::Start(Rescale, S::Deploy)),
            ("scaled, no checkpoints", spec(Savepoint, false), status(running.clone(), None), target(3, "h1"), D::Start(Rescale, S::Deploy)),
            ("job changed", spec(Savepoint, true), status(running.clone(), None), target(2, "h2"), D::Start(Upgrade, S::Savepoint)),
            ("job changed, stateless", spec(Stateless, true), status(running.clone(), None), target(2, "h2"), D::Start(Upgrade, S::Deploy)),
            ("suspended", spec(Savepoint, true), status(running.clone(), None), target(0, "h1"), D::Start(Suspend, S::Savepoint)),
            ("resumed", spec(Savepoint, true), status(suspended.clone(), None), target(2, "h1"), D::Start(Resume, S::Deploy)),
            ("still suspended", spec(Savepoint, true), status(suspended, None), target(0, "h1"), D::Steady),
            ("spec back before the savepoint", spec(Savepoint, true), status(running.clone(), Some(S::Savepoint)), target(2, "h1"), D::Cancel),
            ("at the savepoint step", spec(Savepoint, true), status(running.clone(), Some(S::Savepoint)), target(3, "h1"), D::Continue(S::Savepoint)),
            ("at the deploy step", spec(Savepoint, true), status(running.clone(), Some(S::Deploy)), target(3, "h1"), D::Continue(S::Deploy)),
            ("spec back after the savepoint", spec(Savepoint, true), status(running.clone(), Some(S::Deploy)), target(2, "h1"), D::Continue(S::Deploy)),
            ("at the restore step", spec(Savepoint, true), status(Some(deployed(3, "h1")), Some(S::Restore)), target(3, "h1"), D::Continue(S::Restore)),
            ("changed again at the restore step", spec(Savepoint, true), status(Some(deployed(3, "h1")), Some(S::Restore)), target(3, "h2"), D::Supersede),
            ("scaled again at the restore step", spec(Savepoint, true), status(Some(deployed(3, "h1")), Some(S::Restore)), target(4, "h1"), D::Supersede),
            ("rolled back, the failed spec still asked", spec(Savepoint, true), rolled_back(status(running.clone(), None)), target(2, "h2"), D::Steady),
            ("rolling back", spec(Savepoint, true), rolled_back(status(running.clone(), Some(S::Restore))), target(2, "h2"), D::Continue(S::Restore)),
            ("rolled back, then changed", spec(Savepoint, true), rolled_back(status(running.clone(), None)), target(2, "h3"), D::Start(Upgrade, S::Savepoint)),
            ("rolled back, then changed during the rollback", spec(Savepoint, true), rolled_back(status(running, Some(S::Restore))), target(2, "h3"), D::Supersede),
        ];
        for (what, spec, status, target, want) in cases {
            assert_eq!(decide(&spec, &status, target), want, "{what}");
        }
    }

    #[test]
    fn sql_jobs_deploy_and_builtin_jobs_are_refused_naming_the_field() {
        let mut s = spec(UpgradeMode::Savepoint, true);
        s.job = JobSource {
            sql: Some("SELECT 1".into()),
            ..JobSource::default()
        };
        assert_eq!(
            decide(&s, &StreamJobStatus::default(), target(2, "h")),
            Decision::FirstDeploy
        );
        s.job = JobSource {
            builtin: Some("wordcount".into()),
            ..JobSource::default()
        };
        match decide(&s, &StreamJobStatus::default(), target(2, "h")) {
            Decision::Unsupported(m) => assert!(m.starts_with("spec.job.builtin"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_savepoint_step_follows_the_coordinator() {
        use JobPhase as J;
        use SavepointAction as A;
        let cases = [
            (J::Running, A::Take),
            (J::Stopped, A::UseLast),
            (J::Finished, A::ResumeFromCheckpoint),
            (J::Failed, A::ResumeFromCheckpoint),
            (J::Deploying, A::Wait),
            (J::Restarting, A::Wait),
            (J::WaitingForWorkers, A::Wait),
            (J::Finishing, A::Wait),
            (J::Unspecified, A::Wait),
        ];
        for (phase, want) in cases {
            assert_eq!(savepoint_action(phase), want, "{phase:?}");
        }
    }

    #[test]
    fn the_restore_step_waits_for_every_new_pod_and_a_running_job() {
        use JobPhase as J;
        let pods = |total, ready_current| PodCount { total, ready_current };
        let cases = [
            (3, pods(3, 3), Some(J::Running), true),
            (3, pods(3, 3), Some(J::Finished), true),
            (3, pods(3, 3), Some(J::Deploying), false),
            (3, pods(3, 3), Some(J::Restarting), false),
            (3, pods(3, 3), None, false),
            (3, pods(3, 2), Some(J::Running), false),
            (3, pods(4, 3), Some(J::Running), false),
            (3, pods(2, 2), None, false),
            (0, pods(0, 0), None, true),
            (0, pods(1, 0), None, false),
        ];
        for (p, count, coordinator, want) in cases {
            assert_eq!(
                restore_done(p, count, coordinator),
                want,
                "{p} {count:?} {coordinator:?}"
            );
        }
    }

    #[test]
    fn the_restore_step_fails_at_once_on_a_crash_loop_or_a_failed_job_and_else_at_its_deadline() {
        use JobPhase as J;
        let pods = |total, ready_current| PodCount { total, ready_current };
        let ok = restore_outcome(2, pods(2, 2), Some((J::Running, None)), None, 500, 60);
        assert_eq!(ok, Outcome::Done, "done even late");
        let waiting = restore_outcome(2, pods(2, 1), None, None, 59, 60);
        assert_eq!(waiting, Outcome::Wait);
        let crash = restore_outcome(2, pods(2, 1), None, Some("w-1/worker: CrashLoopBackOff"), 1, 60);
        assert_eq!(
            crash,
            Outcome::Failed("a worker crash-loops: w-1/worker: CrashLoopBackOff".into())
        );
        let failed = restore_outcome(2, pods(2, 2), Some((J::Failed, Some("bad pipeline"))), None, 1, 60);
        assert_eq!(failed, Outcome::Failed("the job failed: bad pipeline".into()));
        let cases = [
            (pods(3, 1), None, "1 of 2 new worker pods Ready (3 pods in all)"),
            (pods(2, 2), None, "the coordinator does not answer"),
            (pods(2, 2), Some((J::Deploying, None)), "the job is deploying"),
        ];
        for (count, coordinator, missing) in cases {
            match restore_outcome(2, count, coordinator, None, 60, 60) {
                Outcome::Failed(m) => assert_eq!(m, format!("not done within 60 s: {missing}")),
                other => panic!("{other:?}"),
            }
        }
        match restore_outcome(0, pods(1, 0), None, None, 60, 60) {
            Outcome::Failed(m) => assert!(m.contains("1 pods of the old deployment"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_job_is_unhealthy_when_it_restarts_too_often_or_its_checkpoints_stall_and_not_twice_in_a_window() {
        let check = HealthCheck {
            enabled: true,
            restarts_threshold: 3,
            window_seconds: 60,
            checkpoint_progress_seconds: 30,
        };
        let mut seen = HealthSeen::default();
        assert_eq!(health(&mut seen, &check, 10, 1, true, 1000), None, "a first look");
        assert_eq!(health(&mut seen, &check, 12, 2, true, 1010), None, "2 restarts");
        let why = health(&mut seen, &check, 13, 3, true, 1020).expect("3 restarts in the window");
        assert!(why.starts_with("3 restarts in the last 60 s"), "{why}");
        // Old restarts leave the window.
        assert_eq!(health(&mut seen, &check, 13, 4, true, 1075), None);
        // A coordinator restarted: its count starts again from 0, not "negative restarts".
        assert_eq!(health(&mut seen, &check, 1, 5, true, 1080), None);
        // Checkpoints stalled for 30 s.
        assert_eq!(health(&mut seen, &check, 1, 5, true, 1100), None);
        let why = health(&mut seen, &check, 1, 5, true, 1110).expect("stalled");
        assert!(why.starts_with("no checkpoint completed in 30 s"), "{why}");
        assert_eq!(
            health(&mut seen, &check, 1, 5, false, 1110),
            None,
            "not without checkpointing"
        );
        // Restarted by the check: not judged again within the window.
        seen.last_restart = 1110;
        assert_eq!(health(&mut seen, &check, 1, 5, true, 1150), None);
        let off = HealthCheck {
            enabled: false,
            ..check
        };
        assert_eq!(health(&mut seen, &off, 100, 5, true, 2000), None, "off");
    }

    #[test]
    fn a_steady_job_is_degraded_only_while_it_fails_with_an_error() {
        use JobPhase as J;
        assert_eq!(degraded(Some((J::Failed, Some("boom")))), Some("boom".into()));
        assert_eq!(degraded(Some((J::Restarting, Some("boom")))), Some("boom".into()));
        assert_eq!(degraded(Some((J::Running, Some("old error")))), None);
        assert_eq!(degraded(Some((J::Failed, None))), None);
        assert_eq!(degraded(None), None);
    }
}
