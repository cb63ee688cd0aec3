//! Writes each subtask's rows to part files `part-<node>-<subtask>-<n>.<ext>` in a directory.
//!
//! Without checkpoints a part file becomes visible when it is closed (rolled or at the end of
//! the input). With checkpoints the sink is exactly-once by two-phase commit: rows go to hidden
//! in-progress files (`.part-….inprogress`); at checkpoint `n`'s barrier the open file is closed
//! and, with every file closed since the previous barrier, recorded in the checkpoint as
//! pending; when `n` completes they are renamed to their final names. After a failure the job
//! restores checkpoint `n`: its pending files are committed (renaming is idempotent), and
//! in-progress files written after it are deleted, so a reader of the directory never sees
//! duplicates or rolled-back rows. The end of a bounded input commits everything.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::config::FileSinkConfig;
use crate::connectors::format::{Format, encode};
use crate::connectors::{Sink, SinkFactory};
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::storage::{self, Location};

/// A file sink.
pub struct FileSink {
    node: String,
    config: FileSinkConfig,
}

impl FileSink {
    /// A sink named `node` with `config`.
    pub fn new(node: &str, config: FileSinkConfig) -> Result<Self> {
        storage::resolve(&config.path).map_err(|e| WeirError::config("file", node, e.to_string()))?;
        Ok(FileSink {
            node: node.to_string(),
            config,
        })
    }
}

impl SinkFactory for FileSink {
    fn connector(&self) -> &'static str {
        "file"
    }

    fn check_schema(&self, input: &SchemaRef) -> Result<()> {
        if self.config.format == Format::Text && input.fields().len() != 1 {
            return Err(WeirError::config(
                "file",
                &self.node,
                "format text needs exactly one column; add a select",
            ));
        }
        Ok(())
    }

    fn create(&self, _input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Sink>> {
        Ok(Box::new(FileWriter {
            dir: storage::resolve(&self.config.path)?,
            node: ctx.node.clone(),
            subtask: ctx.subtask,
            format: self.config.format,
            roll_bytes: self.config.roll_bytes.max(1),
            csv_header: self.config.header,
            part: 0,
            writer: None,
            parquet: None,
            written: 0,
            current: None,
            closed: Vec::new(),
            pending: Vec::new(),
            transactional: false,
        }))
    }
}

struct FileWriter {
    dir: Location,
    node: String,
    subtask: usize,
    format: Format,
    roll_bytes: usize,
    csv_header: bool,
    part: usize,
    writer: Option<BufWriter>,
    /// Parquet: the open part, built in memory and written whole when it closes (a Parquet
    /// file ends with its footer).
    parquet: Option<parquet::arrow::ArrowWriter<Vec<u8>>>,
    written: usize,
    /// The open file's (in-progress, final) names, when transactional.
    current: Option<(String, String)>,
    /// Files closed since the last barrier, awaiting it.
    closed: Vec<(String, String)>,
    /// Files awaiting the completion of checkpoint `.0`.
    pending: Vec<(u64, String, String)>,
    /// Whether the job checkpoints (set by the first snapshot or a restore).
    transactional: bool,
}

/// What the sink keeps in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct SinkState {
    /// Next part number.
    part: usize,
    /// Files to publish once their checkpoint completes: (checkpoint, in-progress, final).
    pending: Vec<(u64, String, String)>,
}

impl FileWriter {
    async fn close(&mut self) -> Result<()> {
        if let Some(p) = self.parquet.take() {
            let bytes = p
                .into_inner()
                .map_err(|e| WeirError::io(&self.node, format!("{}: parquet: {e}", self.dir.display)))?;
            if let Some(w) = self.writer.as_mut() {
                w.write_all(&bytes)
                    .await
                    .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", self.dir.display)))?;
            }
        }
        if let Some(mut w) = self.writer.take() {
            w.shutdown()
                .await
                .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", self.dir.display)))?;
        }
        if let Some(names) = self.current.take() {
            self.closed.push(names);
        }
        Ok(())
    }
}

/// Renames an in-progress file to its final name (done already: fine).
async fn publish(dir: &Location, node: &str, tmp: &str, name: &str) -> Result<()> {
    {
        let (from, to) = (dir.child(tmp), dir.child(name));
        match dir.store.rename(&from.path, &to.path).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                // Committed before a failure: the final file must be there.
                match dir.store.head(&to.path).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(WeirError::io(
                        node,
                        format!("{}: neither {tmp} nor {name} exists: {e}", dir.display),
                    )),
                }
            }
            Err(e) => Err(WeirError::io(node, format!("{}: publishing {name}: {e}", dir.display))),
        }
    }
}

/// Deletes a subtask's in-progress files except `keep` (rows after the restored checkpoint,
/// which the restored job writes again).
async fn abort_leftovers(dir: &Location, node: &str, subtask: usize, keep: &[String]) -> Result<()> {
    use futures::TryStreamExt;
    let prefix = format!(".part-{node}-{subtask}-");
    let listed: object_store::Result<Vec<object_store::ObjectMeta>> =
        dir.store.list(Some(&dir.path)).try_collect().await;
    let files: Vec<object_store::path::Path> = match listed {
        Ok(list) => list.into_iter().map(|m| m.location).collect(),
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(WeirError::io(node, format!("{}: {e}", dir.display))),
    };
    for f in files {
        let name = f.filename().unwrap_or_default().to_string();
        if name.starts_with(&prefix) && name.ends_with(".inprogress") && !keep.contains(&name) {
            tracing::info!(node, file = %name, "deleting rows written after the restored checkpoint");
            match dir.store.delete(&f).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(WeirError::io(node, format!("{}: {e}", dir.display))),
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Sink for FileWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let header = self.writer.is_none();
        if header {
            let name = format!(
                "part-{}-{}-{}.{}",
                self.node,
                self.subtask,
                self.part,
                self.format.extension()
            );
            let name = if self.transactional {
                let tmp = format!(".{name}.inprogress");
                self.current = Some((tmp.clone(), name));
                tmp
            } else {
                name
            };
            let loc = self.dir.child(&name);
            self.writer = Some(BufWriter::new(loc.store, loc.path));
            self.part += 1;
            self.written = 0;
        }
        if self.format == Format::Parquet {
            let bad = |e: parquet::errors::ParquetError| WeirError::io(&self.node, format!("parquet: {e}"));
            if self.parquet.is_none() {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                self.parquet =
                    Some(parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(bad)?);
            }
            let p = self.parquet.as_mut().expect("opened above");
            p.write(&batch).map_err(bad)?;
            self.written = p.bytes_written() + p.in_progress_size();
            if self.written >= self.roll_bytes {
                self.close().await?;
            }
            return Ok(());
        }
        let bytes = encode(self.format, &batch, header && self.csv_header)?;
        self.written += bytes.len();
        let w = self.writer.as_mut().expect("opened above");
        w.write_all(&bytes)
            .await
            .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", self.dir.display)))?;
        if self.written >= self.roll_bytes {
            self.close().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.close().await?;
        if self.transactional {
            // Published when the whole job has ended well (`commit_final`): another subtask
            // could still fail and restore a checkpoint from before this end.
            for (tmp, name) in self.closed.drain(..) {
                self.pending.push((u64::MAX, tmp, name));
            }
            return Ok(());
        }
        self.commit_final().await
    }

    async fn commit_final(&mut self) -> Result<()> {
        let files: Vec<(String, String)> = self
            .pending
            .drain(..)
            .map(|(_, t, f)| (t, f))
            .chain(self.closed.drain(..))
            .collect();
        for (tmp, name) in files {
            publish(&self.dir, &self.node, &tmp, &name).await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        if !self.transactional {
            return self.finish().await;
        }
        // In-progress files stay hidden; a resumed job deletes them and writes their rows again.
        if let Some(mut w) = self.writer.take() {
            w.shutdown()
                .await
                .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", self.dir.display)))?;
        }
        Ok(())
    }

    async fn snapshot(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        if !self.transactional {
            // Rows so far went to visible files before checkpointing was known: from here on,
            // in-progress files.
            self.transactional = true;
        }
        self.close().await?;
        for (tmp, name) in self.closed.drain(..) {
            self.pending.push((checkpoint_id, tmp, name));
        }
        let state = SinkState {
            part: self.part,
            pending: self.pending.clone(),
        };
        Ok(Some(
            crate::contract::state::encode(&state).map_err(|e| WeirError::io(&self.node, e))?,
        ))
    }

    async fn restore(&mut self, own: Option<Vec<u8>>, union: Vec<Vec<u8>>) -> Result<()> {
        self.transactional = true;
        let (dir, node) = (self.dir.clone(), self.node.clone());
        let decode =
            |b: &[u8]| -> Result<SinkState> { crate::contract::state::decode(b).map_err(|e| WeirError::io(&node, e)) };
        let states = union.iter().map(|b| decode(b)).collect::<Result<Vec<_>>>()?;
        // The restored checkpoint is complete: publish what it covers, every old subtask's
        // files (renaming twice is harmless), so a changed parallelism loses nothing.
        let pending: Vec<&(u64, String, String)> = states.iter().flat_map(|s| &s.pending).collect();
        for (_, tmp, name) in &pending {
            publish(&dir, &node, tmp, name).await?;
        }
        self.part = match own {
            Some(b) => decode(&b)?.part,
            // A new subtask index (rescaled): start after every part number in use.
            None => states.iter().map(|s| s.part).max().unwrap_or(0),
        };
        let keep: Vec<String> = pending.iter().map(|p| p.1.clone()).collect();
        abort_leftovers(&dir, &node, self.subtask, &keep).await
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let (done, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.0 <= checkpoint_id);
        self.pending = later;
        let (dir, node) = (self.dir.clone(), self.node.clone());
        for (_, tmp, name) in done {
            publish(&dir, &node, &tmp, &name).await?;
        }
        Ok(())
    }
}
