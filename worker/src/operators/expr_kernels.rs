//! Cheaper kernels for two expression shapes that DataFusion evaluates in general form and
//! that SQL jobs run on every row: a searched `CASE` whose branches only pick columns (the
//! Nexmark table's `dateTime`), and an integer times a decimal literal (Nexmark q1's
//! `0.908 * price`). [`specialize`] rewrites a planned expression tree bottom-up; anything
//! else is left as DataFusion planned it, and the results are the same either way (tests below
//! compare both forms).

use std::fmt::{self, Display, Formatter};
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Datum, Decimal128Array, PrimitiveArray,
    downcast_primitive_array, new_null_array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::compute::kernels::zip::zip;
use arrow::datatypes::{DataType, Int8Type, Int16Type, Int32Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};

/// `expr` with the shapes above replaced by their kernels; `schema` is the input's.
pub fn specialize(expr: Arc<dyn PhysicalExpr>, schema: &Schema) -> Arc<dyn PhysicalExpr> {
    let rewritten = expr.clone().transform_up(|e| {
        if let Some(k) = ColumnCase::of(&e, schema) {
            return Ok(Transformed::yes(Arc::new(k) as Arc<dyn PhysicalExpr>));
        }
        if let Some(k) = IntTimesDecimal::of(&e, schema).or_else(|| IntTimesDecimal::narrowed(&e)) {
            return Ok(Transformed::yes(Arc::new(k) as Arc<dyn PhysicalExpr>));
        }
        Ok(Transformed::no(e))
    });
    match rewritten {
        Ok(t) => t.data,
        Err(_) => expr,
    }
}

/// Whether evaluating `e` on every row is safe and cheap: it cannot fail on any row (so a
/// branch may be computed for rows that do not take it) and copies no data.
fn total_and_cheap(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> bool {
    let children_ok = || e.children().into_iter().all(|c| total_and_cheap(c, schema));
    if e.is::<Column>() || e.is::<Literal>() {
        return true;
    }
    if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
        return f.name() == "get_field" && children_ok();
    }
    if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        use Operator::*;
        return matches!(
            b.op(),
            Eq | NotEq | Lt | LtEq | Gt | GtEq | And | Or | IsDistinctFrom | IsNotDistinctFrom
        ) && children_ok();
    }
    if let Some(c) = e.downcast_ref::<CastExpr>() {
        // Widening an integer cannot fail (`event_type = 0` compares as BIGINT).
        let widens = match c.expr().data_type(schema) {
            Ok(from) => digits(&from).zip(digits(c.cast_type())).is_some_and(|(a, b)| a <= b),
            Err(_) => false,
        };
        return widens && children_ok();
    }
    (e.is::<IsNullExpr>() || e.is::<IsNotNullExpr>() || e.is::<NotExpr>()) && children_ok()
}

fn array_of(v: ColumnarValue, rows: usize) -> DfResult<ArrayRef> {
    v.into_array(rows)
}

/// `CASE WHEN c1 THEN v1 … [ELSE e] END` where every condition and value is total and cheap
/// (columns, fields of struct columns, literals, comparisons): all of them are evaluated on
/// the whole batch and the result is zipped from the masks, instead of DataFusion's
/// per-branch filtering and scattering of the remaining rows.
#[derive(Debug)]
struct ColumnCase {
    branches: Vec<(Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>)>,
    otherwise: Option<Arc<dyn PhysicalExpr>>,
    /// The `CASE` as DataFusion planned it: its type, nullability and display.
    planned: Arc<dyn PhysicalExpr>,
}

impl ColumnCase {
    fn of(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Self> {
        let case = e.downcast_ref::<CaseExpr>()?;
        if case.expr().is_some() {
            return None;
        }
        let ty = e.data_type(schema).ok()?;
        let values = case.when_then_expr().iter().map(|(_, v)| v).chain(case.else_expr());
        for v in values {
            if !total_and_cheap(v, schema) || v.data_type(schema).ok()? != ty {
                return None;
            }
        }
        if !case.when_then_expr().iter().all(|(w, _)| total_and_cheap(w, schema)) {
            return None;
        }
        Some(Self {
            branches: case.when_then_expr().to_vec(),
            otherwise: case.else_expr().cloned(),
            planned: e.clone(),
        })
    }

    fn run(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let rows = batch.num_rows();
        let mut acc: ArrayRef = match &self.otherwise {
            Some(e) => array_of(e.evaluate(batch)?, rows)?,
            None => new_null_array(&self.planned.data_type(&batch.schema())?, rows),
        };
        for (when, then) in self.branches.iter().rev() {
            let mask = array_of(when.evaluate(batch)?, rows)?;
            let mask: &BooleanArray = mask.as_boolean();
            acc = match then.evaluate(batch)? {
                ColumnarValue::Array(a) if a.data_type() == acc.data_type() && a.data_type().is_primitive() => {
                    let a: &dyn Array = a.as_ref();
                    downcast_primitive_array!(
                        a => pick(mask, a, &acc),
                        _ => zip(mask, &a, &acc)?
                    )
                }
                ColumnarValue::Array(a) => zip(mask, &a, &acc)?,
                ColumnarValue::Scalar(s) => zip(mask, &s.to_scalar()?, &acc as &dyn Datum)?,
            };
        }
        Ok(ColumnarValue::Array(acc))
    }
}

/// A kernel stands for the expression DataFusion planned (`planned`): it has its type, children,
/// display, equality and hash, and rebuilding it with new children gives back the general form
/// (the kernel only applies to what it was checked on); only `evaluate` is its own (`run`).
macro_rules! stands_for_planned {
    ($t:ty) => {
        impl PhysicalExpr for $t {
            fn return_field(&self, input_schema: &Schema) -> DfResult<arrow::datatypes::FieldRef> {
                self.planned.return_field(input_schema)
            }
            fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
                self.run(batch)
            }
            fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
                self.planned.children()
            }
            fn with_new_children(
                self: Arc<Self>,
                children: Vec<Arc<dyn PhysicalExpr>>,
            ) -> DfResult<Arc<dyn PhysicalExpr>> {
                self.planned.clone().with_new_children(children)
            }
            fn fmt_sql(&self, f: &mut Formatter<'_>) -> fmt::Result {
                self.planned.fmt_sql(f)
            }
        }
        impl Display for $t {
            fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
                Display::fmt(&self.planned, f)
            }
        }
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.planned.eq(&other.planned)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.planned.hash(state)
            }
        }
    };
}
stands_for_planned!(ColumnCase);
stands_for_planned!(IntTimesDecimal);

/// `mask ? a : b` row by row for primitive arrays of one type (a null mask picks `b`), in one
/// pass without per-row branches; arrow's general `zip` copies runs through `MutableArrayData`.
fn pick<T: ArrowPrimitiveType>(mask: &BooleanArray, a: &PrimitiveArray<T>, b: &ArrayRef) -> ArrayRef {
    let b = b.as_primitive::<T>();
    let take_a = match mask.nulls() {
        Some(n) => mask.values() & n.inner(),
        None => mask.values().clone(),
    };
    let values: ScalarBuffer<T::Native> = take_a
        .iter()
        .zip(a.values().iter().zip(b.values().iter()))
        .map(|(t, (x, y))| if t { *x } else { *y })
        .collect();
    let valid = |n: Option<&NullBuffer>| n.map(|n| n.inner().clone());
    let nulls = match (valid(a.nulls()), valid(b.nulls())) {
        (None, None) => None,
        (va, vb) => {
            let all = BooleanBuffer::new_set(take_a.len());
            let (va, vb) = (va.unwrap_or_else(|| all.clone()), vb.unwrap_or(all));
            Some(NullBuffer::new(&(&take_a & &va) | &(&!&take_a & &vb)))
        }
    };
    Arc::new(PrimitiveArray::<T>::new(values, nulls).with_data_type(a.data_type().clone()))
}

/// `CAST(i AS DECIMAL(_, 0)) * d` (either order) for an integer `i` and a decimal literal `d`
/// whose product cannot exceed the result's precision: one widening multiply per row, with
/// no per-row overflow or precision checks (they cannot fail).
#[derive(Debug)]
struct IntTimesDecimal {
    int: Arc<dyn PhysicalExpr>,
    factor: i128,
    /// The product has fewer digits than this.
    digits: u8,
    precision: u8,
    scale: i8,
    planned: Arc<dyn PhysicalExpr>,
}

/// Decimal digits an integer of this type can have.
fn digits(ty: &DataType) -> Option<u8> {
    Some(match ty {
        DataType::Int8 => 3,
        DataType::Int16 => 5,
        DataType::Int32 => 10,
        DataType::Int64 => 19,
        _ => return None,
    })
}

impl IntTimesDecimal {
    fn of(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Self> {
        let b = e.downcast_ref::<BinaryExpr>()?;
        if *b.op() != Operator::Multiply {
            return None;
        }
        let DataType::Decimal128(precision, scale) = e.data_type(schema).ok()? else {
            return None;
        };
        let literal = |x: &Arc<dyn PhysicalExpr>| match x.downcast_ref::<Literal>()?.value() {
            ScalarValue::Decimal128(Some(v), p, s) => Some((*v, *p, *s)),
            _ => None,
        };
        let cast_int = |x: &Arc<dyn PhysicalExpr>| {
            let c = x.downcast_ref::<CastExpr>()?;
            let DataType::Decimal128(_, 0) = c.cast_type() else {
                return None;
            };
            let n = digits(&c.expr().data_type(schema).ok()?)?;
            Some((c.expr().clone(), n))
        };
        let ((int, int_digits), (factor, factor_digits, factor_scale)) = match (cast_int(b.left()), literal(b.right()))
        {
            (Some(i), Some(d)) => (i, d),
            _ => (cast_int(b.right())?, literal(b.left())?),
        };
        // |i| < 10^int_digits and |d| < 10^factor_digits, so the product has fewer than
        // int_digits + factor_digits digits: within the result's precision, it cannot overflow.
        if factor_scale != scale || int_digits + factor_digits > precision || precision > 38 {
            return None;
        }
        Some(Self {
            int,
            factor,
            digits: int_digits + factor_digits,
            precision,
            scale,
            planned: e.clone(),
        })
    }

    /// `CAST(k AS DECIMAL(p, s))` of a kernel `k` with scale `s` whose products always fit in
    /// `p` digits (an `INSERT` into a `DECIMAL(23, 3)` column): the kernel, typed `p`.
    fn narrowed(e: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let c = e.downcast_ref::<CastExpr>()?;
        let k = c.expr().downcast_ref::<IntTimesDecimal>()?;
        match c.cast_type() {
            DataType::Decimal128(p, s) if *s == k.scale && k.digits <= *p => Some(Self {
                int: k.int.clone(),
                precision: *p,
                planned: e.clone(),
                ..*k
            }),
            _ => None,
        }
    }

    fn run(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let k = self.factor;
        let ints = array_of(self.int.evaluate(batch)?, batch.num_rows())?;
        let out: Decimal128Array = match ints.data_type() {
            DataType::Int8 => ints.as_primitive::<Int8Type>().unary(|v| v as i128 * k),
            DataType::Int16 => ints.as_primitive::<Int16Type>().unary(|v| v as i128 * k),
            DataType::Int32 => ints.as_primitive::<Int32Type>().unary(|v| v as i128 * k),
            _ => ints.as_primitive::<Int64Type>().unary(|v| v as i128 * k),
        };
        Ok(ColumnarValue::Array(Arc::new(
            out.with_precision_and_scale(self.precision, self.scale)?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StructArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Fields, TimeUnit};
    use datafusion::common::DFSchema;

    /// Plans `sql` as the SQL planner does (decimal literals are exact).
    fn planned(sql: &str, schema: &Schema) -> Arc<dyn PhysicalExpr> {
        let config = datafusion::prelude::SessionConfig::new()
            .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true);
        let ctx = datafusion::prelude::SessionContext::new_with_config(config);
        let df = DFSchema::try_from(schema.clone()).unwrap();
        let e = ctx.parse_sql_expr(sql, &df).unwrap();
        ctx.create_physical_expr(e, &df).unwrap()
    }

    /// Evaluates `sql` on `batch` planned as DataFusion plans it and specialized; asserts that
    /// the kernel applied (`kernel`) and that both give the same array.
    fn both(sql: &str, batch: &RecordBatch, kernel: &str) -> ArrayRef {
        let general = planned(sql, &batch.schema());
        let fast = specialize(general.clone(), &batch.schema());
        assert!(format!("{fast:?}").starts_with(kernel), "{sql}: {fast:?}");
        let a = general.evaluate(batch).unwrap().into_array(batch.num_rows()).unwrap();
        let b = fast.evaluate(batch).unwrap().into_array(batch.num_rows()).unwrap();
        assert_eq!(a.as_ref(), b.as_ref(), "{sql}");
        assert_eq!(a.data_type(), b.data_type());
        b
    }

    fn events() -> RecordBatch {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let kind = Int32Array::from(vec![Some(0), Some(1), Some(2), Some(2), None, Some(7)]);
        let one = |v: Vec<Option<i64>>| {
            let f = Fields::from(vec![Field::new("dateTime", ts.clone(), true)]);
            StructArray::new(f, vec![Arc::new(TimestampMillisecondArray::from(v))], None)
        };
        let person = one(vec![Some(10), None, None, None, None, None]);
        let bid = one(vec![None, None, Some(30), Some(31), Some(32), Some(33)]);
        let price = Int64Array::from(vec![
            Some(i64::MAX),
            Some(i64::MIN),
            Some(0),
            None,
            Some(-7),
            Some(60105470),
        ]);
        RecordBatch::try_from_iter(vec![
            ("event_type", Arc::new(kind) as ArrayRef),
            ("person", Arc::new(person) as ArrayRef),
            ("bid", Arc::new(bid) as ArrayRef),
            ("price", Arc::new(price) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn a_case_that_picks_columns_zips_them_and_matches_the_general_case() {
        let batch = events();
        let out = both(
            "CASE WHEN event_type = 0 THEN person['dateTime'] WHEN event_type = 2 THEN bid['dateTime'] END",
            &batch,
            "ColumnCase",
        );
        let out = out.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [Some(10), None, Some(30), Some(31), None, None]
        );
        both(
            "CASE WHEN event_type = 0 THEN person['dateTime'] ELSE bid['dateTime'] END",
            &batch,
            "ColumnCase",
        );
        both(
            "CASE WHEN event_type IS NULL THEN 1 WHEN price > 0 THEN 2 ELSE 3 END",
            &batch,
            "ColumnCase",
        );
    }

    #[test]
    fn a_case_whose_branches_compute_or_may_fail_stays_general() {
        let batch = events();
        // `10 / price` would fail on the row where price is 0, which the CASE never divides.
        both("CASE WHEN price <> 0 THEN 10 / price ELSE 0 END", &batch, "CaseExpr");
        both("CASE event_type WHEN 0 THEN 1 ELSE 2 END", &batch, "CaseExpr");
    }

    #[test]
    fn an_integer_times_a_decimal_literal_multiplies_exactly_without_checks() {
        let batch = events();
        // As DataFusion types it, and as Nexmark q1's sink column (`DECIMAL(23, 3)`) takes it.
        let out = both("0.908 * price", &batch, "IntTimesDecimal");
        assert_eq!(out.data_type(), &DataType::Decimal128(24, 3));
        let out = both("CAST(0.908 * price AS DECIMAL(23, 3))", &batch, "IntTimesDecimal");
        assert_eq!(out.data_type(), &DataType::Decimal128(23, 3));
        let out = out.as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(out.value(0), i64::MAX as i128 * 908);
        assert_eq!(out.value_as_string(5), "54575766.760");
        assert!(out.is_null(3));
        both("price * 12.5", &batch, "IntTimesDecimal");
        both("CAST(event_type AS INT) * 0.5", &batch, "IntTimesDecimal");
    }

    #[test]
    fn a_product_that_could_overflow_keeps_its_checks() {
        let batch = events();
        // A 29-digit factor times a 19-digit integer may need more than 38 digits: here it
        // does, and the general form says so.
        let sql = "price * 12345678901234567890123456789";
        let fast = specialize(planned(sql, &batch.schema()), &batch.schema());
        assert!(format!("{fast:?}").starts_with("BinaryExpr"), "{fast:?}");
        let err = fast.evaluate(&batch).unwrap_err().to_string();
        assert!(err.contains("Overflow"), "{err}");
        // Narrower than the product may be: the cast keeps its check.
        let sql = "CAST(0.908 * price AS DECIMAL(21, 3))";
        let fast = specialize(planned(sql, &batch.schema()), &batch.schema());
        assert!(format!("{fast:?}").starts_with("CastExpr"), "{fast:?}");
        assert!(fast.evaluate(&batch).is_err());
    }
}
