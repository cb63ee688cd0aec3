//! Reading Debezium JSON (`'format' = 'debezium-json'`): each message is a change
//! `{"before": row|null, "after": row|null, "op": "c"|"r"|"u"|"d"}` (under `"payload"` when
//! the producer includes schemas), and becomes changelog rows as in Flink: `c`/`r` an insert
//! of `after`, `u` an update-before of `before` and an update-after of `after`, `d` a delete of
//! `before`. A change that lacks the image its op needs (an update without `before`: the
//! source table needs `REPLICA IDENTITY FULL`) or has an unknown op is rejected with a reason;
//! the table's other changes go on.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StructArray};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::contract::error::{Result, WeirError};
use crate::operators::running_aggregate::OP_COLUMN;

/// The message layout for rows of `physical`: `before`, `after`, `op`, nested under `payload`
/// when `schema_include` (Debezium's `value.converter.schemas.enable`).
pub fn envelope(physical: &Schema, schema_include: bool) -> SchemaRef {
    let row = DataType::Struct(physical.fields().clone());
    let change = Fields::from(vec![
        Field::new("before", row.clone(), true),
        Field::new("after", row, true),
        Field::new("op", DataType::Utf8, true),
    ]);
    Arc::new(if schema_include {
        Schema::new(vec![Field::new("payload", DataType::Struct(change), true)])
    } else {
        Schema::new(change)
    })
}

/// The rows of `physical` (then [`OP_COLUMN`]) that the changes in `batch` (laid out as
/// [`envelope`]) stand for, and the changes rejected: each as JSON with the reason.
pub fn changelog(batch: &RecordBatch, physical: &SchemaRef) -> Result<(RecordBatch, Vec<(String, String)>)> {
    let change: StructArray = match batch.column_by_name("payload") {
        Some(p) => p.as_struct().clone(),
        None => batch.clone().into(),
    };
    let column = |name: &str| {
        change
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| WeirError::plan(format!("debezium-json: no '{name}' in the message layout")))
    };
    let (before, after, op) = (column("before")?, column("after")?, column("op")?);
    let op = op.as_string::<i32>();
    let present = |images: &ArrayRef, i: usize| change.is_valid(i) && images.is_valid(i);
    // (image, row) pairs to take: 0 = before, 1 = after.
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(batch.num_rows());
    let mut ops: Vec<&'static str> = Vec::with_capacity(batch.num_rows());
    let mut rejected = Vec::new();
    for i in 0..batch.num_rows() {
        let code = if change.is_valid(i) && op.is_valid(i) {
            op.value(i)
        } else {
            ""
        };
        let needs: &[(usize, &'static str)] = match code {
            "c" | "r" => &[(1, "+I")],
            "u" => &[(0, "-U"), (1, "+U")],
            "d" => &[(0, "-D")],
            _ => {
                let reason = match code {
                    "" => "debezium-json: the change has no 'op'".to_string(),
                    other => format!("debezium-json: unknown op '{other}' (known: c, r, u, d)"),
                };
                rejected.push((render(batch, i), reason));
                continue;
            }
        };
        if let Some((image, _)) = needs.iter().find(|(image, _)| !present([&before, &after][*image], i)) {
            let name = ["before", "after"][*image];
            let hint = if *image == 0 {
                " (the captured table needs REPLICA IDENTITY FULL for updates and deletes)"
            } else {
                ""
            };
            rejected.push((
                render(batch, i),
                format!("debezium-json: op '{code}' without '{name}'{hint}"),
            ));
            continue;
        }
        for (image, kind) in needs {
            picks.push((*image, i));
            ops.push(kind);
        }
    }
    let rows = interleave(&[before.as_ref(), after.as_ref()], &picks)?;
    let rows = rows.as_struct();
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    columns.push(Arc::new(StringArray::from(ops)));
    let mut fields: Vec<Field> = physical.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
    Ok((RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?, rejected))
}

/// Row `i` of `batch` as a JSON line, for the dead-letter output.
fn render(batch: &RecordBatch, i: usize) -> String {
    let mut out = Vec::new();
    let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
    let written = writer.write(&batch.slice(i, 1)).and_then(|_| writer.finish());
    match written {
        Ok(()) => String::from_utf8_lossy(&out).trim_end().to_string(),
        Err(e) => format!("(row {i}: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::json::ReaderBuilder;

    fn physical() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn read(lines: &str, schema_include: bool) -> RecordBatch {
        let mut r = ReaderBuilder::new(envelope(&physical(), schema_include))
            .build(lines.as_bytes())
            .unwrap();
        r.next().unwrap().unwrap()
    }

    fn shown(batch: &RecordBatch) -> Vec<String> {
        let ids = batch.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        let names = batch.column(1).as_string::<i32>();
        let ops = batch.column(2).as_string::<i32>();
        (0..batch.num_rows())
            .map(|i| format!("{} {} {}", ops.value(i), ids.value(i), names.value(i)))
            .collect()
    }

    #[test]
    fn each_op_becomes_the_changelog_rows_flink_reads() {
        let batch = read(
            r#"{"before":null,"after":{"id":1,"name":"a"},"op":"c"}
{"before":null,"after":{"id":2,"name":"b"},"op":"r"}
{"before":{"id":1,"name":"a"},"after":{"id":1,"name":"A"},"op":"u"}
{"before":{"id":2,"name":"b"},"after":null,"op":"d"}
"#,
            false,
        );
        let (rows, rejected) = changelog(&batch, &physical()).unwrap();
        assert!(rejected.is_empty());
        assert_eq!(shown(&rows), ["+I 1 a", "+I 2 b", "-U 1 a", "+U 1 A", "-D 2 b"]);
        assert_eq!(rows.schema().field(2).name(), OP_COLUMN);
    }

    #[test]
    fn changes_under_payload_read_the_same() {
        let batch = read(
            r#"{"schema":{"type":"struct"},"payload":{"before":null,"after":{"id":7,"name":"x"},"op":"c"}}"#,
            true,
        );
        let (rows, _) = changelog(&batch, &physical()).unwrap();
        assert_eq!(shown(&rows), ["+I 7 x"]);
    }

    #[test]
    fn a_change_without_its_image_or_op_is_rejected_and_the_rest_go_on() {
        let batch = read(
            r#"{"before":null,"after":{"id":1,"name":"a"},"op":"u"}
{"before":null,"after":{"id":2,"name":"b"},"op":"x"}
{"before":null,"after":{"id":3,"name":"c"}}
{"before":null,"after":{"id":4,"name":"d"},"op":"c"}
"#,
            false,
        );
        let (rows, rejected) = changelog(&batch, &physical()).unwrap();
        assert_eq!(shown(&rows), ["+I 4 d"]);
        let reasons: Vec<&str> = rejected.iter().map(|(_, r)| r.as_str()).collect();
        assert!(reasons[0].contains("op 'u' without 'before'") && reasons[0].contains("REPLICA IDENTITY FULL"));
        assert!(reasons[1].contains("unknown op 'x'"));
        assert!(reasons[2].contains("no 'op'"));
        assert!(rejected[0].0.contains("\"id\":1"), "{}", rejected[0].0);
    }
}
