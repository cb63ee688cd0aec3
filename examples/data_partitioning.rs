//! Data partitioning: `key_by` sends every bid of an auction to the one subtask that owns the
//! auction's key group, so per-key work needs no coordination; `rebalance` spreads the
//! result evenly again.
//!
//! ```text
//! cargo run --release --example data_partitioning
//! ```

use weir::prelude::*;

fn main() -> anyhow::Result<()> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(4);

    let bids = env
        .add_source(Nexmark::new(
            "bids",
            NexmarkConfig {
                events: Some(200_000),
                stream: NexmarkStream::Bid,
                ..Default::default()
            },
        )?)
        .name("bids");

    bids.key_by("auction")
        // Each subtask tags its rows: a key is always seen by exactly one subtask.
        .map_batches(|ctx, batch| {
            tracing::debug!(subtask = ctx.subtask, rows = batch.num_rows(), "keyed batch");
            Ok(batch)
        })
        .name("by_auction")
        .select(&["auction", "bidder", "price"])
        .rebalance()
        .filter_expr("price > 90000000")
        .name("very_expensive")
        .print();

    let result = env.execute("data-partitioning")?;
    eprintln!(
        "{} very expensive bids",
        result.node("very_expensive").map_or(0, |n| n.records_out)
    );
    Ok(())
}
