//! Where files live: a local path or an object_store URL (`file://`, `s3://`, `hdfs://`,
//! `memory://`).
//!
//! `s3://bucket/prefix` reads the usual `AWS_*` environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible servers; plain
//! `http://` endpoints are allowed). `hdfs://namenode:port/path` talks to the NameNode and
//! DataNodes directly (hdfs-native: no JVM, no libhdfs); `hdfs:///path` and logical name
//! services come from the `core-site.xml` / `hdfs-site.xml` under `HADOOP_CONF_DIR`. `memory://`
//! is one in-process store shared by the whole process, for tests.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use url::Url;

use crate::contract::error::{Result, WeirError};

mod hdfs;

static MEMORY: LazyLock<Arc<InMemory>> = LazyLock::new(|| Arc::new(InMemory::new()));

/// HDFS clients by NameNode authority, shared by the process (each holds its NameNode
/// connection and DataNode connection pool).
static HDFS: LazyLock<Mutex<HashMap<String, hdfs_native::Client>>> = LazyLock::new(Default::default);

/// The runtime HDFS connections live on. The client spawns a task per NameNode connection on
/// the runtime current when it connects; a job's runtimes come and go (tests, one-shot runs), so
/// the connections get one of their own that lasts as long as the process.
static HDFS_IO: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("weir-hdfs")
        .enable_all()
        .build()
        .expect("the HDFS I/O runtime starts")
});

/// The process-wide `memory://` store.
pub fn memory_store() -> Arc<InMemory> {
    MEMORY.clone()
}

/// A store and a path inside it.
#[derive(Clone, Debug)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The path inside it.
    pub path: Path,
    /// What the user wrote, for messages.
    pub display: String,
    /// The directory on the local disk, for local locations (object stores have no empty
    /// directories; a disk does, and they must go when a checkpoint is deleted).
    pub local: Option<std::path::PathBuf>,
    /// The HDFS client, for HDFS locations (HDFS has directories too).
    pub hdfs: Option<hdfs_native::Client>,
}

impl Location {
    /// `self` joined with a child name.
    pub fn child(&self, name: &str) -> Location {
        Location {
            store: self.store.clone(),
            path: self.path.clone().join(name),
            display: format!("{}/{name}", self.display.trim_end_matches('/')),
            local: self.local.as_ref().map(|p| p.join(name)),
            hdfs: self.hdfs.clone(),
        }
    }

    /// Removes the directory and everything under it where directories exist (a local disk,
    /// HDFS); object stores have none, so there is nothing to do there.
    pub async fn remove_dir(&self) -> std::io::Result<()> {
        if let Some(local) = &self.local {
            return match std::fs::remove_dir_all(local) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        if let Some(client) = &self.hdfs {
            return match client.delete(&format!("/{}", self.path), true).await {
                Ok(_) | Err(hdfs_native::HdfsError::FileNotFound(_)) => Ok(()),
                Err(e) => Err(std::io::Error::other(e)),
            };
        }
        Ok(())
    }

    /// The directory holding `self` (itself at the root of its store).
    pub fn parent(&self) -> Location {
        let parts: Vec<_> = self.path.parts().collect();
        let path = match parts.split_last() {
            Some((_, rest)) => Path::from_iter(rest.iter().cloned()),
            None => self.path.clone(),
        };
        let display = match self.display.trim_end_matches('/').rsplit_once('/') {
            Some((head, _)) => head.to_string(),
            None => self.display.clone(),
        };
        let local = self
            .local
            .as_ref()
            .map(|p| p.parent().map_or_else(|| p.clone(), |p| p.to_path_buf()));
        Location {
            store: self.store.clone(),
            path,
            display,
            local,
            hdfs: self.hdfs.clone(),
        }
    }
}

/// Resolves a path or URL. Local directories are not created here.
pub fn resolve(location: &str) -> Result<Location> {
    let bad = |m: String| WeirError::plan(format!("location '{location}': {m}"));
    if location.is_empty() {
        return Err(bad("is empty".into()));
    }
    let is_url = location.contains("://");
    if !is_url {
        let p = std::path::absolute(location).map_err(|e| bad(e.to_string()))?;
        return local(&p, location);
    }
    let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
    match url.scheme() {
        "file" => {
            let p = url.to_file_path().map_err(|_| bad("not a local file path".into()))?;
            local(&p, location)
        }
        "memory" => {
            let p = format!("{}{}", url.host_str().unwrap_or(""), url.path());
            Ok(Location {
                store: memory_store(),
                path: Path::from(p.trim_matches('/')),
                display: location.into(),
                local: None,
                hdfs: None,
            })
        }
        "s3" | "s3a" => {
            let bucket = url.host_str().ok_or_else(|| bad("no bucket".into()))?;
            // Create-only puts (checkpoint `_metadata`) use `If-None-Match: *`.
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")) {
                b = b
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            let store = b.build().map_err(|e| bad(e.to_string()))?;
            Ok(Location {
                store: Arc::new(store),
                path: Path::from(url.path().trim_matches('/')),
                display: location.into(),
                local: None,
                hdfs: None,
            })
        }
        "hdfs" | "viewfs" => {
            let client = hdfs_client(&url).map_err(|e| bad(e.to_string()))?;
            Ok(Location {
                store: Arc::new(hdfs::HdfsStore::new(client.clone())),
                path: Path::from(url.path().trim_matches('/')),
                display: location.into(),
                local: None,
                hdfs: Some(client),
            })
        }
        other => Err(bad(format!(
            "unsupported scheme '{other}' (use a path, file://, s3://, hdfs:// or memory://)"
        ))),
    }
}

fn local(p: &std::path::Path, display: &str) -> Result<Location> {
    // `a/../b` → `b` (object paths have no `..`; the path is absolute here).
    let mut normal = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let p = normal.as_path();
    let path = Path::from_absolute_path(p).map_err(|e| WeirError::plan(format!("location '{display}': {e}")))?;
    Ok(Location {
        store: Arc::new(LocalFileSystem::new()),
        path,
        display: display.into(),
        local: Some(p.to_path_buf()),
        hdfs: None,
    })
}

/// The process's client for the URL's NameNode (`hdfs://host:port`, or the default file
/// system of `HADOOP_CONF_DIR` for `hdfs:///`). Building one does not connect.
fn hdfs_client(url: &Url) -> std::result::Result<hdfs_native::Client, hdfs_native::HdfsError> {
    let authority = match url.host_str() {
        Some(host) if !host.is_empty() => match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        },
        _ => String::new(),
    };
    let mut clients = HDFS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&authority) {
        return Ok(c.clone());
    }
    let mut builder = hdfs_native::ClientBuilder::new().with_io_runtime(HDFS_IO.handle().clone());
    if !authority.is_empty() {
        builder = builder.with_url(&authority);
    }
    let client = builder.build()?;
    clients.insert(authority, client.clone());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_with_dot_dot_resolve() {
        let l = resolve("/tmp/a/../b/./c.csv").unwrap();
        assert_eq!(l.local.as_deref(), Some(std::path::Path::new("/tmp/b/c.csv")));
        assert_eq!(l.path.as_ref(), "tmp/b/c.csv");
    }
}
