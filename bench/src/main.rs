//! `weir-bench`: runs the benchmark shapes and prints a Markdown table (and JSON lines).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use weir_bench::cluster::{ClusterBenchRun, run_once};

/// Benchmark shapes (Nexmark q0, q1, q2 and the datagen passthrough / filter_project by
/// default): events/s, events per CPU-second, peak RSS. `--query kafka|state|cluster` run the
/// Kafka, keyed-state and two-worker benchmarks.
/// The same allocator as the `weir` binary (mimalloc): keyed state is many small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "weir-bench", version, about)]
struct Args {
    /// Shapes, comma-separated, or `all`; or `kafka`, `state`, `cluster`.
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
    /// For `--query state`: where checkpoints and the savepoint go (`s3://bucket/prefix`;
    /// default a scratch directory on local disk).
    #[arg(long, value_name = "URL")]
    checkpoint_storage: Option<String>,
    /// With `--checkpoint-interval`: every checkpoint full (incremental checkpoints off).
    #[arg(long)]
    full_checkpoints: bool,
    /// For `--query state` with `--checkpoint-interval`: every this many checkpoints one is
    /// full (default: the jobs' default, 100).
    #[arg(long, value_name = "N")]
    full_every: Option<u32>,
    /// For `--query state`: the parallelism of the rescaled restore.
    #[arg(long)]
    rescale_to: Option<usize>,
    /// Run these Nexmark queries from their Flink SQL text instead (q0–q5, q7–q9, q11–q22),
    /// comma-separated.
    #[arg(long, value_name = "QUERIES")]
    sql: Option<String>,
    /// Where keyed state lives, `memory` or `disk` (Nexmark shapes, `--sql` and `--query
    /// state`).
    #[arg(long, default_value = "memory")]
    state_backend: String,
    /// On disk: the backend's memory budget (`512m`, `1g`).
    #[arg(long)]
    state_memory: Option<String>,
    /// On disk: the directory of its files.
    #[arg(long)]
    state_dir: Option<String>,
    /// For `--query state`: times each key is updated while the state is built.
    #[arg(long, default_value_t = 1)]
    passes: u64,
    /// With `--sql`: keep filters out of the source (Flink's Nexmark source generates every
    /// event kind; Weir's, told `event_type = 2`, generates bids only).
    #[arg(long)]
    no_pushdown: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        if let Some(queries) = &args.sql {
            return sql(&args, queries).await;
        }
        match args.query.as_str() {
            "kafka" => kafka(args.events, args.parallelism, args.json).await,
            "cluster" => cluster(args.events, args.parallelism.max(2), args.json),
            "state" => state(&args).await,
            _ => shapes(&args).await,
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shapes(args: &Args) -> anyhow::Result<()> {
    let checkpoint = args.checkpoint_interval.map(|ms| weir_bench::Checkpointing {
        interval: Duration::from_millis(ms),
        incremental: !args.full_checkpoints,
    });
    let backend = backend(args)?;
    let shapes: Vec<&str> = if args.query == "all" {
        weir_bench::SHAPES.to_vec()
    } else {
        args.query.split(',').map(str::trim).collect()
    };
    println!(
        "| shape | p | events | rows out | seconds | events/s | CPU s | events per CPU-s | peak RSS MiB | checkpoints | mean ms | max ms | bytes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for shape in shapes {
        weir_bench::run_checkpointed(shape, (args.events / 4).max(1), args.parallelism, checkpoint, &backend)
            .await
            .with_context(|| format!("warm-up of {shape}"))?;
        for _ in 0..args.reps.max(1) {
            let r = weir_bench::run_checkpointed(shape, args.events, args.parallelism, checkpoint, &backend).await?;
            println!(
                "| {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {} |",
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
                r.checkpoint_mean_ms,
                r.checkpoint_max_ms,
                r.checkpoint_bytes
            );
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
    }
    Ok(())
}

/// The state backend the flags name.
fn backend(args: &Args) -> anyhow::Result<weir::state::StateBackend> {
    Ok(weir::state::StateBackend::from_settings(
        &args.state_backend,
        args.state_dir.as_deref(),
        args.state_memory.as_deref(),
    )?)
}

async fn sql(args: &Args, queries: &str) -> anyhow::Result<()> {
    let backend = backend(args)?;
    println!("| query | p | events | rows out | seconds | events/s | CPU s | events per CPU-s | peak RSS MiB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for q in queries.split(',').map(str::trim) {
        let pushdown = !args.no_pushdown;
        weir_bench::run_sql(q, (args.events / 4).max(1), args.parallelism, pushdown, &backend)
            .await
            .with_context(|| format!("warm-up of {q}"))?;
        for _ in 0..args.reps.max(1) {
            let r = weir_bench::run_sql(q, args.events, args.parallelism, pushdown, &backend).await?;
            println!(
                "| {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} |",
                r.shape,
                r.parallelism,
                r.events,
                r.rows_out,
                r.seconds,
                r.events_per_s,
                r.cpu_seconds,
                r.events_per_cpu_s,
                r.peak_rss_mib
            );
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
    }
    Ok(())
}

async fn kafka(events: u64, parallelism: usize, json: bool) -> anyhow::Result<()> {
    let rows = weir_bench::kafka_bench(events, parallelism).await?;
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
    Ok(())
}

async fn state(args: &Args) -> anyhow::Result<()> {
    let parallelism = args.parallelism;
    let c = weir_bench::StateBenchConfig {
        keys: args.events,
        passes: args.passes,
        parallelism,
        rescale_to: args.rescale_to.unwrap_or(if parallelism == 1 { 2 } else { 1 }),
        backend: backend(args)?,
        checkpoint_interval: args.checkpoint_interval.map(Duration::from_millis),
        full_every: args.full_every,
        storage: args.checkpoint_storage.clone(),
    };
    eprintln!(
        "building keyed state of {} keys ({} passes) at parallelism {parallelism} on {:?} …",
        c.keys, c.passes, c.backend
    );
    let r = weir_bench::state_bench(&c).await?;
    println!(
        "| backend | keys | passes | p | build events/CPU-s | state RSS MiB | peak RSS MiB | checkpoints | p50 ms | p99 ms | savepoint ms | savepoint MiB | restore ms (p={}) | restore ms (p={}) |",
        r.parallelism, r.rescale_to
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {:.0} | {} | {} |",
        r.backend,
        r.keys,
        r.passes,
        r.parallelism,
        r.build_events_per_cpu_s,
        r.state_rss_mib,
        r.peak_rss_mib,
        r.checkpoints,
        r.checkpoint_p50_ms,
        r.checkpoint_p99_ms,
        r.snapshot_ms,
        r.snapshot_mib,
        r.restore_ms,
        r.rescale_ms
    );
    if let (Some(download), Some(local)) = (r.checkpoint_download_restore_ms, r.checkpoint_local_restore_ms) {
        println!(
            "newest checkpoint restored at p={}: {download} ms downloading it, {local} ms from local copies ({:.0} MiB read locally)",
            r.parallelism,
            r.checkpoint_local_restore_mib.unwrap_or(0.0)
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

/// Keyed count on 2 worker processes vs one process; then latency at half the cluster's rate.
fn cluster(events: u64, parallelism: usize, json: bool) -> anyhow::Result<()> {
    let dir = scratch_dir("weir-cluster-bench")?;
    println!(
        "| mode | events | rate limit | seconds | events/s | CPU s | events per CPU-s | bytes on wire | bytes per event | latency p50 ms | p99 ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let print = |r: &ClusterBenchRun| -> anyhow::Result<()> {
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
    Ok(())
}

/// A scratch directory under the system's temp dir.
fn scratch_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
