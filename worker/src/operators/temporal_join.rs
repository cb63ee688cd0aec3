//! An event-time temporal join (SQL's `JOIN versioned FOR SYSTEM_TIME AS OF left.rowtime`): each
//! left row joins the version of the right row with its key that was current at the left row's
//! time — the latest right row (by the right's event time) at or before it. A versioned table is
//! a changelog (or an append-only table with a primary key, each row a new version of its key)
//! with a watermark.
//!
//! Left rows wait in keyed state until the watermark (the least over both inputs) passes their
//! time, so every version up to then has arrived; they are then joined and dropped. A key keeps
//! the versions later left rows may still need: the latest at or before the watermark and those
//! after it. The output appends (left columns, then right columns; an inner join drops a left
//! row without a version, a left join pads it with nulls) and its event time is the left row's.
//! A left row behind the watermark when it arrives joins at once with the versions still kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::join_schema::{add_side, key_counts, same_key_types, time_column};
use super::running_aggregate::OP_COLUMN;
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::contract::state::Snapshot;
use crate::contract::watermark::event_millis;
use crate::state::StateTable;
use crate::state::key_index::KeyIndex;

/// The join's description: each input's key columns (equal types, in order) and time column.
#[derive(Debug, Clone)]
pub struct TemporalJoin {
    /// Key columns of the left (probe) input.
    pub left_keys: Vec<String>,
    /// Key columns of the right (versioned) input: its primary key.
    pub right_keys: Vec<String>,
    /// The left row's time the version is taken as of.
    pub left_time: String,
    /// The right row's version time.
    pub right_time: String,
    /// Keep left rows without a version, padded with nulls (`LEFT JOIN`).
    pub left_outer: bool,
}

/// One input, planned: its key columns, its time column, its changelog column and the columns
/// it contributes to the output.
struct SidePlan {
    keys: Vec<usize>,
    time: usize,
    op: Option<usize>,
    columns: Vec<usize>,
}

impl TemporalJoin {
    fn plan(&self, inputs: &[SchemaRef]) -> Result<(SidePlan, SidePlan, SchemaRef)> {
        let [left, right] = inputs else {
            return Err(WeirError::plan(format!(
                "a temporal join reads 2 inputs, not {}",
                inputs.len()
            )));
        };
        key_counts("a temporal join", &self.left_keys, &self.right_keys)?;
        let side = |schema: &SchemaRef, keys: &[String], time: &str, what: &str| -> Result<SidePlan> {
            let time = time_column(schema, Some(time), "temporal join", what)?;
            Ok(SidePlan {
                keys: keys
                    .iter()
                    .map(|k| field_index(schema, k, &format!("{what} join key")))
                    .collect::<Result<_>>()?,
                time,
                op: schema.index_of(OP_COLUMN).ok(),
                columns: (0..schema.fields().len())
                    .filter(|i| schema.field(*i).name() != OP_COLUMN)
                    .collect(),
            })
        };
        let l = side(left, &self.left_keys, &self.left_time, "left")?;
        if l.op.is_some() {
            return Err(WeirError::plan(
                "temporal join: the left input is a changelog; a temporal join probes with appends only",
            ));
        }
        let r = side(right, &self.right_keys, &self.right_time, "right")?;
        same_key_types(left, &l.keys, right, &r.keys)?;
        let mut fields = Vec::new();
        add_side(&mut fields, 0, left, l.columns.iter().copied(), false)?;
        add_side(&mut fields, 1, right, r.columns.iter().copied(), self.left_outer)?;
        Ok((l, r, Arc::new(Schema::new(fields))))
    }
}

impl OperatorFactory for TemporalJoin {
    fn kind(&self) -> &'static str {
        "temporal_join"
    }
    fn distinct_inputs(&self) -> bool {
        true
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Err(WeirError::plan("a temporal join reads two distinct inputs"))
    }
    fn output_schema_of(&self, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        Ok(self.plan(inputs)?.2)
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Err(WeirError::plan("a temporal join reads two distinct inputs"))
    }
    fn create_of(&self, inputs: &[SchemaRef], ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (l, r, output) = self.plan(inputs)?;
        let converter = |schema: &SchemaRef, columns: &[usize]| -> Result<RowConverter> {
            Ok(RowConverter::new(
                columns
                    .iter()
                    .map(|c| SortField::new(schema.field(*c).data_type().clone()))
                    .collect(),
            )?)
        };
        let keys = converter(&inputs[0], &l.keys)?;
        let rows = [converter(&inputs[0], &l.columns)?, converter(&inputs[1], &r.columns)?];
        // The right row of nulls a left join pads with.
        let nulls: Vec<ArrayRef> = r
            .columns
            .iter()
            .map(|c| new_null_array(inputs[1].field(*c).data_type(), 1))
            .collect();
        let null_row = rows[1].convert_columns(&nulls)?.row(0).as_ref().to_vec();
        Ok(Box::new(TemporalJoinOp {
            sides: [l, r],
            keys,
            rows,
            null_row,
            left_outer: self.left_outer,
            output,
            state: StateTable::new(&ctx.state)?,
            due: KeyIndex::default(),
            watermark: i64::MIN,
            max_parallelism: ctx.max_parallelism,
        }))
    }
}

/// One key: its waiting left rows by time, its versions by time (`None`: deleted then), and
/// the time the key is listed at to be looked at again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    left: BTreeMap<i64, Vec<Vec<u8>>>,
    versions: BTreeMap<i64, Option<Vec<u8>>>,
    listed: Option<i64>,
}

impl KeyState {
    /// When the key next has work: its earliest waiting left row is due, or a version becomes
    /// obsolete (the watermark reaches the second version, so the first is no longer current).
    fn due(&self) -> Option<i64> {
        let left = self.left.keys().next().copied();
        let obsolete = self.versions.keys().nth(1).copied();
        match (left, obsolete) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The version current at `time`.
    fn version_at(&self, time: i64) -> Option<&[u8]> {
        self.versions.range(..=time).next_back().and_then(|(_, v)| v.as_deref())
    }
}

struct TemporalJoinOp {
    sides: [SidePlan; 2],
    keys: RowConverter,
    rows: [RowConverter; 2],
    null_row: Vec<u8>,
    left_outer: bool,
    output: SchemaRef,
    state: StateTable<KeyState>,
    /// Keys by the time they next have work (see [`KeyState::due`]); a listing whose time is
    /// not the key's `listed` is stale. Rebuilt from the state on restore.
    due: KeyIndex,
    watermark: i64,
    max_parallelism: u32,
}

/// Joined rows being gathered: each left row and its right row (both in row format).
#[derive(Default)]
struct Joined {
    left: Vec<Vec<u8>>,
    right: Vec<Vec<u8>>,
}

impl TemporalJoinOp {
    /// Joins `row` (a left row at `time`) with `state`'s version then, if it has one or the join
    /// pads.
    fn probe(&self, state: &KeyState, time: i64, row: Vec<u8>, joined: &mut Joined) {
        let version = state.version_at(time);
        if version.is_none() && !self.left_outer {
            return;
        }
        joined.left.push(row);
        joined.right.push(version.unwrap_or(&self.null_row).to_vec());
    }

    /// Lists the key at its next work if that is earlier than where it is listed.
    fn relist(due: &mut KeyIndex, state: &mut KeyState, group: u32, key: &[u8]) {
        if let Some(at) = state.due()
            && state.listed.is_none_or(|l| at < l)
        {
            state.listed = Some(at);
            due.list(at, group, key);
        }
    }

    /// Joins the key's left rows the watermark passed and drops the versions no later left row
    /// can need.
    fn settle(&mut self, group: u32, key: &[u8], joined: &mut Joined) -> UserResult<()> {
        let watermark = self.watermark;
        let Some(state) = self.state.get_mut(group, key)? else {
            return Ok(());
        };
        let mut state = std::mem::take(state);
        let later = state.left.split_off(&watermark.saturating_add(1));
        for (time, rows) in std::mem::replace(&mut state.left, later) {
            for row in rows {
                self.probe(&state, time, row, joined);
            }
        }
        // The version current at the watermark, and those after it, stay.
        if let Some((&current, _)) = state.versions.range(..=watermark).next_back() {
            state.versions = state.versions.split_off(&current);
        }
        let gone = state.left.is_empty() && state.versions.values().all(Option::is_none) && state.versions.len() <= 1;
        if gone {
            self.state.remove(group, key)?;
            return Ok(());
        }
        state.listed = None;
        Self::relist(&mut self.due, &mut state, group, key);
        self.state.insert(group, key, state)?;
        Ok(())
    }

    fn finish(&self, joined: Joined, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if joined.left.is_empty() {
            return Ok(());
        }
        let decode = |rows: &RowConverter, encoded: &[Vec<u8>]| -> UserResult<Vec<ArrayRef>> {
            let parser = rows.parser();
            Ok(rows.convert_rows(encoded.iter().map(|r| parser.parse(r)))?)
        };
        let mut columns = decode(&self.rows[0], &joined.left)?;
        columns.extend(decode(&self.rows[1], &joined.right)?);
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }
}

impl Operator for TemporalJoinOp {
    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Err("a temporal join needs to know each batch's input".into())
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let plan = &self.sides[input];
        let key_columns: Vec<ArrayRef> = plan.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let groups = crate::keys::key_groups(&key_columns, batch.num_rows(), self.max_parallelism)?;
        let times = event_millis(batch.column(plan.time))?;
        let row_columns: Vec<ArrayRef> = plan.columns.iter().map(|c| batch.column(*c).clone()).collect();
        let rows = self.rows[input].convert_columns(&row_columns)?;
        let ops = plan.op.map(|c| batch.column(c).as_string::<i32>().clone());
        let mut joined = Joined::default();
        for (i, &group) in groups.iter().enumerate() {
            // A null key never matches: a left join still shows the left row, padded.
            let null_key = key_columns.iter().any(|c| c.is_null(i));
            if times.is_null(i) || (null_key && (input == 1 || !self.left_outer)) {
                continue;
            }
            let time = times.value(i);
            let row = rows.row(i).as_ref().to_vec();
            if null_key {
                joined.left.push(row);
                joined.right.push(self.null_row.clone());
                continue;
            }
            let key = keys.row(i);
            let key: &[u8] = key.as_ref();
            if input == 0 && time <= self.watermark {
                // Behind the watermark: joined now, with the versions kept.
                let version = self.state.get(group, key)?.and_then(|s| s.version_at(time));
                if version.is_some() || self.left_outer {
                    joined.right.push(version.unwrap_or(&self.null_row).to_vec());
                    joined.left.push(row);
                }
                continue;
            }
            let state = self.state.get_or_insert_with(group, key, KeyState::default)?;
            if input == 0 {
                state.left.entry(time).or_default().push(row);
            } else {
                match ops.as_ref().map_or("+I", |o| o.value(i)) {
                    // An update's retraction: the `+U` after it is the new version.
                    "-U" => continue,
                    "-D" => {
                        state.versions.insert(time, None);
                    }
                    _ => {
                        state.versions.insert(time, Some(row));
                    }
                }
            }
            Self::relist(&mut self.due, state, group, key);
        }
        self.finish(joined, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        let mut joined = Joined::default();
        for (at, group, key) in self.due.take_due(self.watermark) {
            let current = self.state.get(group, &key)?.and_then(|s| s.listed);
            if current == Some(at) {
                self.settle(group, &key, &mut joined)?;
            }
        }
        self.finish(joined, out)
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        // The watermark goes along, so a restored join knows which left rows are behind it.
        let watermark = crate::checkpoint::encode(&self.watermark)?;
        self.state.snapshot(changes_only, Some(watermark))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        let mut found = Vec::new();
        self.state.restore_observing(&state, |group, key, value| {
            if let Some(at) = value.listed {
                found.push((at, group, Box::<[u8]>::from(key)));
            }
            Ok(())
        })?;
        for (at, group, key) in found {
            self.due.list(at, group, &key);
        }
        self.watermark = crate::checkpoint::least_watermark(&state)?;
        Ok(())
    }

    fn restores_in_parts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::{batch_of, ctx, ints};
    use arrow::array::StringArray;
    use arrow::datatypes::DataType;

    fn spec(left_outer: bool) -> TemporalJoin {
        TemporalJoin {
            left_keys: vec!["k".into()],
            right_keys: vec!["rk".into()],
            left_time: "t".into(),
            right_time: "rt".into(),
            left_outer,
        }
    }

    fn left(k: i64, t: i64) -> RecordBatch {
        batch_of(&[("k", vec![k]), ("t", vec![t])])
    }

    fn right(k: i64, rt: i64, v: i64, op: &str) -> RecordBatch {
        with_op(batch_of(&[("rk", vec![k]), ("rt", vec![rt]), ("v", vec![v])]), op)
    }

    fn with_op(b: RecordBatch, op: &str) -> RecordBatch {
        let mut fields: Vec<arrow::datatypes::Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(arrow::datatypes::Field::new(OP_COLUMN, DataType::Utf8, false));
        let mut columns = b.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![op])));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    /// (left time, version value or -1 for a padded row) of each output row.
    fn shown(out: &[RecordBatch]) -> Vec<(i64, i64)> {
        let v: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                let a = b
                    .column_by_name("v")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>();
                (0..a.len())
                    .map(|i| if a.is_null(i) { -1 } else { a.value(i) })
                    .collect::<Vec<_>>()
            })
            .collect();
        ints(out, "t").into_iter().zip(v).collect()
    }

    #[test]
    fn each_left_row_joins_the_version_current_at_its_time_once_the_watermark_passes_it() {
        let spec = spec(true);
        let mut op = spec
            .create_of(&[left(0, 0).schema(), right(0, 0, 0, "+I").schema()], &ctx())
            .unwrap();
        let mut out = Vec::new();
        op.process_input(1, right(1, 10, 100, "+I"), &mut out).unwrap();
        op.process_input(1, right(1, 20, 200, "+I"), &mut out).unwrap();
        for t in [5, 10, 15, 25] {
            op.process_input(0, left(1, t), &mut out).unwrap();
        }
        op.process_input(0, left(2, 12), &mut out).unwrap();
        assert!(out.is_empty(), "left rows wait for the watermark");
        op.on_watermark(15, &mut out).unwrap();
        let mut got = shown(&out);
        got.sort();
        // Before the first version: padded; key 2 has none.
        assert_eq!(got, [(5, -1), (10, 100), (12, -1), (15, 100)]);
        // A version after the watermark still counts for the waiting row at 25; a deletion
        // at 30 ends key 1's versions.
        out.clear();
        op.process_input(1, right(1, 22, 220, "-U"), &mut out).unwrap();
        op.process_input(1, right(1, 22, 220, "+U"), &mut out).unwrap();
        op.process_input(1, right(1, 30, 0, "-D"), &mut out).unwrap();
        op.process_input(0, left(1, 31), &mut out).unwrap();
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        let mut op = spec
            .create_of(&[left(0, 0).schema(), right(0, 0, 0, "+I").schema()], &ctx())
            .unwrap();
        op.restore(state).unwrap();
        op.on_watermark(40, &mut out).unwrap();
        assert_eq!(shown(&out), [(25, 220), (31, -1)]);
    }

    #[test]
    fn an_inner_join_drops_left_rows_without_a_version_and_late_rows_join_at_once() {
        let mut op = spec(false)
            .create_of(&[left(0, 0).schema(), right(0, 0, 0, "+I").schema()], &ctx())
            .unwrap();
        let mut out = Vec::new();
        op.process_input(1, right(1, 10, 100, "+I"), &mut out).unwrap();
        op.process_input(0, left(1, 5), &mut out).unwrap();
        op.on_watermark(50, &mut out).unwrap();
        assert!(out.is_empty());
        op.process_input(0, left(1, 40), &mut out).unwrap();
        assert_eq!(shown(&out), [(40, 100)]);
    }

    #[test]
    fn a_changelog_probe_side_and_mismatched_keys_are_refused_by_name() {
        let err = spec(false)
            .output_schema_of(&[with_op(left(0, 0), "+I").schema(), right(0, 0, 0, "+I").schema()])
            .unwrap_err();
        assert!(err.to_string().contains("left input is a changelog"), "{err}");
        let err = spec(false)
            .output_schema_of(&[left(0, 0).schema(), left(0, 0).schema()])
            .unwrap_err();
        assert!(err.to_string().contains("'rt'"), "{err}");
    }
}
