//! `connect(..).process(..)` on two keyed streams: one user function sees the rows of both, with
//! the key's state and timers shared between them (Flink's `KeyedCoProcessFunction`) — for
//! joins of one's own, enrichment with a second stream, or a control stream per key.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;

use super::keyed_process::{Handler, KeyedContext, KeyedProcessOp};
use super::{Operator, OperatorFactory, TaskContext, TimeDomain, UserResult};
use crate::contract::error::{Result, WeirError};
use crate::contract::schema::field_index;
use crate::row::{Row, RowRef};

/// Flink's `KeyedCoProcessFunction`: called per row of either input and per timer, with the
/// current key's state (the same state whichever input the row came from).
pub trait KeyedCoProcessFunction: Send + 'static {
    /// A row of the first stream.
    fn process_element1(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()>;

    /// A row of the second stream.
    fn process_element2(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()>;

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
}

/// The operator's description: each stream's key fields, the output schema, and a prototype
/// of the function cloned per subtask.
pub struct KeyedCoProcess<F> {
    /// The first stream's key fields.
    pub keys1: Vec<String>,
    /// The second stream's key fields (as many, of the same types, in order).
    pub keys2: Vec<String>,
    /// Output schema.
    pub output: SchemaRef,
    /// The function.
    pub function: Arc<Mutex<F>>,
}

impl<F: KeyedCoProcessFunction + Clone> KeyedCoProcess<F> {
    fn check(&self, inputs: &[SchemaRef]) -> Result<()> {
        if inputs.len() != 2 {
            return Err(WeirError::plan(format!(
                "connect(..).process takes two streams, found {}",
                inputs.len()
            )));
        }
        if self.keys1.is_empty() || self.keys1.len() != self.keys2.len() {
            return Err(WeirError::plan(format!(
                "connect(..).process needs both streams keyed by as many fields (first: {:?}, second: {:?})",
                self.keys1, self.keys2
            )));
        }
        let c1 = self
            .keys1
            .iter()
            .map(|k| field_index(&inputs[0], k, "first stream key"))
            .collect::<Result<Vec<_>>>()?;
        let c2 = self
            .keys2
            .iter()
            .map(|k| field_index(&inputs[1], k, "second stream key"))
            .collect::<Result<Vec<_>>>()?;
        super::join_schema::same_key_types(&inputs[0], &c1, &inputs[1], &c2)
    }
}

impl<F: KeyedCoProcessFunction + Clone> OperatorFactory for KeyedCoProcess<F> {
    fn kind(&self) -> &'static str {
        "co-process"
    }
    fn output_schema(&self, _input: &SchemaRef) -> Result<SchemaRef> {
        Err(WeirError::plan("connect(..).process takes two streams"))
    }
    fn create(&self, _input: &SchemaRef, _ctx: &TaskContext) -> Result<Box<dyn Operator>> {
        Err(WeirError::plan("connect(..).process takes two streams"))
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
        let keyed = [(&inputs[0], self.keys1.as_slice()), (&inputs[1], self.keys2.as_slice())];
        Ok(Box::new(KeyedProcessOp::new(
            Two(function),
            &keyed,
            self.output.clone(),
            ctx,
        )?))
    }
}

/// A [`KeyedCoProcessFunction`] as a [`Handler`] of two inputs.
struct Two<F>(F);

impl<F: KeyedCoProcessFunction> Handler for Two<F> {
    fn element(
        &mut self,
        input: usize,
        row: RowRef<'_>,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        match input {
            0 => self.0.process_element1(row, ctx, out),
            _ => self.0.process_element2(row, ctx, out),
        }
    }
    fn timer(&mut self, at: i64, domain: TimeDomain, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        self.0.on_timer(at, domain, ctx, out)
    }
}
