//! From the logical graph to the physical plan, as passes over the plan, each one rewrite in a
//! file of its own (as DataFusion's physical optimizer rules are):
//!
//! 1. [`schema`]: every node's input and output schema (unions must agree; [`event_time`] marks
//!    a source's event-time field);
//! 2. [`routes`]: each edge's partitioning resolved against the upstream schema;
//! 3. [`parallelism`]: each node's parallelism, and forward edges between unequal
//!    parallelisms turned into rebalances;
//! 4. [`chaining`]: forward-connected nodes of equal parallelism fused into tasks;
//! 5. [`fuse`]: within a task, runs of SQL filters (optionally ending in a projection) fused
//!    into one Calc step.
//!
//! A SQL planner is one more pass in front: it lowers a query onto the logical graph.

pub mod chaining;
pub mod event_time;
pub mod fuse;
pub mod parallelism;
pub mod routes;
pub mod schema;

use arrow::datatypes::SchemaRef;

use crate::contract::error::{Result, WeirError};
use crate::graph::{JobConfig, LogicalGraph, NodeId, NodeKind};
use crate::keys;
use crate::partition::{Partitioner, RangeBounds};

pub use fuse::Step;

/// An edge with its partitioning resolved against the upstream schema.
#[derive(Debug, Clone)]
pub enum Route {
    /// Subtask i to subtask i (same parallelism), unchained.
    Forward,
    /// Round robin.
    Rebalance,
    /// Random.
    Shuffle,
    /// Key-group owner of these key columns.
    Hash(Vec<usize>),
    /// Range of one column.
    Range(usize, RangeBounds),
    /// To all.
    Broadcast,
}

impl Route {
    /// Short name for plans and the REST API (as [`crate::partition::Partitioning::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            Route::Forward => "forward",
            Route::Rebalance => "rebalance",
            Route::Shuffle => "shuffle",
            Route::Hash(_) => "hash",
            Route::Range(..) => "range",
            Route::Broadcast => "broadcast",
        }
    }

    /// The partitioner for sending subtask `subtask`.
    pub fn partitioner(&self, subtask: usize, max_parallelism: u32) -> Partitioner {
        match self {
            Route::Forward => Partitioner::Forward,
            Route::Rebalance => Partitioner::Rebalance { next: subtask },
            Route::Shuffle => Partitioner::shuffle(0x5eed ^ subtask as u64),
            Route::Hash(c) => Partitioner::Hash {
                columns: c.clone(),
                max_parallelism,
            },
            Route::Range(c, b) => Partitioner::Range {
                column: *c,
                bounds: b.clone(),
            },
            Route::Broadcast => Partitioner::Broadcast,
        }
    }
}

/// A node as planned.
#[derive(Debug, Clone)]
pub struct PlannedNode {
    /// Parallelism.
    pub parallelism: usize,
    /// Schema of its input (none for sources; for a union, the merged schema).
    pub input_schema: Option<SchemaRef>,
    /// Schema of each input edge, in edge order (what an operator with distinct inputs sees).
    pub input_schemas: Vec<SchemaRef>,
    /// Schema of its output (for sinks: the input's).
    pub output_schema: SchemaRef,
    /// Resolved input routes, parallel to the logical node's inputs.
    pub routes: Vec<Route>,
}

/// The physical plan.
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    /// Per logical node.
    pub nodes: Vec<PlannedNode>,
    /// Chains of node ids; the first is the head.
    pub chains: Vec<Vec<NodeId>>,
    /// Chain index of every node.
    pub chain_of: Vec<usize>,
    /// Per chain, its operators as the steps a subtask runs (fused Calc runs as one step).
    pub steps: Vec<Vec<Step>>,
}

impl PhysicalPlan {
    /// Source subtasks of the whole job (checkpoints continue until all of them have ended).
    pub fn source_subtasks(&self, graph: &LogicalGraph) -> usize {
        self.chains
            .iter()
            .filter(|c| matches!(graph.nodes[c[0]].kind, NodeKind::Source(_)))
            .map(|c| self.nodes[c[0]].parallelism)
            .sum()
    }

    /// The worker (of `workers`) that runs subtask `subtask` of chain `chain`: subtasks are
    /// numbered across chains in order and dealt round robin, so every worker gets an even share
    /// of every chain. Every worker computes the same answer from the same plan.
    pub fn worker_of(&self, chain: usize, subtask: usize, workers: usize) -> usize {
        let before: usize = self.chains[..chain].iter().map(|c| self.nodes[c[0]].parallelism).sum();
        (before + subtask) % workers.max(1)
    }

    /// A text rendering of the plan (chains, parallelism, edges) for `weir explain`.
    pub fn explain(&self, graph: &LogicalGraph) -> String {
        let mut s = String::new();
        for (ci, chain) in self.chains.iter().enumerate() {
            let names: Vec<String> = chain
                .iter()
                .map(|n| format!("{} [{}]", graph.nodes[*n].name, graph.nodes[*n].kind.describe()))
                .collect();
            let head = chain[0];
            let p = self.nodes[head].parallelism;
            s.push_str(&format!("task {ci} (parallelism {p}): {}\n", names.join(" -> ")));
            for (edge, route) in graph.nodes[head].inputs.iter().zip(&self.nodes[head].routes) {
                s.push_str(&format!("    <- {} via {route:?}\n", graph.nodes[edge.from].name));
            }
        }
        s
    }
}

/// Plans `graph`: checks the job's settings and the graph's order, then runs the passes.
pub async fn plan(graph: &LogicalGraph, config: &JobConfig) -> Result<PhysicalPlan> {
    check(graph, config)?;
    let schemas = schema::infer(graph).await?;
    let routes = routes::resolve(graph, &schemas)?;
    let parallelism = parallelism::assign(graph, config, &routes)?;
    let mut nodes: Vec<PlannedNode> = schemas
        .into_iter()
        .zip(routes)
        .zip(parallelism)
        .map(|((s, r), p)| PlannedNode {
            parallelism: p,
            input_schema: s.input,
            input_schemas: s.inputs,
            output_schema: s.output,
            routes: r.routes,
        })
        .collect();
    parallelism::rebalance_unequal_forwards(graph, &mut nodes);
    let (chains, chain_of) = chaining::chain(graph, &nodes)?;
    let steps = chains.iter().map(|c| fuse::fuse(graph, c)).collect();
    Ok(PhysicalPlan {
        nodes,
        chains,
        chain_of,
        steps,
    })
}

/// What must hold before any pass runs: settings in range, inputs defined before their readers.
fn check(graph: &LogicalGraph, config: &JobConfig) -> Result<()> {
    if graph.nodes.is_empty() {
        return Err(WeirError::plan("the job has no nodes"));
    }
    let max_p = config.max_parallelism;
    if max_p == 0 || max_p > keys::MAX_MAX_PARALLELISM {
        return Err(WeirError::plan(format!(
            "max_parallelism is {max_p}; it must be between 1 and {}",
            keys::MAX_MAX_PARALLELISM
        )));
    }
    if config.parallelism == 0 {
        return Err(WeirError::plan("parallelism must be at least 1"));
    }
    for (id, node) in graph.nodes.iter().enumerate() {
        if node.inputs.iter().any(|e| e.from >= id) {
            return Err(WeirError::plan(format!(
                "node '{}' reads from a node defined after it",
                node.name
            )));
        }
    }
    Ok(())
}

/// Prefixes a planning error with the node it is about.
pub(crate) fn prefix(name: &str, e: WeirError) -> WeirError {
    match e {
        WeirError::Plan(m) => WeirError::Plan(format!("node '{name}': {m}")),
        other => other,
    }
}
