//! `weir-operator`: reconciles `StreamJob` resources into worker StatefulSets (see
//! `weir_operator::reconcile`). Connects with the in-cluster service account or `KUBECONFIG`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use weir_operator::crd::StreamJob;
use weir_operator::reconcile::{self, Context, Metrics};

/// The Weir operator.
#[derive(Debug, Parser)]
#[command(name = "weir-operator", version, about)]
struct Args {
    /// Namespaces to watch (comma-separated); all namespaces when empty.
    #[arg(long, env = "WEIR_WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "WEIR_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
    http: SocketAddr,
    /// Name under which events are reported (the pod's name in a cluster).
    #[arg(long, env = "POD_NAME", default_value = "weir-operator")]
    instance: String,
    /// Run several replicas: only the one holding the Lease reconciles (the others wait, ready to
    /// take over when it stops renewing).
    #[arg(long, env = "WEIR_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the Lease (the operator's own, in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "WEIR_LEASE_NAME", default_value = "weir-operator")]
    lease_name: String,
    /// Seconds a leader holds the Lease without renewing it; a replica takes over after that.
    #[arg(long, env = "WEIR_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Give each job's dashboard an Ingress for this host (`{name}` and `{namespace}` are the
    /// job's: `{name}.{namespace}.weir.example.com`); none: no Ingress.
    #[arg(long, env = "WEIR_DASHBOARD_INGRESS_HOST")]
    dashboard_ingress_host: Option<String>,
    /// The Ingresses' IngressClass (none: the cluster's default).
    #[arg(long, env = "WEIR_DASHBOARD_INGRESS_CLASS")]
    dashboard_ingress_class: Option<String>,
    /// A TLS Secret (in each job's namespace) for the Ingresses' host.
    #[arg(long, env = "WEIR_DASHBOARD_INGRESS_TLS_SECRET")]
    dashboard_ingress_tls_secret: Option<String>,
    /// The Ingresses' annotations, a JSON object (`{"nginx.ingress.kubernetes.io/auth-type": "basic"}`).
    #[arg(long, env = "WEIR_DASHBOARD_INGRESS_ANNOTATIONS")]
    dashboard_ingress_annotations: Option<String>,
}

impl Args {
    /// The dashboard's Ingress settings, if a host is given.
    fn dashboard_ingress(&self) -> anyhow::Result<Option<weir_operator::resources::DashboardIngress>> {
        let Some(host) = self.dashboard_ingress_host.clone().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let annotations = match self.dashboard_ingress_annotations.as_deref() {
            None | Some("") | Some("null") => Default::default(),
            Some(text) => serde_json::from_str(text).with_context(|| {
                format!("--dashboard-ingress-annotations must be a JSON object of strings, got {text}")
            })?,
        };
        let some = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(Some(weir_operator::resources::DashboardIngress {
            host,
            class: some(&self.dashboard_ingress_class),
            tls_secret: some(&self.dashboard_ingress_tls_secret),
            annotations,
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let dashboard_ingress = args.dashboard_ingress()?;
    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster service account or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::default());
    let bound = weir_operator::http::serve(args.http, metrics.clone())
        .await
        .with_context(|| format!("cannot listen on {} (--http)", args.http))?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "weir-operator".into(),
            instance: Some(args.instance.clone()),
        },
    );
    let mut ctx = Context::new(client.clone(), recorder, metrics);
    ctx.dashboard_ingress = dashboard_ingress;
    let ctx = Arc::new(ctx);
    let scopes = weir_operator::watch_scopes(&args.namespaces);
    tracing::info!(namespaces = ?scopes, http = %bound, "weir-operator up");
    // Ready once every watched namespace's StreamJobs can be listed (API server reachable, RBAC
    // and CRD in place); until then /readyz says why not.
    {
        let (client, scopes, metrics) = (client.clone(), scopes.clone(), ctx.metrics.clone());
        tokio::spawn(async move {
            loop {
                let mut ok = true;
                for ns in &scopes {
                    let jobs: Api<StreamJob> = match ns {
                        Some(ns) => Api::namespaced(client.clone(), ns),
                        None => Api::all(client.clone()),
                    };
                    if let Err(e) = jobs.list(&kube::api::ListParams::default().limit(1)).await {
                        tracing::warn!(namespace = ?ns, error = %e, "cannot list StreamJobs yet");
                        ok = false;
                    }
                }
                if ok {
                    metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        });
    }
    let lost = if args.leader_election {
        let suffix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let elector = weir_operator::leader::Elector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            format!("{}-{:08x}", args.instance, suffix ^ std::process::id()),
            std::time::Duration::from_secs(args.lease_duration_seconds.max(1)),
        );
        elector.acquire().await;
        tracing::info!(lease = %args.lease_name, me = %elector.me, "leading: reconciling");
        Some(tokio::spawn(async move { elector.hold().await }))
    } else {
        None
    };
    let controllers = scopes.into_iter().map(|ns| {
        let (jobs, sets): (Api<StreamJob>, Api<StatefulSet>) = match &ns {
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        // Only the StatefulSets the operator made: its memory does not grow with the cluster's.
        let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=weir-operator");
        Controller::new(jobs, watcher::Config::default())
            .owns(sets, owned)
            .shutdown_on_signal()
            .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
            .for_each(|result| {
                let metrics = ctx.metrics.clone();
                async move {
                    match result {
                        // Deleted: its per-job series go with it.
                        Err(kube::runtime::controller::Error::ObjectNotFound(o)) => {
                            metrics.forget(&format!("{}/{}", o.namespace.unwrap_or_default(), o.name));
                        }
                        Err(e) => tracing::debug!(error = %e, "reconcile"),
                        Ok(_) => {}
                    }
                }
            })
    });
    let all = futures::future::join_all(controllers);
    match lost {
        Some(lost) => {
            tokio::select! {
                _ = all => {}
                why = lost => {
                    // No longer the leader: stop at once (the Deployment restarts this replica
                    // as a follower) rather than reconcile beside the new leader.
                    let why = why.unwrap_or_else(|e| e.to_string());
                    tracing::error!(reason = %why, "lost the leadership; exiting");
                    std::process::exit(1);
                }
            }
        }
        None => {
            all.await;
        }
    }
    tracing::info!("weir-operator stopped");
    Ok(())
}
