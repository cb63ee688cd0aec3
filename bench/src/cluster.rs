//! `weir-bench --query cluster`: a hash-partitioned keyed count on 2 worker processes against
//! the same job in one process — throughput, CPU, bytes on the wire per event, and end-to-end
//! latency (p50/p99) at half of the measured maximum rate. Both sides run as child processes
//! of the bench (`weir run`, `weir cluster`), measured the same way: wall time and the CPU
//! time of the children.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::children_cpu_seconds;
use weir::contract::error::{Result, WeirError};

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterBenchRun {
    /// `1 process` or `N workers`.
    pub mode: String,
    /// Events generated.
    pub events: u64,
    /// Source rate limit (0: none).
    pub rate: u64,
    /// Wall time, s.
    pub seconds: f64,
    /// Events per second.
    pub events_per_s: f64,
    /// CPU seconds of all processes.
    pub cpu_seconds: f64,
    /// Events per CPU-second.
    pub events_per_cpu_s: f64,
    /// Bytes of frames sent between workers.
    pub wire_bytes: u64,
    /// Latency p50 over sink subtasks (max of their p50s), ms.
    pub latency_p50_ms: u64,
    /// Latency p99 (max of the sink subtasks' p99s), ms.
    pub latency_p99_ms: u64,
}

fn job(events: u64, rate: u64, parallelism: usize) -> String {
    let rate = if rate > 0 {
        format!("    rows_per_second: {rate}\n")
    } else {
        String::new()
    };
    format!(
        r#"name: bench-keyed-count
parallelism: {parallelism}
sources:
  - id: gen
    connector: datagen
    rows: {events}
{rate}    seed: 3
    fields:
      - {{name: ts, kind: timestamp}}
      - {{name: k, kind: random, min: 0, max: 99999}}
      - {{name: v, kind: random, min: 0, max: 999}}
operators:
  - {{id: keyed, input: gen, key_by: k}}
  - {{id: counts, input: keyed, aggregate: [{{kind: count}}, {{kind: last, field: ts, as: ts}}]}}
sinks:
  - {{id: out, input: counts, connector: blackhole, latency_field: ts}}
"#
    )
}

/// Runs the job in one process (`workers == 0`) or on `workers` processes.
pub fn run_once(dir: &Path, workers: usize, events: u64, rate: u64, parallelism: usize) -> Result<ClusterBenchRun> {
    let exe = weir_exe()?;
    let file = dir.join(format!("job-{workers}-{rate}.yaml"));
    std::fs::write(&file, job(events, rate, parallelism))
        .map_err(|e| WeirError::Cluster(format!("cannot write {}: {e}", file.display())))?;
    let mut cmd = std::process::Command::new(exe);
    if workers == 0 {
        cmd.arg("run").arg(&file).arg("--progress=never");
    } else {
        cmd.arg("cluster").arg(&file).args(["--workers", &workers.to_string()]);
    }
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let out = cmd
        .env("WEIR_LOG", "info")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| WeirError::Cluster(format!("cannot start the job: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu_before;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        return Err(WeirError::Cluster(format!(
            "the benchmark job failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    let wire_bytes = log
        .lines()
        .filter(|l| l.contains("exchange totals"))
        .filter_map(|l| field(l, "exchange_bytes_out"))
        .sum();
    let latency = |key: &str| {
        log.lines()
            .filter(|l| l.contains("end-to-end latency"))
            .filter_map(|l| field(l, key))
            .max()
            .unwrap_or(0)
    };
    Ok(ClusterBenchRun {
        mode: if workers == 0 {
            "1 process".into()
        } else {
            format!("{workers} workers")
        },
        events,
        rate,
        seconds,
        events_per_s: events as f64 / seconds,
        cpu_seconds: cpu,
        events_per_cpu_s: events as f64 / cpu.max(1e-9),
        wire_bytes,
        latency_p50_ms: latency("latency_p50_ms"),
        latency_p99_ms: latency("latency_p99_ms"),
    })
}

/// The `weir` binary the benchmark runs: `$WEIR_BIN`, or `weir` beside this program (cargo
/// builds both into one target directory: `cargo build --release --bin weir --bin weir-bench`).
pub fn weir_exe() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("WEIR_BIN") {
        return Ok(p.into());
    }
    let me = std::env::current_exe().map_err(|e| WeirError::Cluster(format!("cannot find this program: {e}")))?;
    let beside = me.with_file_name("weir");
    if beside.exists() {
        return Ok(beside);
    }
    Err(WeirError::Cluster(format!(
        "no `weir` binary at {}: build it with `cargo build --release --bin weir` or set WEIR_BIN",
        beside.display()
    )))
}
