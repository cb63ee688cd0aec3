//! `weir worker` (what `weir-worker` runs in a pod): one worker of a job spread over processes.

use std::process::ExitCode;

use weir::cluster::cli::WorkerArgs;
use weir::pipeline;

use crate::cli::StateArgs;
use crate::run::configure;

/// Runs this worker until the job ends (or, lingering, until it is stopped).
pub async fn run(args: WorkerArgs, state: StateArgs) -> anyhow::Result<ExitCode> {
    // A pod's PID 1 ignores SIGTERM unless it handles it: leave at once (the state is in the
    // checkpoints; the master restarts the run without this worker's subtasks).
    tokio::spawn(async {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            term.recv().await;
            eprintln!("worker: terminated");
            std::process::exit(143);
        }
    });
    let job = pipeline::load(&args.file)?;
    configure(&job, args.parallelism, &state)?;
    let options = args.options()?;
    let name = args.job_name.clone().unwrap_or_else(|| job.name.clone());
    let (graph, mut config) = job.env.prepare(&name)?;
    if let Some(n) = args.restart_attempts {
        config.restart.attempts = n;
    }
    let exit = weir::cluster::worker::run(graph, config, options)
        .await
        .map_err(|e| job.locate(e))?;
    if exit.success {
        eprintln!("worker {}: {}", args.ordinal.unwrap_or(0), exit.message);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {}", exit.message);
        Ok(ExitCode::FAILURE)
    }
}
