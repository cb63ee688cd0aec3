//! The pipeline form's `flat_map`: split a text field into one row per piece (word count).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;

/// Splits `field` by `separator` (whitespace when `None`) into column `output_field`.
#[derive(Debug, Clone)]
pub struct Split {
    /// Field to split.
    pub field: String,
    /// Separator; `None` is any whitespace.
    pub separator: Option<String>,
    /// Output column name.
    pub output_field: String,
}

impl Split {
    fn plan(&self, input: &SchemaRef) -> Result<(usize, SchemaRef)> {
        let idx = field_index(input, &self.field, "flat_map split")?;
        if input.field(idx).data_type() != &DataType::Utf8 {
            return Err(WeirError::plan(format!(
                "flat_map split: field '{}' is {}, expected a string",
                self.field,
                input.field(idx).data_type()
            )));
        }
        let mut fields: Vec<Field> = input
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, f)| *i != idx && f.name() != &self.output_field)
            .map(|(_, f)| f.as_ref().clone())
            .collect();
        fields.push(Field::new(&self.output_field, DataType::Utf8, false));
        Ok((idx, Arc::new(Schema::new(fields))))
    }
}

impl OperatorFactory for Split {
    fn kind(&self) -> &'static str {
        "flat_map"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        Ok(self.plan(input)?.1)
    }
    fn create(&self, input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (column, output) = self.plan(input)?;
        Ok(Box::new(SplitOp {
            column,
            output,
            separator: self.separator.clone(),
            output_field: self.output_field.clone(),
        }))
    }
}

struct SplitOp {
    column: usize,
    output: SchemaRef,
    separator: Option<String>,
    output_field: String,
}

impl Operator for SplitOp {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let text = batch.column(self.column).as_string::<i32>();
        let mut pieces = StringBuilder::new();
        let mut parent = Vec::new();
        for row in 0..batch.num_rows() {
            if text.is_null(row) {
                continue;
            }
            let s = text.value(row);
            let mut push = |p: &str| {
                if !p.is_empty() {
                    pieces.append_value(p);
                    parent.push(row as u32);
                }
            };
            match &self.separator {
                None => s.split_whitespace().for_each(&mut push),
                Some(sep) => s.split(sep.as_str()).for_each(&mut push),
            }
        }
        if parent.is_empty() {
            return Ok(());
        }
        let parent = UInt32Array::from(parent);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        let in_schema = batch.schema();
        for (i, f) in in_schema.fields().iter().enumerate() {
            if i != self.column && f.name() != &self.output_field {
                columns.push(take(batch.column(i), &parent, None)?);
            }
        }
        columns.push(Arc::new(pieces.finish()));
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::ctx;
    use arrow::array::StringArray;

    #[test]
    fn a_text_field_becomes_one_row_per_word() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("line", DataType::Utf8, false),
        ]));
        let input = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["to be  or", "not"])),
            ],
        )
        .unwrap();
        let split = Split {
            field: "line".into(),
            separator: None,
            output_field: "word".into(),
        };
        let out_schema = split.output_schema(&schema).unwrap();
        let names: Vec<&str> = out_schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "word"]);
        let mut op = split.create(&schema, &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        let words: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let w = b.column_by_name("word").unwrap().as_string::<i32>().clone();
                (0..w.len()).map(move |i| w.value(i).to_string()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(words, ["to", "be", "or", "not"]);
        let e = Split {
            field: "id".into(),
            separator: None,
            output_field: "w".into(),
        }
        .output_schema(&schema)
        .unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }
}
