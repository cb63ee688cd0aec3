//! `weir run` and `weir explain`: a job in this process, with a progress line, Ctrl-C and
//! savepoint signals.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use weir::pipeline;
use weir::rest::{self, local::LocalJob};
use weir::runtime::control::JobControl;
use weir::runtime::metrics::{JobMetrics, NodeRole};

use weir::cluster::cli::StateArgs;

use crate::cli::Progress;

/// `weir run --ui`: where to serve the REST API, and the token of its mutating endpoints.
pub struct Ui {
    /// Listen address (none: no API).
    pub addr: Option<std::net::SocketAddr>,
    /// Bearer token (none: read-only).
    pub token: Option<String>,
}

/// Runs (or with `explain`, plans and prints) the job in `file`.
pub async fn run(
    file: PathBuf,
    parallelism: Option<usize>,
    explain: bool,
    progress: Progress,
    ui: Ui,
    state: StateArgs,
) -> anyhow::Result<ExitCode> {
    let job = pipeline::load(&file)?;
    let checkpointing = configure(&job, parallelism, &state)?;
    if explain || job.explain_only {
        for (i, plan) in job.sql_plans.iter().enumerate() {
            println!("== optimized logical plan of statement {} ==\n{plan}\n", i + 1);
        }
        if !job.sql_plans.is_empty() {
            println!("== Weir graph ==");
        }
        print!("{}", job.env.explain().await.map_err(|e| job.locate(e))?);
        return Ok(ExitCode::SUCCESS);
    }
    let metrics = job.env.metrics();
    let control = JobControl::default();
    let cancel = control.cancel_token();
    let api = match ui.addr {
        Some(addr) => {
            let (graph, config) = job.env.prepare(&job.name).map_err(|e| job.locate(e))?;
            let local = std::sync::Arc::new(LocalJob::new(graph, config, metrics.clone(), control.clone()));
            let options = rest::RestOptions {
                token: ui.token.filter(|t| !t.is_empty()),
            };
            let bound = rest::serve(addr, local.clone(), options).await?;
            eprintln!("REST API on http://{bound}/ (/overview, /jobs/{}, /metrics)", job.name);
            Some(local)
        }
        None => None,
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for (kind, stop) in [
            (SignalKind::user_defined1(), false),
            (SignalKind::user_defined2(), true),
        ] {
            let mut signals = signal(kind).context("installing the savepoint signal handler")?;
            let control = control.clone();
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    let r = if stop {
                        control.stop_with_savepoint().await
                    } else {
                        control.savepoint().await
                    };
                    match r {
                        Ok(path) => eprintln!("\nsavepoint complete: {path}"),
                        Err(e) => eprintln!("\nsavepoint failed: {e}"),
                    }
                }
            });
        }
    }
    let show = match progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let stop = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            if checkpointing {
                eprintln!(
                    "\nstopping: state stays in the newest checkpoint; resume with --resume (Ctrl-C again to abort)"
                );
            } else {
                eprintln!("\nstopping: sources stop, data in flight is written (Ctrl-C again to abort)");
            }
            stop.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let reporter = show.then(|| {
        let m = metrics.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut last = (0u64, Instant::now());
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (read, written, dead) = totals(&m);
                let rate = (read - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (read, Instant::now());
                let restarts = m.restarts.load(std::sync::atomic::Ordering::Relaxed);
                let restarted = if restarts > 0 {
                    format!(", restarts {restarts}")
                } else {
                    String::new()
                };
                eprint!(
                    "\r[{:>5.0}s] read {read} rows ({}/s), written {written}, dead letters {dead}{restarted}   ",
                    start.elapsed().as_secs_f64(),
                    human(rate)
                );
            }
        })
    });
    let result = job
        .env
        .execute_controlled(&job.name, &metrics, &control)
        .await
        .map_err(|e| job.locate(e));
    if let Some(r) = reporter {
        r.abort();
        eprintln!();
    }
    if let Some(api) = &api {
        api.ended(match &result {
            Ok(r) if r.cancelled => "stopped",
            Ok(_) => "finished",
            Err(_) => "failed",
        });
    }
    let result = result.with_context(|| format!("job '{}' ({}) failed", job.name, file.display()))?;
    if result.already_finished.is_some() {
        eprintln!(
            "job '{}' already ran to the end of its input; nothing to resume (run it without --resume to start afresh)",
            result.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (read, written, dead) = totals(&metrics);
    let secs = result.duration.as_secs_f64();
    eprintln!(
        "job '{}' {} in {secs:.2}s: read {read} rows ({}/s), wrote {written} rows, {dead} dead letters",
        result.name,
        if result.cancelled { "stopped" } else { "finished" },
        human(read as f64 / secs.max(1e-9)),
    );
    if dead > 0 {
        let dir = job.dead_letter_dir();
        eprintln!("malformed records are in {dir}");
    }
    Ok(ExitCode::SUCCESS)
}

fn totals(m: &JobMetrics) -> (u64, u64, u64) {
    let s = m.snapshot();
    let read = s
        .iter()
        .filter(|n| n.role == NodeRole::Source)
        .map(|n| n.records_out)
        .sum();
    let written = s
        .iter()
        .filter(|n| n.role == NodeRole::Sink)
        .map(|n| n.records_in)
        .sum();
    let dead = s.iter().map(|n| n.dead_letters).sum();
    (read, written, dead)
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Applies the command line's parallelism and state options to a loaded job; returns whether
/// it checkpoints.
pub fn configure(job: &pipeline::PipelineJob, parallelism: Option<usize>, state: &StateArgs) -> anyhow::Result<bool> {
    Ok(state.apply(&job.env, parallelism)?)
}
