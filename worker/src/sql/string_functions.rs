//! String functions of Flink SQL that DataFusion lacks or spells differently:
//! `REGEXP_EXTRACT`, `SPLIT_INDEX` and `COUNT_CHAR` (the Nexmark benchmark's user function,
//! built in so q14 runs without a Java class).

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Builder, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// Every scalar function of this module, to register on the planner's session.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(RegexpExtract::default()),
        ScalarUDF::from(SplitIndex::default()),
        ScalarUDF::from(CountChar::default()),
    ]
}

/// `REGEXP_EXTRACT(text, regex[, group])`: the group's match (default the first), or null.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl Default for RegexpExtract {
    fn default() -> Self {
        RegexpExtract {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let Some(ColumnarValue::Scalar(pattern)) = args.args.get(1) else {
            return exec_err!("REGEXP_EXTRACT takes a constant pattern");
        };
        let pattern = pattern.to_string();
        let group = match args.args.get(2) {
            None => 1,
            Some(ColumnarValue::Scalar(v)) => match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(g)) if g >= 0 => g as usize,
                other => return exec_err!("REGEXP_EXTRACT: group {other}"),
            },
            Some(_) => return exec_err!("REGEXP_EXTRACT takes a constant group"),
        };
        let re = regex::Regex::new(&pattern)
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("REGEXP_EXTRACT: {e}")))?;
        let text = cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut b = StringBuilder::with_capacity(n, n * 8);
        for i in 0..n {
            let m = (!text.is_null(i))
                .then(|| re.captures(text.value(i)))
                .flatten()
                .and_then(|c| c.get(group));
            match m {
                Some(m) => b.append_value(m.as_str()),
                None => b.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `SPLIT_INDEX(text, separator, index)`: the index-th (0-based) piece of the text split at
/// every occurrence of the whole separator, empty pieces kept (Flink's
/// `splitByWholeSeparatorPreserveAllTokens`); null when the index is negative or past the
/// last piece, or the text is empty.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SplitIndex {
    signature: Signature,
}

impl Default for SplitIndex {
    fn default() -> Self {
        SplitIndex {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let text = cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
        let sep = cast(&args.args[1].to_array(n)?, &DataType::Utf8)?;
        let idx = cast(&args.args[2].to_array(n)?, &DataType::Int64)?;
        let (text, sep, idx) = (
            text.as_string::<i32>(),
            sep.as_string::<i32>(),
            idx.as_primitive::<Int64Type>(),
        );
        let mut b = StringBuilder::with_capacity(n, n * 8);
        for i in 0..n {
            let piece = (text.is_valid(i) && sep.is_valid(i) && idx.is_valid(i))
                .then(|| split_piece(text.value(i), sep.value(i), idx.value(i)))
                .flatten();
            b.append_option(piece);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// The `index`-th piece of `text` split at `sep` (at runs of whitespace when `sep` is empty).
fn split_piece<'a>(text: &'a str, sep: &str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if text.is_empty() {
        return None;
    }
    if sep.is_empty() {
        return text.split_whitespace().nth(index);
    }
    text.split(sep).nth(index)
}

/// `COUNT_CHAR(text, c)`: how many times the first character of `c` occurs in the text (0 for
/// a null text), as Nexmark's `CountChar` function of q14.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CountChar {
    signature: Signature,
}

impl Default for CountChar {
    fn default() -> Self {
        CountChar {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CountChar {
    fn name(&self) -> &str {
        "count_char"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let Some(ColumnarValue::Scalar(c)) = args.args.get(1) else {
            return exec_err!("COUNT_CHAR takes a constant character");
        };
        let Some(c) = (match c.cast_to(&DataType::Utf8)? {
            ScalarValue::Utf8(Some(c)) => c.chars().next(),
            _ => None,
        }) else {
            return exec_err!("COUNT_CHAR: the character to count is empty or null");
        };
        let text = cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut b = Int64Builder::with_capacity(n);
        for i in 0..n {
            let count = if text.is_valid(i) {
                text.value(i).chars().filter(|x| *x == c).count() as i64
            } else {
                0
            };
            b.append_value(count);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pieces_follow_flink() {
        let url = "https://www.nexmark.com/abc/def/item.htm?query=1";
        assert_eq!(split_piece(url, "/", 3), Some("abc"));
        assert_eq!(split_piece(url, "/", 1), Some(""));
        assert_eq!(split_piece(url, "/", 6), None);
        assert_eq!(split_piece(url, "/", -1), None);
        assert_eq!(split_piece("a::b", "::", 1), Some("b"));
        assert_eq!(split_piece("", "/", 0), None);
    }
}
