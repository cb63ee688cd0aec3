//! A regular (unbounded) equi-join of two keyed inputs — inner, left, right, full outer, semi
//! or anti —
//! over changelogs, as Flink's streaming join: each key keeps every row of both sides (with its
//! multiplicity) in keyed state, so checkpoints, restore and rescale by key groups work as for
//! every other keyed operator. A row added on one side joins each row the other side has for
//! its key; a row taken back (`-U`, `-D`) retracts what it joined. Outer joins emit a row
//! padded with nulls while the other side has nothing for the key, and retract it when the
//! first match arrives (and emit it again when the last match goes).
//!
//! A semi join shows a left row while its key has a right row, an anti join while it has none
//! (each left row once, whatever the number of matches).
//!
//! Output: the left input's columns, the right's (not for semi and anti joins), then
//! [`OP_COLUMN`] when the result updates (an updating input, an outer or an anti join); inner
//! and semi joins of append-only inputs append. Additions are `+I`, retractions `-D`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::join_rows::SideRows;
use super::join_schema::{add_side, key_counts, same_key_types};
use super::row_codec::RowCodec;
use super::running_aggregate::OP_COLUMN;
use super::{Operator, OperatorFactory, TaskContext, UserResult};
use crate::checkpoint::OperatorState;
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::contract::state::Snapshot;
use crate::state::ttl::{Expiring, Expiry, Ttl};
use crate::state::{Codec, StateTable};

/// Which rows a join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinType {
    /// Matching pairs only.
    Inner,
    /// Every left row; nulls on the right when nothing matches.
    Left,
    /// Every right row; nulls on the left when nothing matches.
    Right,
    /// Every row of both sides.
    Full,
    /// Left rows that have a match (`EXISTS`, `IN`), each once, without right columns.
    LeftSemi,
    /// Left rows that have no match (`NOT EXISTS`), without right columns.
    LeftAnti,
}

impl JoinType {
    fn pads(self, side: usize) -> bool {
        match self {
            JoinType::Inner => false,
            JoinType::Left => side == 0,
            JoinType::Right => side == 1,
            JoinType::Full => true,
            JoinType::LeftSemi | JoinType::LeftAnti => false,
        }
    }

    /// Whether the output holds the left rows alone (semi and anti joins).
    fn left_only(self) -> bool {
        matches!(self, JoinType::LeftSemi | JoinType::LeftAnti)
    }
}

/// The join's description: its type and each input's key columns (equal types, in order).
#[derive(Debug, Clone)]
pub struct RegularJoin {
    /// Which rows it keeps.
    pub join_type: JoinType,
    /// Key columns of the left input.
    pub left_keys: Vec<String>,
    /// Key columns of the right input.
    pub right_keys: Vec<String>,
    /// A further condition a match must meet (SQL over the left input's columns then the
    /// right's, which must be named apart; `None`: equal keys suffice). An outer join pads a
    /// row that meets no row of the other side under it, as Flink's; an inner join's is
    /// cheaper as a filter of its output.
    pub condition: Option<datafusion::logical_expr::Expr>,
    /// `table.exec.state.ttl` (ms): a row not written for this long leaves the join's state
    /// (each row on its own, as in Flink) without output; later rows no longer meet it.
    pub state_ttl: Option<i64>,
}

/// One input, planned: key columns, the changelog column, the columns it contributes.
struct SidePlan {
    keys: Vec<usize>,
    op: Option<usize>,
    columns: Vec<usize>,
}

impl RegularJoin {
    fn plan(&self, inputs: &[SchemaRef]) -> Result<(SidePlan, SidePlan, SchemaRef)> {
        let [left, right] = inputs else {
            return Err(WeirError::plan(format!("a join reads 2 inputs, not {}", inputs.len())));
        };
        key_counts("a join", &self.left_keys, &self.right_keys)?;
        let side = |schema: &SchemaRef, keys: &[String], what: &str| -> Result<SidePlan> {
            Ok(SidePlan {
                keys: keys
                    .iter()
                    .map(|k| field_index(schema, k, what))
                    .collect::<Result<_>>()?,
                op: schema.index_of(OP_COLUMN).ok(),
                columns: (0..schema.fields().len())
                    .filter(|i| schema.field(*i).name() != OP_COLUMN)
                    .collect(),
            })
        };
        let (l, r) = (
            side(left, &self.left_keys, "left join key")?,
            side(right, &self.right_keys, "right join key")?,
        );
        same_key_types(left, &l.keys, right, &r.keys)?;
        let mut fields: Vec<Field> = Vec::new();
        let shown: &[(&SchemaRef, &SidePlan)] = if self.join_type.left_only() {
            &[(left, &l)]
        } else {
            &[(left, &l), (right, &r)]
        };
        for (side, (schema, plan)) in shown.iter().enumerate() {
            // The side padded with nulls is the one the other side may lack.
            add_side(
                &mut fields,
                side,
                schema,
                plan.columns.iter().copied(),
                self.join_type.pads(1 - side),
            )?;
        }
        let updating =
            l.op.is_some() || r.op.is_some() || !matches!(self.join_type, JoinType::Inner | JoinType::LeftSemi);
        if updating {
            fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
        }
        Ok((l, r, Arc::new(Schema::new(fields))))
    }
}

impl OperatorFactory for RegularJoin {
    fn kind(&self) -> &'static str {
        "join"
    }
    fn distinct_inputs(&self) -> bool {
        true
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Err(WeirError::plan("a join reads two distinct inputs"))
    }
    fn output_schema_of(&self, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        Ok(self.plan(inputs)?.2)
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Err(WeirError::plan("a join reads two distinct inputs"))
    }
    fn create_of(&self, inputs: &[SchemaRef], ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let (l, r, output) = self.plan(inputs)?;
        let key_fields = l
            .keys
            .iter()
            .map(|k| SortField::new(inputs[0].field(*k).data_type().clone()))
            .collect();
        let side_codec = |schema: &SchemaRef, plan: &SidePlan| -> Result<(RowCodec, Vec<u8>)> {
            let codec = RowCodec::new(&Arc::new(schema.project(&plan.columns)?))?;
            // The row of nulls an outer join pads with.
            let null_row = codec.null_row()?;
            Ok((codec, null_row))
        };
        let (left_rows, left_null) = side_codec(&inputs[0], &l)?;
        let (right_rows, right_null) = side_codec(&inputs[1], &r)?;
        let updating = output.index_of(OP_COLUMN).is_ok();
        let condition = match &self.condition {
            None => None,
            Some(c) => {
                let fields: Vec<Field> = l
                    .columns
                    .iter()
                    .map(|i| inputs[0].field(*i).clone().with_nullable(true))
                    .chain(
                        r.columns
                            .iter()
                            .map(|i| inputs[1].field(*i).clone().with_nullable(true)),
                    )
                    .collect();
                let pairs = Arc::new(Schema::new(fields));
                Some((crate::operators::expr::plan_logical(c, &pairs)?.0, pairs))
            }
        };
        Ok(Box::new(JoinOp {
            condition,
            join_type: self.join_type,
            sides: [
                Side {
                    plan: l,
                    rows: left_rows,
                    null_row: left_null,
                },
                Side {
                    plan: r,
                    rows: right_rows,
                    null_row: right_null,
                },
            ],
            keys: RowConverter::new(key_fields)?,
            output,
            updating,
            state: StateTable::with_codec(&ctx.state, key_state_codec())?,
            max_parallelism: ctx.max_parallelism,
            ttl: Ttl::new(self.state_ttl, &ctx.clock),
            timed: self.state_ttl.is_some(),
            pending: Pending::default(),
        }))
    }
}

/// One input at run time: its plan, the codec of its rows, its row of nulls.
struct Side {
    plan: SidePlan,
    rows: RowCodec,
    null_row: Vec<u8>,
}

/// One key's rows on both sides ([`SideRows`]: counted rows of an updating side, found and
/// counted in logarithmic time however many rows a key has, as a window's auctions in q5;
/// appended rows of an append-only one) and each side's total.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    sides: [SideRows; 2],
    totals: [i64; 2],
    /// When the TTL index looks at the key again.
    listed: Option<i64>,
    /// Bytes its rows hold in memory (not stored: counted again as an entry is decoded), so the
    /// disk backend's cache counts a key's rows as they grow.
    #[serde(skip)]
    bytes: usize,
}

/// A join's entries: postcard, counted as they are decoded, weighed by their rows.
fn key_state_codec() -> Codec<KeyState> {
    Codec::new(
        |v: &KeyState, buf: &mut Vec<u8>| crate::contract::state::encode_into(v, buf),
        |bytes: &mut &[u8]| {
            let mut state: KeyState = crate::contract::state::take(bytes)?;
            state.bytes = state.sides.iter().map(SideRows::weight).sum();
            Ok(state)
        },
    )
    .weighed(|s| s.bytes)
}

impl Expiring for KeyState {
    fn listed(&self) -> Option<i64> {
        self.listed
    }
    fn set_listed(&mut self, at: Option<i64>) {
        self.listed = at;
    }
    fn expire(&mut self, expiry: &Expiry, now: i64) -> Option<i64> {
        let mut oldest: Option<i64> = None;
        for (side, rows) in self.sides.iter_mut().enumerate() {
            let (gone, bytes, kept) = rows.expire(|at| expiry.expired(at, now));
            self.totals[side] -= gone;
            self.bytes -= bytes;
            oldest = match (oldest, kept) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        oldest.map(|at| expiry.expires_at(at))
    }
}

impl KeyState {
    fn count(&self, side: usize) -> i64 {
        self.totals[side]
    }

    fn is_empty(&self) -> bool {
        self.sides.iter().all(SideRows::is_empty)
    }

    /// Adds `n` (negative: takes back) of `row` on `side` at `now`; false when taking back a
    /// row the side does not have. `appended`: the side is append-only (its rows are appended,
    /// with their write time when `timed`).
    fn add(&mut self, side: usize, row: &[u8], n: i64, now: i64, appended: bool, timed: bool) -> bool {
        let rows = &mut self.sides[side];
        if appended && n == 1 {
            self.bytes += rows.append(row, timed.then_some(now));
            self.totals[side] += 1;
            return true;
        }
        let Some((taken, bytes)) = rows.add(row, n, now) else {
            return false;
        };
        self.bytes = self.bytes.saturating_add_signed(bytes);
        self.totals[side] += taken;
        true
    }
}

struct JoinOp {
    join_type: JoinType,
    /// The condition and the schema of the pairs it is evaluated on (left then right columns).
    condition: Option<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, SchemaRef)>,
    sides: [Side; 2],
    keys: RowConverter,
    output: SchemaRef,
    updating: bool,
    state: StateTable<KeyState>,
    max_parallelism: u32,
    ttl: Ttl,
    /// Whether appended rows carry their write time (a state TTL is set).
    timed: bool,
    /// Output rows being gathered (kept between batches for its buffers' room).
    pending: Pending,
}

/// Output rows being gathered: each one's left and right row (encoded, as ranges of one
/// buffer, so a batch's output costs no allocation per row) and its kind.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    left: Vec<std::ops::Range<usize>>,
    right: Vec<std::ops::Range<usize>>,
    ops: Vec<&'static str>,
}

impl Pending {
    fn push(&mut self, left: &[u8], right: &[u8], op: &'static str, times: i64) {
        if times <= 0 {
            return;
        }
        let mut keep = |row: &[u8]| {
            let at = self.bytes.len();
            self.bytes.extend_from_slice(row);
            at..self.bytes.len()
        };
        let (l, r) = (keep(left), keep(right));
        for _ in 0..times {
            self.left.push(l.clone());
            self.right.push(r.clone());
            self.ops.push(op);
        }
    }

    /// Empties it, keeping its buffers' room.
    fn clear(&mut self) {
        self.bytes.clear();
        self.left.clear();
        self.right.clear();
        self.ops.clear();
    }

    /// The left (`side` 0) or right rows, in order.
    fn rows(&self, side: usize) -> impl ExactSizeIterator<Item = &[u8]> {
        let ranges = if side == 0 { &self.left } else { &self.right };
        ranges.iter().map(|r| &self.bytes[r.clone()])
    }
}

impl JoinOp {
    /// Emits `row` of `side` against `others` (rows of the other side) as `op`.
    fn pair(&self, pending: &mut Pending, side: usize, row: &[u8], other: &[u8], op: &'static str, times: i64) {
        if side == 0 {
            pending.push(row, other, op, times);
        } else {
            pending.push(other, row, op, times);
        }
    }

    /// A semi or anti join's output for one input row: a left row shows while its key has a
    /// right row (semi) or none (anti); a right row's arrival or departure shows or withdraws
    /// the key's left rows when it changes whether the key has any.
    #[allow(clippy::too_many_arguments)]
    fn semi(
        &self,
        pending: &mut Pending,
        input: usize,
        row: &[u8],
        op: &'static str,
        before: i64,
        after: i64,
        state: &KeyState,
    ) -> UserResult<()> {
        let semi = self.join_type == JoinType::LeftSemi;
        let none: &[u8] = &[];
        let Some(condition) = &self.condition else {
            if input == 0 {
                if (state.count(1) > 0) == semi {
                    pending.push(row, none, op, 1);
                }
                return Ok(());
            }
            let (was, is) = (before > 0, after > 0);
            if was != is {
                // The key's left rows appear (semi: first match; anti: last match gone) or go.
                let appear = is == semi;
                for (l, n) in state.sides[0].iter() {
                    pending.push(l, none, if appear { "+I" } else { "-D" }, n);
                }
            }
            return Ok(());
        };
        if input == 0 {
            let rights: Vec<&[u8]> = state.sides[1].iter().map(|(r, _)| r).collect();
            let matched = self.meets(condition, &[row], &rights)?[0].iter().any(|m| *m);
            if matched == semi {
                pending.push(row, none, op, 1);
            }
            return Ok(());
        }
        // Whether each left row has a match before and after the right row `row` changed: the
        // condition over every right row of the key, `row` among them even if it just left.
        let mut rights = state.sides[1].merged();
        if !rights.iter().any(|(r, _)| *r == row) {
            rights.push((row, 0));
        }
        let lefts: Vec<(&[u8], i64)> = state.sides[0].iter().collect();
        let rows: Vec<&[u8]> = rights.iter().map(|(r, _)| *r).collect();
        let left_rows: Vec<&[u8]> = lefts.iter().map(|(l, _)| *l).collect();
        let m = self.meets(condition, &left_rows, &rows)?;
        let changed = after - before;
        for (i, (l, n)) in lefts.iter().enumerate() {
            // Counts now, or before the change (`row`'s count less what changed).
            let any = |undo: i64| {
                rights
                    .iter()
                    .zip(&m[i])
                    .any(|((r, count), ok)| *ok && count - if *r == row { undo } else { 0 } > 0)
            };
            let (was, is) = (any(changed), any(0));
            if was != is {
                let appear = is == semi;
                pending.push(l, none, if appear { "+I" } else { "-D" }, *n);
            }
        }
        Ok(())
    }

    /// An inner or outer join's output for one input row of `input` under a condition: its
    /// pairs with the other side's rows that meet it; padded if it meets none (an outer side);
    /// and each row of the other side it meets loses its padding when this row is its first
    /// match (before the pair) or regains it when this row was its last (after the pair's
    /// retraction). A row's matches are counted afresh over the key's rows, so the state holds
    /// rows alone (as for the keys-only join).
    fn conditioned(
        &self,
        pending: &mut Pending,
        condition: &(Arc<dyn datafusion::physical_expr::PhysicalExpr>, SchemaRef),
        input: usize,
        row: &[u8],
        adds: bool,
        state: &KeyState,
    ) -> UserResult<()> {
        let other = 1 - input;
        let (pads_self, pads_other) = (self.join_type.pads(input), self.join_type.pads(other));
        let op = if adds { "+I" } else { "-D" };
        // This side's rows after the change (`row` first, even if it just left) and the other's.
        let mut mine: Vec<(&[u8], i64)> = vec![(row, 0)];
        for (r, n) in state.sides[input].merged() {
            if r == row {
                mine[0].1 = n;
            } else {
                mine.push((r, n));
            }
        }
        let others: Vec<(&[u8], i64)> = state.sides[other].iter().collect();
        let this: Vec<&[u8]> = mine.iter().map(|(r, _)| *r).collect();
        let those: Vec<&[u8]> = others.iter().map(|(o, _)| *o).collect();
        // met[t][o]: whether this side's row t and the other's row o meet the condition.
        let met = if input == 0 {
            self.meets(condition, &this, &those)?
        } else {
            let m = self.meets(condition, &those, &this)?;
            (0..this.len())
                .map(|t| (0..those.len()).map(|o| m[o][t]).collect())
                .collect()
        };
        let mut any = false;
        for (o, (other_row, n)) in others.iter().enumerate() {
            if !met[0][o] {
                continue;
            }
            any = true;
            // How many of this side's rows meet `o` now, and before the change.
            let now: i64 = mine.iter().zip(&met).filter(|(_, m)| m[o]).map(|((_, c), _)| *c).sum();
            let before = now - if adds { 1 } else { -1 };
            let null = &self.sides[input].null_row;
            if pads_other && adds && before == 0 {
                self.pair(pending, other, other_row, null, "-D", *n);
            }
            self.pair(pending, input, row, other_row, op, *n);
            if pads_other && !adds && now == 0 {
                self.pair(pending, other, other_row, null, "+I", *n);
            }
        }
        if !any && pads_self {
            self.pair(pending, input, row, &self.sides[other].null_row, op, 1);
        }
        Ok(())
    }

    /// The condition over every pair of `lefts` × `rights` (rows encoded by their sides):
    /// per left row, per right row, whether it holds (a null counts as false).
    fn meets(
        &self,
        (condition, schema): &(Arc<dyn datafusion::physical_expr::PhysicalExpr>, SchemaRef),
        lefts: &[&[u8]],
        rights: &[&[u8]],
    ) -> UserResult<Vec<Vec<bool>>> {
        if lefts.is_empty() || rights.is_empty() {
            return Ok(vec![vec![false; rights.len()]; lefts.len()]);
        }
        let pairs: Vec<(&[u8], &[u8])> = lefts
            .iter()
            .flat_map(|l| rights.iter().map(move |r| (*l, *r)))
            .collect();
        let mut columns = self.sides[0].rows.decode(pairs.iter().map(|(l, _)| *l))?;
        columns.extend(self.sides[1].rows.decode(pairs.iter().map(|(_, r)| *r))?);
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let mask = condition.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask.as_boolean();
        Ok((0..lefts.len())
            .map(|i| {
                (0..rights.len())
                    .map(|j| {
                        let k = i * rights.len() + j;
                        mask.is_valid(k) && mask.value(k)
                    })
                    .collect()
            })
            .collect())
    }

    fn finish(&self, pending: &Pending, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if pending.ops.is_empty() {
            return Ok(());
        }
        let mut columns = self.sides[0].rows.decode(pending.rows(0))?;
        if !self.join_type.left_only() {
            columns.extend(self.sides[1].rows.decode(pending.rows(1))?);
        }
        if self.updating {
            columns.push(Arc::new(StringArray::from_iter_values(pending.ops.iter())));
        }
        out.push(RecordBatch::try_new(self.output.clone(), columns)?);
        Ok(())
    }
}

impl Operator for JoinOp {
    fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        Err("a join needs to know each batch's input".into())
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let this = &self.sides[input];
        let key_columns: Vec<ArrayRef> = this.plan.keys.iter().map(|k| batch.column(*k).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let groups = crate::keys::key_groups(&key_columns, batch.num_rows(), self.max_parallelism)?;
        let row_columns: Vec<ArrayRef> = this.plan.columns.iter().map(|c| batch.column(*c).clone()).collect();
        let rows = this.rows.encode(&row_columns)?;
        let ops = this.plan.op.map(|c| batch.column(c).as_string::<i32>().clone());
        let other = 1 - input;
        let now = self.ttl.begin(&mut self.state)?;
        let (pads_self, pads_other) = (self.join_type.pads(input), self.join_type.pads(other));
        // The last batch's buffers, emptied: their room is kept from batch to batch.
        let mut pending = std::mem::take(&mut self.pending);
        for (i, &group) in groups.iter().enumerate() {
            // A key with a null never matches (SQL's `=`); an outer side still shows its row.
            let null_key = key_columns.iter().any(|c| c.is_null(i));
            let adds = ops.as_ref().is_none_or(|o| matches!(o.value(i), "+I" | "+U"));
            let row = rows.row(i);
            if null_key {
                // No match: shown padded by an outer side, and by an anti join's left side.
                if pads_self || (input == 0 && self.join_type == JoinType::LeftAnti) {
                    let op = if adds { "+I" } else { "-D" };
                    self.pair(&mut pending, input, row, &self.sides[other].null_row, op, 1);
                }
                continue;
            }
            let key: Box<[u8]> = keys.row(i).as_ref().into();
            let state = self.state.get_or_insert_with(group, &key, KeyState::default)?;
            let before = state.count(input);
            let appended = self.sides[input].plan.op.is_none();
            if !state.add(input, row, if adds { 1 } else { -1 }, now, appended, self.timed) {
                if state.is_empty() {
                    self.state.remove(group, &key)?;
                }
                tracing::warn!("join: a retraction of a row the join never had; ignored");
                continue;
            }
            self.ttl.written(state, group, &key, now);
            let state = self.state.cached(&key).expect("present");
            let after = state.count(input);
            let others = &state.sides[other];
            let op = if adds { "+I" } else { "-D" };
            if self.join_type.left_only() {
                self.semi(&mut pending, input, row, op, before, after, state)?;
                if state.is_empty() {
                    self.state.remove(group, &key)?;
                }
                continue;
            }
            if let Some(condition) = &self.condition {
                self.conditioned(&mut pending, condition, input, row, adds, state)?;
                if state.is_empty() {
                    self.state.remove(group, &key)?;
                }
                continue;
            }
            if others.is_empty() {
                if pads_self {
                    self.pair(&mut pending, input, row, &self.sides[other].null_row, op, 1);
                }
            } else {
                // The other side's rows lose their null padding when this side gets its first
                // row for the key (retracted before the first pair), and regain it when this
                // side loses its last (after the last pair's retraction).
                let unpad = pads_other && before == 0 && after > 0;
                let repad = pads_other && before > 0 && after == 0;
                if unpad {
                    for (o, n) in others.iter() {
                        self.pair(&mut pending, other, o, &self.sides[input].null_row, "-D", n);
                    }
                }
                for (o, n) in others.iter() {
                    self.pair(&mut pending, input, row, o, op, n);
                }
                if repad {
                    for (o, n) in others.iter() {
                        self.pair(&mut pending, other, o, &self.sides[input].null_row, "+I", n);
                    }
                }
            }
            if state.is_empty() {
                self.state.remove(group, &key)?;
            }
        }
        let done = self.finish(&pending, out);
        pending.clear();
        self.pending = pending;
        done
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<Snapshot> {
        self.state.snapshot(changes_only, None)
    }

    fn restore(&mut self, state: OperatorState) -> UserResult<()> {
        self.ttl.restore(&mut self.state, &state)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.ttl.next()
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.ttl.on_time(&mut self.state, now)
    }

    fn restores_in_parts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::{batch_of, ctx};
    use arrow::array::Int64Array;

    fn with_ops(batch: RecordBatch, ops: &[&str]) -> RecordBatch {
        let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(ops.to_vec())));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn join(join_type: JoinType, left: &RecordBatch, right: &RecordBatch) -> Box<dyn Operator> {
        RegularJoin {
            join_type,
            left_keys: vec!["k".into()],
            right_keys: vec!["rk".into()],
            condition: None,
            state_ttl: None,
        }
        .create_of(&[left.schema(), right.schema()], &ctx())
        .unwrap()
    }

    /// `Int64` column `name` of `b`.
    fn int64<'a>(b: &'a RecordBatch, name: &str) -> &'a Int64Array {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .as_primitive::<arrow::datatypes::Int64Type>()
    }

    /// Each output row as `op l r` (`_` for a null), in order.
    fn shown(out: &[RecordBatch]) -> Vec<String> {
        let mut rows = Vec::new();
        for b in out {
            let l = int64(b, "l");
            let r = int64(b, "r");
            let ops = b.column_by_name(OP_COLUMN).map(|c| c.as_string::<i32>().clone());
            for i in 0..b.num_rows() {
                let v = |a: &Int64Array| {
                    if a.is_null(i) {
                        "_".to_string()
                    } else {
                        a.value(i).to_string()
                    }
                };
                let op = ops.as_ref().map_or("+I", |o| o.value(i));
                rows.push(format!("{op} {} {}", v(l), v(r)));
            }
        }
        rows
    }

    #[test]
    fn with_a_state_ttl_each_row_leaves_the_join_a_ttl_after_its_last_write() {
        let clock = crate::contract::ManualClock::new(0);
        let left = |k: i64, l: i64| batch_of(&[("k", vec![k]), ("l", vec![l])]);
        let right = |k: i64, r: i64| batch_of(&[("rk", vec![k]), ("r", vec![r])]);
        let spec = RegularJoin {
            join_type: JoinType::Inner,
            left_keys: vec!["k".into()],
            right_keys: vec!["rk".into()],
            condition: None,
            state_ttl: Some(1_000),
        };
        let schemas = [left(0, 0).schema(), right(0, 0).schema()];
        let mut op = spec
            .create_of(&schemas, &crate::operators::testing::ctx_on(&clock))
            .unwrap();
        let mut out = Vec::new();
        op.process_input(0, left(1, 10), &mut out).unwrap();
        op.process_input(0, left(2, 20), &mut out).unwrap();
        clock.set(600);
        op.process_input(0, left(1, 11), &mut out).unwrap();
        assert_eq!(
            op.next_processing_timer(),
            Some(1_000),
            "both keys listed once, at their first expiry"
        );
        clock.set(1_000);
        // Key 1's first row expired at 1,000; its second lives until 1,600.
        op.process_input(1, right(1, 100), &mut out).unwrap();
        assert_eq!(shown(&out), ["+I 11 100"]);
        // Key 2 goes on the timer alone (no row of it arrives), its state with it.
        op.on_processing_time(1_000, &mut out).unwrap();
        op.process_input(1, right(2, 200), &mut out).unwrap();
        assert_eq!(shown(&out), ["+I 11 100"]);
        // The state (with the listings) survives a restore: key 1's left row expires at 1,600.
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        let mut restored = spec
            .create_of(&schemas, &crate::operators::testing::ctx_on(&clock))
            .unwrap();
        restored.restore(state).unwrap();
        assert_eq!(restored.next_processing_timer(), Some(1_600));
        out.clear();
        restored.process_input(1, right(1, 101), &mut out).unwrap();
        assert_eq!(shown(&out), ["+I 11 101"]);
        clock.set(2_000);
        out.clear();
        restored.process_input(1, right(1, 102), &mut out).unwrap();
        // At 2,000 the left row (expired at 1,600) and the right rows written at 1,000 are gone:
        // no output for 102, and a new left row meets 102 alone.
        restored.process_input(0, left(1, 12), &mut out).unwrap();
        assert_eq!(shown(&out), ["+I 12 102"]);
    }

    #[test]
    fn an_inner_join_of_appends_pairs_equal_keys_whichever_side_comes_first() {
        let left = batch_of(&[("k", vec![1, 2, 2]), ("l", vec![10, 20, 21])]);
        let right = batch_of(&[("rk", vec![2, 3]), ("r", vec![200, 300])]);
        let mut op = join(JoinType::Inner, &left, &right);
        let mut out = Vec::new();
        op.process_input(0, left.clone(), &mut out).unwrap();
        assert!(out.is_empty());
        op.process_input(1, right.clone(), &mut out).unwrap();
        let later = batch_of(&[("k", vec![3, 4]), ("l", vec![30, 40])]);
        op.process_input(0, later, &mut out).unwrap();
        assert_eq!(shown(&out), ["+I 20 200", "+I 21 200", "+I 30 300"]);
        assert!(out[0].column_by_name(OP_COLUMN).is_none(), "appends only");
    }

    #[test]
    fn a_left_join_pads_then_retracts_the_padding_when_a_match_comes_and_goes() {
        let left = with_ops(batch_of(&[("k", vec![1]), ("l", vec![10])]), &["+I"]);
        let right = with_ops(batch_of(&[("rk", vec![1]), ("r", vec![100])]), &["+I"]);
        let mut op = join(JoinType::Left, &left, &right);
        let mut out = Vec::new();
        op.process_input(0, left.clone(), &mut out).unwrap();
        op.process_input(1, right.clone(), &mut out).unwrap();
        op.process_input(
            1,
            with_ops(batch_of(&[("rk", vec![1]), ("r", vec![100])]), &["-D"]),
            &mut out,
        )
        .unwrap();
        op.process_input(
            0,
            with_ops(batch_of(&[("k", vec![1]), ("l", vec![10])]), &["-U"]),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            shown(&out),
            ["+I 10 _", "-D 10 _", "+I 10 100", "-D 10 100", "+I 10 _", "-D 10 _"]
        );
    }

    #[test]
    fn a_full_join_shows_each_sides_unmatched_rows_and_counts_duplicates() {
        let left = batch_of(&[("k", vec![1, 1]), ("l", vec![10, 10])]);
        let right = batch_of(&[("rk", vec![2, 1]), ("r", vec![200, 100])]);
        let mut op = join(JoinType::Full, &left, &right);
        let mut out = Vec::new();
        op.process_input(1, right.clone(), &mut out).unwrap();
        op.process_input(0, left.clone(), &mut out).unwrap();
        // A left row twice: the first unpads the right row, both pair with it.
        assert_eq!(
            shown(&out),
            ["+I _ 200", "+I _ 100", "-D _ 100", "+I 10 100", "+I 10 100"]
        );
    }

    /// Left rows alone, each `op l`, in order (semi and anti joins).
    fn shown_left(out: &[RecordBatch]) -> Vec<String> {
        let mut rows = Vec::new();
        for b in out {
            let l = int64(b, "l");
            assert!(b.column_by_name("r").is_none(), "no right columns");
            let ops = b.column_by_name(OP_COLUMN).map(|c| c.as_string::<i32>().clone());
            for i in 0..b.num_rows() {
                rows.push(format!("{} {}", ops.as_ref().map_or("+I", |o| o.value(i)), l.value(i)));
            }
        }
        rows
    }

    #[test]
    fn a_semi_join_shows_each_left_row_once_its_key_has_a_match_and_an_anti_join_until_then() {
        let left = batch_of(&[("k", vec![1, 1, 2]), ("l", vec![10, 11, 20])]);
        let right = batch_of(&[("rk", vec![1, 1, 3]), ("r", vec![100, 101, 300])]);
        let mut semi = join(JoinType::LeftSemi, &left, &right);
        let mut out = Vec::new();
        semi.process_input(0, left.clone(), &mut out).unwrap();
        semi.process_input(1, right.clone(), &mut out).unwrap();
        // Two matches for key 1 still show each left row once; key 2 never matches.
        assert_eq!(shown_left(&out), ["+I 10", "+I 11"]);
        assert!(out[0].column_by_name(OP_COLUMN).is_none(), "appends only");

        let mut anti = join(JoinType::LeftAnti, &left, &right);
        let mut out = Vec::new();
        anti.process_input(0, left.clone(), &mut out).unwrap();
        anti.process_input(1, right, &mut out).unwrap();
        assert_eq!(shown_left(&out), ["+I 10", "+I 11", "+I 20", "-D 10", "-D 11"]);
    }

    #[test]
    fn a_semi_join_with_a_condition_shows_a_left_row_while_a_match_meets_it() {
        let left = batch_of(&[("k", vec![1, 1]), ("l", vec![5, 50])]);
        let right = |r: i64, op: &str| with_ops(batch_of(&[("rk", vec![1]), ("r", vec![r])]), &[op]);
        let mut op = RegularJoin {
            join_type: JoinType::LeftSemi,
            left_keys: vec!["k".into()],
            right_keys: vec!["rk".into()],
            condition: Some(datafusion::prelude::col("l").gt_eq(datafusion::prelude::col("r"))),
            state_ttl: None,
        }
        .create_of(&[left.schema(), right(0, "+I").schema()], &ctx())
        .unwrap();
        let mut out = Vec::new();
        op.process_input(0, left.clone(), &mut out).unwrap();
        // r = 10 meets l = 50 only; r = 3 then meets l = 5 as well; taking r = 10 back leaves
        // both matched by r = 3; taking r = 3 back leaves neither.
        op.process_input(1, right(10, "+I"), &mut out).unwrap();
        op.process_input(1, right(3, "+I"), &mut out).unwrap();
        op.process_input(1, right(10, "-U"), &mut out).unwrap();
        op.process_input(1, right(3, "-D"), &mut out).unwrap();
        assert_eq!(shown_left(&out), ["+I 50", "+I 5", "-D 5", "-D 50"]);
    }

    #[test]
    fn the_state_restores_into_a_new_instance_and_joins_on() {
        let left = batch_of(&[("k", vec![1, 2]), ("l", vec![10, 20])]);
        let right = batch_of(&[("rk", vec![2]), ("r", vec![200])]);
        let mut op = join(JoinType::Inner, &left, &right);
        let mut out = Vec::new();
        op.process_input(0, left.clone(), &mut out).unwrap();
        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        assert!(!state.keyed.is_empty());
        let mut restored = join(JoinType::Inner, &left, &right);
        restored.restore(state).unwrap();
        restored.process_input(1, right, &mut out).unwrap();
        assert_eq!(shown(&out), ["+I 20 200"]);
    }

    #[test]
    fn keys_of_different_types_and_clashing_columns_are_refused_by_name() {
        let left = batch_of(&[("k", vec![1]), ("l", vec![1])]);
        let strings =
            RecordBatch::try_from_iter(vec![("rk", Arc::new(StringArray::from(vec!["1"])) as ArrayRef)]).unwrap();
        let j = RegularJoin {
            join_type: JoinType::Inner,
            left_keys: vec!["k".into()],
            right_keys: vec!["rk".into()],
            condition: None,
            state_ttl: None,
        };
        let err = j
            .output_schema_of(&[left.schema(), strings.schema()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("join keys 'k' (Int64) and 'rk' (Utf8) differ in type"),
            "{err}"
        );
        let clash = batch_of(&[("rk", vec![1]), ("l", vec![1])]);
        let err = j
            .output_schema_of(&[left.schema(), clash.schema()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("both join inputs have a column 'l'"), "{err}");
    }
}
