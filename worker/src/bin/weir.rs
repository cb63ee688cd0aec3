//! `weir`: run a job in this process, benchmark the engine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir::bench;
use weir::checkpoint::{CheckpointStore, SnapshotDir};
use weir::cluster::cli::WorkerArgs;
use weir::cluster::local::LocalCluster;
use weir::graph::RestoreFrom;
use weir::pipeline;
use weir::runtime::control::JobControl;
use weir::runtime::metrics::{JobMetrics, NodeRole};

/// Weir: a stream processor in the tradition of Apache Flink.
#[derive(Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file in this process (the embedded default) until its input ends, or
    /// until Ctrl-C (sources stop, data in flight reaches the sinks, then it exits).
    Run {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Override the job's default parallelism.
        #[arg(short, long)]
        parallelism: Option<usize>,
        /// Print the plan (tasks, chains, edges) and exit without running.
        #[arg(long)]
        explain: bool,
        /// Progress line on stderr every second: auto (when stderr is a terminal), always, never.
        #[arg(long, default_value = "auto")]
        progress: Progress,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Inspect a job's checkpoints and savepoints.
    Checkpoints {
        #[command(subcommand)]
        command: CheckpointsCommand,
    },
    /// Take a savepoint of a job running in `weir run` (process PID): it prints the savepoint's
    /// location on its stderr. With `--stop`, the job stops once the savepoint is complete.
    Savepoint {
        /// Process id of the `weir run`.
        pid: u32,
        /// Stop the job after the savepoint (stop-with-savepoint).
        #[arg(long)]
        stop: bool,
    },
    /// Run one worker of a job spread over several processes (what `weir-worker` runs in a
    /// pod). Ordinal 0 also runs the coordinator.
    Worker {
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Run a job on N worker processes on this machine (restarted when they die, as a
    /// StatefulSet would), until the job ends. Checkpoints go to `.weir/checkpoints` unless the
    /// file or --checkpoint-storage say otherwise.
    Cluster {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Number of worker processes.
        #[arg(short, long, default_value_t = 2)]
        workers: usize,
        /// Override the job's default parallelism.
        #[arg(short, long)]
        parallelism: Option<usize>,
        /// Write each worker's pid to `<dir>/worker-<i>.pid`.
        #[arg(long)]
        pid_dir: Option<PathBuf>,
        /// Port of the status endpoint (default: a free one, printed at start).
        #[arg(long, default_value_t = 0)]
        status_port: u16,
        /// Silence after which a worker counts as gone, ms.
        #[arg(long, default_value_t = 5000)]
        heartbeat_timeout_ms: u64,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the status of a job running on a cluster: `weir status host:port` (a worker 0's
    /// gRPC address).
    Status {
        /// The coordinator's `host:port`.
        address: String,
        /// Print the full JSON (counters per operator, checkpoint figures).
        #[arg(long)]
        json: bool,
    },
    /// Check a pipeline file and print its plan (same as `run --explain`).
    Explain {
        /// The pipeline YAML file.
        file: PathBuf,
    },
    /// Benchmark shapes (Nexmark q0, q1, q2 and the datagen passthrough / filter_project):
    /// events/s, events per CPU-second, peak RSS.
    Bench {
        /// Shapes, comma-separated, or `all`.
        #[arg(short, long, default_value = "all")]
        query: String,
        /// Events per run.
        #[arg(short = 'n', long, default_value_t = 10_000_000)]
        events: u64,
        /// Parallelism.
        #[arg(short, long, default_value_t = 1)]
        parallelism: usize,
        /// Measured runs per shape (after one warm-up run of a quarter of the events).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Also print one JSON object per run.
        #[arg(long)]
        json: bool,
        /// Checkpoint every this many ms (to a scratch directory on local disk).
        #[arg(long, value_name = "MS")]
        checkpoint_interval: Option<u64>,
        /// For `--query state`: the parallelism of the rescaled restore.
        #[arg(long)]
        rescale_to: Option<usize>,
    },
}

/// Checkpointing and where state comes from.
#[derive(clap::Args, Clone, Default)]
struct StateArgs {
    /// Checkpoint every this many ms (overrides the file's `checkpoint.interval_ms`).
    #[arg(long, value_name = "MS", env = "WEIR_CHECKPOINT_INTERVAL_MS")]
    checkpoint_interval: Option<u64>,
    /// Where checkpoints go (a path, file://, s3://bucket/prefix).
    #[arg(long, value_name = "URL", env = "WEIR_CHECKPOINT_STORAGE")]
    checkpoint_storage: Option<String>,
    /// Resume from the job's newest complete checkpoint (fresh if there is none).
    #[arg(long, conflicts_with = "from_savepoint")]
    resume: bool,
    /// Start from a savepoint (or a checkpoint directory).
    #[arg(long, value_name = "URL", env = "WEIR_FROM_SAVEPOINT")]
    from_savepoint: Option<String>,
    /// Start even if the snapshot holds state of operators the job no longer has.
    #[arg(long)]
    allow_non_restored_state: bool,
}

impl StateArgs {
    /// The same options as arguments, for the workers `weir cluster` starts.
    fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(ms) = self.checkpoint_interval {
            a.extend(["--checkpoint-interval".to_string(), ms.to_string()]);
        }
        if let Some(url) = &self.checkpoint_storage {
            a.extend(["--checkpoint-storage".to_string(), url.clone()]);
        }
        if let Some(url) = &self.from_savepoint {
            a.extend(["--from-savepoint".to_string(), url.clone()]);
        }
        if self.allow_non_restored_state {
            a.push("--allow-non-restored-state".to_string());
        }
        a
    }
}

#[derive(Subcommand)]
enum CheckpointsCommand {
    /// The complete checkpoints and savepoints of a job: `weir checkpoints list .weir/checkpoints/<job>`.
    List {
        /// The job's directory under the checkpoint storage.
        url: String,
    },
    /// What a checkpoint or savepoint holds: operators, parallelism, key groups, sizes.
    Show {
        /// The snapshot's directory (`…/<job>/chk-<n>` or `…/<job>/savepoints/<name>`).
        url: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
enum Progress {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Installed as `weir-worker` (a link to `weir`, what a pod runs), it is `weir worker`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some("weir-worker") {
        args.insert(1, "worker".into());
    }
    let cli = Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            file,
            parallelism,
            explain,
            progress,
            state,
        } => run(file, parallelism, explain, progress, state).await,
        Command::Worker { worker, state } => worker_cmd(worker, state).await,
        Command::Cluster {
            file,
            workers,
            parallelism,
            pid_dir,
            status_port,
            heartbeat_timeout_ms,
            state,
        } => {
            let mut args = state.to_args();
            if let Some(p) = parallelism {
                args.extend(["--parallelism".to_string(), p.to_string()]);
            }
            args.extend(["--heartbeat-timeout-ms".to_string(), heartbeat_timeout_ms.to_string()]);
            let cluster = LocalCluster {
                job: file,
                workers,
                worker_args: args,
                pid_dir,
                status_port,
            };
            Ok(if cluster.run().await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status { address, json } => status_cmd(&address, json).await,
        Command::Explain { file } => run(file, None, true, Progress::Never, StateArgs::default()).await,
        Command::Checkpoints { command } => checkpoints_cmd(command).await,
        Command::Savepoint { pid, stop } => {
            let signal = if stop { "-USR2" } else { "-USR1" };
            let status = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .context("running kill")?;
            if !status.success() {
                anyhow::bail!("no job process {pid} to signal");
            }
            eprintln!("savepoint requested from process {pid}; it prints the savepoint's location when complete");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            query,
            events,
            parallelism,
            reps,
            json,
            checkpoint_interval,
            rescale_to,
        } => match query.as_str() {
            "kafka" => kafka_bench_cmd(events, parallelism, json).await,
            "cluster" => cluster_bench_cmd(events, parallelism.max(2), json),
            "state" => state_bench_cmd(events, parallelism, rescale_to, json).await,
            _ => bench_cmd(&query, events, parallelism, reps, json, checkpoint_interval).await,
        },
    }
}

async fn run(
    file: PathBuf,
    parallelism: Option<usize>,
    explain: bool,
    progress: Progress,
    state: StateArgs,
) -> anyhow::Result<ExitCode> {
    let job = pipeline::load(&file)?;
    let checkpointing = configure(&job, parallelism, &state)?;
    if explain {
        print!("{}", job.env.explain().await.map_err(|e| job.locate(e))?);
        return Ok(ExitCode::SUCCESS);
    }
    let metrics = job.env.metrics();
    let control = JobControl::default();
    let cancel = control.cancel_token();
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
                eprint!(
                    "\r[{:>5.0}s] read {read} rows ({}/s), written {written}, dead letters {dead}   ",
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
    let result = result.with_context(|| format!("job '{}' ({}) failed", job.name, file.display()))?;
    let (read, written, dead) = totals(&metrics);
    let secs = result.duration.as_secs_f64();
    eprintln!(
        "job '{}' {} in {secs:.2}s: read {read} rows ({}/s), wrote {written} rows, {dead} dead letters",
        result.name,
        if result.cancelled { "stopped" } else { "finished" },
        human(read as f64 / secs.max(1e-9)),
    );
    if dead > 0 {
        let dir = job
            .spec
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!(".weir/{}/dead-letter", job.name));
        eprintln!("malformed records are in {dir}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn checkpoints_cmd(command: CheckpointsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CheckpointsCommand::List { url } => {
            let store = CheckpointStore::at(&url)?;
            let ids = store.completed().await?;
            let savepoints = store.savepoints().await?;
            if ids.is_empty() && savepoints.is_empty() {
                println!("no complete checkpoints or savepoints in {url}");
                return Ok(ExitCode::SUCCESS);
            }
            println!("| snapshot | kind | generation | taken (UTC ms) | operators | bytes |");
            println!("| --- | --- | ---: | ---: | ---: | ---: |");
            let mut dirs: Vec<(String, SnapshotDir)> = ids
                .iter()
                .map(|id| (format!("chk-{id}"), store.checkpoint(*id)))
                .collect();
            dirs.extend(
                savepoints
                    .iter()
                    .map(|s| (format!("savepoints/{s}"), store.savepoint(s))),
            );
            for (name, dir) in dirs {
                match dir.read_metadata().await {
                    Ok(m) => println!(
                        "| {name} | {:?} | {} | {} | {} | {} |",
                        m.kind,
                        m.generation,
                        m.timestamp_ms,
                        m.operators.len(),
                        m.size()
                    ),
                    Err(_) => println!("| {name} | incomplete | | | | |"),
                }
            }
        }
        CheckpointsCommand::Show { url } => {
            let m = SnapshotDir::at(&url)?.read_metadata().await?;
            println!(
                "{:?} {} of job '{}' (generation {}), {} key groups, {} bytes",
                m.kind,
                m.checkpoint_id,
                m.job,
                m.generation,
                m.max_parallelism,
                m.size()
            );
            println!("| operator | parallelism | subtask | file | bytes | key groups | operator state |");
            println!("| --- | ---: | ---: | --- | ---: | --- | ---: |");
            for op in &m.operators {
                if op.subtasks.is_empty() {
                    println!("| {} | {} | - | - | 0 | - | - |", op.uid, op.parallelism);
                }
                for s in &op.subtasks {
                    let groups = match (s.key_groups.first(), s.key_groups.last()) {
                        (Some(a), Some(b)) => format!("{} in {}..={}", s.key_groups.len(), a.0, b.0),
                        _ => "-".into(),
                    };
                    println!(
                        "| {} | {} | {} | {} | {} | {groups} | {} |",
                        op.uid,
                        op.parallelism,
                        s.subtask,
                        s.file,
                        s.size,
                        s.operator_state.map_or("-".into(), |o| format!("{} B", o.1))
                    );
                }
            }
        }
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

async fn kafka_bench_cmd(events: u64, parallelism: usize, json: bool) -> anyhow::Result<ExitCode> {
    let rows = bench::kafka_bench(events, parallelism).await?;
    println!("| case | records | seconds | records/s | CPU s | records per CPU-s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.2} | {:.0} |",
            r.case, r.events, r.seconds, r.events_per_s, r.cpu_seconds, r.events_per_cpu_s
        );
        if json {
            println!("{}", serde_json::to_string(r)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn state_bench_cmd(
    keys: u64,
    parallelism: usize,
    rescale_to: Option<usize>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let rescale_to = rescale_to.unwrap_or(if parallelism == 1 { 2 } else { 1 });
    eprintln!("building keyed state of {keys} keys at parallelism {parallelism} …");
    let r = bench::state_bench(keys, parallelism, rescale_to).await?;
    println!(
        "| keys | p | state RSS MiB | savepoint ms | savepoint MiB | restore ms (p={}) | restore ms (p={}) |",
        r.parallelism, r.rescale_to
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {:.0} | {} | {:.0} | {} | {} |",
        r.keys, r.parallelism, r.state_rss_mib, r.snapshot_ms, r.snapshot_mib, r.restore_ms, r.rescale_ms
    );
    if json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Keyed count on 2 worker processes vs one process; then latency at half the cluster's rate.
fn cluster_bench_cmd(events: u64, parallelism: usize, json: bool) -> anyhow::Result<ExitCode> {
    use weir::cluster::bench::run_once;
    let dir = tempfile_dir("weir-cluster-bench")?;
    println!(
        "| mode | events | rate limit | seconds | events/s | CPU s | events per CPU-s | bytes on wire | bytes per event | latency p50 ms | p99 ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let print = |r: &weir::cluster::bench::ClusterBenchRun| -> anyhow::Result<()> {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {} | {:.1} | {} | {} |",
            r.mode,
            r.events,
            if r.rate == 0 {
                "none".to_string()
            } else {
                r.rate.to_string()
            },
            r.seconds,
            r.events_per_s,
            r.cpu_seconds,
            r.events_per_cpu_s,
            r.wire_bytes,
            r.wire_bytes as f64 / r.events as f64,
            r.latency_p50_ms,
            r.latency_p99_ms
        );
        if json {
            println!("{}", serde_json::to_string(r)?);
        }
        Ok(())
    };
    let one = run_once(&dir, 0, events, 0, parallelism)?;
    print(&one)?;
    let two = run_once(&dir, 2, events, 0, parallelism)?;
    print(&two)?;
    // Half of the maximum rate, for about 10 seconds.
    let rate = (two.events_per_s / 2.0) as u64;
    let n = rate * 10;
    print(&run_once(&dir, 0, n, rate, parallelism)?)?;
    print(&run_once(&dir, 2, n, rate, parallelism)?)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

/// A scratch directory under the system's temp dir.
fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn bench_cmd(
    query: &str,
    events: u64,
    parallelism: usize,
    reps: usize,
    json: bool,
    checkpoint_interval: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let checkpoint = checkpoint_interval.map(Duration::from_millis);
    let shapes: Vec<&str> = if query == "all" {
        bench::SHAPES.to_vec()
    } else {
        query.split(',').map(str::trim).collect()
    };
    println!(
        "| shape | p | events | rows out | seconds | events/s | CPU s | events per CPU-s | peak RSS MiB | checkpoints | max ms | bytes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for shape in shapes {
        bench::run_checkpointed(shape, (events / 4).max(1), parallelism, checkpoint)
            .await
            .with_context(|| format!("warm-up of {shape}"))?;
        for _ in 0..reps.max(1) {
            let r = bench::run_checkpointed(shape, events, parallelism, checkpoint).await?;
            println!(
                "| {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {} | {} | {} |",
                r.shape,
                r.parallelism,
                r.events,
                r.rows_out,
                r.seconds,
                r.events_per_s,
                r.cpu_seconds,
                r.events_per_cpu_s,
                r.peak_rss_mib,
                r.checkpoints,
                r.checkpoint_max_ms,
                r.checkpoint_bytes
            );
            if json {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn worker_cmd(args: WorkerArgs, state: StateArgs) -> anyhow::Result<ExitCode> {
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
    let (graph, mut config) = job.env.prepare(&job.name)?;
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

async fn status_cmd(address: &str, json: bool) -> anyhow::Result<ExitCode> {
    use weir_proto::rpc::coordinator_client::CoordinatorClient;
    let mut client = CoordinatorClient::new(weir::cluster::channel_to(address)?);
    let status = client
        .status(weir_proto::rpc::StatusRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("cannot get the status from {address}: {}", s.message()))?
        .into_inner();
    if json {
        println!("{}", String::from_utf8_lossy(&status.details_json));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "job {}: {} (generation {}, {}/{} workers, {} restarts, last checkpoint {})",
        status.job,
        status.state,
        status.generation,
        status.workers_attached,
        status.workers,
        status.restarts,
        status.last_checkpoint
    );
    if let Ok(v) = serde_json::from_slice::<weir::cluster::master::StatusView>(&status.details_json) {
        for n in v.nodes {
            println!(
                "  {:<24} in {:>12}  out {:>12}  dead letters {}",
                n.name, n.records_in, n.records_out, n.dead_letters
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies the command line's parallelism and state options to a loaded job; returns whether
/// it checkpoints.
fn configure(job: &pipeline::PipelineJob, parallelism: Option<usize>, state: &StateArgs) -> anyhow::Result<bool> {
    if let Some(p) = parallelism {
        job.env.set_parallelism(p);
    }
    if let Some(ms) = state.checkpoint_interval {
        job.env.enable_checkpointing(Duration::from_millis(ms));
    }
    if let Some(url) = &state.checkpoint_storage {
        job.env.set_checkpoint_storage(url.clone());
    }
    let checkpointing = job.env.config().checkpoint.is_some();
    if state.resume {
        if !checkpointing {
            anyhow::bail!(
                "--resume needs checkpoints: set checkpoint.interval_ms in the file or --checkpoint-interval"
            );
        }
        job.env.set_restore(RestoreFrom::Latest);
    }
    if let Some(url) = &state.from_savepoint {
        job.env.set_restore(RestoreFrom::Snapshot(url.clone()));
    }
    job.env.allow_non_restored_state(state.allow_non_restored_state);
    Ok(checkpointing)
}
