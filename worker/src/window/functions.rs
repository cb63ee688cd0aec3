//! User window functions (Flink's `process`, `reduce` and `aggregate(AggregateFunction)` on a
//! windowed stream), as [`WindowContents`] for the window operators.
//!
//! - `process` keeps every element of a window and hands them to a
//!   [`ProcessWindowFunction`] when the window fires; its rows are the output as declared.
//! - `reduce` folds elements into one row of the input's schema as they arrive; output rows are
//!   that row followed by `window_start` and `window_end`.
//! - `aggregate` feeds a user [`AggregateFunction`] incrementally; output rows are the key
//!   fields, `window_start`, `window_end`, then the function's result fields.
//!
//! Elements and results travel as [`Row`]s, so their fields use the types row functions
//! support (see [`crate::row::rows_to_batch`]).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::contents::{Fired, TimeWindow, WindowContents};
use crate::contract::UserResult;
use crate::contract::error::{Result, WeirError};
use crate::row::{Row, RowRef, Value, rows_to_batch, value_at};
use crate::state::{AggregateFunction, Codec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a window function sees besides the elements: the key and the window.
#[derive(Debug)]
pub struct WindowContext<'a> {
    key: &'a Row,
    window: TimeWindow,
    schema: &'a SchemaRef,
}

impl WindowContext<'_> {
    /// The schema of the elements (the window's input), e.g. to make a batch of them with
    /// [`crate::row::rows_to_batch`].
    pub fn schema(&self) -> &SchemaRef {
        self.schema
    }

    /// The key's values, in `key_by` order (empty for `window_all`).
    pub fn key(&self) -> &Row {
        self.key
    }

    /// The window; [`TimeWindow::GLOBAL`] for global windows.
    pub fn window(&self) -> TimeWindow {
        self.window
    }
}

/// Flink's `ProcessWindowFunction`: all elements of a fired window, in arrival order; append
/// output rows (of the declared schema) to `out`.
pub trait ProcessWindowFunction: Send + 'static {
    /// One fired window.
    fn process(&mut self, ctx: &WindowContext<'_>, elements: &[Row], out: &mut Vec<Row>) -> UserResult<()>;
}

impl<F> ProcessWindowFunction for F
where
    F: FnMut(&WindowContext<'_>, &[Row], &mut Vec<Row>) -> UserResult<()> + Send + 'static,
{
    fn process(&mut self, ctx: &WindowContext<'_>, elements: &[Row], out: &mut Vec<Row>) -> UserResult<()> {
        self(ctx, elements, out)
    }
}

/// Makes one instance of a process function per subtask.
pub(crate) type ProcessMaker = Arc<dyn Fn() -> Box<dyn ProcessWindowFunction> + Send + Sync>;
/// A reduce function over rows of the input schema.
pub(crate) type RowReduce = Arc<dyn Fn(Row, Row) -> UserResult<Row> + Send + Sync>;

/// An [`AggregateFunction`] over rows with its accumulator type erased.
pub(crate) trait ErasedAggregate: Send + Sync {
    fn create(&self) -> Box<dyn AccValue>;
    fn add(&self, acc: &mut Box<dyn AccValue>, row: Row);
    fn merge(&self, a: Box<dyn AccValue>, b: Box<dyn AccValue>) -> Box<dyn AccValue>;
    fn result(&self, acc: &dyn AccValue) -> Vec<Row>;
    fn encode(&self, acc: &dyn AccValue) -> UserResult<Vec<u8>>;
    fn decode(&self, bytes: &[u8]) -> UserResult<Box<dyn AccValue>>;
}

/// A user accumulator behind an erased function: shared with the checkpoint thread and copied
/// on write, so it is `Clone + Sync` like every value of copy-on-write state.
pub(crate) trait AccValue: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn AccValue>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Any + Clone + Send + Sync> AccValue for T {
    fn clone_box(&self) -> Box<dyn AccValue> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl Clone for Box<dyn AccValue> {
    fn clone(&self) -> Self {
        self.as_ref().clone_box()
    }
}

/// What an aggregate function's result becomes: one output row, or any number.
pub(crate) trait IntoRows {
    fn into_rows(self) -> Vec<Row>;
}

impl IntoRows for Row {
    fn into_rows(self) -> Vec<Row> {
        vec![self]
    }
}

impl IntoRows for Vec<Row> {
    fn into_rows(self) -> Vec<Row> {
        self
    }
}

/// Wraps a typed [`AggregateFunction`] whose result is a row (`Out = Row`) or rows
/// (`Out = Vec<Row>`).
pub(crate) struct Typed<F, Acc, Out>(pub(crate) F, pub(crate) PhantomData<fn() -> (Acc, Out)>);

impl<F, Acc, Out> ErasedAggregate for Typed<F, Acc, Out>
where
    F: AggregateFunction<Row, Acc, Out>,
    Acc: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    Out: IntoRows,
{
    fn encode(&self, acc: &dyn AccValue) -> UserResult<Vec<u8>> {
        crate::contract::state::encode(typed::<Acc>(acc))
    }
    fn decode(&self, bytes: &[u8]) -> UserResult<Box<dyn AccValue>> {
        Ok(Box::new(crate::contract::state::decode::<Acc>(bytes)?))
    }
    fn create(&self) -> Box<dyn AccValue> {
        Box::new(self.0.create_accumulator())
    }
    fn add(&self, acc: &mut Box<dyn AccValue>, row: Row) {
        // `**acc`: the boxed value, not the box (a box is an `AccValue` too).
        let acc = (**acc)
            .as_any_mut()
            .downcast_mut::<Acc>()
            .expect("accumulator of this function");
        self.0.add(row, acc);
    }
    fn merge(&self, a: Box<dyn AccValue>, b: Box<dyn AccValue>) -> Box<dyn AccValue> {
        let take = |x: Box<dyn AccValue>| *x.into_any().downcast::<Acc>().expect("accumulator of this function");
        Box::new(self.0.merge(take(a), take(b)))
    }
    fn result(&self, acc: &dyn AccValue) -> Vec<Row> {
        self.0.get_result(typed::<Acc>(acc)).into_rows()
    }
}

fn typed<Acc: 'static>(acc: &dyn AccValue) -> &Acc {
    acc.as_any()
        .downcast_ref::<Acc>()
        .expect("accumulator of this function")
}

/// A user window function as a window operator's description holds it.
#[derive(Clone)]
pub(crate) enum UserWindowFn {
    /// All elements to a process function; output as declared.
    Process {
        /// Output schema (none: the input's).
        output: Option<SchemaRef>,
        /// One function instance per subtask.
        make: ProcessMaker,
    },
    /// Folds elements into one row of the input schema.
    Reduce(RowReduce),
    /// A user aggregate function with its result fields.
    Aggregate {
        /// Result fields after key fields and window bounds.
        fields: Vec<Field>,
        /// The function.
        function: Arc<dyn ErasedAggregate>,
    },
}

impl std::fmt::Debug for UserWindowFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UserWindowFn::Process { .. } => "process",
            UserWindowFn::Reduce(_) => "reduce",
            UserWindowFn::Aggregate { .. } => "aggregate_function",
        })
    }
}

fn window_fields(nullable: bool) -> [Field; 2] {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    [
        Field::new("window_start", ts.clone(), nullable),
        Field::new("window_end", ts, nullable),
    ]
}

fn unique(fields: Vec<Field>, what: &str) -> Result<SchemaRef> {
    let mut seen = std::collections::HashSet::new();
    if let Some(f) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
        return Err(WeirError::plan(format!(
            "window {what}: two output columns are named '{}'",
            f.name()
        )));
    }
    Ok(Arc::new(Schema::new(fields)))
}

impl UserWindowFn {
    /// The output schema for `input` keyed by `key_columns`; `global` makes window bounds
    /// nullable.
    pub(crate) fn output_schema(&self, input: &SchemaRef, key_columns: &[usize], global: bool) -> Result<SchemaRef> {
        match self {
            UserWindowFn::Process { output, .. } => Ok(output.clone().unwrap_or_else(|| input.clone())),
            UserWindowFn::Reduce(_) => {
                let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.extend(window_fields(global));
                unique(fields, "reduce")
            }
            UserWindowFn::Aggregate { fields: result, .. } => {
                let mut fields: Vec<Field> = key_columns.iter().map(|c| input.field(*c).clone()).collect();
                fields.extend(window_fields(global));
                fields.extend(result.iter().cloned());
                unique(fields, "aggregate")
            }
        }
    }

    /// The contents for one subtask.
    pub(crate) fn contents(
        &self,
        input: SchemaRef,
        output: SchemaRef,
        converter: Option<RowConverter>,
    ) -> UserContents {
        let kind = match self {
            UserWindowFn::Process { make, .. } => Kind::Process(make()),
            UserWindowFn::Reduce(f) => Kind::Reduce(f.clone()),
            UserWindowFn::Aggregate { function, .. } => Kind::Aggregate(function.clone()),
        };
        UserContents {
            kind,
            input,
            output,
            converter,
            batch: None,
        }
    }
}

enum Kind {
    Process(Box<dyn ProcessWindowFunction>),
    Reduce(RowReduce),
    Aggregate(Arc<dyn ErasedAggregate>),
}

/// What a window holds for a user function.
#[derive(Clone)]
pub(crate) enum UserState {
    /// Every element (process).
    Elements(Vec<Row>),
    /// The reduced row so far (reduce).
    Reduced(Option<Row>),
    /// The accumulator (aggregate).
    Acc(Box<dyn AccValue>),
}

/// [`WindowContents`] of a user function.
pub(crate) struct UserContents {
    kind: Kind,
    input: SchemaRef,
    output: SchemaRef,
    converter: Option<RowConverter>,
    batch: Option<RecordBatch>,
}

impl UserContents {
    fn key_values(&self, key: &[u8]) -> UserResult<Row> {
        let Some(conv) = &self.converter else {
            return Ok(Vec::new());
        };
        let parser = conv.parser();
        let cols = conv.convert_rows([parser.parse(key)])?;
        Ok(cols.iter().map(|c| value_at(c, 0)).collect())
    }
}

fn bound(v: i64, window: &TimeWindow) -> Value {
    if window.is_global() {
        Value::Null
    } else {
        Value::Timestamp(v)
    }
}

impl WindowContents for UserContents {
    type State = UserState;

    fn prepare(&mut self, batch: &RecordBatch) -> UserResult<()> {
        self.batch = Some(batch.clone());
        Ok(())
    }

    fn new_state(&self) -> UserState {
        match &self.kind {
            Kind::Process(_) => UserState::Elements(Vec::new()),
            Kind::Reduce(_) => UserState::Reduced(None),
            Kind::Aggregate(f) => UserState::Acc(f.create()),
        }
    }

    fn add(&mut self, state: &mut UserState, row: usize) -> UserResult<()> {
        let batch = self.batch.as_ref().ok_or("window contents: add before prepare")?;
        let values = RowRef::new(batch, row).to_row();
        match (state, &self.kind) {
            (UserState::Elements(v), _) => v.push(values),
            (UserState::Reduced(acc), Kind::Reduce(f)) => {
                *acc = Some(match acc.take() {
                    Some(prev) => f(prev, values)?,
                    None => values,
                });
            }
            (UserState::Acc(acc), Kind::Aggregate(f)) => f.add(acc, values),
            _ => return Err("window contents: state of another function".into()),
        }
        Ok(())
    }

    fn merge(&mut self, into: &mut UserState, from: UserState) -> UserResult<()> {
        match (into, from, &self.kind) {
            (UserState::Elements(a), UserState::Elements(b), _) => a.extend(b),
            (UserState::Reduced(a), UserState::Reduced(b), Kind::Reduce(f)) => {
                *a = match (a.take(), b) {
                    (Some(x), Some(y)) => Some(f(x, y)?),
                    (x, y) => x.or(y),
                };
            }
            (UserState::Acc(a), UserState::Acc(b), Kind::Aggregate(f)) => {
                let taken = std::mem::replace(a, Box::new(()));
                *a = f.merge(taken, b);
            }
            _ => return Err("window contents: merging states of different functions".into()),
        }
        Ok(())
    }

    fn emit(&mut self, fired: &[Fired<'_, UserState>]) -> UserResult<Option<RecordBatch>> {
        if fired.is_empty() {
            return Ok(None);
        }
        let mut rows: Vec<Row> = Vec::new();
        for f in fired {
            let w = &f.window;
            match f.state {
                UserState::Elements(elements) => {
                    let key = self.key_values(f.key)?;
                    let ctx = WindowContext {
                        key: &key,
                        window: *w,
                        schema: &self.input,
                    };
                    let Kind::Process(p) = &mut self.kind else {
                        return Err("window contents: state of another function".into());
                    };
                    p.process(&ctx, elements, &mut rows)?;
                }
                UserState::Reduced(Some(row)) => {
                    let mut row = row.clone();
                    row.extend([bound(w.start, w), bound(w.end, w)]);
                    rows.push(row);
                }
                UserState::Reduced(None) => {}
                UserState::Acc(acc) => {
                    let Kind::Aggregate(func) = &self.kind else {
                        return Err("window contents: state of another function".into());
                    };
                    let results = func.result(acc.as_ref());
                    if results.is_empty() {
                        continue;
                    }
                    let mut prefix = self.key_values(f.key)?;
                    prefix.extend([bound(w.start, w), bound(w.end, w)]);
                    for result in results {
                        let mut row = prefix.clone();
                        row.extend(result);
                        rows.push(row);
                    }
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows_to_batch(&self.output, &rows)?))
    }

    fn codec(&self) -> Codec<UserState> {
        let function = match &self.kind {
            Kind::Aggregate(f) => Some(f.clone()),
            _ => None,
        };
        let decoder = function.clone();
        let encode = move |state: &UserState, buf: &mut Vec<u8>| {
            let stored = match state {
                UserState::Elements(v) => StoredRef::Elements(v),
                UserState::Reduced(r) => StoredRef::Reduced(r),
                UserState::Acc(acc) => {
                    let f = function.as_ref().ok_or("window contents: state of another function")?;
                    StoredRef::Acc(f.encode(acc.as_ref())?)
                }
            };
            crate::contract::state::encode_into(&stored, buf)
        };
        let decode = move |bytes: &mut &[u8]| -> UserResult<UserState> {
            Ok(match crate::contract::state::take::<Stored>(bytes)? {
                Stored::Elements(v) => UserState::Elements(v),
                Stored::Reduced(r) => UserState::Reduced(r),
                Stored::Acc(b) => {
                    let f = decoder
                        .as_ref()
                        .ok_or("restoring a window: the stored state is of an aggregate function")?;
                    UserState::Acc(f.decode(&b)?)
                }
            })
        };
        Codec::new(encode, decode)
    }
}

/// [`UserState`] as stored in checkpoints.
#[derive(Deserialize)]
enum Stored {
    Elements(Vec<Row>),
    Reduced(Option<Row>),
    Acc(Vec<u8>),
}

/// [`Stored`], borrowed for writing (same encoding).
#[derive(Serialize)]
enum StoredRef<'a> {
    Elements(&'a [Row]),
    Reduced(&'a Option<Row>),
    Acc(Vec<u8>),
}
