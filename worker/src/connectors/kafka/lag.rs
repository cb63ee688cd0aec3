//! The Kafka source's lag: the end offsets of its partitions, watched on a thread of its own
//! (offset requests block) with a client of its own, so reading never waits for them. The
//! source subtracts its positions and reports the sum ([`crate::contract::SourceContext::report_lag`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How often the end offsets are asked for.
pub const EVERY: Duration = Duration::from_secs(2);

/// Partitions by topic and number.
type Partitions = BTreeSet<(String, i32)>;

/// The watcher of a subtask's partitions' end offsets; stops when dropped.
pub struct EndOffsets {
    partitions: Arc<Mutex<Partitions>>,
    ends: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
    stop: Arc<AtomicBool>,
}

impl EndOffsets {
    /// Starts watching with a client made from `client` (the source's settings).
    pub fn start(client: ClientConfig, node: String) -> EndOffsets {
        let watcher = EndOffsets {
            partitions: Arc::default(),
            ends: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (partitions, ends, stop) = (watcher.partitions.clone(), watcher.ends.clone(), watcher.stop.clone());
        std::thread::spawn(move || {
            let consumer: BaseConsumer = match client.create() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "kafka: no client for end offsets; lag not reported");
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let wanted: Vec<(String, i32)> = partitions.lock().expect("partitions lock").iter().cloned().collect();
                for (topic, partition) in wanted {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match consumer.fetch_watermarks(&topic, partition, Duration::from_secs(5)) {
                        Ok((_, high)) => {
                            ends.lock().expect("ends lock").insert((topic, partition), high);
                        }
                        Err(e) => tracing::debug!(node = %node, %topic, partition, error = %e, "kafka end offset"),
                    }
                }
                // Sleep in short steps so a stopped source does not wait for the whole period.
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(EVERY / 20);
                }
            }
        });
        watcher
    }

    /// Watches these partitions from now on.
    pub fn watch(&self, partitions: &Partitions) {
        *self.partitions.lock().expect("partitions lock") = partitions.clone();
    }

    /// Records not read yet: over the partitions with a known end offset and a position, the
    /// end minus the position (none when no partition is known yet).
    pub fn lag(&self, positions: &BTreeMap<String, BTreeMap<i32, i64>>) -> Option<u64> {
        let ends = self.ends.lock().expect("ends lock");
        let mut known = false;
        let mut lag = 0u64;
        for ((topic, partition), end) in ends.iter() {
            if let Some(at) = positions.get(topic).and_then(|p| p.get(partition)) {
                known = true;
                lag += u64::try_from(end - at).unwrap_or(0);
            }
        }
        known.then_some(lag)
    }
}

impl Drop for EndOffsets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
