//! `weir status host:port`: a running cluster job's status from its coordinator.

use std::process::ExitCode;

/// Prints the status (or its full JSON).
pub async fn show(address: &str, json: bool) -> anyhow::Result<ExitCode> {
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
        status.phase().name(),
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
