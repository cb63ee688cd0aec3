//! Parallelism pass: explicit > implied by a range partitioning > a source's limit > the job's
//! default, each checked against the key groups; then default (forward) edges between nodes of
//! unequal parallelism become rebalances.

use super::routes::NodeRoutes;
use super::{PlannedNode, Route};
use crate::contract::error::{Result, WeirError};
use crate::graph::{JobConfig, LogicalGraph, NodeKind};
use crate::partition::Partitioning;

/// Every node's parallelism.
pub fn assign(graph: &LogicalGraph, config: &JobConfig, routes: &[NodeRoutes]) -> Result<Vec<usize>> {
    let max_p = config.max_parallelism;
    let mut out = Vec::with_capacity(graph.nodes.len());
    for (node, r) in graph.nodes.iter().zip(routes) {
        let name = &node.name;
        let source_limit = match &node.kind {
            NodeKind::Source(s) => s.max_parallelism(),
            _ => None,
        };
        let parallelism = match (node.parallelism, r.range_parallelism, source_limit) {
            (Some(p), Some(r), _) if p != r => {
                return Err(WeirError::plan(format!(
                    "node '{name}': parallelism {p} does not match the {r} ranges of partition_by_range"
                )));
            }
            (Some(p), _, Some(l)) if p > l => {
                return Err(WeirError::plan(format!(
                    "node '{name}': this source runs with parallelism at most {l}, not {p}"
                )));
            }
            (Some(p), _, _) => p,
            (None, Some(r), _) => r,
            (None, None, Some(l)) => l.min(config.parallelism),
            (None, None, None) => config.parallelism,
        };
        if parallelism == 0 {
            return Err(WeirError::plan(format!(
                "node '{name}': parallelism must be at least 1"
            )));
        }
        if parallelism > max_p as usize {
            return Err(WeirError::plan(format!(
                "node '{name}': parallelism {parallelism} exceeds max_parallelism {max_p}"
            )));
        }
        out.push(parallelism);
    }
    Ok(out)
}

/// A default edge is forward only between equal parallelisms; otherwise it rebalances.
pub fn rebalance_unequal_forwards(graph: &LogicalGraph, nodes: &mut [PlannedNode]) {
    for (id, node) in graph.nodes.iter().enumerate() {
        for (k, e) in node.inputs.iter().enumerate() {
            if e.partitioning == Partitioning::Default && nodes[e.from].parallelism != nodes[id].parallelism {
                nodes[id].routes[k] = Route::Rebalance;
            }
        }
    }
}
