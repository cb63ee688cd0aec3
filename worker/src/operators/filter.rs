//! `filter`: keep the rows for which a record predicate or a SQL expression is true.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::expr::{plan_expr, plan_logical};
use super::{CalcPart, Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::row::RowRef;

/// A record predicate.
pub type RowPredicate = dyn Fn(RowRef<'_>) -> bool + Send + Sync;

/// `filter` with a closure.
pub struct FilterRows {
    /// The predicate.
    pub f: Arc<RowPredicate>,
}

impl OperatorFactory for FilterRows {
    fn kind(&self) -> &'static str {
        "filter"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(input.clone())
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let f = self.f.clone();
        Ok(Box::new(FilterRowsOp { f }))
    }
}

struct FilterRowsOp {
    f: Arc<RowPredicate>,
}

impl Operator for FilterRowsOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mask: BooleanArray = (0..batch.num_rows())
            .map(|i| Some((self.f)(RowRef::new(&batch, i))))
            .collect();
        push_filtered(&batch, &mask, out)
    }
}

/// `filter` with a SQL expression such as `price > 100 AND channel = 'Apple'`.
#[derive(Debug, Clone)]
pub struct FilterExpr {
    sql: String,
    planned: Option<datafusion::logical_expr::Expr>,
}

impl FilterExpr {
    /// A condition in SQL text.
    pub fn new(sql: impl Into<String>) -> Self {
        FilterExpr {
            sql: sql.into(),
            planned: None,
        }
    }

    /// A condition the SQL planner already made (columns by name).
    pub fn planned(expr: datafusion::logical_expr::Expr) -> Self {
        FilterExpr {
            sql: expr.to_string(),
            planned: Some(expr),
        }
    }

    /// Plans the condition against `input`, checking that it is boolean.
    pub fn plan(&self, input: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
        let (expr, field) = match &self.planned {
            Some(e) => plan_logical(e, input)?,
            None => plan_expr(&self.sql, input)?,
        };
        if field.data_type() != &DataType::Boolean {
            return Err(WeirError::plan(format!(
                "filter '{}' has type {}, expected a boolean condition",
                self.sql,
                field.data_type()
            )));
        }
        Ok(expr)
    }
}

impl OperatorFactory for FilterExpr {
    fn kind(&self) -> &'static str {
        "filter"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        self.plan(input)?;
        Ok(input.clone())
    }
    fn create(&self, input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(FilterExprOp {
            expr: self.plan(input)?,
        }))
    }
    fn calc_part(&self) -> Option<CalcPart> {
        let this = self.clone();
        Some(CalcPart::Filter(Box::new(move |input| this.plan(input))))
    }
}

struct FilterExprOp {
    expr: Arc<dyn PhysicalExpr>,
}

impl Operator for FilterExprOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mask = self.expr.evaluate(&batch)?.into_array(batch.num_rows())?;
        push_filtered(&batch, mask.as_boolean(), out)
    }
}

fn push_filtered(batch: &RecordBatch, mask: &BooleanArray, out: &mut Vec<RecordBatch>) -> UserResult<()> {
    let kept = mask.true_count();
    if kept == batch.num_rows() && mask.null_count() == 0 {
        out.push(batch.clone());
    } else if kept > 0 {
        out.push(filter_record_batch(batch, mask)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::{batch_of, ctx, ints};

    #[test]
    fn a_sql_condition_keeps_the_rows_it_holds_for() {
        let f = FilterExpr::new("v > 2 AND k <> 7");
        let input = batch_of(&[("k", vec![1, 7, 3, 4]), ("v", vec![5, 9, 1, 3])]);
        assert_eq!(f.output_schema(&input.schema()).unwrap(), input.schema());
        let mut op = f.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(ints(&out, "k"), [1, 4]);
    }

    #[test]
    fn a_condition_that_is_not_boolean_or_names_no_field_is_refused_when_planning() {
        let schema = batch_of(&[("k", vec![1])]).schema();
        let e = FilterExpr::new("k + 1").output_schema(&schema).unwrap_err();
        assert!(
            e.to_string().contains("boolean") || e.to_string().contains("Boolean"),
            "{e}"
        );
        assert!(FilterExpr::new("nope > 1").output_schema(&schema).is_err());
    }

    #[test]
    fn a_row_predicate_filters_and_fuses_not() {
        let f = FilterRows {
            f: Arc::new(|r: RowRef<'_>| r.get_i64("k").unwrap_or(0) % 2 == 0),
        };
        assert!(f.calc_part().is_none(), "closures are not fused");
        let input = batch_of(&[("k", vec![1, 2, 3, 4])]);
        let mut op = f.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(ints(&out, "k"), [2, 4]);
    }
}
