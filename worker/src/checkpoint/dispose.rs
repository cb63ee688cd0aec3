//! Disposal of snapshots a job no longer needs, asked for by whoever keeps their history (the
//! Kubernetes operator's savepoint history, and the checkpoints of the state namespaces a
//! stateless upgrade left behind). The coordinator does the deleting because it holds the
//! storage credentials; these checks keep a wrong request from deleting what the job runs on.

use object_store::path::Path;

use super::store::{CheckpointStore, SnapshotDir};
use crate::contract::error::WeirError;
use crate::storage;

/// Why a disposal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DisposeError {
    /// An entry names something that must not (or cannot) be deleted; nothing was.
    #[error("dispose '{url}': {why}")]
    Refused {
        /// The entry.
        url: String,
        /// Why.
        why: String,
    },
    /// The storage failed (what was deleted before stays deleted; asking again is safe).
    #[error(transparent)]
    Storage(#[from] WeirError),
}

type Result<T> = std::result::Result<T, DisposeError>;

/// What to delete.
#[derive(Debug, Clone, Default)]
pub struct Disposal {
    /// Savepoint directories (`…/<job>/savepoints/<id>`), deleted whole.
    pub savepoints: Vec<String>,
    /// Job directories of other state namespaces: their checkpoints go, their savepoints stay.
    pub checkpoint_dirs: Vec<String>,
}

/// What the running job must keep: its own checkpoint store, and the snapshot it restored
/// from while no newer checkpoint completed.
pub struct Keep<'a> {
    /// The job's checkpoint store.
    pub own: &'a CheckpointStore,
    /// The snapshot the current run restored from, when no checkpoint completed after it.
    pub restored_from: Option<&'a str>,
}

/// Checks every entry of `request` first (nothing is deleted when one is refused), then
/// deletes them; returns what was deleted.
pub async fn dispose(request: &Disposal, keep: &Keep<'_>) -> Result<Vec<String>> {
    let own = keep.own.location();
    let own_parts = parts(&own.path);
    let mut savepoints = Vec::new();
    for url in &request.savepoints {
        let dir = storage::resolve(url).map_err(|e| refused(url, &e.to_string()))?;
        same_store(url, &own.display)?;
        let parts = parts(&dir.path);
        if parts.len() < 2 || parts[parts.len() - 2] != "savepoints" {
            return Err(refused(url, "is not a savepoint directory (…/savepoints/<id>)"));
        }
        if keep
            .restored_from
            .is_some_and(|r| r.trim_end_matches('/') == url.trim_end_matches('/'))
        {
            return Err(refused(
                url,
                "is what the running job restored from, and no checkpoint completed since",
            ));
        }
        savepoints.push(SnapshotDir::at(url)?);
    }
    let mut job_dirs = Vec::new();
    for url in &request.checkpoint_dirs {
        let dir = storage::resolve(url).map_err(|e| refused(url, &e.to_string()))?;
        same_store(url, &own.display)?;
        let parts = parts(&dir.path);
        if parts.is_empty() {
            return Err(refused(url, "is the root of its store"));
        }
        if own_parts.starts_with(&parts) || parts.starts_with(&own_parts) {
            return Err(refused(url, "holds the running job's own checkpoints"));
        }
        job_dirs.push(CheckpointStore::at(url)?);
    }
    let mut disposed = Vec::new();
    for (dir, url) in savepoints.iter().zip(&request.savepoints) {
        dir.delete().await?;
        disposed.push(url.clone());
    }
    for (store, url) in job_dirs.iter().zip(&request.checkpoint_dirs) {
        store.delete_checkpoints().await?;
        disposed.push(url.clone());
    }
    Ok(disposed)
}

fn parts(path: &Path) -> Vec<String> {
    path.parts().map(|p| p.as_ref().to_string()).collect()
}

fn refused(url: &str, why: &str) -> DisposeError {
    DisposeError::Refused {
        url: url.to_string(),
        why: why.to_string(),
    }
}

/// Scheme and authority (the bucket, the HDFS name node): a request may only name locations
/// in the job's own store.
fn same_store(url: &str, own: &str) -> Result<()> {
    fn key(location: &str) -> String {
        match url::Url::parse(location) {
            Ok(u) if location.contains("://") => {
                let scheme = match u.scheme() {
                    "s3a" => "s3",
                    s => s,
                };
                format!("{scheme}://{}", u.authority())
            }
            _ => "file://".to_string(),
        }
    }
    if key(url) == key(own) {
        Ok(())
    } else {
        Err(refused(
            url,
            &format!("is outside the job's checkpoint store ({})", key(own)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn snapshot(dir: &SnapshotDir) {
        dir.put_file("state", Bytes::from_static(b"x")).await.unwrap();
        let meta = crate::checkpoint::SnapshotMetadata {
            format: crate::checkpoint::metadata::FORMAT,
            job: "j".into(),
            checkpoint_id: 1,
            generation: 1,
            kind: crate::checkpoint::SnapshotKind::Checkpoint,
            timestamp_ms: 0,
            max_parallelism: 128,
            operators: Vec::new(),
        };
        dir.write_metadata(&meta).await.unwrap();
    }

    #[tokio::test]
    async fn savepoints_and_other_namespaces_go_and_the_running_jobs_own_state_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let root = format!("file://{}", tmp.path().display());
        let own = CheckpointStore::open(&format!("{root}/epoch-1"), "j").unwrap();
        let old = CheckpointStore::open(&root, "j").unwrap();
        snapshot(&own.checkpoint(5)).await;
        snapshot(&old.checkpoint(3)).await;
        snapshot(&old.savepoint("savepoint-4")).await;
        snapshot(&own.savepoint("savepoint-6")).await;
        snapshot(&own.savepoint("savepoint-7")).await;
        let sp = |store: &CheckpointStore, id: &str| store.savepoint(id).display().to_string();
        let keep = Keep {
            own: &own,
            restored_from: Some(&sp(&own, "savepoint-7")),
        };

        // Refused, and nothing deleted: the job's own store, the snapshot it restored from,
        // a directory that is no savepoint, another store.
        for bad in [
            Disposal {
                checkpoint_dirs: vec![own.display().to_string()],
                ..Disposal::default()
            },
            Disposal {
                checkpoint_dirs: vec![root.clone()],
                ..Disposal::default()
            },
            Disposal {
                savepoints: vec![sp(&own, "savepoint-6"), sp(&own, "savepoint-7")],
                ..Disposal::default()
            },
            Disposal {
                savepoints: vec![own.checkpoint(5).display().to_string()],
                ..Disposal::default()
            },
            Disposal {
                savepoints: vec!["s3://elsewhere/j/savepoints/savepoint-1".into()],
                ..Disposal::default()
            },
        ] {
            let e = dispose(&bad, &keep).await.unwrap_err();
            assert!(matches!(e, DisposeError::Refused { .. }), "{e}");
        }
        assert!(own.savepoint("savepoint-6").exists().await.unwrap());

        let done = dispose(
            &Disposal {
                savepoints: vec![sp(&own, "savepoint-6")],
                checkpoint_dirs: vec![old.display().to_string()],
            },
            &keep,
        )
        .await
        .unwrap();
        assert_eq!(done.len(), 2);
        assert!(!own.savepoint("savepoint-6").exists().await.unwrap());
        assert!(!tmp.path().join("epoch-1/j/savepoints/savepoint-6").exists());
        assert!(!old.checkpoint(3).exists().await.unwrap());
        assert!(old.completed().await.unwrap().is_empty());
        // The old namespace's savepoint stays; the running job's state is untouched.
        assert!(old.savepoint("savepoint-4").exists().await.unwrap());
        assert!(own.checkpoint(5).exists().await.unwrap());
        assert!(own.savepoint("savepoint-7").exists().await.unwrap());
        // Again: already gone counts as done.
        let again = Disposal {
            savepoints: vec![sp(&own, "savepoint-6")],
            ..Disposal::default()
        };
        assert_eq!(dispose(&again, &keep).await.unwrap().len(), 1);
    }
}
