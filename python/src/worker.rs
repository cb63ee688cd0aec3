//! A Python job as one worker of a cluster: `weir cluster job.py` (and a `weir-worker-python`
//! pod) runs the script in every worker process with the worker's place in the environment
//! (`WEIR_ORDINAL`, `WEIR_PEERS` or `WEIR_PEER_PATTERN` + `WEIR_WORKERS`, `WEIR_STATUS_PORT`…,
//! the variables of `weir worker`); the script builds the same job in each, and `execute` runs
//! this worker's share of it (worker 0 also coordinates), through the engine's own worker.

use std::time::Duration;

use clap::Parser;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::task::JoinHandle;
use weir::cluster::cli::{StateArgs, WorkerArgs};
use weir::prelude::*;

use crate::env::error;

/// `weir worker`'s options, from the environment (and `WEIR_WORKER_ARGS`, the flags `weir
/// cluster` adds, separated by U+001F): the worker's place, and checkpoint and state settings
/// (a StreamJob's `WEIR_CHECKPOINT_*`, `WEIR_FROM_SAVEPOINT`, `WEIR_STATE_*`), which override the
/// script's.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    state: StateArgs,
}

/// Whether this process was started as a cluster worker.
pub fn is_worker() -> bool {
    ["WEIR_ORDINAL", "WEIR_PEERS", "WEIR_PEER_PATTERN"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Waits for `run` with the GIL released, checking for Ctrl-C every 100 ms (`stop` on one).
pub fn wait<T: Send + 'static>(
    py: Python<'_>,
    rt: &tokio::runtime::Runtime,
    mut run: JoinHandle<T>,
    stop: impl Fn(),
) -> PyResult<T> {
    loop {
        let waited =
            py.detach(|| rt.block_on(async { tokio::time::timeout(Duration::from_millis(100), &mut run).await }));
        match waited {
            Ok(joined) => return joined.map_err(|e| PyRuntimeError::new_err(format!("the job's task: {e}"))),
            Err(_) => {
                if let Err(interrupt) = py.check_signals() {
                    stop();
                    let _ = py.detach(|| rt.block_on(&mut run));
                    return Err(interrupt);
                }
            }
        }
    }
}

/// Runs this worker's share of the job `env` built, until the job is over.
pub fn run(py: Python<'_>, env: &StreamExecutionEnvironment, name: &str) -> PyResult<String> {
    let job = std::env::var("WEIR_JOB").unwrap_or_else(|_| "job.py".into());
    let mut argv = vec!["weir-worker".to_string(), job];
    if let Ok(extra) = std::env::var("WEIR_WORKER_ARGS") {
        argv.extend(extra.split('\u{1f}').filter(|a| !a.is_empty()).map(str::to_string));
    }
    let Args { worker: args, state } =
        Args::try_parse_from(argv).map_err(|e| PyValueError::new_err(format!("this worker's settings: {e}")))?;
    state.apply(env, args.parallelism).map_err(error)?;
    if let Some(m) = args.max_parallelism {
        env.set_max_parallelism(m);
    }
    let options = args.options().map_err(error)?;
    let name = args.job_name.clone().unwrap_or_else(|| name.to_string());
    let (graph, mut config) = env.prepare(&name).map_err(error)?;
    if let Some(n) = args.restart_attempts {
        config.restart.attempts = n;
    }
    let ordinal = options.ordinal;
    // As a pod's PID 1 the script would ignore SIGTERM (no handler, and the kernel drops
    // default-action signals to PID 1): leave at once on it, as `weir worker` does. Only the
    // main thread can set a handler; elsewhere Python's default stays.
    let _ = py.run(
        c"import signal, sys, threading\nif threading.current_thread() is threading.main_thread():\n    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n",
        None,
        None,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
    let handle = rt.spawn(weir::cluster::worker::run(graph, config, options));
    // Ctrl-C or SIGTERM leaves at once: the state is in the checkpoints, and the master restarts
    // the run without this worker (as `weir worker` does).
    let exit = wait(py, &rt, handle, || std::process::exit(143))?.map_err(error)?;
    if !exit.success {
        return Err(PyRuntimeError::new_err(exit.message));
    }
    eprintln!("worker {ordinal}: {}", exit.message);
    Ok(serde_json::json!({
        "name": name,
        "duration_ms": 0,
        "cancelled": false,
        "restarts": 0,
        "nodes": [],
        "worker": ordinal,
        "message": exit.message,
    })
    .to_string())
}
