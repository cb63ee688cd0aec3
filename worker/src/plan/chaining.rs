//! Chaining pass: a node joins its input's chain (one task, no channel between them) when it is
//! that node's only consumer, reads only from it, by forward, at equal parallelism. Also checks
//! that every node but a sink feeds something.

use super::{PlannedNode, Route};
use crate::contract::error::{Result, WeirError};
use crate::graph::{LogicalGraph, NodeId, NodeKind};

/// The chains (node ids, head first) and each node's chain index.
pub fn chain(graph: &LogicalGraph, planned: &[PlannedNode]) -> Result<(Vec<Vec<NodeId>>, Vec<usize>)> {
    let mut consumers = vec![0usize; graph.nodes.len()];
    for node in &graph.nodes {
        for e in node.inputs.iter().filter(|e| !e.side) {
            consumers[e.from] += 1;
        }
    }
    for (id, node) in graph.nodes.iter().enumerate() {
        if !matches!(node.kind, NodeKind::Sink(_)) && consumers[id] == 0 {
            return Err(WeirError::plan(format!(
                "node '{}' is not connected to any sink; add a sink (e.g. blackhole) or remove it",
                node.name
            )));
        }
    }
    let mut chain_of = vec![usize::MAX; graph.nodes.len()];
    let mut chains: Vec<Vec<NodeId>> = Vec::new();
    for (id, node) in graph.nodes.iter().enumerate() {
        let chained_to = match (node.inputs.as_slice(), planned[id].routes.as_slice()) {
            ([e], [Route::Forward])
                if !e.side
                    && consumers[e.from] == 1
                    && planned[e.from].parallelism == planned[id].parallelism
                    && !matches!(graph.nodes[e.from].kind, NodeKind::Sink(_)) =>
            {
                Some(chain_of[e.from])
            }
            _ => None,
        };
        match chained_to {
            Some(c) => {
                chains[c].push(id);
                chain_of[id] = c;
            }
            None => {
                chain_of[id] = chains.len();
                chains.push(vec![id]);
            }
        }
    }
    Ok((chains, chain_of))
}
