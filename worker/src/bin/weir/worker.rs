//! `weir worker` (what `weir-worker` runs in a pod): one worker of a job spread over processes.

use std::process::ExitCode;

use weir::cluster::cli::WorkerArgs;
use weir::pipeline;

use crate::run::configure;
use weir::cluster::cli::StateArgs;

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
    if args.file.extension().is_some_and(|e| e == "py") {
        return python(&args);
    }
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

/// A Python job's worker is the script itself (the `weir-worker-python` image): it runs under
/// `WEIR_PYTHON` (default `python3`) with this worker's variables, and the `weir` package's
/// `execute` joins the cluster as this worker. Settings given as flags travel in
/// `WEIR_WORKER_ARGS` (separated by U+001F), as `weir cluster` passes them.
fn python(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let interpreter = std::env::var_os("WEIR_PYTHON").unwrap_or_else(|| "python3".into());
    let flags: Vec<String> = std::env::args().skip_while(|a| a != "worker").skip(1).collect();
    let flags: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .filter(|a| std::path::Path::new(a) != args.file.as_path())
        .collect();
    let err = std::process::Command::new(&interpreter)
        .arg(&args.file)
        .env("WEIR_JOB", &args.file)
        .env("WEIR_WORKER_ARGS", flags.join("\u{1f}"))
        .exec();
    anyhow::bail!(
        "cannot run the Python job {} with {}: {err} (set WEIR_PYTHON to a Python with the weir package, as the \
         weir-worker-python image has)",
        args.file.display(),
        interpreter.to_string_lossy()
    )
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
