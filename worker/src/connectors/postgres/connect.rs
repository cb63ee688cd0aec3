//! Connecting to PostgreSQL, with retries: a database restarting or failing over is a few
//! seconds away, not a reason to fail the task.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::contract::error::{Result, WeirError};

/// Where and as whom to connect (owned, so a connecting future borrows nothing of its caller).
pub(super) struct Target {
    /// The node connecting, for messages.
    pub node: String,
    /// `postgresql://…`.
    pub url: String,
    /// Over the URL's.
    pub user: Option<String>,
    /// Over the URL's.
    pub password: Option<String>,
    /// Attempts before giving up (a second apart, then doubling).
    pub attempts: u32,
}

/// A client; its connection runs on a task of the current runtime until the client is dropped.
pub(super) async fn connect(t: Target) -> Result<Client> {
    let io = |context: &str, e: &dyn std::fmt::Display| WeirError::io(&t.node, format!("{context}: {e}"));
    let mut wait = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        let mut config = tokio_postgres::Config::from_str(&t.url).map_err(|e| io("url", &e))?;
        if let Some(u) = &t.user {
            config.user(u);
        }
        if let Some(p) = &t.password {
            config.password(p);
        }
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                let node = t.node.to_string();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(node, "postgres connection: {e}");
                    }
                });
                return Ok(client);
            }
            Err(e) if attempt < t.attempts => {
                tracing::warn!(node = %t.node, attempt, "connecting to postgres: {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            Err(e) => return Err(io(&format!("connecting to postgres after {attempt} attempts"), &e)),
        }
    }
}
