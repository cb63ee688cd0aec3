//! Routes pass: each edge's partitioning resolved against the stream it carries (key columns by
//! name and type, range bounds by the column's type). Default edges stay forward here; the
//! parallelism pass turns them into rebalances where parallelisms differ.

use super::Route;
use super::schema::{NodeSchemas, stream_of};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::graph::LogicalGraph;
use crate::keys;
use crate::partition::{Partitioning, RangeBounds};

/// The resolved input routes of one node.
#[derive(Debug, Clone)]
pub struct NodeRoutes {
    /// Per input edge.
    pub routes: Vec<Route>,
    /// The parallelism a range partitioning implies (one subtask per range).
    pub range_parallelism: Option<usize>,
}

/// Resolves every node's input routes.
pub fn resolve(graph: &LogicalGraph, schemas: &[NodeSchemas]) -> Result<Vec<NodeRoutes>> {
    let mut out = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let name = &node.name;
        let mut routes = Vec::new();
        let mut range_parallelism = None;
        for e in &node.inputs {
            let up = stream_of(schemas, e);
            let route = match &e.partitioning {
                Partitioning::Default => Route::Forward,
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
                        let i = field_index(&up, f, &format!("key_by before '{name}'"))?;
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
                    let (i, b) = RangeBounds::resolve(&up, field, boundaries)?;
                    range_parallelism = Some(b.ranges());
                    Route::Range(i, b)
                }
            };
            routes.push(route);
        }
        out.push(NodeRoutes {
            routes,
            range_parallelism,
        });
    }
    Ok(out)
}
