//! The Helm chart (`charts/weir`) with Helm 4 against the real control plane: lint, install,
//! and the operator running with the chart's own ServiceAccount (its RBAC, not an admin's)
//! reconciling a StreamJob; what the chart does not grant is refused; the operator's and the
//! workers' pods pass Pod Security "restricted".

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{PIPELINE, cluster, repo, run_with, stream_job, wait_for};

fn str_of_json(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn helm(c: &common::Cluster, home: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let tools = std::env::var("WEIR_KUBE_TOOLS").expect("WEIR_KUBE_TOOLS (scripts/kube-up sets it)");
    run_with(
        Command::new(PathBuf::from(tools).join("helm"))
            .args(args)
            .env("KUBECONFIG", &c.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data")),
        None,
    )
}

#[test]
fn the_chart_installs_and_its_service_account_is_enough_and_no_more() {
    let c = cluster();
    let home = tempfile::tempdir().unwrap();
    let chart = repo("charts/weir");
    let lint = helm(&c, home.path(), &["lint", "--strict", &chart]).unwrap();
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let system = c.namespace("weir-system");
    let jobs = c.namespace("streams");
    let (system, jobs) = (system.name.as_str(), jobs.name.as_str());
    let release = format!("weir-{}", &system[system.len() - 5..]);
    // Pod Security "restricted" enforced where the operator and the job's workers run: their
    // pods are admitted only as restricted pods.
    for ns in [system, jobs] {
        c.kubectl(&[
            "label",
            "namespace",
            ns,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        ])
        .unwrap();
    }
    let out = helm(
        &c,
        home.path(),
        &[
            "install",
            &release,
            &chart,
            "-n",
            system,
            "--set",
            &format!("watchNamespaces={{{jobs}}}"),
            "--wait",
            "--timeout",
            "90s",
        ],
    )
    .unwrap_or_else(|e| panic!("helm install: {e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deploy = c.get(system, &format!("deployment/{release}-operator")).unwrap();
    assert_eq!(
        deploy["status"]["readyReplicas"], 2,
        "the operator's Deployment is ready (on the fake node), two replicas electing a leader"
    );
    assert!(
        c.get(jobs, &format!("role/{release}-operator")).is_some(),
        "a Role in the watched namespace"
    );

    // The operator as the chart's ServiceAccount.
    let sa = format!("{release}-operator");
    let token = c
        .kubectl(&["create", "token", &sa, "-n", system, "--duration=1h"])
        .unwrap();
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let kubeconfig = home.path().join("operator.kubeconfig");
    let token_line = admin.lines().find(|l| l.trim_start().starts_with("token:")).unwrap();
    std::fs::write(
        &kubeconfig,
        admin.replace(token_line, &format!("    token: {}", token.trim())),
    )
    .unwrap();
    let as_sa = format!("system:serviceaccount:{system}:{sa}");
    let can = |verb: &str, what: &str, ns: &str| {
        c.kubectl(&["auth", "can-i", verb, what, "-n", ns, "--as", &as_sa])
            .unwrap_or_else(|e| e)
            .trim()
            .to_string()
    };
    // The API server's RBAC cache learns of the new bindings within moments.
    wait_for("the chart's RoleBinding in effect", Duration::from_secs(20), || {
        (can("patch", "statefulsets", jobs) == "yes").then_some(())
    });
    let status = c
        .kubectl(&[
            "auth",
            "can-i",
            "patch",
            "streamjobs.weir.dev",
            "--subresource=status",
            "-n",
            jobs,
            "--as",
            &as_sa,
        ])
        .unwrap_or_else(|e| e);
    assert_eq!(status.trim(), "yes");
    assert_eq!(can("get", "secrets", jobs), "no", "the operator never reads secrets");
    assert_eq!(
        can("create", "statefulsets", "default"),
        "no",
        "only the watched namespace"
    );
    assert_eq!(can("delete", "streamjobs.weir.dev", jobs), "no");

    // Namespace users get StreamJobs with the built-in roles (aggregated ClusterRoles).
    c.kubectl(&[
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        jobs,
    ])
    .unwrap();
    c.kubectl(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
        "-n",
        jobs,
    ])
    .unwrap();
    let user_can = |user: &str, verb: &str| {
        c.kubectl(&["auth", "can-i", verb, "streamjobs.weir.dev", "-n", jobs, "--as", user])
            .unwrap_or_else(|e| e)
            .trim()
            .to_string()
    };
    wait_for("the aggregated roles in effect", Duration::from_secs(20), || {
        (user_can("alice", "create") == "yes" && user_can("bob", "list") == "yes").then_some(())
    });
    assert_eq!(user_can("alice", "delete"), "yes");
    assert_eq!(user_can("bob", "create"), "no", "view reads only");

    // Not ready while it cannot list the StreamJobs it is told to watch.
    let blind = c.operator("default", Some(&kubeconfig));
    wait_for("/readyz says why not", Duration::from_secs(20), || {
        let r = blind.http_get("/readyz");
        (r.starts_with("HTTP/1.1 503") && r.contains("cannot be listed")).then_some(())
    });
    drop(blind);

    // With leader election as the chart runs it (its Lease in the operator's namespace).
    let lease = format!("{release}-test");
    let op = c.operator_with(
        jobs,
        Some(&kubeconfig),
        &["--leader-election", "--lease-namespace", system, "--lease-name", &lease],
    );
    // The fake node's pods run no containers: a stand-in coordinator says the job runs.
    let coordinator = common::FakeCoordinator::start(weir_proto::rpc::JobPhase::Running);
    c.apply_in(
        jobs,
        &common::with_coordinator(&stream_job("clicks", 2, "last-state", PIPELINE), &coordinator, ""),
    )
    .unwrap();
    wait_for(
        "the job deployed by the chart's identity",
        Duration::from_secs(60),
        || {
            let s = c.status(jobs, "clicks");
            let pods = c.pods(jobs, "clicks");
            (s["deployed"]["parallelism"] == 2 && pods.len() == 2 && pods.iter().all(|p| p.2)).then_some(())
        },
    );
    c.kubectl(&["scale", "-n", jobs, "streamjob/clicks", "--replicas=1"])
        .unwrap();
    wait_for("the rescale by the chart's identity", Duration::from_secs(60), || {
        let s = c.status(jobs, "clicks");
        (s["lastUpgrade"]["toParallelism"] == 1).then_some(())
    });
    assert!(op.http_get("/readyz").starts_with("HTTP/1.1 200"));
    let held = c.get(system, &format!("lease/{lease}")).expect("the Lease");
    assert!(
        str_of_json(&held["spec"]["holderIdentity"]).starts_with("weir-operator-"),
        "{held}"
    );
    let log = op.kill();
    assert!(!log.contains("Forbidden") && !log.contains("forbidden"), "{log}");

    helm(&c, home.path(), &["uninstall", &release, "-n", system, "--wait"]).unwrap();
    assert!(c.get(system, &format!("deployment/{release}-operator")).is_none());
}

#[test]
fn the_chart_gives_jobs_an_ingress_only_when_asked() {
    let c = cluster();
    let home = tempfile::tempdir().unwrap();
    let chart = repo("charts/weir");
    let off = helm(&c, home.path(), &["template", "w", &chart]).unwrap();
    assert!(!off.contains("WEIR_DASHBOARD_INGRESS_HOST"), "off by default");
    assert!(!off.contains("ingresses"), "no Ingress rights when off");
    let on = helm(
        &c,
        home.path(),
        &[
            "template",
            "w",
            &chart,
            "--set",
            "dashboard.ingress.enabled=true",
            "--set",
            "dashboard.ingress.className=nginx",
            "--set",
            "dashboard.ingress.annotations.example\\.com/auth=basic",
        ],
    )
    .unwrap();
    for wanted in [
        "name: WEIR_DASHBOARD_INGRESS_HOST\n              value: \"{name}.{namespace}.weir.example.com\"",
        "name: WEIR_DASHBOARD_INGRESS_CLASS\n              value: \"nginx\"",
        "value: \"{\\\"example.com/auth\\\":\\\"basic\\\"}\"",
        "resources: [\"ingresses\"]",
    ] {
        assert!(on.contains(wanted), "{wanted} in\n{on}");
    }
}
