//! Checkpoint storage through `object_store`, in the design's layout:
//!
//! ```text
//! <root>/<job>/chk-<n>/<operator>/<subtask>-g<generation>   state files
//! <root>/<job>/chk-<n>/_metadata                            written last, create-only
//! <root>/<job>/savepoints/<id>/…                            self-contained, kept
//! ```
//!
//! A checkpoint without `_metadata` does not exist. `_metadata` is written with a create-only
//! put, so two writers of the same checkpoint (a zombie from an older generation and the
//! current run) cannot both succeed. State files carry the writer's generation in their name,
//! so the loser's files never overwrite the winner's.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::metadata::SnapshotMetadata;
use crate::contract::error::{Result, WeirError};
use crate::storage::{self, Location};

/// Name of the metadata file.
pub const METADATA: &str = "_metadata";

/// Name of the marker a job that ran to its end leaves in its directory.
pub const FINISHED: &str = "_finished";

/// A job's checkpoints and savepoints under a storage URL.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    /// `<root>/<job>`.
    job_dir: Location,
}

/// A directory holding one snapshot (a checkpoint's `chk-<n>` or a savepoint's).
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: Location,
}

fn err(what: &str, loc: &Location, e: impl Into<crate::contract::error::BoxError>) -> WeirError {
    WeirError::io_context("checkpoints", format!("{what} {}", loc.display), e)
}

/// The objects and sub-directories directly under `dir` (none when it does not exist).
async fn list(dir: &Location) -> Result<object_store::ListResult> {
    match dir.store.list_with_delimiter(Some(&dir.path)).await {
        Ok(l) => Ok(l),
        Err(object_store::Error::NotFound { .. }) => Ok(object_store::ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        }),
        Err(e) => Err(err("listing", dir, e)),
    }
}

impl CheckpointStore {
    /// The checkpoints of job `job` under `url` (a path, `file://`, `s3://`, `memory://`).
    pub fn open(url: &str, job: &str) -> Result<Self> {
        if job.is_empty() || job.contains('/') {
            return Err(WeirError::plan(format!(
                "checkpoints: job name '{job}' must be non-empty and without '/'"
            )));
        }
        Ok(CheckpointStore {
            job_dir: storage::resolve(url)?.child(job),
        })
    }

    /// The snapshots in a job's directory given by URL (`<storage>/<job>`).
    pub fn at(job_dir: &str) -> Result<Self> {
        Ok(CheckpointStore {
            job_dir: storage::resolve(job_dir)?,
        })
    }

    /// Where the job's snapshots live, for messages.
    pub fn display(&self) -> &str {
        &self.job_dir.display
    }

    /// The directory of checkpoint `n`.
    pub fn checkpoint(&self, n: u64) -> SnapshotDir {
        SnapshotDir {
            dir: self.job_dir.child(&format!("chk-{n}")),
        }
    }

    /// Where the snapshot of `barrier` goes: `chk-<n>`, or `savepoints/savepoint-<n>`.
    pub fn snapshot_dir(&self, barrier: &crate::contract::message::Barrier) -> SnapshotDir {
        if barrier.savepoint {
            self.savepoint(&format!("savepoint-{}", barrier.checkpoint_id))
        } else {
            self.checkpoint(barrier.checkpoint_id)
        }
    }

    /// The directory of savepoint `id`.
    pub fn savepoint(&self, id: &str) -> SnapshotDir {
        SnapshotDir {
            dir: self.job_dir.child("savepoints").child(id),
        }
    }

    /// Claims the lowest run generation above `at_least` that no run has claimed yet, with a
    /// create-only write of `generations/<n>`: two coordinators (a restarted one and a zombie)
    /// can never run the same generation, so fencing by generation holds across restarts.
    pub async fn claim_generation(&self, at_least: u64) -> Result<u64> {
        let dir = self.job_dir.child("generations");
        let highest = list(&dir)
            .await?
            .objects
            .iter()
            .filter_map(|o| o.location.filename()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let mut n = highest.max(at_least.saturating_sub(1)) + 1;
        loop {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            let path = dir.path.clone().join(n.to_string());
            let stamp = crate::contract::clock::wall_ms().to_string();
            match dir
                .store
                .put_opts(&path, PutPayload::from(stamp.into_bytes()), opts)
                .await
            {
                Ok(_) => return Ok(n),
                Err(object_store::Error::AlreadyExists { .. }) => n += 1,
                Err(e) => return Err(err("claiming a generation in", &dir, e)),
            }
        }
    }

    /// Records that the job ran to the end of its input (`<root>/<job>/_finished`, JSON with
    /// the newest checkpoint and the time): `--resume` then has nothing to resume.
    pub async fn mark_finished(&self) -> Result<()> {
        let last = self.completed().await?.last().copied().unwrap_or(0);
        let body = serde_json::json!({
            "finished_at_ms": crate::contract::clock::wall_ms(),
            "last_checkpoint": last,
        });
        let path = self.job_dir.path.clone().join(FINISHED);
        self.job_dir
            .store
            .put(&path, PutPayload::from(body.to_string().into_bytes()))
            .await
            .map_err(|e| err("writing the finished marker in", &self.job_dir, e))?;
        Ok(())
    }

    /// When the job finished (ms since the epoch), if it did and has not been started afresh
    /// since.
    pub async fn finished(&self) -> Result<Option<i64>> {
        let path = self.job_dir.path.clone().join(FINISHED);
        match self.job_dir.store.get(&path).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| err("reading the finished marker in", &self.job_dir, e))?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| err("reading the finished marker in", &self.job_dir, e))?;
                Ok(Some(v["finished_at_ms"].as_i64().unwrap_or(0)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err("reading the finished marker in", &self.job_dir, e)),
        }
    }

    /// Forgets that the job finished (a fresh start runs it again).
    pub async fn clear_finished(&self) -> Result<()> {
        let path = self.job_dir.path.clone().join(FINISHED);
        match self.job_dir.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err("removing the finished marker in", &self.job_dir, e)),
        }
    }

    /// The job's directory.
    pub fn location(&self) -> &Location {
        &self.job_dir
    }

    /// Deletes every checkpoint (each `_metadata` first) and the markers beside them; the
    /// savepoints stay. For the job directory of a state namespace nothing runs in any more.
    pub async fn delete_checkpoints(&self) -> Result<()> {
        for id in self.checkpoint_dirs().await? {
            self.checkpoint(id).delete().await?;
        }
        for object in list(&self.job_dir).await?.objects {
            match self.job_dir.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err("deleting", &self.job_dir, e)),
            }
        }
        Ok(())
    }

    /// Ids of the `chk-<n>` directories, complete or not, ascending.
    async fn checkpoint_dirs(&self) -> Result<Vec<u64>> {
        let listing = list(&self.job_dir).await?;
        let mut ids: Vec<u64> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix("chk-")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The highest checkpoint id in use (complete or not; 0 when none): a new run numbers its
    /// checkpoints after it, so it never collides with an earlier run's.
    pub async fn highest_id(&self) -> Result<u64> {
        let checkpoints = self.checkpoint_dirs().await?.last().copied().unwrap_or(0);
        let savepoints = self
            .savepoints()
            .await?
            .iter()
            .filter_map(|name| name.strip_prefix("savepoint-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(checkpoints.max(savepoints))
    }

    /// Names of the savepoint directories.
    pub async fn savepoints(&self) -> Result<Vec<String>> {
        let dir = self.job_dir.child("savepoints");
        let listing = list(&dir).await?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Ids of complete checkpoints (those with `_metadata`), ascending.
    pub async fn completed(&self) -> Result<Vec<u64>> {
        let mut done = Vec::new();
        for id in self.checkpoint_dirs().await? {
            if self.checkpoint(id).exists().await? {
                done.push(id);
            }
        }
        Ok(done)
    }

    /// The newest complete checkpoint.
    pub async fn latest(&self) -> Result<Option<(SnapshotDir, SnapshotMetadata)>> {
        match self.completed().await?.last() {
            Some(&id) => {
                let dir = self.checkpoint(id);
                let meta = dir.read_metadata().await?;
                Ok(Some((dir, meta)))
            }
            None => Ok(None),
        }
    }

    /// The newest complete snapshot of the job, checkpoint or savepoint (savepoints take the id
    /// of the checkpoint they were taken as, so ids order them together): what a resumed run
    /// restores. A job stopped with a savepoint resumes from it even when whoever asked for the
    /// savepoint lost the reply, instead of from an older checkpoint (which would replay output
    /// committed since).
    pub async fn newest(&self) -> Result<Option<(SnapshotDir, SnapshotMetadata)>> {
        let checkpoint = self.latest().await?;
        let mut savepoint: Option<(u64, SnapshotDir)> = None;
        for name in self.savepoints().await? {
            let Some(id) = name.strip_prefix("savepoint-").and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            if savepoint.as_ref().is_some_and(|(best, _)| *best >= id) {
                continue;
            }
            let dir = self.savepoint(&name);
            if dir.exists().await? {
                savepoint = Some((id, dir));
            }
        }
        match (checkpoint, savepoint) {
            (Some((dir, meta)), Some((id, _))) if meta.checkpoint_id >= id => Ok(Some((dir, meta))),
            (_, Some((_, dir))) => {
                let meta = dir.read_metadata().await?;
                Ok(Some((dir, meta)))
            }
            (checkpoint, None) => Ok(checkpoint),
        }
    }

    /// Keeps the newest `keep` complete checkpoints; deletes older checkpoint directories,
    /// complete or not, except the files a kept incremental checkpoint builds on (their
    /// directories lose `_metadata` and every other file, and go once nothing kept refers to
    /// them). Returns the ids of the directories deleted whole.
    pub async fn retain(&self, keep: usize) -> Result<Vec<u64>> {
        let complete = self.completed().await?;
        if complete.len() <= keep.max(1) {
            return Ok(Vec::new());
        }
        let kept = &complete[complete.len() - keep.max(1)..];
        let oldest_kept = kept[0];
        let mut referenced: std::collections::BTreeMap<u64, std::collections::HashSet<String>> = Default::default();
        for id in kept {
            let meta = self.checkpoint(*id).read_metadata().await?;
            for (chk, file) in meta.chained_files() {
                referenced.entry(chk).or_default().insert(file.to_string());
            }
        }
        let mut deleted = Vec::new();
        for id in self.checkpoint_dirs().await? {
            if id >= oldest_kept {
                break;
            }
            match referenced.get(&id) {
                Some(files) => self.checkpoint(id).delete_except(files).await?,
                None => {
                    self.checkpoint(id).delete().await?;
                    deleted.push(id);
                }
            }
        }
        Ok(deleted)
    }
}

impl SnapshotDir {
    /// A snapshot directory given by URL (e.g. `--from-savepoint`).
    pub fn at(url: &str) -> Result<Self> {
        Ok(SnapshotDir {
            dir: storage::resolve(url)?,
        })
    }

    /// Where it is, for messages.
    pub fn display(&self) -> &str {
        &self.dir.display
    }

    /// The directory of checkpoint `n` of the same job (`../chk-<n>`): where the earlier files
    /// of an incremental checkpoint are.
    pub fn checkpoint_sibling(&self, n: u64) -> SnapshotDir {
        SnapshotDir {
            dir: self.dir.parent().child(&format!("chk-{n}")),
        }
    }

    fn path(&self, rel: &str) -> Path {
        rel.split('/').fold(self.dir.path.clone(), |p, part| p.join(part))
    }

    /// Whether `_metadata` exists (the snapshot is complete).
    pub async fn exists(&self) -> Result<bool> {
        match self.dir.store.head(&self.path(METADATA)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(err("reading", &self.dir, e)),
        }
    }

    /// Writes a state file (relative name) and returns its size.
    pub async fn put_file(&self, rel: &str, data: Bytes) -> Result<u64> {
        let size = data.len() as u64;
        self.dir
            .store
            .put(&self.path(rel), PutPayload::from_bytes(data))
            .await
            .map_err(|e| err(&format!("writing {rel} in"), &self.dir, e))?;
        Ok(size)
    }

    /// Uploads a local file of `size` bytes as state file `rel`: in one request when small, else
    /// in parts (multipart on S3), never holding more than a part in memory. Into a directory on
    /// the same local file system, a file that has a `name` (and never changes) is hard-linked
    /// instead: no bytes copied.
    pub async fn put_local_file(
        &self,
        rel: &str,
        file: std::fs::File,
        size: u64,
        name: Option<&std::path::Path>,
    ) -> Result<u64> {
        use std::io::{Read, Seek};
        if let (Some(dir), Some(name)) = (&self.dir.local, name) {
            let dest = super::local::under(dir.clone(), rel);
            let (name, to) = (name.to_path_buf(), dest.clone());
            let linked = tokio::task::spawn_blocking(move || super::local::link(&name, &to))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            match linked {
                Ok(()) => return Ok(size),
                Err(e) => tracing::debug!(file = %dest.display(), "checkpoint storage: copying, not linking: {e}"),
            }
        }
        const PART: u64 = 16 << 20;
        let read = |mut file: std::fs::File, at: u64, len: u64| async move {
            tokio::task::spawn_blocking(move || -> std::io::Result<(std::fs::File, Vec<u8>)> {
                let mut buf = vec![0; len as usize];
                file.seek(std::io::SeekFrom::Start(at))?;
                file.read_exact(&mut buf)?;
                Ok((file, buf))
            })
            .await
            .map_err(std::io::Error::other)?
        };
        let io = |e: std::io::Error| err(&format!("reading the local copy of {rel} for"), &self.dir, e);
        if size <= PART {
            let (_, bytes) = read(file, 0, size).await.map_err(io)?;
            return self.put_file(rel, Bytes::from(bytes)).await;
        }
        let path = self.path(rel);
        let upload = self
            .dir
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| err(&format!("starting the upload of {rel} in"), &self.dir, e))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART as usize);
        let (mut file, mut at) = (file, 0);
        while at < size {
            let len = PART.min(size - at);
            let (f, bytes) = read(file, at, len).await.map_err(io)?;
            file = f;
            writer
                .wait_for_capacity(2)
                .await
                .map_err(|e| err(&format!("uploading {rel} in"), &self.dir, e))?;
            writer.write(&bytes);
            at += len;
        }
        writer
            .finish()
            .await
            .map_err(|e| err(&format!("completing the upload of {rel} in"), &self.dir, e))?;
        Ok(size)
    }

    /// Reads `range` of a state file.
    pub async fn read_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.dir
            .store
            .get_range(&self.path(rel), range)
            .await
            .map_err(|e| err(&format!("reading {rel} in"), &self.dir, e))
    }

    /// Writes `_metadata` if no one has: the snapshot is complete from here on. Fails with a
    /// clear error if another writer completed it first.
    pub async fn write_metadata(&self, meta: &SnapshotMetadata) -> Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(|e| err("encoding metadata for", &self.dir, e))?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .dir
            .store
            .put_opts(&self.path(METADATA), PutPayload::from(json), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(WeirError::io(
                "checkpoints",
                format!(
                    "{} was already completed by another writer (an older run of this job?); this one is discarded",
                    self.dir.display
                ),
            )),
            Err(e) => Err(err("writing metadata of", &self.dir, e)),
        }
    }

    /// Reads `_metadata`.
    pub async fn read_metadata(&self) -> Result<SnapshotMetadata> {
        let bytes = match self.dir.store.get(&self.path(METADATA)).await {
            Ok(r) => r.bytes().await.map_err(|e| err("reading", &self.dir, e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(WeirError::plan(format!(
                    "{} is not a complete checkpoint or savepoint (no {METADATA})",
                    self.dir.display
                )));
            }
            Err(e) => return Err(err("reading", &self.dir, e)),
        };
        let meta: SnapshotMetadata = serde_json::from_slice(&bytes)
            .map_err(|e| WeirError::plan(format!("{}/{METADATA} is not valid: {e}", self.dir.display)))?;
        if meta.format != super::metadata::FORMAT {
            return Err(WeirError::plan(format!(
                "{}/{METADATA} has format {}, this build reads format {}",
                self.dir.display,
                meta.format,
                super::metadata::FORMAT
            )));
        }
        Ok(meta)
    }

    /// Deletes `_metadata` first (a half-deleted snapshot is never taken for a complete one),
    /// then every file but `keep` (names relative to the directory).
    pub async fn delete_except(&self, keep: &std::collections::HashSet<String>) -> Result<()> {
        match self.dir.store.delete(&self.path(METADATA)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(err("deleting", &self.dir, e)),
        }
        let files: Vec<Path> = self
            .dir
            .store
            .list(Some(&self.dir.path))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| err("listing", &self.dir, e))?;
        for f in files {
            let rel = f
                .prefix_match(&self.dir.path)
                .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"))
                .unwrap_or_default();
            if keep.contains(&rel) {
                continue;
            }
            match self.dir.store.delete(&f).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err("deleting", &self.dir, e)),
            }
        }
        Ok(())
    }

    /// Deletes everything under the directory, `_metadata` first so a half-deleted snapshot is
    /// never taken for a complete one.
    pub async fn delete(&self) -> Result<()> {
        self.delete_except(&Default::default()).await?;
        self.dir.remove_dir().await.map_err(|e| err("deleting", &self.dir, e))
    }
}
