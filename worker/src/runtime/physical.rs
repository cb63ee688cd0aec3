//! From the logical graph to the physical plan: each node's parallelism and schema, the
//! resolved partitioner of each edge, and the chains of fused operators.

use arrow::datatypes::SchemaRef;

use crate::error::{Result, WeirError};
use crate::graph::{JobConfig, LogicalGraph, NodeId, NodeKind};
use crate::keys;
use crate::partition::{Partitioner, Partitioning, RangeBounds, field_index};

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
    /// Schema of its input (empty for sources).
    pub input_schema: Option<SchemaRef>,
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

    /// A text rendering of the plan (chains, parallelism, edges) for `weir run --explain`.
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

/// Plans `graph`: checks schemas, resolves partitioning and parallelism, builds chains.
pub async fn plan(graph: &LogicalGraph, config: &JobConfig) -> Result<PhysicalPlan> {
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
    let mut planned: Vec<PlannedNode> = Vec::with_capacity(graph.nodes.len());
    for (id, node) in graph.nodes.iter().enumerate() {
        let name = &node.name;
        if node.inputs.iter().any(|e| e.from >= id) {
            return Err(WeirError::plan(format!(
                "node '{name}' reads from a node defined after it"
            )));
        }
        // Input schema: all inputs of a union must agree.
        let input_schema = match node.inputs.first() {
            None => None,
            Some(first) => {
                // A side edge carries the upstream's input rows (a window's late records).
                let stream_of = |e: &crate::graph::Edge| -> SchemaRef {
                    let up = &planned[e.from];
                    if e.side {
                        up.input_schema.clone().unwrap_or_else(|| up.output_schema.clone())
                    } else {
                        up.output_schema.clone()
                    }
                };
                let mut s = stream_of(first);
                for e in &node.inputs[1..] {
                    let other = &stream_of(e);
                    let same = |a: &arrow::datatypes::Field, b: &arrow::datatypes::Field| {
                        a.name() == b.name() && a.data_type() == b.data_type()
                    };
                    if other.fields().len() != s.fields().len()
                        || !other.fields().iter().zip(s.fields()).all(|(a, b)| same(a, b))
                    {
                        return Err(WeirError::plan(format!(
                            "node '{name}': the union of '{}' and '{}' needs equal schemas, got {} and {}",
                            graph.nodes[first.from].name,
                            graph.nodes[e.from].name,
                            fields(&s),
                            fields(other)
                        )));
                    }
                    // A union column may hold nulls when any input's may.
                    let widened: Vec<arrow::datatypes::Field> = s
                        .fields()
                        .iter()
                        .zip(other.fields())
                        .map(|(a, b)| a.as_ref().clone().with_nullable(a.is_nullable() || b.is_nullable()))
                        .collect();
                    s = std::sync::Arc::new(arrow::datatypes::Schema::new(widened));
                }
                Some(s)
            }
        };
        // Resolve routes.
        let mut routes = Vec::new();
        let mut range_parallelism = None;
        for e in &node.inputs {
            let up = &if e.side {
                planned[e.from]
                    .input_schema
                    .clone()
                    .unwrap_or_else(|| planned[e.from].output_schema.clone())
            } else {
                planned[e.from].output_schema.clone()
            };
            let route = match &e.partitioning {
                Partitioning::Default => Route::Forward, // fixed below once parallelism is known
                Partitioning::Rebalance => Route::Rebalance,
                Partitioning::Shuffle => Route::Shuffle,
                Partitioning::Broadcast => Route::Broadcast,
                Partitioning::Hash(fs) => {
                    if fs.is_empty() {
                        return Err(WeirError::plan(format!(
                            "node '{name}': key_by needs at least one field"
                        )));
                    }
                    let mut cols = Vec::new();
                    for f in fs {
                        let i = field_index(up, f, &format!("key_by before '{name}'"))?;
                        let dt = up.field(i).data_type();
                        if !keys::is_key_type(dt) {
                            return Err(WeirError::plan(format!(
                                "key_by before '{name}': field '{f}' has type {dt}, which cannot be a key"
                            )));
                        }
                        cols.push(i);
                    }
                    Route::Hash(cols)
                }
                Partitioning::Range { field, boundaries } => {
                    let (i, b) = RangeBounds::resolve(up, field, boundaries)?;
                    range_parallelism = Some(b.ranges());
                    Route::Range(i, b)
                }
            };
            routes.push(route);
        }
        // Parallelism: explicit > implied by range > source limit > job default.
        let source_limit = match &node.kind {
            NodeKind::Source(s) => s.max_parallelism(),
            _ => None,
        };
        let parallelism = match (node.parallelism, range_parallelism, source_limit) {
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
        for (e, r) in node.inputs.iter().zip(routes.iter_mut()) {
            if e.partitioning == Partitioning::Default && planned[e.from].parallelism != parallelism {
                *r = Route::Rebalance;
            }
        }
        let output_schema = match &node.kind {
            NodeKind::Source(s) => {
                if !node.inputs.is_empty() {
                    return Err(WeirError::plan(format!("source '{name}' cannot have inputs")));
                }
                let schema = s.schema().await?;
                match &node.watermark {
                    // Mark the event-time field, so windows downstream find it.
                    Some(w) => {
                        let i = w.resolve(&schema).map_err(|e| prefix(name, e))?;
                        let mut fields: Vec<arrow::datatypes::Field> =
                            schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                        let mut meta = fields[i].metadata().clone();
                        meta.insert(crate::window::EVENT_TIME_METADATA.to_string(), "true".to_string());
                        fields[i] = fields[i].clone().with_metadata(meta);
                        std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
                    }
                    None => schema,
                }
            }
            NodeKind::Operator(o) => {
                let input = input_schema
                    .as_ref()
                    .ok_or_else(|| WeirError::plan(format!("operator '{name}' has no input")))?;
                o.output_schema(input).map_err(|e| prefix(name, e))?
            }
            NodeKind::Sink(s) => {
                let input = input_schema
                    .as_ref()
                    .ok_or_else(|| WeirError::plan(format!("sink '{name}' has no input")))?;
                s.check_schema(input).map_err(|e| prefix(name, e))?;
                input.clone()
            }
        };
        planned.push(PlannedNode {
            parallelism,
            input_schema,
            output_schema,
            routes,
        });
    }
    // Consumers per node.
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
    // Chains: a node joins its input's chain when it is that node's only consumer, reads only
    // from it, by forward, at equal parallelism.
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
    Ok(PhysicalPlan {
        nodes: planned,
        chains,
        chain_of,
    })
}

fn fields(s: &SchemaRef) -> String {
    let f: Vec<String> = s
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", f.join(", "))
}

fn prefix(name: &str, e: WeirError) -> WeirError {
    match e {
        WeirError::Plan(m) => WeirError::Plan(format!("node '{name}': {m}")),
        other => other,
    }
}
