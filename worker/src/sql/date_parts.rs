//! Flink's date-part functions (`YEAR(ts)`, `HOUR(ts)` …), each planned as DataFusion's
//! `date_part` returning `BIGINT` as Flink does.

use arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast, lit,
};

/// Flink's name, DataFusion's part and what to add (`DAYOFWEEK` counts Sunday as 1, DataFusion's
/// `dow` as 0).
const PARTS: &[(&str, &str, i64)] = &[
    ("year", "year", 0),
    ("quarter", "quarter", 0),
    ("month", "month", 0),
    ("week", "week", 0),
    ("dayofyear", "doy", 0),
    ("dayofmonth", "day", 0),
    ("dayofweek", "dow", 1),
    ("hour", "hour", 0),
    ("minute", "minute", 0),
    ("second", "second", 0),
];

/// Every date-part function, to register on the planner's session.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    PARTS
        .iter()
        .map(|(name, part, offset)| {
            ScalarUDF::from(DatePart {
                name,
                part,
                offset: *offset,
                signature: Signature::any(1, Volatility::Immutable),
            })
        })
        .collect()
}

/// One date-part function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DatePart {
    name: &'static str,
    part: &'static str,
    offset: i64,
    signature: Signature,
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let [ts]: [Expr; 1] = args.try_into().map_err(|_| {
            datafusion::error::DataFusionError::Plan(format!("{} takes one argument", self.name.to_uppercase()))
        })?;
        let part = datafusion::functions::datetime::expr_fn::date_part(lit(self.part), ts);
        // `second` is fractional in DataFusion; Flink's SECOND is the whole seconds.
        let part = if self.part == "second" {
            datafusion::functions::math::expr_fn::floor(part)
        } else {
            part
        };
        let mut e = cast(part, DataType::Int64);
        if self.offset != 0 {
            e = e + lit(self.offset);
        }
        Ok(ExprSimplifyResult::Simplified(e))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        exec_err!("{} is planned as date_part", self.name.to_uppercase())
    }
}
