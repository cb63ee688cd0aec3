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
    let ctx = Arc::new(Context::new(client.clone(), recorder, metrics));
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
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile");
                }
            })
    });
    futures::future::join_all(controllers).await;
    tracing::info!("weir-operator stopped");
    Ok(())
}
