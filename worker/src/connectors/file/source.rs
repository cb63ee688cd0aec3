//! Reads files line by line; subtask `i` of `p` reads the files whose index mod `p` is `i`.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::config::FileSourceConfig;
use crate::connectors::format::{Format, RecordDecoder, infer_schema};
use crate::connectors::{Source, SourceFactory};
use crate::contract::SourceContext;
use crate::contract::TaskContext;
use crate::contract::error::{Result, WeirError};
use crate::storage::{self, Location};
use crate::throttle::Throttle;

/// A file source.
pub struct FileSource {
    node: String,
    config: FileSourceConfig,
}

impl FileSource {
    /// A source named `node` with `config`.
    pub fn new(node: &str, config: FileSourceConfig) -> Self {
        FileSource {
            node: node.to_string(),
            config,
        }
    }

    /// The files to read, in order, with their sizes in bytes.
    async fn files(&self) -> Result<(Location, Vec<(Path, u64)>)> {
        let loc = storage::resolve(&self.config.path)?;
        let io = |e: object_store::Error| WeirError::io(&self.node, format!("{}: {e}", self.config.path));
        // A single object?
        match loc.store.head(&loc.path).await {
            Ok(meta) => return Ok((loc, vec![(meta.location, meta.size)])),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) if std::path::Path::new(&self.config.path).is_dir() => {
                let _ = e;
            }
            Err(e) => return Err(io(e)),
        }
        let mut files: Vec<(Path, u64)> = loc
            .store
            .list(Some(&loc.path))
            .map(|r| r.map(|m| (m.location, m.size)))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<std::result::Result<_, _>>()
            .map_err(io)?;
        files.retain(|(p, _)| p.filename().is_some_and(|f| !f.starts_with('.') && !f.starts_with('_')));
        files.sort();
        if files.is_empty() {
            return Err(WeirError::io(
                &self.node,
                format!("{}: no such file or no files in this directory", self.config.path),
            ));
        }
        Ok((loc, files))
    }
}

impl FileSource {
    async fn read(&self, loc: &Location, file: &Path) -> Result<bytes::Bytes> {
        loc.store
            .get(file)
            .await
            .map_err(|e| WeirError::io(&self.node, format!("{file}: {e}")))?
            .bytes()
            .await
            .map_err(|e| WeirError::io(&self.node, format!("{file}: {e}")))
    }
}

#[async_trait]
impl SourceFactory for FileSource {
    fn connector(&self) -> &'static str {
        "file"
    }

    async fn schema(&self) -> Result<SchemaRef> {
        if let Some(s) = &self.config.schema {
            return s
                .to_schema()
                .map_err(|e| WeirError::config("file", &self.node, e.to_string()));
        }
        let (loc, files) = self.files().await?;
        let files: Vec<Path> = files.into_iter().map(|(p, _)| p).collect();
        if self.config.format == Format::Parquet {
            // The schema is in the file's footer.
            let bytes = self.read(&loc, &files[0]).await?;
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(|e| WeirError::io(&self.node, format!("{}: {e}", files[0])))?;
            return Ok(builder.schema().clone());
        }
        let bytes = loc
            .store
            .get(&files[0])
            .await
            .map_err(|e| WeirError::io(&self.node, e))?
            .bytes()
            .await
            .map_err(|e| WeirError::io(&self.node, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = if self.config.format == Format::Csv && self.config.header {
            lines.next()
        } else {
            None
        };
        let samples: Vec<&str> = lines.take(self.config.infer_records).collect();
        infer_schema(self.config.format, &samples, header)
            .map_err(|e| WeirError::config("file", &self.node, format!("{}: {e}", self.config.path)))
    }

    fn create(&self, schema: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(FileReader {
            factory: FileSource::new(&self.node, self.config.clone()),
            decoder: RecordDecoder::new(self.config.format, schema.clone()),
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
        }))
    }
}

struct FileReader {
    factory: FileSource,
    decoder: RecordDecoder,
    subtask: usize,
    parallelism: usize,
}

impl FileReader {
    /// Emits Parquet file `i` from row `skip` (rows emitted before the restored checkpoint);
    /// false when the job was cancelled meanwhile.
    async fn parquet_file(
        &self,
        loc: &Location,
        file: &Path,
        (i, size): (usize, u64),
        skip: u64,
        pace: &mut Pace,
        ctx: &mut dyn SourceContext,
    ) -> Result<bool> {
        let node = &self.factory.node;
        let bad = |e: &dyn std::fmt::Display| WeirError::io(node, format!("{file}: {e}"));
        let bytes = self.factory.read(loc, file).await?;
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(&e))?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
        let reader = builder
            .with_batch_size(pace.throttle.batch_size(ctx.batch_size()))
            .build()
            .map_err(|e| bad(&e))?;
        let schema = self.decoder.schema().clone();
        let mut row: u64 = 0;
        for batch in reader {
            let batch = batch.map_err(|e| bad(&e))?;
            let n = batch.num_rows() as u64;
            let from = skip.saturating_sub(row).min(n);
            row += n;
            // The file's bytes, shared out by its rows.
            pace.backlog.consumed(size * n / total_rows);
            pace.backlog.skipped(from);
            if from == n {
                continue;
            }
            let batch = batch.slice(from as usize, (n - from) as usize);
            // The table's columns, by name, in its types.
            let columns = schema
                .fields()
                .iter()
                .map(|f| {
                    let c = batch
                        .column_by_name(f.name())
                        .ok_or_else(|| bad(&format!("no column '{}' in the file", f.name())))?;
                    Ok(arrow::compute::cast(c, f.data_type())?)
                })
                .collect::<Result<Vec<_>>>()?;
            let batch = arrow::record_batch::RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )?;
            let rows = batch.num_rows();
            ctx.collect(batch).await?;
            ctx.set_position(&(i, row))?;
            pace.emitted(rows, ctx).await;
            if ctx.is_cancelled() {
                return Ok(false);
            }
        }
        ctx.set_position(&(i + 1, 0u64))?;
        Ok(true)
    }

    async fn flush(&self, lines: &mut Vec<String>, ctx: &mut dyn SourceContext) -> Result<()> {
        let decoded = self.decoder.decode(lines)?;
        lines.clear();
        decoded.emit(ctx).await
    }
}

#[async_trait]
impl Source for FileReader {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<()> {
        let (loc, files) = self.factory.files().await?;
        let node = self.factory.node.clone();
        let skip_header = self.factory.config.format == Format::Csv && self.factory.config.header;
        let throttle = Throttle::new(self.factory.config.rows_per_second);
        let batch_size = throttle.batch_size(ctx.batch_size());
        // Position: (file index, data lines of it already emitted); files before it are done.
        let restored: Option<(usize, u64)> = ctx.restored_position()?;
        let mine = |i: usize| i % self.parallelism == self.subtask && restored.is_none_or(|(done, _)| i >= done);
        let backlog = Backlog::new(
            files
                .iter()
                .enumerate()
                .filter(|(i, _)| mine(*i))
                .map(|(_, (_, size))| size)
                .sum(),
        );
        let mut pace = Pace { throttle, backlog };
        for (i, (file, size)) in files.iter().enumerate() {
            if !mine(i) {
                continue;
            }
            let skip = match restored {
                Some((at, n)) if i == at => n,
                _ => 0,
            };
            if self.factory.config.format == Format::Parquet {
                if !self.parquet_file(&loc, file, (i, *size), skip, &mut pace, ctx).await? {
                    return Ok(());
                }
                continue;
            }
            let mut line_no: u64 = 0;
            let mut stream = loc
                .store
                .get(file)
                .await
                .map_err(|e| WeirError::io(&node, format!("{file}: {e}")))?
                .into_stream();
            let mut pending: Vec<u8> = Vec::new();
            let mut lines: Vec<String> = Vec::with_capacity(batch_size);
            let mut first = true;
            loop {
                let chunk = stream.next().await;
                let done = chunk.is_none();
                match chunk {
                    Some(c) => pending.extend_from_slice(&c.map_err(|e| WeirError::io(&node, format!("{file}: {e}")))?),
                    None if pending.is_empty() => {}
                    None => pending.push(b'\n'),
                }
                let mut start = 0;
                while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
                    let raw = &pending[start..start + pos];
                    start += pos + 1;
                    pace.backlog.consumed(pos as u64 + 1);
                    let line = String::from_utf8_lossy(raw).trim_end_matches('\r').to_string();
                    if std::mem::take(&mut first) && skip_header {
                        continue;
                    }
                    line_no += 1;
                    if line_no <= skip {
                        pace.backlog.skipped(1);
                        continue; // emitted before the restored checkpoint
                    }
                    lines.push(line);
                    if lines.len() >= batch_size {
                        let rows = lines.len();
                        self.flush(&mut lines, ctx).await?;
                        ctx.set_position(&(i, line_no))?;
                        pace.emitted(rows, ctx).await;
                        if ctx.is_cancelled() {
                            return Ok(());
                        }
                    }
                }
                pending.drain(..start);
                if done {
                    break;
                }
            }
            let rows = lines.len() as u64;
            self.flush(&mut lines, ctx).await?;
            ctx.set_position(&(i + 1, 0u64))?;
            pace.backlog.emitted(rows, ctx);
        }
        ctx.report_lag(0);
        Ok(())
    }
}

/// A file reader's rate limit and what it has left to read.
struct Pace {
    throttle: Throttle,
    backlog: Backlog,
}

impl Pace {
    /// `rows` more were emitted: reports the lag, then waits as the rate limit says.
    async fn emitted(&mut self, rows: usize, ctx: &mut dyn SourceContext) {
        self.backlog.emitted(rows as u64, ctx);
        self.throttle.emitted(rows).await;
    }
}

/// What a file source has left to read, as the lag it reports: the bytes of its files not yet
/// read, in records at the mean size of the records it read so far (files tell their sizes,
/// not their record counts).
struct Backlog {
    left: u64,
    read: u64,
    records: u64,
}

impl Backlog {
    fn new(bytes: u64) -> Self {
        Backlog {
            left: bytes,
            read: 0,
            records: 0,
        }
    }

    /// `bytes` more were read (emitted or skipped).
    fn consumed(&mut self, bytes: u64) {
        self.left = self.left.saturating_sub(bytes);
        self.read += bytes;
    }

    /// `records` read were not emitted (emitted before the checkpoint restored): they count
    /// for the mean size.
    fn skipped(&mut self, records: u64) {
        self.records += records;
    }

    /// `records` more were emitted: reports the estimate.
    fn emitted(&mut self, records: u64, ctx: &mut dyn SourceContext) {
        self.records += records;
        if self.records > 0 && self.read > 0 {
            ctx.report_lag((self.left as f64 * self.records as f64 / self.read as f64).round() as u64);
        }
    }
}
