//! `weir checkpoints list|show`: what a job's checkpoint storage holds.

use std::process::ExitCode;

use weir::checkpoint::{CheckpointStore, SnapshotDir};

use crate::cli::CheckpointsCommand;

/// Lists a job's snapshots or shows one.
pub async fn run(command: CheckpointsCommand) -> anyhow::Result<ExitCode> {
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
