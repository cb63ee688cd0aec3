//! Options of `connector: datagen`.

use serde::Deserialize;

/// How a field's values are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// `start + row` (bigint).
    Sequence,
    /// Uniform random: integers in `[min, max]`, floats in `[min, max)`, strings of `length`
    /// letters, booleans.
    Random,
    /// A timestamp: `start + row / rows_per_ms` ms when `rows_per_ms` is set (event time that
    /// advances with the data), else the wall clock.
    Timestamp,
}

/// One generated field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagenField {
    /// Column name.
    pub name: String,
    /// How values are made.
    pub kind: FieldKind,
    /// Type for `random`: bigint (default), int, double, string, boolean.
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    /// `sequence`: first value (default 0); `timestamp`: first ms (default: now).
    #[serde(default)]
    pub start: Option<i64>,
    /// `sequence`: last value; bounds the rows when `rows` is not set.
    #[serde(default)]
    pub end: Option<i64>,
    /// `random` numbers: lower bound (default 0).
    #[serde(default)]
    pub min: Option<f64>,
    /// `random` numbers: upper bound (default 1000).
    #[serde(default)]
    pub max: Option<f64>,
    /// `random` strings: length (default 10).
    #[serde(default)]
    pub length: Option<usize>,
    /// `timestamp`: rows per millisecond of event time.
    #[serde(default)]
    pub rows_per_ms: Option<u64>,
}

impl DatagenField {
    /// A field of `kind` with every option at its default.
    pub fn new(name: &str, kind: FieldKind) -> Self {
        DatagenField {
            name: name.into(),
            kind,
            data_type: None,
            start: None,
            end: None,
            min: None,
            max: None,
            length: None,
            rows_per_ms: None,
        }
    }

    /// A random integer field in `[min, max]`.
    pub fn random_int(name: &str, min: i64, max: i64) -> Self {
        DatagenField {
            min: Some(min as f64),
            max: Some(max as f64),
            ..Self::new(name, FieldKind::Random)
        }
    }
}

/// Options of the datagen source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatagenConfig {
    /// Number of rows; none = unbounded (or bounded by a sequence's `end`).
    #[serde(default)]
    pub rows: Option<u64>,
    /// Wall-clock limit over all subtasks; none = as fast as possible.
    #[serde(default)]
    pub rows_per_second: Option<u64>,
    /// Seed (default 0).
    #[serde(default)]
    pub seed: i64,
    /// The fields. Default: the benchmark's bid shape — `auction` in [0, 9999], `bidder` in
    /// [0, 999999], `price` in [1, 100000], `ts` wall-clock.
    #[serde(default = "default_fields")]
    pub fields: Vec<DatagenField>,
}

/// The default fields (the Flink peer's datagen bid table).
pub fn default_fields() -> Vec<DatagenField> {
    vec![
        DatagenField::random_int("auction", 0, 9999),
        DatagenField::random_int("bidder", 0, 999_999),
        DatagenField::random_int("price", 1, 100_000),
        DatagenField::new("ts", FieldKind::Timestamp),
    ]
}

impl Default for DatagenConfig {
    fn default() -> Self {
        DatagenConfig {
            rows: None,
            rows_per_second: None,
            seed: 0,
            fields: default_fields(),
        }
    }
}
