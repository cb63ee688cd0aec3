//! Recognises a time-bounded join condition, as Flink's planner does: an inner join of two
//! append-only inputs whose condition bounds one side's rowtime by the other's
//! (`r.ts BETWEEN l.ts - INTERVAL '10' SECOND AND l.ts + INTERVAL '5' SECOND`, or the same with
//! `>=`, `>`, `<=`, `<`) runs as an interval join, whose state the watermark clears, instead of a
//! regular join that keeps every row. Both columns must be rowtime attributes: a table's
//! watermark column, passed through projections, filters and aliases unchanged.

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, LogicalPlan, Operator};

use datafusion::logical_expr::Aggregate;

use super::catalog::Catalog;

/// What makes a column a rowtime: the catalog's watermark columns, and which outputs of a window
/// aggregate are its window's end or time (the SQL lowering knows its windows).
pub struct Rowtimes<'a> {
    /// The tables.
    pub catalog: &'a Catalog,
    /// Whether output `i` of `a` is the end or time of its event-time window.
    pub window_time: &'a dyn Fn(&Aggregate, usize) -> bool,
}

/// A join condition's time bounds: `right.time` within `[left.time + lower, left.time + upper]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalBounds {
    /// The left input's rowtime column: its index in the left input's schema.
    pub left: usize,
    /// The right input's rowtime column: its index in the right input's schema.
    pub right: usize,
    /// Lower bound of `right.time - left.time`, ms (inclusive).
    pub lower: i64,
    /// Upper bound, ms (inclusive).
    pub upper: i64,
    /// The rest of the condition (filters the joined rows), if any.
    pub rest: Option<Expr>,
}

/// The time bounds of a join of `left` and `right` on the equalities `on` with the further
/// condition `filter`: a lower and an upper one between the same two rowtime columns in
/// `filter`, or else an equality of two rowtime columns in `on` (two windowed results joined
/// on their windows, Nexmark q8: a window join, its bounds `[0, 0]`).
pub fn join_bounds(
    on: &[(Expr, Expr)],
    filter: Option<&Expr>,
    left: &LogicalPlan,
    right: &LogicalPlan,
    rowtimes: &Rowtimes<'_>,
) -> Option<IntervalBounds> {
    if let Some(b) = filter.and_then(|f| interval_bounds(f, left, right, rowtimes)) {
        return Some(b);
    }
    on.iter().find_map(|(l, r)| {
        let (Expr::Column(l), Expr::Column(r)) = (l, r) else {
            return None;
        };
        let (li, ri) = (
            left.schema().maybe_index_of_column(l)?,
            right.schema().maybe_index_of_column(r)?,
        );
        (is_rowtime(left, l, rowtimes) && is_rowtime(right, r, rowtimes)).then(|| IntervalBounds {
            left: li,
            right: ri,
            lower: 0,
            upper: 0,
            rest: filter.cloned(),
        })
    })
}

/// The time bounds in `filter`, a join condition over `left` and `right`, when it has both a
/// lower and an upper one between the same two rowtime columns.
fn interval_bounds(
    filter: &Expr,
    left: &LogicalPlan,
    right: &LogicalPlan,
    rowtimes: &Rowtimes<'_>,
) -> Option<IntervalBounds> {
    let mut conjuncts = Vec::new();
    for c in split_conjunction(filter) {
        match c {
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                conjuncts.push(Expr::BinaryExpr(BinaryExpr::new(
                    expr.clone(),
                    Operator::GtEq,
                    low.clone(),
                )));
                conjuncts.push(Expr::BinaryExpr(BinaryExpr::new(
                    expr.clone(),
                    Operator::LtEq,
                    high.clone(),
                )));
            }
            other => conjuncts.push(other.clone()),
        }
    }
    let (mut lower, mut upper, mut columns): (Option<i64>, Option<i64>, Option<(usize, usize)>) = (None, None, None);
    let mut rest = Vec::new();
    for c in conjuncts {
        match bound(&c, left, right) {
            Some((cols, b)) if columns.is_none_or(|x| x == cols) => {
                columns = Some(cols);
                match b {
                    TimeBound::Lower(d) => lower = Some(lower.map_or(d, |x| x.max(d))),
                    TimeBound::Upper(d) => upper = Some(upper.map_or(d, |x| x.min(d))),
                }
            }
            _ => rest.push(c),
        }
    }
    let ((l, r), lower, upper) = (columns?, lower?, upper?);
    let rowtime = |plan: &LogicalPlan, i: usize| {
        let (qualifier, field) = plan.schema().qualified_field(i);
        is_rowtime(plan, &Column::new(qualifier.cloned(), field.name()), rowtimes)
    };
    if !(rowtime(left, l) && rowtime(right, r)) {
        return None;
    }
    Some(IntervalBounds {
        left: l,
        right: r,
        lower,
        upper,
        rest: rest.into_iter().reduce(Expr::and),
    })
}

/// One bound of `right.time - left.time`.
enum TimeBound {
    Lower(i64),
    Upper(i64),
}

/// `c` as a bound between a left column and a right column: their indexes and the bound.
fn bound(c: &Expr, left: &LogicalPlan, right: &LogicalPlan) -> Option<((usize, usize), TimeBound)> {
    let Expr::BinaryExpr(BinaryExpr { left: a, op, right: b }) = c else {
        return None;
    };
    let ((ca, oa), (cb, ob)) = (time_term(a)?, time_term(b)?);
    let side = |c: &Column| match (
        left.schema().maybe_index_of_column(c),
        right.schema().maybe_index_of_column(c),
    ) {
        (Some(i), None) => Some((0, i)),
        (None, Some(i)) => Some((1, i)),
        _ => None,
    };
    // As `right op left + d`.
    let (op, l, r, d) = match (side(&ca)?, side(&cb)?) {
        ((1, r), (0, l)) => (*op, l, r, ob.checked_sub(oa)?),
        ((0, l), (1, r)) => (op.swap()?, l, r, oa.checked_sub(ob)?),
        _ => return None,
    };
    let b = match op {
        Operator::GtEq => TimeBound::Lower(d),
        Operator::Gt => TimeBound::Lower(d.checked_add(1)?),
        Operator::LtEq => TimeBound::Upper(d),
        Operator::Lt => TimeBound::Upper(d.checked_sub(1)?),
        _ => return None,
    };
    Some(((l, r), b))
}

/// `e` as a column plus a constant interval, ms.
fn time_term(e: &Expr) -> Option<(Column, i64)> {
    match e {
        Expr::Column(c) => Some((c.clone(), 0)),
        Expr::Cast(c) => time_term(&c.expr),
        Expr::TryCast(c) => time_term(&c.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (op, left.as_ref(), right.as_ref()) {
            (Operator::Plus, x, Expr::Literal(v, _)) | (Operator::Plus, Expr::Literal(v, _), x) => {
                let (c, o) = time_term(x)?;
                Some((c, o.checked_add(interval_ms(v)?)?))
            }
            (Operator::Minus, x, Expr::Literal(v, _)) => {
                let (c, o) = time_term(x)?;
                Some((c, o.checked_sub(interval_ms(v)?)?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A literal interval of fixed length, ms (months and years vary: not a bound).
fn interval_ms(v: &ScalarValue) -> Option<i64> {
    const DAY: i64 = 86_400_000;
    match v {
        ScalarValue::IntervalDayTime(Some(v)) => Some(i64::from(v.days) * DAY + i64::from(v.milliseconds)),
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(i64::from(v.days) * DAY + v.nanoseconds / 1_000_000)
        }
        ScalarValue::DurationMillisecond(Some(v)) => Some(*v),
        ScalarValue::DurationSecond(Some(v)) => v.checked_mul(1_000),
        _ => None,
    }
}

/// Whether `column` of `plan` is a rowtime attribute: a table's watermark column, through
/// projections (plain column references, renamed or not), filters and aliases.
fn is_rowtime(plan: &LogicalPlan, column: &Column, rowtimes: &Rowtimes<'_>) -> bool {
    let Some(i) = plan.schema().maybe_index_of_column(column) else {
        return false;
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = plan.schema().field(i).name();
            rowtimes
                .catalog
                .table(scan.table_name.table())
                .and_then(|t| t.watermark.as_ref())
                .is_some_and(|(w, _)| w == name)
        }
        LogicalPlan::Projection(p) => {
            let mut e = &p.expr[i];
            while let Expr::Alias(a) = e {
                e = &a.expr;
            }
            match e {
                Expr::Column(c) => is_rowtime(&p.input, c, rowtimes),
                _ => false,
            }
        }
        LogicalPlan::Filter(f) => is_rowtime(&f.input, column, rowtimes),
        // A window aggregate's end or time (as `window_end`, `window_time`, `TUMBLE_ROWTIME`):
        // its rows come out when the watermark passes their window's end, so none is behind
        // the watermark and later ones are not earlier (Flink keeps only `window_time` a time
        // attribute; the end is as safe to bound by).
        LogicalPlan::Aggregate(a) => (rowtimes.window_time)(a, i),
        LogicalPlan::SubqueryAlias(a) => {
            let (qualifier, field) = a.input.schema().qualified_field(i);
            is_rowtime(&a.input, &Column::new(qualifier.cloned(), field.name()), rowtimes)
        }
        _ => false,
    }
}
