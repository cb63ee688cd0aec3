//! An interval join (Flink's `intervalJoin`, and SQL's time-bounded join
//! `r.ts BETWEEN l.ts + lower AND l.ts + upper`): a left row `l` and a right row `r` with equal
//! keys join when `l.time + lower <= r.time <= l.time + upper`. Each key keeps the rows of both
//! sides in keyed state (per key group, so checkpoints, restore and rescale work as for every
//! keyed operator) only until the watermark passes the last time a row of the other side could
//! still join them; the output appends (left columns, then right columns) and never retracts.
//! Rows behind the watermark when they arrive are late, as in Flink: counted and dropped.
//!
//! A semi join (SQL's `EXISTS` / `IN` whose condition is the bounds) shows each left row once,
//! when it first has a match: a left row that finds one is not kept, and a right row shows and
//! drops the waiting left rows it matches.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use super::join_schema::{add_side, key_counts, same_key_types, time_column};
use super::row_codec::{EncodedRows, RowCodec};
use super::row_log::{RowLog, decode_rows, encode_rows};
use super::running_aggregate::OP_COLUMN;
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::contract::state::{KeyedRecords, Snapshot, read_records};
use crate::contract::watermark::event_millis;
use crate::window::assigner::{WindowAssigner, WindowKind};

/// The join's description: each input's key columns (equal types, in order), each input's time
/// column, and the bounds of the right row's time relative to the left row's.
#[derive(Debug, Clone)]
pub struct IntervalJoin {
    /// Key columns of the left input.
    pub left_keys: Vec<String>,
    /// Key columns of the right input.
    pub right_keys: Vec<String>,
    /// The left input's time column (`None`: the column its watermark strategy named).
    pub left_time: Option<String>,
    /// The right input's time column (`None`: the column its watermark strategy named).
    pub right_time: Option<String>,
    /// Lower bound of `right.time - left.time`, ms (inclusive; may be negative).
    pub lower: i64,
    /// Upper bound of `right.time - left.time`, ms (inclusive).
    pub upper: i64,
    /// A semi join: each left row once, when it first has a match, without the right's
    /// columns (SQL's `EXISTS` / `IN` over windowed results, Nexmark q8).
    pub semi: bool,
    /// A window join (Flink's `join(..).window(..)`, tumbling or sliding windows): rows join
    /// only within the same window (its start is part of the key; give bounds of
    /// `±(size − 1)`); a pair in several sliding windows shows once per window, as in Flink.
    pub window: Option<WindowAssigner>,
    /// A semi join's further condition over a left row and a right one (both inputs' columns
    /// by name): a left row shows when it first meets a right row within the bounds for which
    /// it holds (q5's `num >= maxn`). Evaluated once per batch over every candidate pair.
    pub condition: Option<datafusion::logical_expr::Expr>,
    /// An outer join: keep the left (`[true, _]`) or right (`[_, true]`) rows that never met a
    /// row of the other side, shown padded with nulls once the watermark passes their last
    /// chance (Flink's outer interval join: the output still only appends).
    pub outer: [bool; 2],
}

/// One input, planned: key columns and time column (every column goes to the output).
struct SidePlan {
    keys: Vec<usize>,
    time: usize,
}

impl IntervalJoin {
    fn plan(&self, inputs: &[SchemaRef]) -> Result<(SidePlan, SidePlan, SchemaRef)> {
        let [left, right] = inputs else {
            return Err(WeirError::plan(format!(
                "an interval join reads 2 inputs, not {}",
                inputs.len()
            )));
        };
        key_counts("an interval join", &self.left_keys, &self.right_keys)?;
        if let Some(w) = &self.window {
            if w.kind != WindowKind::Sliding || w.processing_time {
                return Err(WeirError::plan(
                    "window join: only tumbling and sliding event-time windows are supported yet \
                     (TumblingEventTimeWindows, SlidingEventTimeWindows)",
                ));
            }
            w.validate()?;
        }
        if self.lower > self.upper {
            return Err(WeirError::plan(format!(
                "interval join: the lower bound ({} ms) is above the upper bound ({} ms)",
                self.lower, self.upper
            )));
        }
        let side = |schema: &SchemaRef, keys: &[String], time: &Option<String>, what: &str| -> Result<SidePlan> {
            if schema.index_of(OP_COLUMN).is_ok() {
                return Err(WeirError::plan(format!(
                    "interval join: the {what} input is a changelog; an interval join reads appends only"
                )));
            }
            let time = time_column(schema, time.as_deref(), "interval join", what)?;
            Ok(SidePlan {
                keys: keys
                    .iter()
                    .map(|k| field_index(schema, k, &format!("{what} join key")))
                    .collect::<Result<_>>()?,
                time,
            })
        };
        let l = side(left, &self.left_keys, &self.left_time, "left")?;
        let r = side(right, &self.right_keys, &self.right_time, "right")?;
        same_key_types(left, &l.keys, right, &r.keys)?;
        if self.outer.contains(&true) && (self.semi || self.condition.is_some()) {
            return Err(WeirError::plan(
                "interval join: an outer join keeps whole rows; it has no semi form or condition inside",
            ));
        }
        let mut fields = Vec::new();
        add_side(&mut fields, 0, left, 0..left.fields().len(), self.outer[1])?;
        let shown = if self.semi { 0 } else { right.fields().len() };
        add_side(&mut fields, 1, right, 0..shown, self.outer[0])?;
        Ok((l, r, Arc::new(Schema::new(fields))))
    }
}

impl OperatorFactory for IntervalJoin {
    fn kind(&self) -> &'static str {
        "interval_join"
    }
    fn distinct_inputs(&self) -> bool {
        true
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Err(WeirError::plan("an interval join reads two distinct inputs"))
    }
    fn output_schema_of(&self, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        Ok(self.plan(inputs)?.2)
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Err(WeirError::plan("an interval join reads two distinct inputs"))
    }
    fn create_of(&self, inputs: &[SchemaRef], ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.build(inputs, ctx)?))
    }
}

impl IntervalJoin {
    fn build(&self, inputs: &[SchemaRef], ctx: &TaskContext) -> Result<IntervalJoinOp> {
        let (l, r, output) = self.plan(inputs)?;
        let keys = RowConverter::new(
            l.keys
                .iter()
                .map(|k| SortField::new(inputs[0].field(*k).data_type().clone()))
                .collect(),
        )?;
        let condition = match &self.condition {
            None => None,
            Some(_) if !self.semi => {
                return Err(WeirError::plan(
                    "interval join: a condition inside the join is for semi joins (filter an inner join's output)",
                ));
            }
            Some(c) => {
                let fields: Vec<Field> = inputs
                    .iter()
                    .flat_map(|s| s.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)))
                    .collect();
                let pairs = Arc::new(Schema::new(fields));
                let (expr, _) = super::expr::plan_logical(c, &pairs)?;
                Some((expr, pairs))
            }
        };
        let rows = [RowCodec::new(&inputs[0])?, RowCodec::new(&inputs[1])?];
        // The row of nulls each side is padded with.
        let null_rows = [rows[0].null_row()?, rows[1].null_row()?];
        Ok(IntervalJoinOp {
            condition,
            outer: self.outer,
            null_rows,
            padded: Default::default(),
            rows,
            sides: [l, r],
            keys,
            lower: self.lower,
            upper: self.upper,
            semi: self.semi,
            window: self.window.clone(),
            output,
            logs: Default::default(),
            watermark: i64::MIN,
            ctx: ctx.clone(),
        })
    }
}

/// A candidate pair of a semi join with a condition: the batch's row and the other side's row
/// (its position in its log, its bytes).
type Candidate = (usize, u64, Vec<u8>);

/// A batch row of a semi join with a condition: its place, key group, key, time and bytes.
type Held = (usize, u32, Vec<u8>, i64, Vec<u8>);

struct IntervalJoinOp {
    /// A semi join's condition, and the schema of the pairs it reads (left then right columns).
    condition: Option<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, SchemaRef)>,
    /// Which sides an outer join keeps unmatched, each side's row of nulls, and the unmatched
    /// rows of each side the watermark has passed, to show padded.
    outer: [bool; 2],
    null_rows: [Vec<u8>; 2],
    padded: [Vec<Vec<u8>>; 2],
    sides: [SidePlan; 2],
    rows: [RowCodec; 2],
    keys: RowConverter,
    lower: i64,
    upper: i64,
    semi: bool,
    window: Option<WindowAssigner>,
    output: SchemaRef,
    /// Each side's rows; the watermark retires a row of `side` at `time` once it passes
    /// [`done_before`] says so.
    logs: [RowLog; 2],
    watermark: i64,
    ctx: TaskContext,
}

impl IntervalJoinOp {
    /// The output rows of `lefts` paired with `rights` (in row format; a semi join shows the
    /// left rows alone).
    fn pairs_batch(&self, lefts: &[Vec<u8>], rights: &[Vec<u8>]) -> UserResult<RecordBatch> {
        let mut columns = self.rows[0].decode(lefts.iter().map(Vec::as_slice))?;
        if !self.semi {
            columns.extend(self.rows[1].decode(rights.iter().map(Vec::as_slice))?);
        }
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }

    /// The other side's times a row of `side` at `time` joins.
    fn partners(&self, side: usize, time: i64) -> std::ops::RangeInclusive<i64> {
        if side == 0 {
            time.saturating_add(self.lower)..=time.saturating_add(self.upper)
        } else {
            time.saturating_sub(self.upper)..=time.saturating_sub(self.lower)
        }
    }
}

/// Whether a row of `side` at a time is past its last chance at `watermark`: a left row once
/// `time + upper` is behind it, a right row once `time - lower` is (no row at or after the
/// watermark can meet it).
fn done_before(side: usize, lower: i64, upper: i64, watermark: i64) -> impl Fn(i64) -> bool + Copy {
    move |t: i64| {
        let last = if side == 0 {
            t.saturating_add(upper)
        } else {
            t.saturating_sub(lower)
        };
        last < watermark
    }
}

impl IntervalJoinOp {
    /// A semi join with a condition, for one batch of `input`: the left rows to show. A left
    /// row of the batch shows if a candidate right row meets the condition (else it waits); a
    /// right row shows (and takes out of the state) the waiting left rows it meets, then waits
    /// itself.
    fn semi_with_condition(
        &mut self,
        input: usize,
        rows: &EncodedRows,
        pairs: Vec<Candidate>,
        held: Vec<Held>,
    ) -> UserResult<Vec<Vec<u8>>> {
        let (condition, schema) = self.condition.as_ref().expect("called with a condition");
        let mut holds = vec![false; pairs.len()];
        if !pairs.is_empty() {
            let (mut ls, mut rs): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
            for (i, _, other) in &pairs {
                let this: &[u8] = rows.row(*i);
                let (l, r) = if input == 0 {
                    (this, other.as_slice())
                } else {
                    (other.as_slice(), this)
                };
                ls.push(l);
                rs.push(r);
            }
            let mut columns = self.rows[0].decode(ls)?;
            columns.extend(self.rows[1].decode(rs)?);
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            let mask = condition.evaluate(&batch)?.into_array(batch.num_rows())?;
            let mask = mask.as_boolean();
            for (k, h) in holds.iter_mut().enumerate() {
                *h = mask.is_valid(k) && mask.value(k);
            }
        }
        let mut shown = Vec::new();
        if input == 0 {
            let met: std::collections::HashSet<usize> = pairs
                .iter()
                .zip(&holds)
                .filter(|(_, h)| **h)
                .map(|(p, _)| p.0)
                .collect();
            for (i, group, key, time, row) in held {
                if met.contains(&i) {
                    shown.push(row);
                } else {
                    self.logs[input].push(group, &key, time, &row, false);
                }
            }
            return Ok(shown);
        }
        // Left rows met, each once (several right rows may meet it), taken out of the state.
        for ((_, pos, _), h) in pairs.into_iter().zip(holds) {
            if h && let Some(row) = self.logs[0].take(pos) {
                shown.push(row);
            }
        }
        for (_, group, key, time, row) in held {
            self.logs[input].push(group, &key, time, &row, false);
        }
        Ok(shown)
    }
}

impl Operator for IntervalJoinOp {
    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Err("an interval join needs to know each batch's input".into())
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let plan = &self.sides[input];
        let key_columns: Vec<ArrayRef> = plan.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let groups = crate::keys::key_groups(&key_columns, batch.num_rows(), self.ctx.max_parallelism)?;
        let times = event_millis(batch.column(plan.time))?;
        let rows = self.rows[input].encode(batch.columns())?;
        let other = 1 - input;
        let (mut lefts, mut rights): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
        // With a condition: candidate pairs (row, key group, key, the other row's time, its
        // place there, its bytes) and the batch's rows (row, key group, key, time, bytes).
        let mut pairs: Vec<Candidate> = Vec::new();
        let mut held: Vec<Held> = Vec::new();
        let mut late = 0;
        for (i, &group) in groups.iter().enumerate() {
            // A null key never matches (SQL's `=`); a row without a time cannot be placed.
            if times.is_null(i) || times.value(i) < self.watermark {
                late += u64::from(!times.is_null(i));
                continue;
            }
            if key_columns.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let time = times.value(i);
            let row = rows.row(i);
            let key = keys.row(i);
            // A window join: the row once per window holding it, the window's start after the
            // key, so only rows of the same window meet.
            let windowed: Vec<Vec<u8>> = match &self.window {
                Some(w) => w
                    .starts(time)
                    .map(|start| [key.as_ref(), &start.to_be_bytes()[..]].concat())
                    .collect(),
                None => Vec::new(),
            };
            let (mut each_window, mut just_the_key);
            let each: &mut dyn Iterator<Item = &[u8]> = if self.window.is_some() {
                each_window = windowed.iter().map(Vec::as_slice);
                &mut each_window
            } else {
                just_the_key = std::iter::once(key.as_ref());
                &mut just_the_key
            };
            for key in each {
                let partners = self.partners(input, time);
                let [left_log, right_log] = &mut self.logs;
                let (mine, others) = if input == 0 {
                    (left_log, right_log)
                } else {
                    (right_log, left_log)
                };
                let mut candidates = others.rows_in(key, partners);
                if self.condition.is_some() {
                    // Every candidate pair now; which hold is decided for the whole batch below.
                    pairs.extend(candidates.map(|e| (i, e.pos, e.row.to_vec())));
                    held.push((i, group, key.to_vec(), time, row.to_vec()));
                    continue;
                }
                if self.semi {
                    // A left row shows once, when it first has a match, and is then done with; a
                    // right row shows the waiting left rows it matches.
                    if input == 0 {
                        if candidates.next().is_some() {
                            lefts.push(row.to_vec());
                            continue;
                        }
                    } else {
                        let met: Vec<u64> = candidates.map(|e| e.pos).collect();
                        lefts.extend(met.into_iter().filter_map(|pos| others.take(pos)));
                    }
                    mine.push(group, key, time, row, false);
                    continue;
                }
                let mut met = Vec::new();
                for e in candidates {
                    let (l, r) = if input == 0 { (row, e.row) } else { (e.row, row) };
                    lefts.push(l.to_vec());
                    rights.push(r.to_vec());
                    met.push(e.pos);
                }
                if self.outer[other] {
                    for pos in &met {
                        others.mark_matched(*pos);
                    }
                }
                mine.push(group, key, time, row, !met.is_empty());
            }
        }
        if late > 0 {
            self.ctx.add_late(late);
        }
        if self.condition.is_some() {
            lefts = self.semi_with_condition(input, &rows, pairs, held)?;
        }
        if lefts.is_empty() {
            return Ok(());
        }
        out.push(self.pairs_batch(&lefts, &rights)?);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.watermark = self.watermark.max(watermark);
        // A row is done once no row at or after the watermark can meet it.
        for side in 0..2 {
            let done = done_before(side, self.lower, self.upper, self.watermark);
            let unmatched = self.outer[side].then_some(&mut self.padded[side]);
            self.logs[side].retire(done, unmatched);
        }
        // An outer join's rows that never met one of the other side, padded.
        for side in 0..2 {
            let rows = std::mem::take(&mut self.padded[side]);
            if rows.is_empty() {
                continue;
            }
            let nulls = vec![self.null_rows[1 - side].clone(); rows.len()];
            let (lefts, rights) = if side == 0 { (rows, nulls) } else { (nulls, rows) };
            out.push(self.pairs_batch(&lefts, &rights)?);
        }
        Ok(())
    }

    /// A full snapshot, encoded off the task from a clone of the logs (their chunks are shared,
    /// so the clone costs a copy of the key indexes). Each key's record holds both sides' rows
    /// still able to join, oldest first.
    fn snapshot(&mut self, _checkpoint_id: u64, _changes_only: bool) -> UserResult<Snapshot> {
        // The watermark goes along, so a restored join calls the same rows late.
        let operator = crate::checkpoint::encode(&self.watermark)?;
        let logs = self.logs.clone();
        let (watermark, lower, upper) = (self.watermark, self.lower, self.upper);
        Ok(Snapshot::deferred(move || {
            let done = [0, 1].map(|side| done_before(side, lower, upper, watermark));
            let mut records = KeyedRecords::default();
            let [left, right] = &logs;
            for (first, log) in logs.iter().enumerate() {
                for (group, key) in log.keys() {
                    // A key the left holds is written with the left's keys.
                    if first == 1 && left.holds(key) {
                        continue;
                    }
                    let rows = [0, 1].map(|side| {
                        let log = if side == 0 { left } else { right };
                        log.rows_of(key).filter(|e| !done[side](e.time)).collect::<Vec<_>>()
                    });
                    if rows.iter().all(Vec::is_empty) {
                        continue;
                    }
                    records.put(
                        group,
                        key,
                        Some(|buf: &mut Vec<u8>| {
                            for side in rows {
                                encode_rows(side.into_iter(), buf);
                            }
                            Ok(())
                        }),
                    )?;
                }
            }
            records.into_state(Some(operator))
        }))
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        if !state.deltas.is_empty() {
            return Err(
                "an interval join's checkpoints are full; this one holds changes (written by another version)".into(),
            );
        }
        let logs = &mut self.logs;
        read_records(&state, |group, key, entry| {
            let Some(entry) = entry else {
                return Ok(());
            };
            for log in logs.iter_mut() {
                for (time, matched, row) in decode_rows(entry)? {
                    log.push(group, key, time, row, matched);
                }
            }
            Ok(())
        })?;
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

    /// The inputs' schemas: `(k, lt)` on the left, `(rk, rt)` on the right.
    fn inputs() -> [SchemaRef; 2] {
        [
            batch_of(&[("k", vec![]), ("lt", vec![])]).schema(),
            batch_of(&[("rk", vec![]), ("rt", vec![])]).schema(),
        ]
    }

    /// An inner join of those inputs on `k = rk`, `lt + lower <= rt <= lt + upper`.
    fn spec(lower: i64, upper: i64) -> IntervalJoin {
        IntervalJoin {
            left_keys: vec!["k".into()],
            right_keys: vec!["rk".into()],
            left_time: Some("lt".into()),
            right_time: Some("rt".into()),
            lower,
            upper,
            semi: false,
            window: None,
            outer: [false, false],
            condition: None,
        }
    }

    fn join(lower: i64, upper: i64) -> (Box<dyn Operator>, TaskContext) {
        let ctx = ctx();
        let op = spec(lower, upper).create_of(&inputs(), &ctx).unwrap();
        (op, ctx)
    }

    fn pairs(out: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
        let (k, lt, rt) = (ints(out, "k"), ints(out, "lt"), ints(out, "rt"));
        let mut p: Vec<_> = k.into_iter().zip(lt).zip(rt).map(|((k, l), r)| (k, l, r)).collect();
        p.sort();
        p
    }

    #[test]
    fn rows_join_within_the_bounds_whichever_side_comes_first() {
        let (mut op, _) = join(-2, 1);
        let mut out = Vec::new();
        op.process_input(0, batch_of(&[("k", vec![1, 1, 2]), ("lt", vec![10, 20, 10])]), &mut out)
            .unwrap();
        // Right times 8..=11 meet left 10; 18..=21 meet left 20.
        op.process_input(
            1,
            batch_of(&[("rk", vec![1, 1, 1, 1, 2, 3]), ("rt", vec![7, 8, 11, 12, 9, 10])]),
            &mut out,
        )
        .unwrap();
        op.process_input(0, batch_of(&[("k", vec![1]), ("lt", vec![13])]), &mut out)
            .unwrap();
        assert_eq!(
            pairs(&out),
            vec![(1, 10, 8), (1, 10, 11), (1, 13, 11), (1, 13, 12), (2, 10, 9)]
        );
    }

    #[test]
    fn the_watermark_clears_rows_no_future_row_can_join_and_late_rows_are_dropped() {
        let (mut op, ctx) = join(0, 5);
        let mut out = Vec::new();
        op.process_input(0, batch_of(&[("k", vec![1, 1]), ("lt", vec![10, 30])]), &mut out)
            .unwrap();
        op.process_input(1, batch_of(&[("rk", vec![1]), ("rt", vec![40])]), &mut out)
            .unwrap();
        // Left 10 can meet right rows up to 15: gone once the watermark passes 15. Right 40
        // can meet left rows from 35: it stays.
        op.on_watermark(16, &mut out).unwrap();
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        assert_eq!(crate::contract::state::record_count(&state).unwrap(), 1, "one key");
        // A right row at 17 is not late and meets nothing (left 10 is gone; left 30 too far);
        // one at 12 is late.
        op.process_input(1, batch_of(&[("rk", vec![1, 1]), ("rt", vec![17, 12])]), &mut out)
            .unwrap();
        assert!(out.is_empty(), "{:?}", pairs(&out));
        assert_eq!(ctx.metrics.late_records.load(std::sync::atomic::Ordering::Relaxed), 1);
        // Left 30 meets a right row at 33.
        op.process_input(1, batch_of(&[("rk", vec![1]), ("rt", vec![33])]), &mut out)
            .unwrap();
        assert_eq!(pairs(&out), vec![(1, 30, 33)]);
        // Past every row's reach the key's state goes.
        op.on_watermark(100, &mut out).unwrap();
        let state = op.snapshot(2, false).unwrap().into_state().unwrap();
        assert_eq!(crate::contract::state::record_count(&state).unwrap(), 0);
    }

    #[test]
    fn an_outer_join_shows_each_unmatched_row_padded_once_the_watermark_passes_its_last_chance() {
        let mut op = IntervalJoin {
            outer: [true, true],
            ..spec(-10, 10)
        }
        .create_of(&inputs(), &ctx())
        .unwrap();
        let mut out = Vec::new();
        let rows = |k: i64, t: i64| batch_of(&[("k", vec![k]), ("lt", vec![t])]);
        let rights = |k: i64, t: i64| batch_of(&[("rk", vec![k]), ("rt", vec![t])]);
        op.process_input(0, rows(1, 100), &mut out).unwrap();
        op.process_input(0, rows(2, 100), &mut out).unwrap();
        op.process_input(1, rights(1, 105), &mut out).unwrap();
        op.process_input(1, rights(3, 100), &mut out).unwrap();
        assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 1, "the one pair");
        // At 110 the left rows' chances are over (100 + 10), at 111 the right rows' too.
        op.on_watermark(111, &mut out).unwrap();
        out.remove(0);
        let shown: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let c = |n: &str| {
                    b.column_by_name(n)
                        .unwrap()
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .clone()
                };
                let (k, lt, rk, rt) = (c("k"), c("lt"), c("rk"), c("rt"));
                let v = |a: &arrow::array::Int64Array, i: usize| {
                    if a.is_null(i) {
                        "_".into()
                    } else {
                        a.value(i).to_string()
                    }
                };
                (0..b.num_rows())
                    .map(move |i| format!("{} {} {} {}", v(&k, i), v(&lt, i), v(&rk, i), v(&rt, i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(shown, ["2 100 _ _", "_ _ 3 100"], "the matched rows are not padded");
    }

    #[test]
    fn the_state_restores_with_its_expiry_and_joins_on() {
        let (mut op, _) = join(-5, 5);
        let mut out = Vec::new();
        op.process_input(0, batch_of(&[("k", vec![1, 2, 3]), ("lt", vec![10, 50, 12])]), &mut out)
            .unwrap();
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        let (mut restored, _) = join(-5, 5);
        restored.restore(state).unwrap();
        restored
            .process_input(1, batch_of(&[("rk", vec![1]), ("rt", vec![14])]), &mut out)
            .unwrap();
        assert_eq!(pairs(&out), vec![(1, 10, 14)]);
        // The restored rows expire as the watermark passes them: key 1's left row after 15, the
        // right row that came after the restore after 19 (left rows up to 19 may meet it); key
        // 3, untouched since the restore, after 17.
        restored.on_watermark(20, &mut out).unwrap();
        let state = restored.snapshot(2, false).unwrap().into_state().unwrap();
        assert_eq!(crate::contract::state::record_count(&state).unwrap(), 1, "key 2 stays");
    }

    #[test]
    fn a_semi_join_shows_each_left_row_once_when_it_first_has_a_match() {
        let mut op = IntervalJoin {
            semi: true,
            ..spec(0, 0)
        }
        .create_of(&inputs(), &ctx())
        .unwrap();
        let mut out = Vec::new();
        // Left 10 waits; two right rows at 10 show it once; left 20 finds right 20 at once.
        op.process_input(0, batch_of(&[("k", vec![1, 1]), ("lt", vec![10, 30])]), &mut out)
            .unwrap();
        op.process_input(
            1,
            batch_of(&[("rk", vec![1, 1, 1]), ("rt", vec![10, 10, 20])]),
            &mut out,
        )
        .unwrap();
        op.process_input(0, batch_of(&[("k", vec![1, 2]), ("lt", vec![20, 20])]), &mut out)
            .unwrap();
        assert_eq!(out.iter().map(|b| b.num_columns()).max(), Some(2), "left columns only");
        let mut shown: Vec<(i64, i64)> = ints(&out, "k").into_iter().zip(ints(&out, "lt")).collect();
        shown.sort();
        assert_eq!(shown, vec![(1, 10), (1, 20)]);
    }

    /// q5's shape: a left row shows once, when a right row within the bounds meets the
    /// condition as well (`v >= rv`, evaluated per batch over every candidate pair), whichever
    /// side comes first; rows that meet none wait.
    #[test]
    fn a_semi_join_with_a_condition_shows_left_rows_that_meet_it() {
        use datafusion::logical_expr::col;
        let inputs = [
            batch_of(&[("k", vec![]), ("lt", vec![]), ("v", vec![])]).schema(),
            batch_of(&[("rk", vec![]), ("rt", vec![]), ("rv", vec![])]).schema(),
        ];
        let mut op = IntervalJoin {
            semi: true,
            condition: Some(col("v").gt_eq(col("rv"))),
            ..spec(0, 0)
        }
        .create_of(&inputs, &ctx())
        .unwrap();
        let mut out = Vec::new();
        // Left rows of key 1 at 10 with v 5, 7, 9 wait; right (1, 10, 7) shows 7 and 9, right
        // (1, 20, 2) waits; right (1, 10, 3) shows 5 (7 and 9 are done with); then left
        // (1, 20, 1) fails `1 >= 2` and waits, left (1, 20, 2) shows at once, left (2, 10, 4)
        // has no right row of its key.
        let left = |k: Vec<i64>, t: Vec<i64>, v: Vec<i64>| batch_of(&[("k", k), ("lt", t), ("v", v)]);
        let right = |k: Vec<i64>, t: Vec<i64>, v: Vec<i64>| batch_of(&[("rk", k), ("rt", t), ("rv", v)]);
        op.process_input(0, left(vec![1, 1, 1], vec![10, 10, 10], vec![5, 7, 9]), &mut out)
            .unwrap();
        op.process_input(1, right(vec![1, 1], vec![10, 20], vec![7, 2]), &mut out)
            .unwrap();
        let mut shown = ints(&out, "v");
        shown.sort();
        assert_eq!(shown, vec![7, 9]);
        op.process_input(1, right(vec![1], vec![10], vec![3]), &mut out)
            .unwrap();
        op.process_input(0, left(vec![1, 1, 2], vec![20, 20, 10], vec![1, 2, 4]), &mut out)
            .unwrap();
        let mut shown: Vec<(i64, i64, i64)> = ints(&out, "k")
            .into_iter()
            .zip(ints(&out, "lt"))
            .zip(ints(&out, "v"))
            .map(|((k, t), v)| (k, t, v))
            .collect();
        shown.sort();
        assert_eq!(shown, vec![(1, 10, 5), (1, 10, 7), (1, 10, 9), (1, 20, 2)]);
    }

    #[test]
    fn the_watermark_retires_rows_in_chunks_so_a_long_run_holds_a_bounded_state() {
        let mut op = spec(-5, 5).build(&inputs(), &ctx()).unwrap();
        let mut out = Vec::new();
        for start in (0..60_000i64).step_by(100) {
            let times: Vec<i64> = (start..start + 100).collect();
            let keys = vec![1; 100];
            op.process_input(0, batch_of(&[("k", keys.clone()), ("lt", times.clone())]), &mut out)
                .unwrap();
            op.process_input(1, batch_of(&[("rk", keys), ("rt", times)]), &mut out)
                .unwrap();
            op.on_watermark(start - 20, &mut out).unwrap();
            let held = op.logs[0].len() + op.logs[1].len();
            assert!(held < 25_000, "at {start}: {held} rows held");
        }
        // Each row met the 11 rows of the other side within ±5 (fewer at the start).
        let pairs: usize = out.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(pairs, 60_000 * 11 - 30);
    }

    #[test]
    fn bad_bounds_changelogs_and_missing_times_are_refused_by_name() {
        let j = |lower, upper, rt: &str| IntervalJoin {
            right_time: Some(rt.into()),
            ..spec(lower, upper)
        };
        let e = j(5, 1, "rt").output_schema_of(&inputs()).unwrap_err();
        assert!(
            e.to_string()
                .contains("lower bound (5 ms) is above the upper bound (1 ms)"),
            "{e}"
        );
        let e = j(0, 1, "nope").output_schema_of(&inputs()).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = IntervalJoin {
            right_time: None,
            ..spec(0, 1)
        }
        .output_schema_of(&inputs())
        .unwrap_err();
        assert!(e.to_string().contains("right input has no event time"), "{e}");
    }
}
