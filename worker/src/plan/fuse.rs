//! Fusion pass: within a chain, each run of SQL filters, optionally ending in a projection,
//! becomes one Calc step (Flink's Calc), so a batch is filtered and projected in one go. An
//! operator takes part through [`OperatorFactory::calc_part`](crate::contract::OperatorFactory::calc_part);
//! the pass never looks at concrete operator types.

use crate::contract::CalcPart;
use crate::graph::{LogicalGraph, NodeId, NodeKind};

/// What a chain's subtask runs, in order (sources and sinks are not steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One operator node.
    Node(NodeId),
    /// Filters (at least one), then optionally a projection, fused: the nodes in order.
    Calc(Vec<NodeId>),
}

/// The steps of `chain`.
pub fn fuse(graph: &LogicalGraph, chain: &[NodeId]) -> Vec<Step> {
    let part = |k: usize| -> Option<CalcPart> {
        match &graph.nodes[*chain.get(k)?].kind {
            NodeKind::Operator(o) => o.calc_part(),
            _ => None,
        }
    };
    let is_filter = |k: usize| matches!(part(k), Some(CalcPart::Filter(_)));
    let is_project = |k: usize| matches!(part(k), Some(CalcPart::Project(_)));
    let mut steps = Vec::new();
    let mut k = 0;
    while k < chain.len() {
        if !matches!(graph.nodes[chain[k]].kind, NodeKind::Operator(_)) {
            k += 1;
            continue;
        }
        let mut end = k;
        while is_filter(end) {
            end += 1;
        }
        if end > k && is_project(end) {
            end += 1;
        }
        if end - k > 1 {
            steps.push(Step::Calc(chain[k..end].to_vec()));
            k = end;
        } else {
            steps.push(Step::Node(chain[k]));
            k += 1;
        }
    }
    steps
}
