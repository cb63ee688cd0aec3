//! `key_by(..).process(..)`: a user function per record with keyed state and timers (Flink's
//! `KeyedProcessFunction`). Event-time timers fire when the watermark passes them;
//! processing-time timers when the wall clock does.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::{Operator, OperatorFactory, TaskContext, TimeDomain, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::contract::{Clock, SharedClock};
use crate::keys;
use crate::row::{Row, RowRef, Value, rows_to_batch, value_at};
use crate::state::{KeyedStateStore, StateHandle};

/// What a keyed process function sees: the current key's state, timers and time.
pub struct KeyedContext<'a> {
    state: StateHandle<'a>,
    key_group: u32,
    key: &'a [u8],
    key_source: KeySource<'a>,
    key_values: std::cell::OnceCell<Row>,
    timers: &'a mut Timers,
    watermark: i64,
    clock: &'a dyn Clock,
    time: ElementTime<'a>,
}

/// The time `KeyedContext::timestamp` answers: the record's event-time column at its row, a
/// firing timer's time, or none.
enum ElementTime<'a> {
    None,
    Column(&'a ArrayRef, usize),
    Timer(i64),
}

/// Where the current key's values come from, decoded only if the function asks.
enum KeySource<'a> {
    /// Row `row` of the key columns of a batch.
    Batch(&'a RecordBatch, &'a [usize], usize),
    /// The key bytes, through the row converter.
    Encoded(&'a RowConverter),
}

#[derive(Default)]
struct Timers {
    event: BTreeSet<(i64, u32, Box<[u8]>)>,
    processing: BTreeSet<(i64, u32, Box<[u8]>)>,
}

impl<'a> KeyedContext<'a> {
    /// The current key's state.
    pub fn state(&mut self) -> &mut StateHandle<'a> {
        &mut self.state
    }

    /// The values of the current key, in `key_by` order.
    pub fn current_key(&self) -> &Row {
        self.key_values.get_or_init(|| match self.key_source {
            KeySource::Batch(batch, columns, row) => columns.iter().map(|c| value_at(batch.column(*c), row)).collect(),
            KeySource::Encoded(converter) => {
                let parser = converter.parser();
                match converter.convert_rows([parser.parse(self.key)]) {
                    Ok(cols) => cols.iter().map(|c| value_at(c, 0)).collect(),
                    // Bytes this converter wrote always decode; keep a failure visible anyway.
                    Err(e) => vec![Value::Str(format!("<key not decodable: {e}>"))],
                }
            }
        })
    }

    /// The current record's event time in ms (Flink's `ctx.timestamp()`): its event-time field,
    /// `None` when the stream has none; in `on_timer`, the timer's time.
    pub fn timestamp(&self) -> Option<i64> {
        match self.time {
            ElementTime::None => None,
            ElementTime::Column(column, row) => value_at(column, row).as_i64(),
            ElementTime::Timer(at) => Some(at),
        }
    }

    /// The current watermark (event time).
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Processing time, ms (the job's clock: the wall clock unless a test sets one).
    pub fn current_processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Calls `on_timer` for this key once the watermark reaches `timestamp`.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.timers.event.insert((timestamp, self.key_group, self.key.into()));
    }

    /// Calls `on_timer` for this key once the wall clock reaches `timestamp` (ms).
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        self.timers
            .processing
            .insert((timestamp, self.key_group, self.key.into()));
    }

    /// Cancels an event-time timer of this key.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.timers.event.remove(&(timestamp, self.key_group, self.key.into()));
    }

    /// Cancels a processing-time timer of this key.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        self.timers
            .processing
            .remove(&(timestamp, self.key_group, self.key.into()));
    }
}

/// Flink's `KeyedProcessFunction`: called per record and per timer, with the key's state.
pub trait KeyedProcessFunction: Send + 'static {
    /// One record of the current key; append output rows (of the declared schema) to `out`.
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()>;

    /// A timer of the current key fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_>,
        _out: &mut Vec<Row>,
    ) -> UserResult<()> {
        Ok(())
    }

    /// The input ended (Flink's `close`): release what the function holds, flush what it counted.
    fn close(&mut self) -> UserResult<()> {
        Ok(())
    }
}

/// The operator: keys, output schema, and a prototype of the function cloned per subtask.
pub struct KeyedProcess<F> {
    /// Key fields.
    pub keys: Vec<String>,
    /// Output schema; `None`: the input's (a function that emits records of its input's type,
    /// such as a rolling reduce).
    pub output: Option<SchemaRef>,
    /// The function.
    pub function: Arc<Mutex<F>>,
}

impl<F: KeyedProcessFunction + Clone> OperatorFactory for KeyedProcess<F> {
    fn kind(&self) -> &'static str {
        "process"
    }
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        for k in &self.keys {
            field_index(input, k, "process key")?;
        }
        Ok(self.output.clone().unwrap_or_else(|| input.clone()))
    }
    fn create(&self, input: &SchemaRef, ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        let function = self.function.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let output = self.output_schema(input)?;
        let op = KeyedProcessOp::new(One(function), &[(input, &self.keys)], output, ctx)?;
        Ok(Box::new(op))
    }
}

/// The user function behind a keyed process operator, told which input a row came from (one
/// for `process`, two for `connect(..).process`).
pub(crate) trait Handler: Send {
    /// A row of input `input`.
    fn element(
        &mut self,
        input: usize,
        row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()>;
    /// A timer of the current key fired.
    fn timer(&mut self, at: i64, domain: TimeDomain, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()>;

    /// Every input ended.
    fn close(&mut self) -> UserResult<()> {
        Ok(())
    }

    /// Whether input `input` is keyed (a broadcast input is not: its rows go to
    /// [`Handler::unkeyed`], with no key's state).
    fn keyed(&self, _input: usize) -> bool {
        true
    }

    /// A row of an input that is not keyed.
    fn unkeyed(&mut self, _input: usize, _row: RowRef<'_>, _out: &mut Vec<Row>) -> UserResult<()> {
        Ok(())
    }

    /// Whether the function keeps state of its own beside the keyed state (broadcast state),
    /// stored with the timers by [`Handler::snapshot_own`].
    fn has_own_state(&self) -> bool {
        false
    }

    /// The function's own state's checkpoint bytes.
    fn snapshot_own(&self) -> UserResult<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Restores the function's own state: this subtask's bytes, or another old subtask's when
    /// the parallelism changed.
    fn restore_own(&mut self, _bytes: &[u8]) -> UserResult<()> {
        Ok(())
    }
}

/// A [`KeyedProcessFunction`] as a [`Handler`] of one input.
struct One<F>(F);

impl<F: KeyedProcessFunction> Handler for One<F> {
    fn element(
        &mut self,
        _input: usize,
        row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        self.0.process_element(row, ctx, out)
    }
    fn timer(&mut self, at: i64, domain: TimeDomain, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        self.0.on_timer(at, domain, ctx, out)
    }
    fn close(&mut self) -> UserResult<()> {
        self.0.close()
    }
}

/// The operator of `process` and `connect(..).process`: keyed state and timers shared by its
/// inputs.
pub(crate) struct KeyedProcessOp<H> {
    handler: H,
    /// Each input's key columns.
    columns: Vec<Vec<usize>>,
    /// Each input's event-time column, if it has one.
    times: Vec<Option<usize>>,
    converter: RowConverter,
    output: SchemaRef,
    max_parallelism: u32,
    store: KeyedStateStore,
    /// This subtask's key groups (the timers it restores).
    key_groups: (u32, u32),
    timers: Timers,
    watermark: i64,
    clock: SharedClock,
}

impl<H: Handler> KeyedProcessOp<H> {
    /// An instance for inputs of these schemas keyed by these fields (the same key types on
    /// every input).
    pub(crate) fn new(
        handler: H,
        inputs: &[(&SchemaRef, &[String])],
        output: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Self> {
        let mut columns = Vec::new();
        for (schema, keys) in inputs {
            let c = keys
                .iter()
                .map(|k| field_index(schema, k, "process key"))
                .collect::<Result<Vec<_>>>()?;
            if c.is_empty() {
                return Err(WeirError::plan("process needs a keyed stream (key_by first)"));
            }
            columns.push(c);
        }
        let (first, first_columns) = (inputs[0].0, &columns[0]);
        for ((schema, _), c) in inputs.iter().zip(&columns).skip(1) {
            super::join_schema::same_key_types(first, first_columns, schema, c)?;
        }
        let converter = RowConverter::new(
            first_columns
                .iter()
                .map(|c| SortField::new(first.field(*c).data_type().clone()))
                .collect(),
        )?;
        let times = inputs
            .iter()
            .map(|(schema, _)| {
                schema
                    .fields()
                    .iter()
                    .position(|f| f.metadata().contains_key(crate::contract::schema::EVENT_TIME_METADATA))
            })
            .collect();
        Ok(KeyedProcessOp {
            handler,
            columns,
            times,
            converter,
            output,
            max_parallelism: ctx.max_parallelism,
            store: KeyedStateStore::on_backend(&ctx.state, ctx.clock.clone())?,
            key_groups: crate::keys::key_group_range(ctx.subtask as u32, ctx.max_parallelism, ctx.parallelism as u32),
            timers: Timers::default(),
            watermark: i64::MIN,
            clock: ctx.clock.clone(),
        })
    }

    fn fire(
        &mut self,
        due: Vec<(i64, u32, Box<[u8]>)>,
        domain: TimeDomain,
        out: &mut Vec<RecordBatch>,
    ) -> UserResult<()> {
        let mut rows = Vec::new();
        for (ts, kg, key) in due {
            self.store.load(kg, &key)?;
            let mut ctx = KeyedContext {
                state: self.store.handle(kg, &key),
                key_group: kg,
                key: &key,
                key_source: KeySource::Encoded(&self.converter),
                key_values: std::cell::OnceCell::new(),
                timers: &mut self.timers,
                watermark: self.watermark,
                clock: self.clock.as_ref(),
                time: ElementTime::Timer(ts),
            };
            self.handler.timer(ts, domain, &mut ctx, &mut rows)?;
        }
        if !rows.is_empty() {
            out.push(rows_to_batch(&self.output, &rows)?);
        }
        Ok(())
    }
}

impl<H: Handler> Operator for KeyedProcessOp<H> {
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.process_input(0, batch, out)
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        if !self.handler.keyed(input) {
            let mut output = Vec::new();
            for i in 0..batch.num_rows() {
                self.handler.unkeyed(input, RowRef::new(&batch, i), &mut output)?;
            }
            if !output.is_empty() {
                out.push(rows_to_batch(&self.output, &output)?);
            }
            return Ok(());
        }
        let columns = &self.columns[input];
        let cols: Vec<ArrayRef> = columns.iter().map(|c| batch.column(*c).clone()).collect();
        let hashes = keys::hash_rows(&cols, batch.num_rows())?;
        let rows = self.converter.convert_columns(&cols)?;
        let time_column = self.times[input].map(|c| batch.column(c));
        let mut output = Vec::new();
        for (i, hash) in hashes.iter().enumerate() {
            let kg = keys::key_group_of_hash(*hash, self.max_parallelism);
            let key = rows.row(i);
            let key = key.data();
            self.store.load(kg, key)?;
            let mut ctx = KeyedContext {
                state: self.store.handle(kg, key),
                key_group: kg,
                key,
                key_source: KeySource::Batch(&batch, columns, i),
                key_values: std::cell::OnceCell::new(),
                timers: &mut self.timers,
                watermark: self.watermark,
                clock: self.clock.as_ref(),
                time: time_column.map_or(ElementTime::None, |c| ElementTime::Column(c, i)),
            };
            self.handler
                .element(input, RowRef::new(&batch, i), &mut ctx, &mut output)?;
        }
        if !output.is_empty() {
            out.push(rows_to_batch(&self.output, &output)?);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.watermark = self.watermark.max(watermark);
        // Timers registered while firing fire too if already due.
        loop {
            let mut due = Vec::new();
            while self.timers.event.first().is_some_and(|t| t.0 <= watermark) {
                due.push(self.timers.event.pop_first().expect("checked"));
            }
            if due.is_empty() {
                return Ok(());
            }
            self.fire(due, TimeDomain::EventTime, out)?;
        }
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.timers.processing.first().map(|t| t.0)
    }

    fn on_end(&mut self, _out: &mut Vec<RecordBatch>) -> UserResult<()> {
        self.handler.close()
    }

    fn snapshot(&mut self, _checkpoint_id: u64, changes_only: bool) -> UserResult<crate::contract::state::Snapshot> {
        // Keyed: the store's records. Non-keyed: the watermark and every timer (event: true)
        // with its key group, which a restore filters by its own key groups.
        let timers = [(true, &self.timers.event), (false, &self.timers.processing)]
            .into_iter()
            .flat_map(|(event, set)| set.iter().map(move |(at, kg, key)| (event, *at, *kg, key.as_ref())));
        let mut operator = crate::checkpoint::encode_timers(self.watermark, timers)?;
        if self.handler.has_own_state() {
            operator = crate::contract::state::encode(&(operator, self.handler.snapshot_own()?))?;
        }
        self.store.snapshot(changes_only, Some(operator))
    }

    fn restore(&mut self, mut state: crate::contract::OperatorState) -> UserResult<()> {
        if self.handler.has_own_state() {
            // Each old subtask stored (timers, own state); every copy of the own state is the
            // same, so this subtask's, or else the first, is restored.
            type Stored = (Vec<u8>, Vec<u8>);
            let own: Option<Stored> = state
                .operator
                .as_deref()
                .map(crate::contract::state::decode)
                .transpose()?;
            let all: Vec<Stored> = state
                .union
                .iter()
                .map(|b| crate::contract::state::decode(b))
                .collect::<UserResult<_>>()?;
            if let Some((_, bytes)) = own.as_ref().or(all.first()) {
                self.handler.restore_own(bytes)?;
            }
            state.operator = own.map(|o| o.0);
            state.union = all.into_iter().map(|a| a.0).collect();
        }
        self.store.restore(&state)?;
        let timers = &mut self.timers;
        self.watermark = crate::checkpoint::restore_timers(&state, self.key_groups, |event, at, kg, key| {
            let set = if event {
                &mut timers.event
            } else {
                &mut timers.processing
            };
            set.insert((at, kg, key));
        })?;
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Vec<RecordBatch>) -> UserResult<()> {
        let mut due = Vec::new();
        while self.timers.processing.first().is_some_and(|t| t.0 <= now) {
            due.push(self.timers.processing.pop_first().expect("checked"));
        }
        if due.is_empty() {
            Ok(())
        } else {
            self.fire(due, TimeDomain::ProcessingTime, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ManualClock;
    use crate::operators::testing::{batch_of, ctx};
    use crate::state::ValueStateDescriptor;
    use arrow::datatypes::{DataType, Field, Schema};

    /// Counts per key; emits the count when an event-time timer 10 ms after the row fires, and
    /// a processing-time timer 100 ms after the first row.
    #[derive(Clone)]
    struct Counter;

    impl KeyedProcessFunction for Counter {
        fn process_element(
            &mut self,
            row: RowRef<'_>,
            ctx: &mut KeyedContext<'_>,
            _out: &mut Vec<Row>,
        ) -> UserResult<()> {
            let count = ValueStateDescriptor::<i64>::new("count");
            let n = ctx.state().value(&count).unwrap_or(0) + 1;
            ctx.state().update(&count, n);
            ctx.register_event_time_timer(row.get_i64("ts").unwrap_or(0) + 10);
            if n == 1 {
                let at = ctx.current_processing_time() + 100;
                ctx.register_processing_time_timer(at);
            }
            Ok(())
        }
        fn on_timer(
            &mut self,
            _ts: i64,
            domain: TimeDomain,
            ctx: &mut KeyedContext<'_>,
            out: &mut Vec<Row>,
        ) -> UserResult<()> {
            let count = ValueStateDescriptor::<i64>::new("count");
            let n = ctx.state().value(&count).unwrap_or(0);
            let tag = if domain == TimeDomain::EventTime { 0 } else { 1 };
            out.push(vec![ctx.current_key()[0].clone(), Value::Int(n), Value::Int(tag)]);
            Ok(())
        }
    }

    #[test]
    fn event_and_processing_time_timers_fire_with_the_keys_state() {
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
            Field::new("domain", DataType::Int64, false),
        ]));
        let f = KeyedProcess {
            keys: vec!["k".into()],
            output: Some(output),
            function: Arc::new(Mutex::new(Counter)),
        };
        let clock = ManualClock::new(1_000);
        let ctx = TaskContext {
            clock: clock.shared(),
            ..ctx()
        };
        let input = batch_of(&[("k", vec![1, 1, 2]), ("ts", vec![0, 5, 7])]);
        let mut op = f.create(&input.schema(), &ctx).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(op.next_processing_timer(), Some(1_100));
        op.on_watermark(14, &mut out).unwrap();
        let rows = |out: &[RecordBatch]| -> Vec<(i64, i64, i64)> {
            let (k, n, d) = (
                crate::operators::testing::ints(out, "k"),
                crate::operators::testing::ints(out, "n"),
                crate::operators::testing::ints(out, "domain"),
            );
            k.into_iter().zip(n).zip(d).map(|((k, n), d)| (k, n, d)).collect()
        };
        assert_eq!(rows(&out), [(1, 2, 0)], "key 1's timer at 10 fired; 15 and 17 wait");
        clock.set(1_100);
        let mut later = Vec::new();
        op.on_processing_time(1_100, &mut later).unwrap();
        let mut fired = rows(&later);
        fired.sort();
        assert_eq!(fired, [(1, 2, 1), (2, 1, 1)]);
    }
}
