//! Functions Flink SQL has and DataFusion lacks, registered on the planner's session: `MOD`,
//! `SPLIT_INDEX`, `PROCTIME()`, the legacy group-window functions (`TUMBLE(ts, size)` in
//! `GROUP BY`, `TUMBLE_START` … in the select list) and the markers the window table functions
//! become (`window_start` / `window_end` / `window_time` columns). The lowering pass reads the
//! markers to build window operators; evaluated on their own they give a tumbling window's
//! bounds (and the row's time for the other kinds, which the lowering only allows under
//! `GROUP BY window_start, window_end`).

use std::sync::Arc;

use arrow::array::{Array, AsArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udaf,
};

use super::script::TvfKind;

/// The marker UDFs' names.
pub const WINDOW_START: &str = "__weir_window_start";
/// See [`WINDOW_START`].
pub const WINDOW_END: &str = "__weir_window_end";
/// See [`WINDOW_START`].
pub const WINDOW_TIME: &str = "__weir_window_time";
/// Processing time.
pub const PROCTIME: &str = "proctime";
/// The marker of an event-time temporal join, `__weir_as_of(left time, version time)`: added to
/// the join's condition before optimizing (so both time columns stay in the plan), taken out
/// again by the lowering. Never evaluated.
pub const AS_OF: &str = "__weir_as_of";

/// The legacy group-window functions of `GROUP BY` and what kind of window each is.
pub const GROUP_WINDOWS: &[(&str, TvfKind)] = &[
    ("tumble", TvfKind::Tumble),
    ("hop", TvfKind::Hop),
    ("session", TvfKind::Session),
];

/// Which bound of a window a function or column gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bound {
    /// `window_start`, `TUMBLE_START`.
    Start,
    /// `window_end`, `TUMBLE_END`.
    End,
    /// `window_time`, `TUMBLE_ROWTIME`: the end minus 1 ms.
    Time,
}

/// The legacy auxiliary functions (`TUMBLE_START(ts, size)` …): their kind and bound.
pub fn auxiliary(name: &str) -> Option<(TvfKind, Bound)> {
    let name = name.to_ascii_lowercase();
    let (kind, bound) = name.rsplit_once('_')?;
    let kind = GROUP_WINDOWS.iter().find(|(k, _)| *k == kind)?.1;
    let bound = match bound {
        "start" => Bound::Start,
        "end" => Bound::End,
        "rowtime" | "proctime" => Bound::Time,
        _ => return None,
    };
    Some((kind, bound))
}

/// The code of a window kind in marker arguments.
pub fn kind_code(kind: TvfKind) -> i64 {
    match kind {
        TvfKind::Tumble => 0,
        TvfKind::Hop => 1,
        TvfKind::Cumulate => 2,
        TvfKind::Session => 3,
    }
}

/// The kind of a marker argument's code.
pub fn kind_of_code(code: i64) -> Option<TvfKind> {
    [TvfKind::Tumble, TvfKind::Hop, TvfKind::Cumulate, TvfKind::Session]
        .into_iter()
        .find(|k| kind_code(*k) == code)
}

fn ts_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Every scalar function this module adds.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut out = vec![
        ScalarUDF::from(Marker::new(WINDOW_START, Bound::Start)),
        ScalarUDF::from(Marker::new(WINDOW_END, Bound::End)),
        ScalarUDF::from(Marker::new(WINDOW_TIME, Bound::Time)),
        ScalarUDF::from(Proctime::default()),
        ScalarUDF::from(AsOf::default()),
        ScalarUDF::from(Mod::default()),
        ScalarUDF::from(ToTimestampLtz::default()),
        ScalarUDF::from(DateFormat::default()),
    ];
    out.extend(super::string_functions::scalar_functions());
    out.extend(super::date_parts::scalar_functions());
    for (name, _) in GROUP_WINDOWS {
        out.push(ScalarUDF::from(GroupWindow::new(name)));
    }
    out
}

/// Every aggregate function this module adds (the legacy auxiliary functions).
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    let mut out = Vec::new();
    for (kind, _) in GROUP_WINDOWS {
        for bound in ["start", "end", "rowtime", "proctime"] {
            let name = format!("{kind}_{bound}");
            let args = if *kind == "hop" { 3 } else { 2 };
            let mut types = vec![ts_ms()];
            types.extend(std::iter::repeat_n(
                DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
                args - 1,
            ));
            out.push(create_udaf(
                &name,
                types,
                Arc::new(ts_ms()),
                Volatility::Immutable,
                Arc::new(move |_| plan_err!("{kind}_{bound} belongs in a query grouped by {kind}(..)")),
                Arc::new(vec![ts_ms()]),
            ));
        }
    }
    out
}

/// Milliseconds of an interval literal.
pub fn interval_literal_ms(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
                Some(i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000)
            }
            ScalarValue::IntervalDayTime(Some(i)) => Some(i.days as i64 * 86_400_000 + i.milliseconds as i64),
            ScalarValue::Int64(Some(v)) => Some(*v),
            _ => None,
        },
        Expr::Cast(c) => interval_literal_ms(&c.expr),
        Expr::TryCast(c) => interval_literal_ms(&c.expr),
        _ => None,
    }
}

fn millis(value: &ColumnarValue, rows: usize) -> DfResult<TimestampMillisecondArray> {
    let array = value.to_array(rows)?;
    let array = match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => array,
        _ => cast(&array, &ts_ms())?,
    };
    Ok(array.as_primitive::<TimestampMillisecondType>().clone())
}

fn int_arg(args: &ScalarFunctionArgs, i: usize, what: &str) -> DfResult<i64> {
    match &args.args[i] {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v))) => Ok(*v),
        _ => exec_err!("{what} must be a constant"),
    }
}

/// A window-bound marker: `(ts, kind code, size ms, slide ms)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Marker {
    name: &'static str,
    bound: Bound,
    signature: Signature,
}

impl Marker {
    fn new(name: &'static str, bound: Bound) -> Self {
        Marker {
            name,
            bound,
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(ts_ms())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let ts = millis(&args.args[0], args.number_rows)?;
        let kind = int_arg(&args, 1, "the window kind")?;
        let size = int_arg(&args, 2, "the window size")?;
        if kind != kind_code(TvfKind::Tumble) {
            return Ok(ColumnarValue::Array(Arc::new(ts)));
        }
        let bound = self.bound;
        let out: TimestampMillisecondArray = ts.unary(|t| {
            let start = t - t.rem_euclid(size);
            match bound {
                Bound::Start => start,
                Bound::End => start + size,
                Bound::Time => start + size - 1,
            }
        });
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `TUMBLE(ts, size)`, `HOP(ts, slide, size)`, `SESSION(ts, gap)` as `GROUP BY` items.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GroupWindow {
    name: String,
    signature: Signature,
}

impl GroupWindow {
    fn new(name: &str) -> Self {
        let n = if name == "hop" { 3 } else { 2 };
        GroupWindow {
            name: name.to_string(),
            signature: Signature::any(n, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for GroupWindow {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(ts_ms())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // The row's time: the lowering makes the window operator from the call's arguments.
        Ok(ColumnarValue::Array(Arc::new(millis(&args.args[0], args.number_rows)?)))
    }
}

/// `PROCTIME()`: the wall-clock time (processing-time windows follow the job's clock).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Proctime {
    signature: Signature,
}

impl Default for Proctime {
    fn default() -> Self {
        Proctime {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for Proctime {
    fn name(&self) -> &str {
        PROCTIME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(ts_ms())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let now = crate::contract::clock::wall_ms();
        Ok(ColumnarValue::Array(Arc::new(TimestampMillisecondArray::from_value(
            now,
            args.number_rows,
        ))))
    }
}

/// See [`AS_OF`]. Volatile, so the optimizer neither folds it nor moves it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AsOf {
    signature: Signature,
}

impl Default for AsOf {
    fn default() -> Self {
        AsOf {
            signature: Signature::any(2, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for AsOf {
    fn name(&self) -> &str {
        AS_OF
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(arrow::array::BooleanArray::from(vec![
            true;
            args.number_rows
        ]))))
    }
}

/// `MOD(a, b)`: Flink's remainder, rewritten to `a % b` when planning.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Mod {
    signature: Signature,
}

impl Default for Mod {
    fn default() -> Self {
        Mod {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, types: &[DataType]) -> DfResult<DataType> {
        Ok(types[1].clone())
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let [a, b]: [Expr; 2] = args
            .try_into()
            .map_err(|_| datafusion::error::DataFusionError::Plan("MOD takes two arguments".into()))?;
        Ok(ExprSimplifyResult::Simplified(a % b))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let a = args.args[0].to_array(n)?;
        let b = cast(&args.args[1].to_array(n)?, a.data_type())?;
        Ok(ColumnarValue::Array(arrow::compute::kernels::numeric::rem(&a, &b)?))
    }
}

/// `TO_TIMESTAMP_LTZ(epoch, precision)`: seconds (precision 0) or milliseconds (3) since the
/// epoch as a timestamp (milliseconds, no zone: Weir's event-time type).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestampLtz {
    signature: Signature,
}

impl Default for ToTimestampLtz {
    fn default() -> Self {
        ToTimestampLtz {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(ts_ms())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let scale = match &args.args[1] {
            ColumnarValue::Scalar(v) => match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(0)) => 1_000,
                ScalarValue::Int64(Some(3)) => 1,
                other => return exec_err!("TO_TIMESTAMP_LTZ: precision {other} (supported: 0, 3)"),
            },
            _ => return exec_err!("TO_TIMESTAMP_LTZ: the precision must be a constant"),
        };
        let v = cast(&args.args[0].to_array(n)?, &DataType::Int64)?;
        let v = v.as_primitive::<arrow::datatypes::Int64Type>();
        let out: TimestampMillisecondArray = v.unary(|x| x.saturating_mul(scale));
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm:ss')`: Flink's (Java's) pattern letters, planned as
/// DataFusion's `to_char` with the pattern translated.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFormat {
    signature: Signature,
}

impl Default for DateFormat {
    fn default() -> Self {
        DateFormat {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// A Java date pattern (`yyyy-MM-dd HH:mm:ss.SSS`) as a chrono one (`%Y-%m-%d %H:%M:%S%.3f`).
pub fn java_date_pattern(p: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        let piece = match (c, run) {
            ('y', 2) => "%y".to_string(),
            ('y', _) => "%Y".to_string(),
            ('M', 1 | 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', _) => "%d".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', n) => {
                // `.SSS` after seconds: chrono's fraction carries its own dot.
                if out.ends_with('.') {
                    out.pop();
                }
                format!("%.{}f", n.min(9))
            }
            ('a', _) => "%p".to_string(),
            ('E', _) => "%a".to_string(),
            ('%', _) => "%%".repeat(run),
            (c, n) => std::iter::repeat_n(c, n).collect(),
        };
        out.push_str(&piece);
        i += run;
    }
    out
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        match args.as_slice() {
            [ts, Expr::Literal(ScalarValue::Utf8(Some(p)), _)] => Ok(ExprSimplifyResult::Simplified(
                datafusion::functions::datetime::expr_fn::to_char(
                    ts.clone(),
                    datafusion::logical_expr::lit(java_date_pattern(p)),
                ),
            )),
            _ => Ok(ExprSimplifyResult::Original(args)),
        }
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        exec_err!("DATE_FORMAT takes a constant pattern")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_date_patterns_become_chrono_ones() {
        assert_eq!(java_date_pattern("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(java_date_pattern("yyyy-MM-dd HH:mm:ss.SSS"), "%Y-%m-%d %H:%M:%S%.3f");
        assert_eq!(java_date_pattern("yyMMdd"), "%y%m%d");
    }
}
