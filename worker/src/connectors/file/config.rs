//! Options of the file connector.

use serde::Deserialize;

use crate::connectors::format::{Format, SchemaSpec};

/// `connector: file` as a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A file or a directory (every file under it, in name order; names starting with `.` or
    /// `_` are skipped). Local path or URL.
    pub path: String,
    /// `json` (default), `csv` or `text`.
    #[serde(default)]
    pub format: Format,
    /// The schema; inferred from the first records when absent.
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
    /// CSV: whether each file starts with a header line (default true).
    #[serde(default = "yes")]
    pub header: bool,
    /// Records sampled to infer a schema (default 1000).
    #[serde(default = "sample")]
    pub infer_records: usize,
    /// Replays the files at this many rows per second per subtask instead of as fast as they
    /// read (a recorded day played back as a stream, demos, paced backfills).
    #[serde(default)]
    pub rows_per_second: Option<f64>,
}

/// `connector: file` as a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Output directory (local path or URL). Each subtask writes its own part files.
    pub path: String,
    /// `json` (default), `csv` or `text`.
    #[serde(default)]
    pub format: Format,
    /// Start a new part file after this many bytes (default 128 MiB).
    #[serde(default = "roll")]
    pub roll_bytes: usize,
    /// CSV: whether each file starts with a header line (default true; SQL tables have none,
    /// as Flink's `csv` format).
    #[serde(default = "yes")]
    pub header: bool,
}

fn yes() -> bool {
    true
}
fn sample() -> usize {
    1000
}
fn roll() -> usize {
    128 << 20
}

impl FileSourceConfig {
    /// A config reading `path` in `format`, schema inferred.
    pub fn new(path: impl Into<String>, format: Format) -> Self {
        FileSourceConfig {
            path: path.into(),
            format,
            schema: None,
            header: true,
            infer_records: sample(),
            rows_per_second: None,
        }
    }
}

impl FileSinkConfig {
    /// A config writing to directory `path` in `format`.
    pub fn new(path: impl Into<String>, format: Format) -> Self {
        FileSinkConfig {
            path: path.into(),
            format,
            roll_bytes: roll(),
            header: true,
        }
    }
}
