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
    if let Some(m) = args.max_parallelism {
        set_max_parallelism(&job, m)?;
    }
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

/// Gives the job `max` key groups (the StreamJob's `maxParallelism`), refusing a job file that
/// sets another value: checkpoints are laid out by key group, so the two must agree.
fn set_max_parallelism(job: &pipeline::PipelineJob, max: u32) -> anyhow::Result<()> {
    // A pipeline says whether it set one; SQL's `SET 'pipeline.max-parallelism'` shows as a
    // value other than the default.
    let own = match &job.spec {
        Some(spec) => spec.max_parallelism,
        None => Some(job.env.config().max_parallelism).filter(|m| *m != weir::keys::DEFAULT_MAX_PARALLELISM),
    };
    if let Some(own) = own
        && own != max
    {
        anyhow::bail!(
            "max parallelism: the job file sets {own} but the deployment (WEIR_MAX_PARALLELISM, a StreamJob's \
             maxParallelism) says {max}; key groups are fixed for the life of the job's state, so make them \
             equal or drop the job file's setting"
        );
    }
    job.env.set_max_parallelism(max);
    Ok(())
}
