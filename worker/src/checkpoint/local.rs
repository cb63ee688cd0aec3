//! Local recovery: each checkpoint state file a subtask uploads is also kept on the worker's
//! local disk, `<state dir>/local-recovery/<job>/chk-<n>/<operator>/<file>`, so a worker that
//! restarts on the same machine (a killed process, a restarted container that keeps its volume)
//! reads its state from there instead of downloading it again — Flink's local recovery.
//!
//! Checkpoint storage stays the source of truth: a local copy is read only when `_metadata`
//! names it and its size matches (file names carry the writer's generation, so a copy of that
//! name and size is the file that was uploaded); anything else is read from storage. Copies
//! are best effort: failing to write one never fails a checkpoint. Once a checkpoint completes,
//! a subtask keeps only the copies its newest snapshot's chain needs.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::contract::state_backend::StateBackend;

/// Where one job's local copies live on this machine.
#[derive(Debug, Clone)]
pub struct LocalCopies {
    /// `<state dir>/local-recovery/<job>`.
    root: PathBuf,
    /// The job's name.
    job: String,
}

impl LocalCopies {
    /// The local copies of job `job`, when its backend keeps them: the disk backend with local
    /// recovery on (its default) keeps them beside its state files.
    pub fn for_job(backend: &StateBackend, job: &str) -> Option<Self> {
        match backend {
            StateBackend::Disk(d) if d.local_recovery => Some(LocalCopies::at(&d.dir, job)),
            _ => None,
        }
    }

    /// The local copies of job `job` under state directory `dir`.
    pub fn at(dir: &Path, job: &str) -> Self {
        LocalCopies {
            root: dir.join("local-recovery").join(job),
            job: job.to_string(),
        }
    }

    /// The job whose copies these are.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Where the copy of state file `rel` of checkpoint `checkpoint` is.
    fn path(&self, checkpoint: u64, rel: &str) -> PathBuf {
        under(self.root.join(format!("chk-{checkpoint}")), rel)
    }

    /// Writes `write`'s output as the copy of `rel` in `checkpoint`: to a temporary name first,
    /// so a copy that exists is whole.
    fn keep(&self, checkpoint: u64, rel: &str, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
        let path = self.path(checkpoint, rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("partial");
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.flush()?;
        fs::rename(&tmp, &path)
    }

    /// Keeps `bytes` as the copy of state file `rel` of checkpoint `checkpoint`.
    pub fn keep_bytes(&self, checkpoint: u64, rel: &str, bytes: &[u8]) -> io::Result<()> {
        self.keep(checkpoint, rel, |f| f.write_all(bytes))
    }

    /// Keeps the first `size` bytes of `source` (at any position) as the copy of `rel` of
    /// `checkpoint`: a hard link to `name` when the file has one (no bytes copied; it must not
    /// change after), a copy otherwise or when linking fails (another file system).
    pub fn keep_file(
        &self,
        checkpoint: u64,
        rel: &str,
        mut source: File,
        size: u64,
        name: Option<&Path>,
    ) -> io::Result<()> {
        if let Some(name) = name {
            let path = self.path(checkpoint, rel);
            match link(name, &path) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(copy = %path.display(), "local recovery: copying, not linking: {e}"),
            }
        }
        source.seek(SeekFrom::Start(0))?;
        self.keep(checkpoint, rel, |f| {
            let copied = io::copy(&mut (&mut source).take(size), f)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("state file is {copied} bytes, expected {size}"),
                ));
            }
            Ok(())
        })
    }

    /// `range` of the copy of `rel` of `checkpoint`, if there is a copy of `size` bytes.
    pub fn read(&self, checkpoint: u64, rel: &str, size: u64, range: std::ops::Range<u64>) -> Option<Vec<u8>> {
        let mut file = File::open(self.path(checkpoint, rel)).ok()?;
        if file.metadata().ok()?.len() != size || range.end > size {
            return None;
        }
        let mut bytes = vec![0; (range.end - range.start) as usize];
        file.seek(SeekFrom::Start(range.start)).ok()?;
        file.read_exact(&mut bytes).ok()?;
        Some(bytes)
    }

    /// Once checkpoint `completed` is complete: removes the copies of subtask `subtask` of
    /// operator `uid` (of any generation) from checkpoints before it that `keep` does not name.
    /// Copies of later checkpoints (still in flight) stay.
    pub fn prune(&self, uid: &str, subtask: usize, completed: u64, keep: &[u64]) {
        let Ok(dirs) = fs::read_dir(&self.root) else {
            return;
        };
        let prefix = format!("{subtask}-g");
        for dir in dirs.flatten() {
            let name = dir.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix("chk-")?.parse::<u64>().ok()) else {
                continue;
            };
            if id >= completed || keep.contains(&id) {
                continue;
            }
            let op_dir = under(dir.path(), uid);
            if let Ok(files) = fs::read_dir(&op_dir) {
                for f in files.flatten() {
                    if f.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
                        let _ = fs::remove_file(f.path());
                    }
                }
            }
            // Directories left empty go (non-empty ones fail to remove and stay).
            let _ = fs::remove_dir(&op_dir);
            let _ = fs::remove_dir(dir.path());
        }
    }

    /// Removes every copy of the job (it ran to its end: nothing will restore them).
    pub fn clear(&self) {
        let _ = fs::remove_dir_all(&self.root);
        // `local-recovery` itself goes when no other job has copies in it.
        if let Some(parent) = self.root.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// `rel` (a `/`-separated name, as in checkpoint storage) under `base`.
pub(super) fn under(base: PathBuf, rel: &str) -> PathBuf {
    rel.split('/').fold(base, |p, part| p.join(part))
}

/// Makes `to` (and its directories) a hard link to the file `name`: a copy of a file that never
/// changes, with no bytes copied (fails across file systems).
pub(super) fn link(name: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::hard_link(name, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_read_only_when_whole_and_pruned_to_the_chain() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let local = LocalCopies::at(dir.path(), "job");
        local.keep_bytes(1, "op/0-g1", b"0123456789").unwrap();
        local.keep_bytes(2, "op/0-g1", b"abc").unwrap();
        local.keep_bytes(2, "op/1-g1", b"other").unwrap();
        local.keep_bytes(3, "op/0-g1", b"xyz").unwrap();
        assert_eq!(local.read(1, "op/0-g1", 10, 2..5).unwrap(), b"234");
        assert!(local.read(1, "op/0-g1", 11, 0..1).is_none(), "size differs");
        assert!(local.read(4, "op/0-g1", 3, 0..1).is_none(), "no copy");
        // Checkpoint 3 completed and builds on 1: 2's copy of subtask 0 goes, 1 and 3 stay,
        // subtask 1's stays.
        local.prune("op", 0, 3, &[1, 3]);
        assert!(local.read(1, "op/0-g1", 10, 0..1).is_some());
        assert!(local.read(2, "op/0-g1", 3, 0..1).is_none());
        assert!(local.read(2, "op/1-g1", 5, 0..5).is_some());
        assert!(local.read(3, "op/0-g1", 3, 0..3).is_some());
        local.prune("op", 1, 3, &[3]);
        assert!(
            !dir.path().join("local-recovery/job/chk-2").exists(),
            "empty directories go"
        );
        let source = tempfile::tempfile().unwrap();
        (&source).write_all(b"file contents").unwrap();
        local.keep_file(5, "op/0-g2", source, 4, None).unwrap();
        assert_eq!(local.read(5, "op/0-g2", 4, 0..4).unwrap(), b"file");
        // A named file is linked, not copied: the copy stays when the name goes.
        let (named, name) = tempfile::NamedTempFile::new_in(dir.path()).unwrap().into_parts();
        (&named).write_all(b"linked").unwrap();
        local.keep_file(6, "op/0-g2", named, 6, Some(&name)).unwrap();
        let copy = dir.path().join("local-recovery/job/chk-6/op/0-g2");
        assert_eq!(std::fs::metadata(&copy).unwrap().nlink(), 2, "a hard link");
        drop(name);
        assert_eq!(local.read(6, "op/0-g2", 6, 0..6).unwrap(), b"linked");
        local.clear();
        assert!(!dir.path().join("local-recovery").exists());
    }
}
