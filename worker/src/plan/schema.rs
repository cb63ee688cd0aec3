//! Schema pass: every node's input schema (a union's inputs must agree; columns of a union may
//! hold nulls when any input's may) and output schema, in node order.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};

use super::{event_time, prefix};
use crate::contract::error::{Result, WeirError};
use crate::graph::{Edge, LogicalGraph, NodeKind};

/// The schemas of one node.
#[derive(Debug, Clone)]
pub struct NodeSchemas {
    /// Merged input (none for sources).
    pub input: Option<SchemaRef>,
    /// Each input edge's stream.
    pub inputs: Vec<SchemaRef>,
    /// Output (a sink's: its input's).
    pub output: SchemaRef,
}

/// Infers the schemas of every node (sources may read their input to infer theirs).
pub async fn infer(graph: &LogicalGraph) -> Result<Vec<NodeSchemas>> {
    let mut planned: Vec<NodeSchemas> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let name = &node.name;
        let inputs: Vec<SchemaRef> = node.inputs.iter().map(|e| stream_of(&planned, e)).collect();
        let distinct = matches!(&node.kind, NodeKind::Operator(o) if o.distinct_inputs());
        let input = match inputs.first() {
            None => None,
            Some(_) if distinct => Some(inputs[0].clone()),
            Some(_) => Some(union(graph, &node.inputs, &inputs, name)?),
        };
        let output = match &node.kind {
            NodeKind::Source(s) => {
                if !node.inputs.is_empty() {
                    return Err(WeirError::plan(format!("source '{name}' cannot have inputs")));
                }
                let schema = s.schema().await?;
                match &node.watermark {
                    Some(w) => event_time::mark(&schema, w).map_err(|e| prefix(name, e))?,
                    None => schema,
                }
            }
            NodeKind::Operator(o) => {
                let input = input
                    .as_ref()
                    .ok_or_else(|| WeirError::plan(format!("operator '{name}' has no input")))?;
                if distinct {
                    o.output_schema_of(&inputs).map_err(|e| prefix(name, e))?
                } else {
                    o.output_schema(input).map_err(|e| prefix(name, e))?
                }
            }
            NodeKind::Sink(s) => {
                let input = input
                    .as_ref()
                    .ok_or_else(|| WeirError::plan(format!("sink '{name}' has no input")))?;
                s.check_schema(input).map_err(|e| prefix(name, e))?;
                input.clone()
            }
        };
        planned.push(NodeSchemas { input, inputs, output });
    }
    Ok(planned)
}

/// What an edge carries: the upstream's output, or for a side edge the upstream's input rows
/// (a window's late records).
pub fn stream_of(planned: &[NodeSchemas], e: &Edge) -> SchemaRef {
    let up = &planned[e.from];
    if e.side {
        up.input.clone().unwrap_or_else(|| up.output.clone())
    } else {
        up.output.clone()
    }
}

/// The merged schema of a union: names and types must agree; nullability widens.
fn union(graph: &LogicalGraph, edges: &[Edge], inputs: &[SchemaRef], name: &str) -> Result<SchemaRef> {
    let mut s = inputs[0].clone();
    for (e, other) in edges.iter().zip(inputs).skip(1) {
        let same = |a: &Field, b: &Field| a.name() == b.name() && a.data_type() == b.data_type();
        if other.fields().len() != s.fields().len() || !other.fields().iter().zip(s.fields()).all(|(a, b)| same(a, b)) {
            return Err(WeirError::plan(format!(
                "node '{name}': the union of '{}' and '{}' needs equal schemas, got {} and {}",
                graph.nodes[edges[0].from].name,
                graph.nodes[e.from].name,
                fields(&s),
                fields(other)
            )));
        }
        let widened: Vec<Field> = s
            .fields()
            .iter()
            .zip(other.fields())
            .map(|(a, b)| a.as_ref().clone().with_nullable(a.is_nullable() || b.is_nullable()))
            .collect();
        s = Arc::new(Schema::new(widened));
    }
    Ok(s)
}

fn fields(s: &SchemaRef) -> String {
    let f: Vec<String> = s
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", f.join(", "))
}
