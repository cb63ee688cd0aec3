//! Lookup joins in a plan: the right side of a join that reads a table `FOR SYSTEM_TIME AS OF`
//! (its placeholder table, see [`super::script::LookupRef`]), traced through aliases,
//! projections and filters down to the table's own columns, so the whole side becomes the
//! lookup table's columns and filter.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{Expr, LogicalPlan, col};

use super::catalog::{Catalog, Table};
use super::script::LookupRef;
use crate::contract::error::{Result, WeirError};

/// The looked-up side of a join.
pub struct LookupSide {
    /// The table.
    pub table: Arc<Table>,
    /// How it was named in the query.
    pub lookup: LookupRef,
    /// Each output column of the side, as an expression over the connector's columns.
    pub columns: Vec<Expr>,
    /// The side's filters on the table alone.
    pub filter: Option<Expr>,
}

impl LookupSide {
    /// `e` (over the side's output) as an expression over the connector's columns.
    pub fn over_table(&self, e: &Expr, plan: &LogicalPlan) -> Result<Expr> {
        substitute(e, plan, &self.columns)
    }
}

/// The lookup side `plan` is, if it reads a lookup placeholder.
pub fn lookup_side(plan: &LogicalPlan, catalog: &Catalog) -> Result<Option<LookupSide>> {
    Ok(match plan {
        LogicalPlan::TableScan(scan) => {
            let Some(lookup) = catalog.lookup(scan.table_name.table()) else {
                return Ok(None);
            };
            let table = catalog.table(&lookup.name).expect("registered with the lookup").clone();
            let columns = scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| {
                    table
                        .computed
                        .iter()
                        .find(|(n, _)| n == f.name())
                        .map(|(_, e)| e.clone())
                        .unwrap_or_else(|| col(f.name()))
                })
                .collect();
            let filter = scan.filters.iter().cloned().reduce(Expr::and);
            Some(LookupSide {
                table,
                lookup: lookup.clone(),
                columns,
                filter,
            })
        }
        LogicalPlan::SubqueryAlias(a) => lookup_side(&a.input, catalog)?,
        LogicalPlan::Projection(p) => match lookup_side(&p.input, catalog)? {
            None => None,
            Some(mut side) => {
                side.columns = p
                    .expr
                    .iter()
                    .map(|e| substitute(&e.clone().unalias(), &p.input, &side.columns))
                    .collect::<Result<_>>()?;
                Some(side)
            }
        },
        LogicalPlan::Filter(f) => match lookup_side(&f.input, catalog)? {
            None => None,
            Some(mut side) => {
                let condition = substitute(&f.predicate, &f.input, &side.columns)?;
                side.filter = Some(match side.filter.take() {
                    Some(before) => before.and(condition),
                    None => condition,
                });
                Some(side)
            }
        },
        _ => None,
    })
}

/// Whether `plan` reads a lookup placeholder anywhere (a lookup used other than as the right
/// side of a join).
pub fn reads_lookup(plan: &LogicalPlan, catalog: &Catalog) -> Option<String> {
    if let LogicalPlan::TableScan(scan) = plan
        && let Some(l) = catalog.lookup(scan.table_name.table())
    {
        return Some(l.table.clone());
    }
    plan.inputs().into_iter().find_map(|p| reads_lookup(p, catalog))
}

/// `e`'s columns (of `input`'s schema) replaced by `columns`, in `input`'s column order.
fn substitute(e: &Expr, input: &LogicalPlan, columns: &[Expr]) -> Result<Expr> {
    e.clone()
        .transform(|x| {
            let Expr::Column(c) = &x else {
                return Ok(Transformed::no(x));
            };
            match input.schema().index_of_column(c) {
                Ok(i) => Ok(Transformed::yes(columns[i].clone())),
                Err(e) => Err(e),
            }
        })
        .map(|t| t.data)
        .map_err(|e| WeirError::plan(format!("lookup join: {e}")))
}
