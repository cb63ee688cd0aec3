//! The REST API on the coordinator's HTTP port (`weir cluster`, worker pod 0, `weir run --ui`):
//! Flink's resource names (`/overview`, `/jobs`, `/jobs/{id}`, `…/vertices/{vid}`,
//! `…/checkpoints`, `…/checkpoints/config`, `…/exceptions`, `/taskmanagers`), Prometheus text
//! on `/metrics`, the older `/status` JSON and `/healthz`; `POST /jobs/{id}/savepoints` and
//! `PATCH /jobs/{id}?mode=stop` for clients holding the bearer token; the dashboard on `/`
//! ([`ui`]). Served by axum.
//!
//! Two kinds of job sit behind it ([`JobSource`]): the cluster's job master, and a job running
//! in this process.

mod auth;
mod documents;
pub mod local;
pub mod model;
pub mod openapi;
mod prometheus;
mod rates;
pub mod status;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use self::status::StatusView;
use crate::checkpoint::metrics::CheckpointRecord;
use crate::contract::error::{Result, WeirError};
use crate::graph::{JobConfig, LogicalGraph};
use crate::runtime::metrics::{ExceptionRecord, NodeStats, SubtaskStats};
use crate::runtime::process_usage::ProcessUsage;

use self::documents::Layout;
use self::model::Errors;

/// A job the API shows: what it is now, its graph, and savepoints on request.
#[async_trait::async_trait]
pub trait JobSource: Send + Sync + 'static {
    /// The job's figures now.
    fn snapshot(&self) -> JobSnapshot;
    /// The job's graph and settings (the plan's vertices come from them).
    fn graph(&self) -> (&LogicalGraph, &JobConfig);
    /// Takes a savepoint (`stop`: then stops the job); its directory, or why not.
    async fn savepoint(&self, stop: bool) -> std::result::Result<String, String>;
}

/// What a [`JobSource`] reports at one moment.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    /// The job's state and totals (as `/status` shows them).
    pub status: StatusView,
    /// When the job started here, ms since the epoch.
    pub started_ms: i64,
    /// The last checkpoints, oldest first.
    pub checkpoints: Vec<CheckpointRecord>,
    /// The last failures, oldest first.
    pub exceptions: Vec<ExceptionRecord>,
    /// Per worker.
    pub workers: Vec<WorkerSnapshot>,
}

/// One worker as the coordinator sees it.
#[derive(Debug, Clone)]
pub struct WorkerSnapshot {
    /// Its ordinal.
    pub ordinal: usize,
    /// Where it listens, while attached.
    pub address: Option<String>,
    /// Since its last heartbeat, ms (while attached).
    pub last_seen_ago_ms: Option<u64>,
    /// Its counters per node.
    pub nodes: Vec<NodeStats>,
    /// Its subtasks' figures.
    pub subtasks: Vec<SubtaskStats>,
    /// Bytes it sent to other workers.
    pub exchange_bytes_out: u64,
    /// Its process's memory and CPU time, when it reported them.
    pub usage: Option<ProcessUsage>,
}

/// Settings of the HTTP endpoint.
#[derive(Debug, Clone, Default)]
pub struct RestOptions {
    /// Bearer token the mutating endpoints require (none: they are refused; the API is
    /// read-only).
    pub token: Option<String>,
}

struct Api {
    source: Arc<dyn JobSource>,
    options: RestOptions,
    layout: tokio::sync::OnceCell<std::result::Result<Layout, String>>,
    windows: rates::RateWindows,
    cpu: rates::CpuWindows,
}

type Shared = State<Arc<Api>>;

/// The API's routes over `source`.
pub fn router(source: Arc<dyn JobSource>, options: RestOptions) -> Router {
    let api = Arc::new(Api {
        source,
        options,
        layout: tokio::sync::OnceCell::new(),
        windows: Default::default(),
        cpu: Default::default(),
    });
    Router::new()
        .route("/overview", get(overview))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job).patch(stop_job))
        .route("/jobs/{id}/vertices/{vid}", get(vertex))
        .route("/jobs/{id}/vertices/{vid}/taskmanagers", get(vertex_workers))
        .route("/jobs/{id}/vertices/{vid}/backpressure", get(backpressure))
        .route("/jobs/{id}/vertices/{vid}/watermarks", get(watermarks))
        .route("/jobs/{id}/checkpoints", get(checkpoints))
        .route("/jobs/{id}/checkpoints/config", get(checkpoint_config))
        .route("/jobs/{id}/exceptions", get(exceptions))
        .route("/jobs/{id}/savepoints", axum::routing::post(savepoint))
        .route("/taskmanagers", get(taskmanagers))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/", get(ui::index))
        .route("/assets/app.js", get(ui::script))
        .route("/assets/app.css", get(ui::style))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/openapi.json", get(|| async { json(openapi::document()) }))
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "no such resource; try /overview, /jobs, /metrics or /status",
            )
        })
        .with_state(api)
}

/// Serves the API for `source` on `addr` in the background; the address it listens on.
pub async fn serve(addr: SocketAddr, source: Arc<dyn JobSource>, options: RestOptions) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| WeirError::Cluster(format!("cannot listen for the REST API on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| WeirError::Cluster(format!("the REST API's listener on {addr}: {e}")))?;
    let app = router(source, options);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the REST API stopped");
        }
    });
    tracing::info!(address = %bound, "REST API listening");
    Ok(bound)
}

/// An error answer: its status code and message, sent in Flink's form (`{"errors": [...]}`).
#[derive(Debug)]
pub struct Problem {
    code: StatusCode,
    message: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.code,
            axum::Json(Errors {
                errors: vec![self.message],
            }),
        )
            .into_response()
    }
}

fn problem(code: StatusCode, message: impl Into<String>) -> Problem {
    Problem {
        code,
        message: message.into(),
    }
}

type Answer = std::result::Result<Response, Problem>;

impl Api {
    /// The snapshot, if `id` names this job.
    fn job(&self, id: &str) -> std::result::Result<JobSnapshot, Problem> {
        let snapshot = self.source.snapshot();
        if snapshot.status.job != id {
            return Err(problem(
                StatusCode::NOT_FOUND,
                format!("no job '{id}' here (this coordinator runs '{}')", snapshot.status.job),
            ));
        }
        Ok(snapshot)
    }

    /// The job's document, its subtasks' rates over the last window.
    async fn detail(&self, id: &str) -> std::result::Result<model::JobDetail, Problem> {
        let snapshot = self.job(id)?;
        let layout = self.layout().await?;
        let subtasks: Vec<_> = snapshot
            .workers
            .iter()
            .flat_map(|w| w.subtasks.iter().map(move |s| (w.ordinal, s)))
            .map(|(w, s)| (w, s.clone(), self.windows.rates(s)))
            .collect();
        Ok(documents::job(&snapshot, layout, self.source.graph().0, &subtasks))
    }

    /// One vertex of the job's document.
    async fn vertex(&self, id: &str, vid: &str) -> std::result::Result<model::Vertex, Problem> {
        self.detail(id)
            .await?
            .vertices
            .into_iter()
            .find(|v| v.id == vid)
            .ok_or_else(|| problem(StatusCode::NOT_FOUND, format!("job '{id}' has no vertex '{vid}'")))
    }

    /// The vertices of the plan (planned once).
    async fn layout(&self) -> std::result::Result<&Layout, Problem> {
        let layout = self
            .layout
            .get_or_init(|| async {
                let (graph, config) = self.source.graph();
                Layout::plan(graph, config).await.map_err(|e| e.to_string())
            })
            .await;
        layout.as_ref().map_err(|e| {
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the job cannot be planned: {e}"),
            )
        })
    }
}

fn json<T: serde::Serialize>(value: T) -> Response {
    axum::Json(value).into_response()
}

async fn overview(State(api): Shared) -> Response {
    json(documents::overview(&api.source.snapshot()))
}

async fn jobs(State(api): Shared) -> Response {
    json(documents::jobs(&api.source.snapshot()))
}

async fn job(State(api): Shared, Path(id): Path<String>) -> Answer {
    Ok(json(api.detail(&id).await?))
}

async fn vertex(State(api): Shared, Path((id, vid)): Path<(String, String)>) -> Answer {
    Ok(json(api.vertex(&id, &vid).await?))
}

async fn backpressure(State(api): Shared, Path((id, vid)): Path<(String, String)>) -> Answer {
    Ok(json(documents::backpressure(&api.vertex(&id, &vid).await?)))
}

async fn watermarks(State(api): Shared, Path((id, vid)): Path<(String, String)>) -> Answer {
    Ok(json(documents::watermarks(&api.vertex(&id, &vid).await?)))
}

async fn vertex_workers(State(api): Shared, Path((id, vid)): Path<(String, String)>) -> Answer {
    let snapshot = api.job(&id)?;
    let layout = api.layout().await?;
    documents::vertex_workers(&snapshot, layout, api.source.graph().0, &vid)
        .map(json)
        .ok_or_else(|| problem(StatusCode::NOT_FOUND, format!("job '{id}' has no vertex '{vid}'")))
}

async fn checkpoints(State(api): Shared, Path(id): Path<String>) -> Answer {
    Ok(json(documents::checkpoints(&api.job(&id)?)))
}

async fn checkpoint_config(State(api): Shared, Path(id): Path<String>) -> Answer {
    api.job(&id)?;
    Ok(json(documents::checkpoint_config(api.source.graph().1)))
}

async fn exceptions(State(api): Shared, Path(id): Path<String>) -> Answer {
    Ok(json(documents::exceptions(&api.job(&id)?)))
}

async fn taskmanagers(State(api): Shared) -> Response {
    json(documents::taskmanagers(&api.source.snapshot(), &api.cpu))
}

async fn status(State(api): Shared) -> Response {
    json(api.source.snapshot().status)
}

async fn metrics(State(api): Shared) -> Response {
    let text = prometheus::render(&api.source.snapshot());
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}

/// `PATCH /jobs/{id}?mode=stop`.
#[derive(serde::Deserialize)]
struct PatchQuery {
    mode: Option<String>,
}

async fn savepoint(State(api): Shared, Path(id): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> Answer {
    auth::check(&headers, api.options.token.as_deref())?;
    let request: model::SavepointRequest = if body.is_empty() {
        model::SavepointRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| problem(StatusCode::BAD_REQUEST, format!("the request body: {e}")))?
    };
    take_savepoint(&api, &id, request.cancel_job).await
}

async fn stop_job(
    State(api): Shared,
    Path(id): Path<String>,
    Query(query): Query<PatchQuery>,
    headers: HeaderMap,
) -> Answer {
    auth::check(&headers, api.options.token.as_deref())?;
    match query.mode.as_deref() {
        Some("stop") => take_savepoint(&api, &id, true).await,
        Some(other) => Err(problem(
            StatusCode::BAD_REQUEST,
            format!("mode '{other}' is not supported; use mode=stop (stop with a savepoint)"),
        )),
        None => Err(problem(
            StatusCode::BAD_REQUEST,
            "missing query parameter mode (mode=stop)",
        )),
    }
}

async fn take_savepoint(api: &Api, id: &str, stop: bool) -> Answer {
    api.job(id)?;
    match api.source.savepoint(stop).await {
        Ok(location) => Ok(json(model::SavepointDone {
            status: "completed".into(),
            location,
            stopped: stop,
        })),
        Err(e) => Err(problem(StatusCode::CONFLICT, format!("no savepoint: {e}"))),
    }
}
