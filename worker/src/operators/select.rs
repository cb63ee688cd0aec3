//! `select`: a projection of SQL expressions, each optionally `AS name`.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::expr::{SelectItemSpec, parse_select_item, plan_expr, plan_logical};
use super::{CalcPart, Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::{Result, WeirError};

/// A projection such as `["auction", "price * 0.908 AS euros"]`.
#[derive(Debug, Clone)]
pub struct Select {
    items: Vec<SelectItemSpec>,
}

impl Select {
    /// Parses the select list (syntax errors are reported here, types at plan time).
    pub fn new(items: &[impl AsRef<str>]) -> Result<Self> {
        if items.is_empty() {
            return Err(WeirError::plan("select: the list of expressions is empty"));
        }
        Ok(Select {
            items: items
                .iter()
                .map(|s| parse_select_item(s.as_ref()))
                .collect::<Result<_>>()?,
        })
    }

    /// A projection the SQL planner made: each expression with its output name.
    pub fn planned(items: Vec<(datafusion::logical_expr::Expr, String)>) -> Result<Self> {
        if items.is_empty() {
            return Err(WeirError::plan("select: the list of expressions is empty"));
        }
        Ok(Select {
            items: items
                .into_iter()
                .map(|(expr, name)| SelectItemSpec::Planned { expr, name })
                .collect(),
        })
    }

    /// Plans the expressions against `input`: the physical expressions and the output schema.
    pub fn plan(&self, input: &SchemaRef) -> Result<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)> {
        let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        for item in &self.items {
            match item {
                SelectItemSpec::Wildcard => {
                    for (i, f) in input.fields().iter().enumerate() {
                        exprs.push(Arc::new(Column::new(f.name(), i)));
                        fields.push(f.as_ref().clone());
                    }
                }
                SelectItemSpec::Planned { expr, name } => {
                    let (e, f) = plan_logical(expr, input)?;
                    exprs.push(e);
                    fields.push(f.as_ref().clone().with_name(name.clone()));
                }
                SelectItemSpec::Expr { sql, name } => {
                    let (e, f) = plan_expr(sql, input)?;
                    exprs.push(e);
                    fields.push(f.as_ref().clone().with_name(name.clone()));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for f in &fields {
            if !seen.insert(f.name().clone()) {
                return Err(WeirError::plan(format!(
                    "select: two output columns are named '{}'; rename one with AS",
                    f.name()
                )));
            }
        }
        Ok((exprs, Arc::new(Schema::new(fields))))
    }
}

impl OperatorFactory for Select {
    fn kind(&self) -> &'static str {
        "select"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.1)
    }
    fn create(&self, input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (exprs, output) = self.plan(input)?;
        Ok(Box::new(SelectOp { exprs, output }))
    }
    fn calc_part(&self) -> Option<CalcPart> {
        let this = self.clone();
        Some(CalcPart::Project(Box::new(move |input| this.plan(input))))
    }
}

struct SelectOp {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
}

impl Operator for SelectOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        out.push(project(&self.exprs, &self.output, &batch)?);
        Ok(())
    }
}

/// Evaluates projection expressions on `batch` into a batch of `output`.
pub fn project(exprs: &[Arc<dyn PhysicalExpr>], output: &SchemaRef, batch: &RecordBatch) -> UserResult<RecordBatch> {
    let n = batch.num_rows();
    let columns = exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
        .collect::<UserResult<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new_with_options(
        output.clone(),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::{batch_of, ctx, ints};

    #[test]
    fn expressions_and_aliases_make_the_output() {
        let s = Select::new(&["k", "v * 2 AS doubled"]).unwrap();
        let input = batch_of(&[("k", vec![1, 2]), ("v", vec![10, 20])]);
        let schema = s.output_schema(&input.schema()).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["k", "doubled"]);
        let mut op = s.create(&input.schema(), &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(ints(&out, "doubled"), [20, 40]);
        assert!(matches!(s.calc_part(), Some(CalcPart::Project(_))));
    }

    #[test]
    fn an_empty_list_or_an_unknown_field_is_refused() {
        assert!(Select::new(&[] as &[&str]).is_err());
        let schema = batch_of(&[("k", vec![1])]).schema();
        let e = Select::new(&["missing"]).unwrap().output_schema(&schema).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
