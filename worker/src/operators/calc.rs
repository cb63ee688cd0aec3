//! SQL `filter`s and an optional `select` fused into one step (Flink's Calc). The first
//! condition runs on the whole batch; after it only the columns that later conditions and the
//! projection read are carried and filtered, so a wide row (the Nexmark `person`, `auction`
//! and `bid` structs) is not copied to keep one of its fields. Later conditions run only on
//! rows that passed the earlier ones, as in the unfused plan. The planner fuses runs of SQL
//! `filter`s, optionally ending in a `select`, within one chain; each node keeps its counters.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;

use super::select::project;
use super::{CalcPart, Operator, UserResult};
use crate::contract::NodeMetrics;
use crate::contract::error::{Result, WeirError};

/// Creates the fused operator for one subtask from the run's parts (filters, then optionally
/// a projection) and each node's counters. The chain counts rows into the first filter and out
/// of the last node; the operator counts the edges inside the run.
pub fn create(parts: Vec<(CalcPart, Arc<NodeMetrics>)>, input: &SchemaRef) -> Result<Box<dyn Operator>> {
    let mut filters = Vec::new();
    let mut select = None;
    for (part, metrics) in parts {
        match part {
            CalcPart::Filter(f) if select.is_none() => filters.push((f, metrics)),
            CalcPart::Project(p) if select.is_none() => select = Some((p, metrics)),
            _ => return Err(WeirError::plan("a fused Calc step ends with its projection")),
        }
    }
    let Some((first, _)) = filters.first() else {
        return Err(WeirError::plan("a fused Calc step starts with a filter"));
    };
    let first = first(input)?;
    let needed: Vec<usize> = match &select {
        None => (0..input.fields().len()).collect(),
        Some((select, _)) => {
            let mut exprs = select(input)?.0;
            for (f, _) in &filters[1..] {
                exprs.push(f(input)?);
            }
            exprs
                .iter()
                .flat_map(collect_columns)
                .map(|c| c.index())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        }
    };
    let narrow = Arc::new(input.project(&needed)?);
    let rest = filters[1..]
        .iter()
        .map(|(f, _)| f(&narrow))
        .collect::<Result<Vec<_>>>()?;
    let projection = match &select {
        Some((select, _)) => Some(select(&narrow)?),
        None => None,
    };
    Ok(Box::new(CalcOp {
        first,
        needed,
        rest,
        projection,
        filter_metrics: filters.into_iter().map(|(_, m)| m).collect(),
        select_metrics: select.map(|(_, m)| m),
    }))
}

struct CalcOp {
    first: Arc<dyn PhysicalExpr>,
    needed: Vec<usize>,
    rest: Vec<Arc<dyn PhysicalExpr>>,
    projection: Option<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
    filter_metrics: Vec<Arc<NodeMetrics>>,
    select_metrics: Option<Arc<NodeMetrics>>,
}

impl CalcOp {
    /// Counts `kept` rows out of filter `i` and into whatever follows it inside the run.
    fn passed(&self, i: usize, kept: usize) {
        let last = i + 1 == self.filter_metrics.len();
        match (last, &self.select_metrics) {
            (false, _) => {
                self.filter_metrics[i].add_out(kept);
                self.filter_metrics[i + 1].add_in(kept);
            }
            (true, Some(s)) => {
                self.filter_metrics[i].add_out(kept);
                s.add_in(kept);
            }
            (true, None) => {} // the chain counts the run's output
        }
    }
}

fn apply(expr: &Arc<dyn PhysicalExpr>, batch: RecordBatch) -> UserResult<(RecordBatch, usize)> {
    let mask = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
    let mask = mask.as_boolean();
    let kept = mask.true_count();
    if kept == batch.num_rows() && mask.null_count() == 0 {
        return Ok((batch, kept));
    }
    Ok((filter_record_batch(&batch, mask)?, kept))
}

impl Operator for CalcOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mask = self.first.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask.as_boolean();
        let mut kept = mask.true_count();
        self.passed(0, kept);
        let narrow = if self.needed.len() == batch.num_columns() {
            batch.clone()
        } else {
            batch.project(&self.needed)?
        };
        let mut rows = if kept == batch.num_rows() && mask.null_count() == 0 {
            narrow
        } else {
            filter_record_batch(&narrow, mask)?
        };
        for (i, expr) in self.rest.iter().enumerate() {
            if kept == 0 {
                self.passed(i + 1, 0);
                continue;
            }
            (rows, kept) = apply(expr, rows)?;
            self.passed(i + 1, kept);
        }
        if kept == 0 {
            return Ok(());
        }
        match &self.projection {
            Some((exprs, schema)) => out.push(project(exprs, schema, &rows)?),
            None => out.push(rows),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::OperatorFactory;
    use crate::operators::filter::FilterExpr;
    use crate::operators::select::Select;
    use crate::operators::testing::{batch_of, ints};

    #[test]
    fn filters_then_a_projection_run_as_one_step_with_each_nodes_counters() {
        let parts = [
            FilterExpr::new("v > 1").calc_part().unwrap(),
            FilterExpr::new("k < 4").calc_part().unwrap(),
            Select::new(&["k * 10 AS k10"]).unwrap().calc_part().unwrap(),
        ];
        let metrics: Vec<Arc<NodeMetrics>> = (0..3).map(|_| Arc::default()).collect();
        let input = batch_of(&[
            ("k", vec![1, 2, 3, 4, 5]),
            ("v", vec![0, 2, 3, 4, 5]),
            ("w", vec![0; 5]),
        ]);
        let mut op = create(
            parts.into_iter().zip(metrics.iter().cloned()).collect(),
            &input.schema(),
        )
        .unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(ints(&out, "k10"), [20, 30]);
        let count = |m: &NodeMetrics| {
            (
                m.records_in.load(std::sync::atomic::Ordering::Relaxed),
                m.records_out.load(std::sync::atomic::Ordering::Relaxed),
            )
        };
        // The chain counts into the first filter and out of the projection; the step counts
        // the edges inside: 4 rows passed the first filter, 2 the second.
        assert_eq!(count(&metrics[0]), (0, 4));
        assert_eq!(count(&metrics[1]), (4, 2));
        assert_eq!(count(&metrics[2]), (2, 0));
    }

    #[test]
    fn a_step_must_start_with_a_filter() {
        let schema = batch_of(&[("k", vec![1])]).schema();
        let part = Select::new(&["k"]).unwrap().calc_part().unwrap();
        assert!(create(vec![(part, Arc::default())], &schema).is_err());
    }
}
