//! The operator against a real control plane: kube-apiserver, controller-manager and scheduler
//! 1.37 with etcd, and kwok's fake node, so StatefulSets really create Pods that get scheduled
//! and become Ready (without containers: the coordinator is not reachable here; the real pods
//! are in `real_pods.rs`). Started once per test run by `scripts/kube-up`.

use crate::common;

use std::time::Duration;

use crate::common::{FakeCoordinator, PIPELINE, cluster, stream_job, wait_for, with_coordinator};
use weir_proto::rpc::JobPhase;

const T: Duration = Duration::from_secs(60);

fn str_of(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[test]
fn create_scale_suspend_resume_restart_upgrade_delete() {
    let c = cluster();
    let ns = c.namespace("life");
    let ns = ns.name.as_str();
    let op = c.operator(ns, None);
    // The pods run no containers: a stand-in coordinator says the job runs.
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let job =
        |p: u32, pipeline: &str| with_coordinator(&stream_job("clicks", p, "last-state", pipeline), &coordinator, "");
    c.apply_in(ns, &job(2, PIPELINE)).unwrap();

    // Created: ConfigMap, headless Service, StatefulSet, all owned by the StreamJob.
    wait_for("2 ready pods", T, || {
        let pods = c.pods(ns, "clicks");
        (pods.len() == 2 && pods.iter().all(|p| p.2 && p.1 == "1")).then_some(())
    });
    for kind in ["configmap", "service", "statefulset"] {
        let o = c.get(ns, &format!("{kind}/clicks")).unwrap();
        let owner = &o["metadata"]["ownerReferences"][0];
        assert_eq!(
            (str_of(&owner["kind"]), str_of(&owner["name"])),
            ("StreamJob".into(), "clicks".into())
        );
        assert_eq!(owner["controller"], true);
    }
    let cm = c.get(ns, "configmap/clicks").unwrap();
    assert!(str_of(&cm["data"]["job.yaml"]).contains("connector: datagen"));
    let s = wait_for("status with replicas", T, || {
        let s = c.status(ns, "clicks");
        (s["replicas"] == 2).then_some(s)
    });
    assert_eq!(s["selector"], "weir.dev/job=clicks");
    assert_eq!(
        s["dashboard"],
        format!("http://clicks-0.clicks.{ns}.svc.cluster.local:8081/"),
        "the REST API's URL in the status"
    );
    assert_eq!(s["deployed"]["parallelism"], 2);
    assert_eq!(s["observedGeneration"], 1);
    let table = c.kubectl(&["get", "-n", ns, "sj", "clicks"]).unwrap();
    assert!(table.contains("PHASE") && table.contains("PARALLELISM"), "{table}");

    // Rescale through the scale subresource (last-state: the workers restore the newest
    // checkpoint by key groups, no savepoint needed).
    c.kubectl(&["scale", "-n", ns, "streamjob/clicks", "--replicas=3"])
        .unwrap();
    let s = wait_for("the rescale to complete", T, || {
        let s = c.status(ns, "clicks");
        (s["lastUpgrade"]["reason"] == "rescale" && s["upgrade"].is_null()).then_some(s)
    });
    assert_eq!(s["lastUpgrade"]["fromParallelism"], 2);
    assert_eq!(s["lastUpgrade"]["toParallelism"], 3);
    assert_eq!(s["currentParallelism"], 3);
    assert_eq!(s["replicas"], 3);
    let pods = c.pods(ns, "clicks");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(
        pods.iter().all(|p| p.1 == "2" && p.2),
        "every pod is of the new deployment: {pods:?}"
    );
    let sts = c.get(ns, "statefulset/clicks").unwrap();
    assert_eq!(sts["spec"]["replicas"], 3);
    let env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        env.iter().any(|e| e["name"] == "WEIR_WORKERS" && e["value"] == "3"),
        "{env:?}"
    );
    let metrics = op.http_get("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("weir_operator_upgrades_total 1"), "{metrics}");
    for series in [
        format!("weir_operator_job_last_change_duration_ms{{job=\"{ns}/clicks\",reason=\"rescale\"}}"),
        format!("weir_operator_job_restarts{{job=\"{ns}/clicks\"}} 0"),
    ] {
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
    let phases = wait_for("the job's phase in the metrics", T, || {
        let m = op.http_get("/metrics");
        m.contains(&format!(
            "weir_operator_job_phase{{job=\"{ns}/clicks\",phase=\"Running\"}} 1"
        ))
        .then_some(m)
    });
    assert!(!phases.contains("phase=\"Rescaling\""), "one phase per job");
    assert!(op.http_get("/healthz").ends_with("ok\n"));

    // Suspend: no pods; resume: all back.
    c.patch_spec(ns, "clicks", r#"{"state":"suspended"}"#);
    wait_for("suspended", T, || {
        let s = c.status(ns, "clicks");
        (s["phase"] == "Suspended" && c.pods(ns, "clicks").is_empty()).then_some(())
    });
    assert_eq!(c.get(ns, "statefulset/clicks").unwrap()["spec"]["replicas"], 0);
    c.patch_spec(ns, "clicks", r#"{"state":"running"}"#);
    wait_for("resumed", T, || {
        let s = c.status(ns, "clicks");
        let pods = c.pods(ns, "clicks");
        (s["lastUpgrade"]["reason"] == "resume" && pods.len() == 3 && pods.iter().all(|p| p.2)).then_some(())
    });

    // savepointTriggerNonce: one savepoint, triggered and then polled (no call held open while
    // it is taken), however many reconciles see the nonce meanwhile.
    c.patch_spec(ns, "clicks", r#"{"savepointTriggerNonce":1}"#);
    let s = wait_for("the triggered savepoint", T, || {
        let s = c.status(ns, "clicks");
        (s["savepointTriggerNonce"] == 1).then_some(s)
    });
    assert!(
        str_of(&s["lastSavepoint"]["path"]).contains("/savepoints/savepoint-"),
        "{s}"
    );
    assert_eq!(coordinator.savepoints_taken(), 1);

    // restartNonce: every pod replaced.
    let before: Vec<String> = pod_uids(&c, ns);
    c.patch_spec(ns, "clicks", r#"{"restartNonce":1}"#);
    wait_for("the restart", T, || {
        let s = c.status(ns, "clicks");
        let after = pod_uids(&c, ns);
        (s["restartNonce"] == 1 && after.len() == 3 && after.iter().all(|u| !before.contains(u))).then_some(())
    });

    // A changed job (last-state): new ConfigMap, pods of a new deployment.
    let changed = PIPELINE.replace("key_by: id", "key_by: value");
    c.apply_in(ns, &job(3, &changed)).unwrap();
    wait_for("the upgrade", T, || {
        let s = c.status(ns, "clicks");
        (s["lastUpgrade"]["reason"] == "upgrade" && s["upgrade"].is_null()).then_some(())
    });
    let cm = c.get(ns, "configmap/clicks").unwrap();
    assert!(str_of(&cm["data"]["job.yaml"]).contains("key_by: value"));
    let events = c.kubectl(&["get", "events", "-n", ns, "-o", "json"]).unwrap();
    for reason in ["Deployed", "ChangeStarted", "ChangeCompleted", "Restarted"] {
        assert!(
            events.contains(&format!("\"reason\": \"{reason}\"")),
            "no {reason} event"
        );
    }

    // Deleted: the owned objects go with it (garbage collection by owner references).
    c.kubectl(&["delete", "-n", ns, "streamjob/clicks"]).unwrap();
    wait_for("owned objects removed", T, || {
        ["configmap/clicks", "service/clicks", "statefulset/clicks"]
            .iter()
            .all(|o| c.get(ns, o).is_none())
            .then_some(())
    });
}

fn pod_uids(c: &common::Cluster, ns: &str) -> Vec<String> {
    c.live_pods(ns, "clicks")
        .iter()
        .map(|p| str_of(&p["metadata"]["uid"]))
        .collect()
}

#[test]
fn invalid_manifests_are_refused_with_the_field_named() {
    let c = cluster();
    let ns = c.namespace("bad");
    let ns = ns.name.as_str();
    let good = stream_job("j", 2, "savepoint", PIPELINE);
    let refused = |yaml: &str| c.apply_in(ns, yaml).expect_err("the API server refuses it");
    let e = refused(&good.replace("parallelism: 2", "parallelism: 0"));
    assert!(
        e.contains("spec.parallelism") && e.contains("parallelism must be at least 1"),
        "{e}"
    );
    let e = refused(&good.replace("parallelism: 2", "parallelism: 300"));
    assert!(e.contains("parallelism must not exceed maxParallelism"), "{e}");
    let e = refused(&good.replace("upgradeMode: savepoint", "upgradeMode: sometimes"));
    assert!(e.contains("spec.upgradeMode") && e.contains("sometimes"), "{e}");
    let e = refused(&good.replace("  job:\n", "  job:\n    sql: SELECT 1\n"));
    assert!(
        e.contains("set exactly one of job.sql, job.pipeline, job.python, job.builtin"),
        "{e}"
    );
    let e = refused(&good.replace("    pipeline: |", "    builtin: wordcount\n    pipeline: |"));
    assert!(e.contains("set exactly one of"), "{e}");
    let builtin = good.replace("    pipeline: |\n", "    builtin: wordcount\n");
    let builtin: String = builtin
        .lines()
        .filter(|l| !l.starts_with("      "))
        .map(|l| format!("{l}\n"))
        .collect();
    let e = refused(&builtin);
    assert!(
        e.contains("job.builtin: worker pods run job.sql, job.pipeline and job.python"),
        "{e}"
    );
    let e = refused(&good.replace("  upgradeMode:", "  upgrade:\n    timeoutSeconds: 0\n  upgradeMode:"));
    assert!(e.contains("upgrade.timeoutSeconds must be at least 1"), "{e}");
    let e = refused(&good.replace("  image: weir-worker:dev\n", ""));
    assert!(e.contains("spec.image") && e.contains("Required"), "{e}");
    let e = refused(&good.replace("intervalMs: 1000", "intervalMs: 1"));
    assert!(e.contains("checkpoint.intervalMs must be at least 10"), "{e}");

    c.apply(&good.replace("name: j", &format!("name: j\n  namespace: {ns}")))
        .unwrap();
    let e = refused(&good.replace("parallelism: 2", "parallelism: 2\n  maxParallelism: 256"));
    assert!(e.contains("maxParallelism is immutable"), "{e}");
}

#[test]
fn savepoint_mode_waits_for_the_coordinator_and_an_operator_restart_carries_on() {
    let c = cluster();
    let ns = c.namespace("sp");
    let ns = ns.name.as_str();
    let op = c.operator(ns, None);
    c.apply_in(ns, &stream_job("clicks", 2, "savepoint", PIPELINE)).unwrap();
    wait_for("2 ready pods", T, || {
        let pods = c.pods(ns, "clicks");
        (pods.len() == 2 && pods.iter().all(|p| p.2)).then_some(())
    });

    // A rescale in savepoint mode stops the job with a savepoint first; with no coordinator
    // to answer, it waits (Degraded, retried with back-off) and changes nothing.
    c.kubectl(&["scale", "-n", ns, "streamjob/clicks", "--replicas=4"])
        .unwrap();
    let s = wait_for("the rescale waiting for its savepoint", T, || {
        let s = c.status(ns, "clicks");
        let degraded = s["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Degraded" && c["status"] == "True"));
        (s["upgrade"]["step"] == "savepoint" && degraded).then_some(s)
    });
    assert_eq!(s["phase"], "Rescaling");
    let started = s["upgrade"]["startedAt"].clone();

    // The operator killed mid-rescale; a new one picks the change up where it was.
    let log = op.kill();
    assert!(log.contains("ChangeStarted") || log.contains("rescale"), "{log}");
    let op2 = c.operator(ns, None);
    std::thread::sleep(Duration::from_secs(4));
    let s = c.status(ns, "clicks");
    assert_eq!(s["upgrade"]["startedAt"], started, "the same change, not a new one");
    assert_eq!(s["upgrade"]["step"], "savepoint");
    assert_eq!(c.get(ns, "statefulset/clicks").unwrap()["spec"]["replicas"], 2);
    // Nothing made twice: one of each (two Services: the workers' headless one and the
    // dashboard's).
    for (kind, n) in [("statefulsets", 1), ("configmaps", 1), ("services", 2)] {
        let list = c.get(ns, &format!("{kind} -l weir.dev/job=clicks")).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), n, "{n} {kind}");
    }
    let sts: serde_json::Value = serde_json::from_str(
        &c.kubectl(&[
            "get",
            "-n",
            ns,
            "statefulset/clicks",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .unwrap(),
    )
    .unwrap();
    let managers: Vec<String> = sts["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["operation"] == "Apply")
        .map(|m| str_of(&m["manager"]))
        .collect();
    assert_eq!(managers, ["weir-operator"]);

    // Back to what runs before the savepoint: the change is cancelled.
    c.kubectl(&["scale", "-n", ns, "streamjob/clicks", "--replicas=2"])
        .unwrap();
    wait_for("the change cancelled", T, || {
        let s = c.status(ns, "clicks");
        (s["upgrade"].is_null() && s["phase"] != "Rescaling").then_some(())
    });

    // A savepoint trigger needs the coordinator too: not recorded as handled, the reason shown.
    c.patch_spec(ns, "clicks", r#"{"savepointTriggerNonce":7}"#);
    wait_for("the savepoint trigger's failure shown", T, || {
        let s = c.status(ns, "clicks");
        let degraded = s["conditions"].as_array().and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Degraded" && c["status"] == "True")
                .cloned()
        })?;
        assert_ne!(s["savepointTriggerNonce"], 7);
        str_of(&degraded["message"]).contains("coordinator").then_some(())
    });
    drop(op2);
}

#[test]
fn a_stateless_upgrade_starts_in_a_fresh_state_namespace() {
    let c = cluster();
    let ns = c.namespace("stateless");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let job = |pipeline: &str| with_coordinator(&stream_job("clicks", 1, "stateless", pipeline), &coordinator, "");
    c.apply_in(ns, &job(PIPELINE)).unwrap();
    wait_for("deployed", T, || {
        (c.status(ns, "clicks")["deployed"]["serial"] == 1).then_some(())
    });
    let env_of = || -> Vec<(String, String)> {
        let sts = c.get(ns, "statefulset/clicks").unwrap();
        sts["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (str_of(&e["name"]), str_of(&e["value"])))
            .collect()
    };
    assert!(env_of().contains(&("WEIR_CHECKPOINT_STORAGE".into(), "s3://weir-test/checkpoints".into())));
    let changed = PIPELINE.replace("key_by: id", "key_by: value");
    c.apply_in(ns, &job(&changed)).unwrap();
    let s = wait_for("the stateless upgrade", T, || {
        let s = c.status(ns, "clicks");
        (s["lastUpgrade"]["reason"] == "upgrade" && s["upgrade"].is_null()).then_some(s)
    });
    assert_eq!(s["deployed"]["stateEpoch"], 1);
    let env = env_of();
    assert!(
        env.contains(&(
            "WEIR_CHECKPOINT_STORAGE".into(),
            "s3://weir-test/checkpoints/epoch-1".into()
        )),
        "{env:?}"
    );
    assert!(!env.iter().any(|(k, _)| k == "WEIR_FROM_SAVEPOINT"), "nothing restored");

    // Once the new namespace is the stable one and has a checkpoint, the old one's checkpoints
    // are disposed through the coordinator (its savepoints stay: only the job directory's
    // checkpoints are named).
    coordinator.set_progress(0, true);
    wait_for("the old state namespace disposed", T, || {
        (c.status(ns, "clicks")["disposedBelowEpoch"] == 1).then_some(())
    });
    assert_eq!(coordinator.disposed(), ["s3://weir-test/checkpoints/clicks"]);
}

/// `savepoint:` settings (a YAML flow mapping) in a StreamJob manifest.
fn with_savepoint_policy(manifest: &str, policy: &str) -> String {
    manifest.replacen("spec:\n", &format!("spec:\n  savepoint: {policy}\n"), 1)
}

#[test]
fn periodic_savepoints_keep_a_bounded_history_and_a_deleted_job_stops_with_a_savepoint() {
    let c = cluster();
    let ns = c.namespace("savepoints");
    let ns = ns.name.as_str();
    let op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let job = with_savepoint_policy(
        &with_coordinator(&stream_job("clicks", 1, "savepoint", PIPELINE), &coordinator, ""),
        "{intervalSeconds: 1, historyMaxCount: 2, onDelete: true}",
    );
    c.apply_in(ns, &job).unwrap();
    wait_for("the savepoint-on-delete finalizer", T, || {
        let o = c.get(ns, "streamjob/clicks")?;
        (o["metadata"]["finalizers"][0] == "weir.dev/savepoint-on-delete").then_some(())
    });

    // Periodic savepoints: the history keeps the newest two, the older ones are disposed
    // (files first, through the coordinator, then the entry).
    // The fake records a disposal when the RPC arrives and the operator drops the entries once it
    // returns: read what was disposed first, then the status, until the two agree.
    let (s, kept) = wait_for("four periodic savepoints and two disposed", T, || {
        let disposed = coordinator.disposed();
        let s = c.status(ns, "clicks");
        let kept: Vec<String> = s["savepoints"]
            .as_array()
            .map(|a| a.iter().map(|e| str_of(&e["path"])).collect())
            .unwrap_or_default();
        let agree = kept.iter().all(|k| !disposed.contains(k));
        (coordinator.triggers().len() >= 4 && disposed.len() >= 2 && kept.len() == 2 && agree).then_some((s, kept))
    });
    assert!(
        s["savepoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["cause"] == "periodic"),
        "{s}"
    );
    // Files first, then the entry: every savepoint older than the kept ones was disposed.
    let disposed = coordinator.disposed();
    let number = |p: &str| p.rsplit('-').next().and_then(|n| n.parse::<u32>().ok()).unwrap();
    let oldest_kept = kept.iter().map(|k| number(k)).min().unwrap();
    for n in 1..oldest_kept {
        let path = format!("s3://weir-test/checkpoints/clicks/savepoints/savepoint-{n}");
        assert!(
            disposed.contains(&path),
            "{path} left the history undisposed: {disposed:?}"
        );
    }
    assert_eq!(
        disposed[..2],
        [
            "s3://weir-test/checkpoints/clicks/savepoints/savepoint-1",
            "s3://weir-test/checkpoints/clicks/savepoints/savepoint-2"
        ]
    );
    assert_eq!(s["lastSavepoint"]["path"], kept[1].as_str());
    assert!(
        coordinator
            .triggers()
            .iter()
            .all(|(id, stop)| id.starts_with("periodic-") && !stop),
        "{:?}",
        coordinator.triggers()
    );

    let series = format!("job=\"{ns}/clicks\"");
    assert!(op.http_get("/metrics").contains(&series), "per-job metrics");

    // Deleting the StreamJob: the finalizer holds it until the job stopped with a savepoint.
    c.kubectl(&["delete", "-n", ns, "streamjob/clicks", "--wait=false"])
        .unwrap();
    wait_for("the StreamJob gone", T, || {
        c.get(ns, "streamjob/clicks").is_none().then_some(())
    });
    // Its per-job series go with it.
    wait_for("the deleted job's metrics gone", T, || {
        (!op.http_get("/metrics").contains(&series)).then_some(())
    });
    let on_delete: Vec<(String, bool)> = coordinator
        .triggers()
        .into_iter()
        .filter(|(id, _)| id.starts_with("delete-"))
        .collect();
    assert_eq!(on_delete.len(), 1, "{:?}", coordinator.triggers());
    assert!(on_delete[0].1, "a stop-with-savepoint");
    let events = events(&c, ns);
    assert!(events.contains("SavepointOnDelete"), "{events}");
}

fn condition(s: &serde_json::Value, type_: &str) -> (String, String, String) {
    let c = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_default();
    (str_of(&c["status"]), str_of(&c["reason"]), str_of(&c["message"]))
}

fn events(c: &common::Cluster, ns: &str) -> String {
    c.kubectl(&["get", "events", "-n", ns, "-o", "json"]).unwrap()
}

/// A CPU request no node can meet: the change's pods stay Pending.
fn unschedulable(manifest: &str) -> String {
    manifest.replacen(
        "  job:\n",
        "  resources:\n    requests:\n      cpu: \"1000\"\n  job:\n",
        1,
    )
}

fn cpu_requested(c: &common::Cluster, ns: &str) -> serde_json::Value {
    let sts = c.get(ns, "statefulset/clicks").unwrap();
    sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"].clone()
}

#[test]
fn a_failed_change_rolls_back_to_the_last_stable_spec_and_a_newer_spec_goes_ahead() {
    let c = cluster();
    let ns = c.namespace("rollback");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let policy = "timeoutSeconds: 4\nstableSeconds: 1";
    let job = |pipeline: &str| with_coordinator(&stream_job("clicks", 2, "last-state", pipeline), &coordinator, policy);
    c.apply_in(ns, &job(PIPELINE)).unwrap();
    wait_for("the running spec recorded as stable", T, || {
        let s = c.status(ns, "clicks");
        (s["lastStableSpec"]["parallelism"] == 2 && s["phase"] == "Running").then_some(())
    });

    // Pods that never start: the change fails at its deadline and the last stable spec is
    // deployed again; the spec that failed is not retried.
    c.apply_in(ns, &unschedulable(&job(PIPELINE))).unwrap();
    let s = wait_for("the rollback", T, || {
        let s = c.status(ns, "clicks");
        (s["phase"] == "RolledBack" && s["upgrade"].is_null()).then_some(s)
    });
    let reason = str_of(&s["rolledBack"]["reason"]);
    assert!(
        reason.contains("not done within 4 s") && reason.contains("0 of 2 new worker pods Ready"),
        "{reason}"
    );
    assert_eq!(s["lastUpgrade"]["reason"], "rollback");
    let (degraded, why, message) = condition(&s, "Degraded");
    assert_eq!((degraded.as_str(), why.as_str()), ("True", "ChangeFailed"), "{message}");
    assert!(cpu_requested(&c, ns).is_null(), "the stable template is back");
    let serial = s["deployed"]["serial"].clone();
    assert_eq!(serial, 3, "deployed: first, the failed change, the rollback");
    wait_for("the stable spec's pods", T, || {
        let pods = c.pods(ns, "clicks");
        (pods.len() == 2 && pods.iter().all(|p| p.2 && p.1 == "3")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let s = c.status(ns, "clicks");
    assert_eq!(
        (s["deployed"]["serial"].clone(), s["phase"].clone()),
        (serial, "RolledBack".into())
    );
    assert!(events(&c, ns).contains("\"reason\": \"RolledBack\""));

    // A newer spec goes ahead and clears the rollback.
    let changed = PIPELINE.replace("key_by: id", "key_by: value");
    c.apply_in(ns, &job(&changed)).unwrap();
    wait_for("the newer spec running", T, || {
        let s = c.status(ns, "clicks");
        (s["lastUpgrade"]["reason"] == "upgrade"
            && s["upgrade"].is_null()
            && s["phase"] == "Running"
            && s["rolledBack"].is_null())
        .then_some(())
    });
    wait_for("the newer spec recorded as stable", T, || {
        let s = c.status(ns, "clicks");
        (s["lastStableSpec"]["jobHash"] == s["deployed"]["jobHash"]).then_some(())
    });

    // A job that fails after a change rolls back at once, not at the deadline.
    let slow = with_coordinator(
        &stream_job("clicks", 2, "last-state", PIPELINE),
        &coordinator,
        "timeoutSeconds: 300\nstableSeconds: 1",
    );
    coordinator.set(JobPhase::Failed, Some("pipeline: unknown connector 'kafak'"));
    c.apply_in(ns, &slow).unwrap();
    let s = wait_for("the rollback of a failing job", Duration::from_secs(30), || {
        let s = c.status(ns, "clicks");
        (s["rolledBack"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unknown connector")))
        .then_some(s)
    });
    assert!(str_of(&s["rolledBack"]["reason"]).starts_with("the job failed"), "{s}");
    coordinator.set(JobPhase::Running, None);
    wait_for("rolled back and running", T, || {
        let s = c.status(ns, "clicks");
        (s["phase"] == "RolledBack" && s["upgrade"].is_null()).then_some(())
    });
    let cm = c.get(ns, "configmap/clicks").unwrap();
    assert!(
        str_of(&cm["data"]["job.yaml"]).contains("key_by: value"),
        "the stable job runs"
    );
}

#[test]
fn a_change_stuck_without_rollback_is_superseded_by_a_newer_spec() {
    let c = cluster();
    let ns = c.namespace("supersede");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let policy = "timeoutSeconds: 3\nrollback: false";
    let job = |pipeline: &str| with_coordinator(&stream_job("clicks", 1, "last-state", pipeline), &coordinator, policy);
    c.apply_in(ns, &job(PIPELINE)).unwrap();
    wait_for("running", T, || {
        (c.status(ns, "clicks")["phase"] == "Running").then_some(())
    });
    c.apply_in(ns, &unschedulable(&job(PIPELINE))).unwrap();
    let s = wait_for("the change failed", T, || {
        let s = c.status(ns, "clicks");
        s["upgrade"]["failed"].as_str().is_some().then_some(s)
    });
    assert_eq!(s["upgrade"]["step"], "restore");
    assert_eq!(condition(&s, "Degraded").1, "ChangeFailed");
    assert!(events(&c, ns).contains("upgrade.rollback is off"));
    let changed = PIPELINE.replace("key_by: id", "key_by: value");
    c.apply_in(ns, &job(&changed)).unwrap();
    let s = wait_for("the newer spec running", T, || {
        let s = c.status(ns, "clicks");
        (s["upgrade"].is_null() && s["phase"] == "Running").then_some(s)
    });
    assert_eq!(s["deployed"]["serial"], 3);
    assert!(cpu_requested(&c, ns).is_null());
    assert_eq!(condition(&s, "Degraded").0, "False");
    assert!(events(&c, ns).contains("\"reason\": \"ChangeSuperseded\""));
}

#[test]
fn a_change_completes_only_on_the_coordinators_word_and_a_silent_coordinator_shows() {
    let c = cluster();
    let ns = c.namespace("word");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Deploying);
    let job = |p: u32| with_coordinator(&stream_job("clicks", p, "last-state", PIPELINE), &coordinator, "");
    c.apply_in(ns, &job(1)).unwrap();
    wait_for("deploying", T, || {
        let pods = c.pods(ns, "clicks");
        (pods.len() == 1 && pods[0].2 && c.status(ns, "clicks")["phase"] == "Deploying").then_some(())
    });
    // Neither a coordinator still deploying nor one that does not answer completes a change,
    // however Ready the pods are.
    for (phase, scale) in [(JobPhase::Deploying, 2), (JobPhase::Unspecified, 3)] {
        coordinator.set(phase, None);
        c.apply_in(ns, &job(scale)).unwrap();
        wait_for("the new pods Ready", T, || {
            let pods = c.pods(ns, "clicks");
            (pods.len() == scale as usize && pods.iter().all(|p| p.2)).then_some(())
        });
        std::thread::sleep(Duration::from_secs(3));
        let s = c.status(ns, "clicks");
        assert_eq!(
            s["upgrade"]["step"], "restore",
            "{phase:?}: Ready pods are not the job running: {s}"
        );
        coordinator.set(JobPhase::Running, None);
        wait_for("the rescale completed", T, || {
            let s = c.status(ns, "clicks");
            (s["lastUpgrade"]["toParallelism"] == scale && s["phase"] == "Running").then_some(())
        });
    }
    // A steady job whose coordinator stops answering shows it.
    coordinator.set(JobPhase::Unspecified, None);
    let s = wait_for("unreachable", T, || {
        let s = c.status(ns, "clicks");
        (s["phase"] == "Unreachable").then_some(s)
    });
    let (degraded, why, _) = condition(&s, "Degraded");
    assert_eq!((degraded.as_str(), why.as_str()), ("True", "CoordinatorUnreachable"));
    drop(coordinator);
}

#[test]
fn an_object_someone_else_made_is_never_taken_over() {
    let c = cluster();
    let ns = c.namespace("owned");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    c.kubectl(&["create", "configmap", "clicks", "-n", ns, "--from-literal=keep=me"])
        .unwrap();
    c.apply_in(ns, &stream_job("clicks", 1, "last-state", PIPELINE))
        .unwrap();
    let s = wait_for("the conflict shown", T, || {
        let s = c.status(ns, "clicks");
        (condition(&s, "Degraded").1 == "ObjectConflict").then_some(s)
    });
    let message = condition(&s, "Degraded").2;
    assert!(
        message.contains("ConfigMap") && message.contains("/clicks") && message.contains("not by this StreamJob"),
        "{message}"
    );
    let cm = c.get(ns, "configmap/clicks").unwrap();
    assert_eq!(cm["data"], serde_json::json!({"keep": "me"}), "left as it was");
    assert!(cm["metadata"]["ownerReferences"].is_null(), "not adopted");
    assert!(c.get(ns, "statefulset/clicks").is_none(), "nothing deployed beside it");
    c.kubectl(&["delete", "configmap", "clicks", "-n", ns]).unwrap();
    wait_for("deployed once the name is free", T, || c.get(ns, "statefulset/clicks"));
}

#[test]
fn a_change_reverted_after_the_job_stopped_restarts_it() {
    let c = cluster();
    let ns = c.namespace("revert");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let job = |p: u32| with_coordinator(&stream_job("clicks", p, "savepoint", PIPELINE), &coordinator, "");
    c.apply_in(ns, &job(2)).unwrap();
    wait_for("running", T, || {
        (c.status(ns, "clicks")["phase"] == "Running").then_some(())
    });
    // The savepoint step cannot proceed while the job restarts…
    coordinator.set(JobPhase::Restarting, None);
    c.apply_in(ns, &job(3)).unwrap();
    wait_for("the rescale at its savepoint step", T, || {
        (c.status(ns, "clicks")["upgrade"]["step"] == "savepoint").then_some(())
    });
    // …then the job is found stopped with a savepoint (an operator stopped it and died before
    // recording that), and the spec goes back: the job must not stay stopped.
    coordinator.set(JobPhase::Stopped, None);
    c.apply_in(ns, &job(2)).unwrap();
    // (A reconcile may have gone on with the 3-worker spec while the job was found stopped and
    // before the revert arrived; then the revert supersedes it: either way, a new deployment
    // at the reverted size.)
    let serial = wait_for("redeployed at the reverted size", T, || {
        let s = c.status(ns, "clicks");
        let serial = s["deployed"]["serial"].as_i64()?;
        (serial >= 2 && s["deployed"]["parallelism"] == 2).then_some(serial)
    });
    coordinator.set(JobPhase::Running, None);
    wait_for("running again", T, || {
        let s = c.status(ns, "clicks");
        (s["upgrade"].is_null() && s["phase"] == "Running").then_some(())
    });

    // A rescale in savepoint mode: the stop-with-savepoint is triggered, polled until done, and
    // the new deployment restores from it.
    c.apply_in(ns, &job(3)).unwrap();
    let s = wait_for("deployed from the savepoint", T, || {
        let s = c.status(ns, "clicks");
        (s["deployed"]["serial"].as_i64() == Some(serial + 1)).then_some(s)
    });
    let from = str_of(&s["deployed"]["restoreFrom"]);
    assert!(from.contains("/savepoints/savepoint-"), "{s}");
    assert_eq!(str_of(&s["lastSavepoint"]["path"]), from);
    assert_eq!(coordinator.savepoints_taken(), 1, "one savepoint for the change");
    coordinator.set(JobPhase::Running, None);
    wait_for("the rescale completed", T, || {
        let s = c.status(ns, "clicks");
        (s["lastUpgrade"]["toParallelism"] == 3 && s["phase"] == "Running").then_some(())
    });
}

#[test]
fn of_two_operators_one_leads_and_the_other_finishes_a_change_when_the_leader_dies() {
    let c = cluster();
    let ns = c.namespace("leader");
    let ns = ns.name.as_str();
    let election = [
        "--leader-election",
        "--lease-namespace",
        ns,
        "--lease-duration-seconds",
        "3",
    ];
    let first = c.operator_with(ns, None, &election);
    wait_for("the first operator leading", T, || {
        first.log().contains("leading").then_some(())
    });
    let second = c.operator_with(ns, None, &election);
    wait_for("the second one waiting", T, || {
        second.log().contains("another replica leads").then_some(())
    });
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    let job = |p: u32| with_coordinator(&stream_job("clicks", p, "last-state", PIPELINE), &coordinator, "");
    c.apply_in(ns, &job(1)).unwrap();
    wait_for("running", T, || {
        (c.status(ns, "clicks")["phase"] == "Running").then_some(())
    });
    // A rescale the leader cannot finish yet (the job is deploying)…
    coordinator.set(JobPhase::Deploying, None);
    c.apply_in(ns, &job(2)).unwrap();
    wait_for("the rescale at its restore step", T, || {
        (c.status(ns, "clicks")["upgrade"]["step"] == "restore").then_some(())
    });
    assert!(
        !second.log().contains("ChangeStarted"),
        "the follower does not reconcile"
    );
    // …then the leader dies; the other takes the Lease over and finishes it.
    let lease = c.get(ns, "lease/weir-operator").expect("the Lease");
    let leader = str_of(&lease["spec"]["holderIdentity"]);
    first.kill();
    coordinator.set(JobPhase::Running, None);
    wait_for("the second operator leading", T, || {
        second.log().contains("leading: reconciling").then_some(())
    });
    wait_for("the rescale finished by the new leader", T, || {
        let s = c.status(ns, "clicks");
        (s["lastUpgrade"]["toParallelism"] == 2 && s["phase"] == "Running").then_some(())
    });
    let lease = c.get(ns, "lease/weir-operator").unwrap();
    assert_ne!(str_of(&lease["spec"]["holderIdentity"]), leader);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

#[test]
fn a_job_restarting_too_often_or_not_checkpointing_is_restarted_by_the_health_check() {
    let c = cluster();
    let ns = c.namespace("health");
    let ns = ns.name.as_str();
    let op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    coordinator.set_progress(0, true);
    let manifest = with_coordinator(&stream_job("clicks", 2, "last-state", PIPELINE), &coordinator, "").replacen(
        "spec:\n",
        "spec:\n  healthCheck: {restartsThreshold: 3, windowSeconds: 5, checkpointProgressSeconds: 4}\n",
        1,
    );
    c.apply_in(ns, &manifest).unwrap();
    wait_for("running", T, || {
        let pods = c.pods(ns, "clicks");
        (c.status(ns, "clicks")["phase"] == "Running" && pods.len() == 2 && pods.iter().all(|p| p.2)).then_some(())
    });
    let uids = |c: &common::Cluster| -> Vec<String> {
        c.live_pods(ns, "clicks")
            .iter()
            .map(|p| str_of(&p["metadata"]["uid"]))
            .collect()
    };
    let first = uids(&c);
    // Five restarts since the last look: unhealthy, every pod replaced.
    coordinator.set_progress(5, true);
    let s = wait_for("restarted for its restarts", T, || {
        let s = c.status(ns, "clicks");
        let now = uids(&c);
        (condition(&s, "Degraded").1 == "Unhealthy" && !now.is_empty() && now.iter().all(|u| !first.contains(u)))
            .then_some(s)
    });
    assert!(
        condition(&s, "Degraded").2.contains("5 restarts in the last 5 s"),
        "{s}"
    );
    let second = wait_for("the new pods", T, || {
        let now = uids(&c);
        (now.len() == 2).then_some(now)
    });
    // Checkpoints stop completing: after 4 s (and the 5 s window since the last restart),
    // restarted again.
    coordinator.set_progress(5, false);
    wait_for("restarted for stalled checkpoints", Duration::from_secs(60), || {
        let s = c.status(ns, "clicks");
        let now = uids(&c);
        (condition(&s, "Degraded").2.contains("no checkpoint completed") && now.iter().all(|u| !second.contains(u)))
            .then_some(())
    });
    assert!(events(&c, ns).contains("\"reason\": \"Unhealthy\""));
    assert!(op.log().contains("Unhealthy"));
}

#[test]
fn a_job_gets_a_dashboard_service_and_the_ingress_the_operator_is_told_to_make() {
    let c = cluster();
    let ns = c.namespace("ui");
    let ns = ns.name.as_str();
    let op = c.operator_with(
        ns,
        None,
        &[
            "--dashboard-ingress-host",
            "{name}.{namespace}.weir.test",
            "--dashboard-ingress-class",
            "nginx",
            "--dashboard-ingress-annotations",
            r#"{"example.com/auth": "basic"}"#,
        ],
    );
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    c.apply_in(
        ns,
        &with_coordinator(&stream_job("views", 1, "last-state", PIPELINE), &coordinator, ""),
    )
    .unwrap();
    let ingress = wait_for("the dashboard's Ingress", T, || c.get(ns, "ingress/views-ui"));
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], format!("views.{ns}.weir.test"));
    let backend = &rule["http"]["paths"][0]["backend"]["service"];
    assert_eq!(
        (str_of(&backend["name"]), backend["port"]["number"].clone()),
        ("views-ui".into(), 8081.into())
    );
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["metadata"]["annotations"]["example.com/auth"], "basic");
    assert_eq!(ingress["metadata"]["ownerReferences"][0]["name"], "views");
    let service = c.get(ns, "service/views-ui").unwrap();
    assert_eq!(
        service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
        "views-0"
    );
    let s = wait_for("the Ingress's URL in the status", T, || {
        let s = c.status(ns, "views");
        (s["dashboard"] == format!("http://views.{ns}.weir.test/")).then_some(s)
    });
    assert_eq!(s["selector"], "weir.dev/job=views");
    drop(op);
}

#[test]
fn the_autoscaler_scales_a_busy_job_up_once_and_explains_why() {
    let c = cluster();
    let ns = c.namespace("auto");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    // Two subtasks each 95 % busy at 9,500 records/s: one does 10,000/s, so 19,000/s at 70 %
    // needs 3 subtasks, 4 with the key groups spread evenly.
    coordinator.set_load(2, 0.95, 9_500.0);
    let manifest = stream_job("busy", 2, "last-state", PIPELINE).replace(
        "  upgradeMode: last-state\n",
        "  upgradeMode: last-state\n  autoscaler:\n    enabled: true\n    metricWindowSeconds: 3\n    \
         scaleUpCooldownSeconds: 2\n    scaleDownDelaySeconds: 600\n",
    );
    c.apply_in(ns, &with_coordinator(&manifest, &coordinator, "")).unwrap();
    wait_for("2 ready pods", T, || (c.pods(ns, "busy").len() == 2).then_some(()));
    let s = wait_for("the autoscaler's rescale", T, || {
        let s = c.status(ns, "busy");
        (s["currentParallelism"] == 4 && s["upgrade"].is_null()).then_some(s)
    });
    let job = c.get(ns, "streamjob/busy").unwrap();
    assert_eq!(job["spec"]["parallelism"], 4, "the autoscaler set the spec");
    let history = s["autoscaler"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{s}");
    assert_eq!(
        (history[0]["from"].clone(), history[0]["to"].clone()),
        (2.into(), 4.into())
    );
    assert!(str_of(&history[0]["reason"]).contains("win is 95 % busy"), "{s}");
    assert_eq!(s["lastUpgrade"]["reason"], "rescale");
    let events = c.kubectl(&["get", "events", "-n", ns, "-o", "json"]).unwrap();
    assert!(
        events.contains("AutoscalerScaleUp") && events.contains("needs 3"),
        "{events}"
    );

    // At 4 the load halves per subtask: it holds (and says so), whatever the next samples.
    coordinator.set_load(4, 0.5, 4_750.0);
    wait_for("a decision at 4", T, || {
        let s = c.status(ns, "busy");
        let d = &s["autoscaler"]["lastDecision"];
        (d["current"] == 4 && d["action"] == "hold" && str_of(&d["reason"]).contains("at the target")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    let s = c.status(ns, "busy");
    assert_eq!(
        s["autoscaler"]["history"].as_array().unwrap().len(),
        1,
        "no flapping: {s}"
    );
    assert_eq!(c.get(ns, "streamjob/busy").unwrap()["spec"]["parallelism"], 4);
}

#[test]
fn the_autoscaler_in_dry_run_recommends_and_reports_but_does_not_rescale() {
    let c = cluster();
    let ns = c.namespace("dry");
    let ns = ns.name.as_str();
    let _op = c.operator(ns, None);
    let coordinator = FakeCoordinator::start(JobPhase::Running);
    coordinator.set_load(2, 0.95, 9_500.0);
    let manifest = stream_job("busy", 2, "savepoint", PIPELINE).replace(
        "  upgradeMode: savepoint\n",
        "  upgradeMode: savepoint\n  autoscaler:\n    enabled: true\n    dryRun: true\n    metricWindowSeconds: 3\n    \
         scaleUpCooldownSeconds: 2\n",
    );
    c.apply_in(ns, &with_coordinator(&manifest, &coordinator, "")).unwrap();
    let s = wait_for("the dry run's decision", T, || {
        let s = c.status(ns, "busy");
        (s["autoscaler"]["history"].as_array().is_some_and(|h| !h.is_empty())).then_some(s)
    });
    let change = &s["autoscaler"]["history"][0];
    assert_eq!(
        (change["from"].clone(), change["to"].clone(), change["dryRun"].clone()),
        (2.into(), 4.into(), true.into()),
        "{s}"
    );
    assert_eq!(s["autoscaler"]["recommendedParallelism"], 4, "{s}");
    let events = c.kubectl(&["get", "events", "-n", ns, "-o", "json"]).unwrap();
    assert!(events.contains("dry run: scale up 2 → 4"), "{events}");
    // Nothing changes: the spec, the StatefulSet, the job.
    let job = c.get(ns, "streamjob/busy").unwrap();
    assert_eq!(job["spec"]["parallelism"], 2, "a dry run does not set the spec");
    assert!(s["upgrade"].is_null() && s["currentParallelism"] == 2, "{s}");
    assert_eq!(coordinator.savepoints_taken(), 0, "no savepoint for a rescale");
}
