//! `filter` then `select` fused into one step (Flink's Calc): the condition is evaluated
//! first, only the columns the projection reads are filtered, then the projection runs on the
//! rows that passed. The planner fuses a SQL `filter` directly followed by a `select` in the
//! same chain; each keeps its own counters.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;

use super::filter::FilterExpr;
use super::select::Select;
use super::{Operator, TaskContext, UserResult};
use crate::error::Result;
use crate::runtime::metrics::NodeMetrics;

/// Creates the fused operator for one subtask. `filter_metrics` counts rows out of the filter
/// (the select's rows in); the chain counts the filter's rows in and the select's rows out.
pub fn create(
    filter: &FilterExpr,
    select: &Select,
    input: &SchemaRef,
    _ctx: &TaskContext,
    filter_metrics: Arc<NodeMetrics>,
    select_metrics: Arc<NodeMetrics>,
) -> Result<Box<dyn Operator>> {
    let predicate = filter.plan(input)?;
    let (full, output) = select.plan(input)?;
    let needed: Vec<usize> = full
        .iter()
        .flat_map(collect_columns)
        .map(|c| c.index())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let narrow = Arc::new(input.project(&needed)?);
    let (exprs, _) = select.plan(&narrow)?;
    Ok(Box::new(FilterSelectOp {
        predicate,
        needed,
        exprs,
        output,
        filter_metrics,
        select_metrics,
    }))
}

struct FilterSelectOp {
    predicate: Arc<dyn PhysicalExpr>,
    needed: Vec<usize>,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
    filter_metrics: Arc<NodeMetrics>,
    select_metrics: Arc<NodeMetrics>,
}

impl Operator for FilterSelectOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mask = self.predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask.as_boolean();
        let kept = mask.true_count();
        self.filter_metrics.add_out(kept);
        self.select_metrics.add_in(kept);
        if kept == 0 {
            return Ok(());
        }
        let narrow = batch.project(&self.needed)?;
        let rows = if kept == batch.num_rows() && mask.null_count() == 0 {
            narrow
        } else {
            filter_record_batch(&narrow, mask)?
        };
        out.push(super::select::project(&self.exprs, &self.output, &rows)?);
        Ok(())
    }
}
