//! Parallel processing: the same job at parallelism 1 and 4 gives the same result; each
//! operator runs as one subtask per core, connected by bounded channels.
//!
//! ```text
//! cargo run --release --example parallel_processing
//! ```

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use weir::prelude::*;

fn run(parallelism: usize) -> anyhow::Result<(u64, std::time::Duration)> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let out = Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, false),
        Field::new("band", DataType::Utf8, false),
    ]));
    let sink = Blackhole::new();
    env.add_source(Datagen::new(
        "gen",
        DatagenConfig {
            rows: Some(2_000_000),
            ..Default::default()
        },
    )?)
    .rebalance()
    // A record-at-a-time function, like Flink's MapFunction.
    .map(out, |row| {
        let price = row.get_i64("price").unwrap_or(0);
        let band = if price > 50_000 { "high" } else { "low" };
        Ok(vec![Value::Int(row.get_i64("auction").unwrap_or(0)), Value::from(band)])
    })
    .filter(|row| row.get_str("band") == Some("high"))
    .add_sink(sink.clone());
    let result = env.execute("parallel-processing")?;
    Ok((sink.count(), result.duration))
}

fn main() -> anyhow::Result<()> {
    for p in [1, 4] {
        let (rows, took) = run(p)?;
        println!("parallelism {p}: {rows} high-priced rows in {took:.2?}");
    }
    Ok(())
}
