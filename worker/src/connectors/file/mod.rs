//! Files (JSON lines, CSV) on a local path or any object_store URL.

pub mod config;
pub mod sink;
pub mod source;

pub use config::{FileSinkConfig, FileSourceConfig};
pub use sink::FileSink;
pub use source::FileSource;
