//! The master's HTTP endpoint: `GET /status` (JSON) and `GET /metrics` (Prometheus text), for
//! `curl`, dashboards and probes. Deliberately tiny: HTTP/1.1, one request per connection.

use std::fmt::Write as _;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::master::{JobMaster, StatusView};
use crate::contract::error::{Result, WeirError};

/// Starts serving on `addr` in the background.
pub async fn serve(addr: SocketAddr, master: JobMaster) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| WeirError::Cluster(format!("cannot listen for status on {addr}: {e}")))?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let master = master.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (code, kind, body) = match path {
                    "/status" | "/" => (
                        "200 OK",
                        "application/json",
                        serde_json::to_string_pretty(&master.status()).unwrap_or_default(),
                    ),
                    "/metrics" => ("200 OK", "text/plain; version=0.0.4", prometheus(&master.status())),
                    "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
                    _ => (
                        "404 Not Found",
                        "text/plain",
                        "try /status, /metrics or /healthz\n".to_string(),
                    ),
                };
                let response = format!(
                    "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// The status in Prometheus' text format.
pub fn prometheus(v: &StatusView) -> String {
    let mut s = String::new();
    let job = &v.job;
    let gauge = |s: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            s,
            "# HELP weir_{name} {help}\n# TYPE weir_{name} gauge\nweir_{name}{{job=\"{job}\"}} {value}"
        );
    };
    gauge(
        &mut s,
        "generation",
        "Current run (generation) of the job.",
        v.generation,
    );
    gauge(
        &mut s,
        "workers_attached",
        "Workers attached to the master.",
        v.workers_attached as u64,
    );
    gauge(
        &mut s,
        "restarts_total",
        "Restarts after failures.",
        u64::from(v.restarts),
    );
    gauge(
        &mut s,
        "last_checkpoint",
        "Newest completed checkpoint id.",
        v.last_checkpoint,
    );
    gauge(
        &mut s,
        "checkpoints_completed_total",
        "Completed checkpoints.",
        v.checkpoints_completed,
    );
    gauge(
        &mut s,
        "checkpoints_failed_total",
        "Failed checkpoints.",
        v.checkpoints_failed,
    );
    gauge(
        &mut s,
        "checkpoint_last_duration_ms",
        "Duration of the newest checkpoint.",
        v.checkpoint_last_duration_ms,
    );
    gauge(
        &mut s,
        "checkpoint_last_bytes",
        "Size of the newest checkpoint.",
        v.checkpoint_last_bytes,
    );
    gauge(
        &mut s,
        "exchange_bytes_out_total",
        "Bytes sent between workers.",
        v.exchange_bytes_out,
    );
    gauge(
        &mut s,
        "restore_local_bytes_total",
        "State bytes restores read from local copies (local recovery).",
        v.restore_local_bytes,
    );
    gauge(
        &mut s,
        "restore_remote_bytes_total",
        "State bytes restores read from checkpoint storage.",
        v.restore_remote_bytes,
    );
    gauge(
        &mut s,
        "exchange_credit_waits_total",
        "Times a sender waited for credit (back-pressure from a slower receiver).",
        v.exchange_credit_waits,
    );
    for (name, help, pick) in [
        ("records_in_total", "Records into a node.", 0),
        ("records_out_total", "Records out of a node.", 1),
        (
            "dead_letters_total",
            "Malformed records sent to the dead-letter output.",
            2,
        ),
        ("late_records_total", "Records later than the allowed lateness.", 3),
    ] {
        let _ = writeln!(s, "# HELP weir_{name} {help}\n# TYPE weir_{name} counter");
        for n in &v.nodes {
            let value = [n.records_in, n.records_out, n.dead_letters, n.late_records][pick];
            let _ = writeln!(s, "weir_{name}{{job=\"{job}\",node=\"{}\"}} {value}", n.name);
        }
    }
    s
}
