//! The operator against a real control plane: kube-apiserver, controller-manager and scheduler
//! 1.37 with etcd, and kwok's fake node, so StatefulSets really create Pods that get scheduled
//! and become Ready (without containers: the coordinator is not reachable here; the real pods
//! are in `real_pods.rs`). Started once per test run by `scripts/kube-up`.

use crate::common;

use std::time::Duration;

use crate::common::{PIPELINE, cluster, stream_job, wait_for};

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
    c.apply_in(ns, &stream_job("clicks", 2, "last-state", PIPELINE))
        .unwrap();

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
    c.apply_in(ns, &stream_job("clicks", 3, "last-state", &changed))
        .unwrap();
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
        e.contains("set exactly one of job.sql, job.pipeline, job.builtin"),
        "{e}"
    );
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
    for kind in ["statefulsets", "configmaps", "services"] {
        let list = c.get(ns, &format!("{kind} -l weir.dev/job=clicks")).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "one {kind}");
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
    c.apply_in(ns, &stream_job("clicks", 1, "stateless", PIPELINE)).unwrap();
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
    c.apply_in(ns, &stream_job("clicks", 1, "stateless", &changed)).unwrap();
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
}
