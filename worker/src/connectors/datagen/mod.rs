//! The data generator: sequences, random values and timestamps, bounded or unbounded, with an
//! optional rate limit. Every value is a pure function of (seed, row number, field), so the
//! output does not depend on the parallelism: subtask `k` of `p` makes rows `k, k + p, …`.

pub mod config;
pub mod source;

pub use config::{DatagenConfig, DatagenField, FieldKind};
pub use source::Datagen;
