//! Event time: watermark strategies at sources, and idleness.

pub mod watermark;

pub use watermark::{WatermarkGenerator, WatermarkStrategy};
