//! `key_by(..).connect(&rules.broadcast()).process_broadcast(..)`: Flink's broadcast state
//! pattern. Rows of the broadcast stream reach every subtask and write the [`BroadcastState`];
//! rows of the keyed stream read it, with their key's state and timers. The broadcast state is
//! stored with each checkpoint and restored at any parallelism.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;

use super::keyed_process::{Handler, KeyedContext, KeyedProcessOp};
use super::{Operator, OperatorFactory, TaskContext, TimeDomain, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::row::{Row, RowRef};
use crate::state::broadcast::BroadcastState;

/// Flink's `KeyedBroadcastProcessFunction`: keyed rows read the broadcast state, broadcast rows
/// write it.
pub trait KeyedBroadcastProcessFunction: Send + 'static {
    /// A row of the keyed stream, with its key's state and timers and the broadcast state
    /// (read-only, as in Flink: every subtask must hold the same).
    fn process_element(
        &mut self,
        row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        broadcast: &BroadcastState,
        out: &mut Vec<Row>,
    ) -> UserResult<()>;

    /// A row of the broadcast stream (every subtask gets each one).
    fn process_broadcast_element(
        &mut self,
        row: RowRef<'_>,
        broadcast: &mut BroadcastState,
        out: &mut Vec<Row>,
    ) -> UserResult<()>;

    /// A timer of the current key fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_>,
        _broadcast: &BroadcastState,
        _out: &mut Vec<Row>,
    ) -> UserResult<()> {
        Ok(())
    }
}

/// The operator's description: the keyed stream's key fields, the output schema, and a
/// prototype of the function cloned per subtask.
pub struct KeyedBroadcastProcess<F> {
    /// The keyed stream's key fields.
    pub keys: Vec<String>,
    /// Output schema.
    pub output: SchemaRef,
    /// The function.
    pub function: Arc<Mutex<F>>,
}

impl<F: KeyedBroadcastProcessFunction + Clone> KeyedBroadcastProcess<F> {
    fn check(&self, inputs: &[SchemaRef]) -> Result<()> {
        if inputs.len() != 2 {
            return Err(WeirError::plan(format!(
                "process_broadcast takes a keyed stream and a broadcast one, found {} inputs",
                inputs.len()
            )));
        }
        if self.keys.is_empty() {
            return Err(WeirError::plan(
                "process_broadcast needs the first stream keyed (key_by)",
            ));
        }
        for k in &self.keys {
            field_index(&inputs[0], k, "process_broadcast key")?;
        }
        Ok(())
    }
}

impl<F: KeyedBroadcastProcessFunction + Clone> OperatorFactory for KeyedBroadcastProcess<F> {
    fn kind(&self) -> &'static str {
        "broadcast-process"
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Err(WeirError::plan("process_broadcast takes two streams"))
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Err(WeirError::plan("process_broadcast takes two streams"))
    }
    fn distinct_inputs(&self) -> bool {
        true
    }
    fn output_schema_of(&self, inputs: &[SchemaRef]) -> Result<SchemaRef> {
        self.check(inputs)?;
        Ok(self.output.clone())
    }
    fn create_of(&self, inputs: &[SchemaRef], ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        self.check(inputs)?;
        let function = self.function.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let handler = WithBroadcast {
            function,
            state: BroadcastState::default(),
        };
        let keyed = [(&inputs[0], self.keys.as_slice())];
        Ok(Box::new(KeyedProcessOp::new(
            handler,
            &keyed,
            self.output.clone(),
            ctx,
        )?))
    }
}

/// A [`KeyedBroadcastProcessFunction`] and its broadcast state as a [`Handler`].
struct WithBroadcast<F> {
    function: F,
    state: BroadcastState,
}

impl<F: KeyedBroadcastProcessFunction> Handler for WithBroadcast<F> {
    fn element(
        &mut self,
        _input: usize,
        row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        self.function.process_element(row, ctx, &self.state, out)
    }
    fn timer(&mut self, at: i64, domain: TimeDomain, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        self.function.on_timer(at, domain, ctx, &self.state, out)
    }
    fn keyed(&self, input: usize) -> bool {
        input == 0
    }
    fn unkeyed(&mut self, _input: usize, row: RowRef<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        self.function.process_broadcast_element(row, &mut self.state, out)
    }
    fn has_own_state(&self) -> bool {
        true
    }
    fn snapshot_own(&self) -> UserResult<Vec<u8>> {
        self.state.to_bytes()
    }
    fn restore_own(&mut self, bytes: &[u8]) -> UserResult<()> {
        self.state = BroadcastState::from_bytes(bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::contract::OperatorState;
    use crate::operators::testing::{batch_of, ctx, ints};
    use crate::row::Value;
    use crate::state::MapStateDescriptor;

    /// Emits each keyed row's value times the factor the broadcast stream set for its key (1
    /// when none).
    #[derive(Clone)]
    struct Scale;

    fn factors() -> MapStateDescriptor<i64, i64> {
        MapStateDescriptor::new("factors")
    }

    impl KeyedBroadcastProcessFunction for Scale {
        fn process_element(
            &mut self,
            row: RowRef<'_>,
            _ctx: &mut KeyedContext<'_>,
            broadcast: &BroadcastState,
            out: &mut Vec<Row>,
        ) -> UserResult<()> {
            let (k, v) = (row.get_i64("k").unwrap_or(0), row.get_i64("v").unwrap_or(0));
            let f = broadcast.get(&factors(), &k)?.unwrap_or(1);
            out.push(vec![Value::Int(k), Value::Int(v * f)]);
            Ok(())
        }
        fn process_broadcast_element(
            &mut self,
            row: RowRef<'_>,
            broadcast: &mut BroadcastState,
            _out: &mut Vec<Row>,
        ) -> UserResult<()> {
            broadcast.put(
                &factors(),
                &row.get_i64("k").unwrap_or(0),
                &row.get_i64("f").unwrap_or(1),
            )
        }
    }

    /// The broadcast state written before a checkpoint is there after restoring it, also into
    /// a subtask of another parallelism that holds no copy of its own.
    #[test]
    fn broadcast_state_survives_a_restore_at_another_parallelism() {
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let factory = KeyedBroadcastProcess {
            keys: vec!["k".into()],
            output,
            function: Arc::new(Mutex::new(Scale)),
        };
        let events = batch_of(&[("k", vec![1, 2]), ("v", vec![10, 10])]);
        let rules = batch_of(&[("k", vec![1]), ("f", vec![3])]);
        let inputs = [events.schema(), rules.schema()];
        let mut op = factory.create_of(&inputs, &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_input(1, rules, &mut out).unwrap();
        op.process_input(0, events.clone(), &mut out).unwrap();
        assert_eq!(ints(&out, "v"), vec![30, 10]);
        let stored = op.snapshot(1, false).unwrap().into_state().unwrap();
        for own in [true, false] {
            let state = OperatorState {
                operator: own.then(|| stored.operator.clone()).flatten(),
                union: vec![stored.operator.clone().unwrap()],
                keyed: stored.keyed.clone(),
                deltas: Vec::new(),
            };
            let mut restored = factory.create_of(&inputs, &ctx()).unwrap();
            restored.restore(state).unwrap();
            let mut out = Vec::new();
            restored.process_input(0, events.clone(), &mut out).unwrap();
            assert_eq!(ints(&out, "v"), vec![30, 10], "restored (own copy: {own})");
        }
    }
}
