//! The operator's HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the process is up)
//! and `/readyz` (it can list the StreamJobs it watches) for the Deployment's probes. Deliberately tiny: HTTP/1.1, one request per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::reconcile::Metrics;

/// Serves on `addr` in the background.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                // Read the request head (up to 2 KiB; only the path matters).
                let mut buf = vec![0u8; 2048];
                let mut n = 0;
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf[n..])).await {
                        Ok(Ok(0)) => break,
                        Ok(Ok(k)) => n += k,
                        _ => return,
                    }
                }
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (code, body) = match path {
                    "/metrics" => ("200 OK", metrics.prometheus()),
                    "/healthz" => ("200 OK", "ok\n".to_string()),
                    "/readyz" if metrics.ready.load(std::sync::atomic::Ordering::Relaxed) => {
                        ("200 OK", "ok\n".to_string())
                    }
                    "/readyz" => (
                        "503 Service Unavailable",
                        "not ready: StreamJobs cannot be listed yet (API server, RBAC, CRD)\n".to_string(),
                    ),
                    _ => ("404 Not Found", "try /metrics, /healthz or /readyz\n".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {code}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(bound)
}
