//! `filter`: keep the rows for which a record predicate or a SQL expression is true.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use super::expr::plan_expr;
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
    /// The SQL text.
    pub sql: String,
}

impl FilterExpr {
    /// Plans the condition against `input`, checking that it is boolean.
    pub fn plan(&self, input: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
        let (expr, field) = plan_expr(&self.sql, input)?;
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
