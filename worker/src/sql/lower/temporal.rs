//! Event-time temporal joins: `JOIN versioned FOR SYSTEM_TIME AS OF left.rowtime`. Before the
//! plan is optimized, [`mark_temporal_joins`] checks each table joined `FOR SYSTEM_TIME AS OF`
//! (as of the left side's processing time it is a lookup join) and puts the [`AS_OF`] marker,
//! naming both time columns, into the join's condition, so the optimizer keeps them; the
//! lowering takes it out again and plans the [`TemporalJoin`] operator.

use std::sync::Arc;

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::{Lowered, Lowering, col, definition, join_keys, resolve, stream_names, strip_cast};
use crate::contract::error::{Result, WeirError};
use crate::operators::running_aggregate::OP_COLUMN;
use crate::operators::temporal_join::TemporalJoin;
use crate::sql::catalog::Catalog;
use crate::sql::functions::{AS_OF, PROCTIME};
use crate::sql::lookup::{LookupSide, lookup_side};

/// Checks each table joined `FOR SYSTEM_TIME AS OF` in `plan` (not optimized yet, so the time
/// column is still there): as of a column of the left side defined as `PROCTIME()` it is a
/// lookup join; as of any other left column, an event-time temporal join, whose table must be
/// versioned (a primary key and a watermark), marked with [`AS_OF`].
pub fn mark_temporal_joins(plan: LogicalPlan, catalog: &Catalog) -> Result<LogicalPlan> {
    let mut failure = None;
    let marked = plan
        .transform_up(|p| {
            if failure.is_some() {
                return Ok(Transformed::no(p));
            }
            Ok(match mark(&p, catalog) {
                Ok(Some(m)) => Transformed::yes(m),
                Ok(None) => Transformed::no(p),
                Err(e) => {
                    failure = Some(e);
                    Transformed::no(p)
                }
            })
        })
        .map_err(|e| WeirError::plan(e.to_string()))?
        .data;
    failure.map_or(Ok(marked), Err)
}

/// `plan` with the [`AS_OF`] marker, if it is an event-time temporal join.
fn mark(plan: &LogicalPlan, catalog: &Catalog) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Join(j) = plan else {
        return Ok(None);
    };
    let Some(side) = lookup_side(&j.right, catalog)? else {
        return Ok(None);
    };
    let (name, time_text) = (&side.lookup.table, &side.lookup.time);
    let time = match time_text.rsplit_once('.') {
        Some((q, c)) => Column::new(Some(datafusion::common::TableReference::bare(q)), c),
        None => Column::new_unqualified(time_text),
    };
    if j.left.schema().index_of_column(&time).is_err() {
        return Err(WeirError::plan(format!(
            "'{name}' FOR SYSTEM_TIME AS OF {time_text}: not a column of the join's left side (a lookup join \
             takes the left side's PROCTIME() column, a temporal join its event time)"
        )));
    }
    if matches!(definition(&Expr::Column(time.clone()), &j.left),
        Expr::ScalarFunction(f) if f.name() == PROCTIME)
    {
        return Ok(None);
    }
    let table = &side.table;
    let Some((rowtime, _)) = &table.watermark else {
        return Err(WeirError::plan(format!(
            "'{name}' FOR SYSTEM_TIME AS OF {time_text}: a temporal join on event time needs a versioned table, \
             and '{name}' has no WATERMARK (declare one on its version time; or join it as of the left side's \
             PROCTIME() to look it up)"
        )));
    };
    if table.def.primary_key.is_empty() {
        return Err(WeirError::plan(format!(
            "'{name}' FOR SYSTEM_TIME AS OF {time_text}: a temporal join on event time needs a versioned table, \
             and '{name}' has no PRIMARY KEY (declare the key its rows are versions of: PRIMARY KEY (…) NOT ENFORCED)"
        )));
    }
    let version = j
        .right
        .schema()
        .qualified_field_with_unqualified_name(rowtime)
        .map(|(q, f)| Column::new(q.cloned(), f.name()))
        .map_err(|_| {
            WeirError::plan(format!(
                "'{name}' FOR SYSTEM_TIME AS OF {time_text}: the version time '{rowtime}' is not among the \
                 columns the join reads of '{name}'"
            ))
        })?;
    let udf = catalog
        .session()
        .udf(AS_OF)
        .map_err(|e| WeirError::plan(e.to_string()))?;
    let marker = Expr::ScalarFunction(ScalarFunction::new_udf(
        udf,
        vec![Expr::Column(time), Expr::Column(version)],
    ));
    let mut marked = j.clone();
    marked.filter = Some(match &j.filter {
        Some(f) => marker.and(f.clone()),
        None => marker,
    });
    Ok(Some(LogicalPlan::Join(marked)))
}

/// The [`AS_OF`] marker's two columns (left time, version time) in a join condition, and the
/// rest of the condition.
pub(super) fn take_as_of(filter: &Option<Expr>) -> Option<(Column, Column, Option<Expr>)> {
    let filter = filter.as_ref()?;
    let mut found = None;
    let mut rest = Vec::new();
    for c in datafusion::logical_expr::utils::split_conjunction(filter) {
        match c {
            Expr::ScalarFunction(f) if f.name() == AS_OF && found.is_none() => {
                if let [Expr::Column(l), Expr::Column(r)] = f.args.as_slice() {
                    found = Some((l.clone(), r.clone()));
                    continue;
                }
                rest.push(c.clone());
            }
            other => rest.push(other.clone()),
        }
    }
    let (l, r) = found?;
    Some((l, r, rest.into_iter().reduce(Expr::and)))
}

impl Lowering<'_> {
    /// An event-time temporal join: both sides keyed by the join keys (the versioned table's by
    /// its primary key) into the temporal join operator, the left rows joined with the version
    /// current at their time.
    pub(super) fn temporal_join(
        &mut self,
        j: &datafusion::logical_expr::Join,
        side: LookupSide,
        (left_time, version_time, rest): (Column, Column, Option<Expr>),
    ) -> Result<Lowered> {
        use datafusion::logical_expr::JoinType as Sql;
        let name = side.lookup.table.clone();
        let left_outer = match j.join_type {
            Sql::Inner => false,
            Sql::Left => true,
            other => {
                return Err(WeirError::plan(format!(
                    "a temporal join of '{name}' is INNER or LEFT, not {other}"
                )));
            }
        };
        if rest.is_some() && left_outer {
            return Err(WeirError::plan(format!(
                "a LEFT temporal join of '{name}' may only compare the two sides with '=' so far; filter the \
                 table in a subquery"
            )));
        }
        // The versioned table's rows are versions of its primary key: the join compares it whole.
        let compared: Vec<String> =
            j.on.iter()
                .filter_map(|(_, r)| match side.over_table(r, &j.right) {
                    Ok(e) => match strip_cast(&e) {
                        Expr::Column(c) => Some(c.name.clone()),
                        _ => None,
                    },
                    Err(_) => None,
                })
                .collect();
        let pk = &side.table.def.primary_key;
        if let Some(missing) = pk.iter().find(|k| !compared.contains(k)) {
            return Err(WeirError::plan(format!(
                "a temporal join of '{name}' compares its whole primary key ({}) with the left side; '{missing}' \
                 is not compared with '='",
                pk.join(", ")
            )));
        }
        let out_names = stream_names(&j.schema);
        let split = j.left.schema().fields().len();
        let time_name = |plan: &LogicalPlan, c: &Column, offset: usize| -> Result<String> {
            let i = plan
                .schema()
                .index_of_column(c)
                .map_err(|_| WeirError::plan(format!("temporal join of '{name}': the time column {c} is not read")))?;
            Ok(out_names[offset + i].clone())
        };
        let left_time = time_name(&j.left, &left_time, 0)?;
        let right_time = time_name(&j.right, &version_time, split)?;
        let mut sides = Vec::new();
        for (index, plan) in [&j.left, &j.right].into_iter().enumerate() {
            if index == 1 {
                self.versioned.insert(side.lookup.name.clone());
            }
            let input = self.lower(plan)?;
            if index == 0 && input.updating {
                return Err(WeirError::plan(format!(
                    "a temporal join of '{name}' probes with an append-only stream; its left side is a changelog"
                )));
            }
            let names = if index == 0 {
                &out_names[..split]
            } else {
                &out_names[split..]
            };
            let mut items: Vec<(Expr, String)> = stream_names(plan.schema())
                .into_iter()
                .zip(names)
                .map(|(from, to)| (col(&from), to.clone()))
                .collect();
            let (key_items, keys) = join_keys(&j.on, index, &j.left, &j.right)?;
            items.extend(key_items);
            if input.updating {
                items.push((col(OP_COLUMN), OP_COLUMN.into()));
            }
            let projected = self.project(input, items)?;
            let stream = self.flush(projected, if index == 0 { "temporal-left" } else { "temporal-right" })?;
            sides.push((stream.key_by(keys.clone()), keys));
        }
        let (right, right_keys) = sides.pop().expect("two sides");
        let (left, left_keys) = sides.pop().expect("two sides");
        let op = TemporalJoin {
            left_keys,
            right_keys,
            left_time,
            right_time,
            left_outer,
        };
        let node = self.name("temporal-join");
        let joined = left.stream().union(&[right.stream()]).transform(&node, Arc::new(op));
        let lowered = Lowered {
            stream: joined,
            updating: false,
            pending: Some(out_names.iter().map(|n| (col(n), n.clone())).collect()),
        };
        match rest {
            Some(f) => self.restrict(lowered, resolve(f, &j.schema), "join-filter"),
            None => Ok(lowered),
        }
    }
}
