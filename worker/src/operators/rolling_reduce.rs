//! `key_by(..).reduce(f)`: Flink's rolling reduce. Each record is folded into its key's running
//! value, which goes out; a key's first record goes out as it is. The running value is a keyed
//! value state, so it is checkpointed, restored and split by key group like any other.

use super::UserResult;
use super::keyed_process::{KeyedContext, KeyedProcessFunction};
use crate::row::{Row, RowRef};
use crate::state::ValueStateDescriptor;

/// The state that holds a key's running value.
const RUNNING: &str = "reduce";

/// Flink's `ReduceFunction`: the next running value of a key from the last one and a record.
/// A closure is one; the Python package's functions are another (with a `close` hook).
pub trait ReduceFunction: Clone + Send + 'static {
    /// `running` folded with `record`, a row of the input's fields.
    fn reduce(&mut self, running: Row, record: RowRef<'_>) -> UserResult<Row>;

    /// The input ended (Flink's `close`).
    fn close(&mut self) -> UserResult<()> {
        Ok(())
    }
}

impl<F> ReduceFunction for F
where
    F: Fn(Row, RowRef<'_>) -> UserResult<Row> + Clone + Send + 'static,
{
    fn reduce(&mut self, running: Row, record: RowRef<'_>) -> UserResult<Row> {
        self(running, record)
    }
}

/// The rolling reduce as a keyed process function of the input's schema (cloned per subtask,
/// with its function).
#[derive(Clone)]
pub struct RollingReduce<F> {
    f: F,
    running: ValueStateDescriptor<Row>,
}

impl<F> RollingReduce<F> {
    /// `f(running, record)` is the key's next running value.
    pub fn new(f: F) -> Self {
        RollingReduce {
            f,
            running: ValueStateDescriptor::new(RUNNING),
        }
    }
}

impl<F: ReduceFunction> KeyedProcessFunction for RollingReduce<F> {
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        let state = ctx.state();
        let next = match state.value(&self.running) {
            None => row.to_row(),
            Some(running) => {
                let next = self.f.reduce(running, row)?;
                let width = row.schema().fields().len();
                if next.len() != width {
                    return Err(format!("reduce returned {} fields where its input has {width}", next.len()).into());
                }
                next
            }
        };
        state.update(&self.running, next.clone());
        out.push(next);
        Ok(())
    }

    fn close(&mut self) -> UserResult<()> {
        self.f.close()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::operators::OperatorFactory;
    use crate::operators::keyed_process::KeyedProcess;
    use crate::operators::testing::{batch_of, ctx, ints};
    use crate::row::Value;

    fn sum_of_v() -> KeyedProcess<RollingReduce<impl ReduceFunction>> {
        KeyedProcess {
            keys: vec!["k".into()],
            output: None,
            function: Arc::new(Mutex::new(RollingReduce::new(
                |mut acc: Row, row: RowRef<'_>| -> UserResult<Row> {
                    let (Value::Int(a), Some(b)) = (&acc[1], row.get_i64("v")) else {
                        return Err("not ints".into());
                    };
                    acc[1] = Value::Int(a + b);
                    Ok(acc)
                },
            ))),
        }
    }

    #[test]
    fn each_record_emits_its_keys_running_value_which_survives_a_restore() {
        let f = sum_of_v();
        let input = batch_of(&[("k", vec![1, 2, 1, 1]), ("v", vec![10, 5, 1, 2])]);
        let schema = input.schema();
        assert_eq!(f.output_schema(&schema).unwrap(), schema);
        let mut op = f.create(&schema, &ctx()).unwrap();
        let mut out = Vec::new();
        op.process_batch(input, &mut out).unwrap();
        assert_eq!(ints(&out, "k"), vec![1, 2, 1, 1]);
        assert_eq!(ints(&out, "v"), vec![10, 5, 11, 13]);

        let state = op.snapshot(1, false).unwrap().into_state().unwrap();
        let mut restored = f.create(&schema, &ctx()).unwrap();
        restored.restore(state).unwrap();
        let mut out = Vec::new();
        restored
            .process_batch(batch_of(&[("k", vec![2, 1, 3]), ("v", vec![100, 100, 100])]), &mut out)
            .unwrap();
        assert_eq!(ints(&out, "v"), vec![105, 113, 100]);
    }

    #[test]
    fn a_result_of_another_width_is_an_error_naming_both() {
        let f = KeyedProcess {
            keys: vec!["k".into()],
            output: None,
            function: Arc::new(Mutex::new(RollingReduce::new(
                |_: Row, _: RowRef<'_>| -> UserResult<Row> { Ok(vec![Value::Int(1)]) },
            ))),
        };
        let input = batch_of(&[("k", vec![1, 1]), ("v", vec![1, 2])]);
        let mut op = f.create(&input.schema(), &ctx()).unwrap();
        let err = op.process_batch(input, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("1 fields where its input has 2"), "{err}");
    }
}
