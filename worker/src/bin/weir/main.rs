//! `weir`: run a job in this process or across worker processes, inspect checkpoints, take
//! savepoints, and ask a running job for its status. One subcommand a file.

mod checkpoints;
mod cli;
mod run;
mod status;
mod worker;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, Progress};
use weir::cluster::cli::StateArgs;
use weir::cluster::local::LocalCluster;

/// mimalloc: keyed state is many small allocations, and glibc's allocator spends a large share
/// of a restore consolidating its free lists (measured: a restore of 8M keys 9.0 s → 2.9 s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            ui,
            ui_token,
            state,
        } => {
            run::run(
                file,
                parallelism,
                explain,
                progress,
                run::Ui {
                    addr: ui,
                    token: ui_token,
                },
                state,
            )
            .await
        }
        Command::Worker { worker, state } => worker::run(worker, state).await,
        Command::Cluster {
            file,
            workers,
            parallelism,
            pid_dir,
            status_port,
            ui_token,
            heartbeat_timeout_ms,
            autoscale,
            state,
        } => {
            let autoscale = match autoscale {
                Some(text) => {
                    let mut spec: weir_autoscale::AutoscalerSpec = serde_json::from_str(&text).with_context(|| {
                        format!("--autoscale must be a JSON object of the autoscaler's settings: {text}")
                    })?;
                    spec.enabled = true;
                    Some(spec)
                }
                None => None,
            };
            // The job's key groups bound the autoscaler (a pipeline's `max_parallelism`, else 128).
            let key_groups = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
                .and_then(|v| v.get("max_parallelism").and_then(|m| m.as_u64()))
                .unwrap_or(128) as u32;
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
                ui_token,
                autoscale,
                key_groups,
            };
            Ok(if cluster.run().await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status { address, json } => status::show(&address, json).await,
        Command::Explain { file } => {
            let ui = run::Ui {
                addr: None,
                token: None,
            };
            run::run(file, None, true, Progress::Never, ui, StateArgs::default()).await
        }
        Command::Checkpoints { command } => checkpoints::run(command).await,
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
    }
}
