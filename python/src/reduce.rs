//! A Python function as the engine's rolling reduce (`key_by(..).reduce(f)`): the package's
//! wrapper gets the running value and the record as lists of values with the input's field
//! names, and returns the next running value. Each subtask has its own copy of the function
//! (`open`/`close` run per subtask, as in PyFlink).

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use weir::contract::UserResult;
use weir::operators::rolling_reduce::ReduceFunction;
use weir::prelude::*;

use crate::call::{self, describe, plain, value};

/// The wrapper (`weir.datastream.data_stream._RollingReduce`) of one subtask.
pub struct PyReduce {
    wrapper: Py<PyAny>,
    /// The input's field names, made once.
    names: Option<Py<PyTuple>>,
}

impl PyReduce {
    pub fn new(wrapper: Py<PyAny>) -> Self {
        PyReduce { wrapper, names: None }
    }
}

impl Clone for PyReduce {
    fn clone(&self) -> Self {
        PyReduce::new(call::copy_for_subtask(&self.wrapper))
    }
}

impl ReduceFunction for PyReduce {
    fn reduce(&mut self, running: Row, record: RowRef<'_>) -> UserResult<Row> {
        call::attach(|py| {
            let args = (|| -> PyResult<_> {
                let names = match &self.names {
                    Some(n) => n.bind(py).clone(),
                    None => {
                        let schema = record.schema();
                        let n = PyTuple::new(py, schema.fields().iter().map(|f| f.name().as_str()))?;
                        self.names = Some(n.clone().unbind());
                        n
                    }
                };
                let acc = PyList::empty(py);
                for v in &running {
                    acc.append(value(py, v)?)?;
                }
                let row = PyList::empty(py);
                for i in 0..names.len() {
                    row.append(value(py, &record.value(i))?)?;
                }
                Ok((names, acc, row))
            })()
            .map_err(|e| describe(py, e))?;
            let result = self.wrapper.bind(py).call1(args).map_err(|e| describe(py, e))?;
            let mut next = Vec::with_capacity(running.len());
            for v in result.try_iter().map_err(|e| describe(py, e))? {
                next.push(plain(&v.map_err(|e| describe(py, e))?)?);
            }
            Ok(next)
        })
    }

    fn close(&mut self) -> UserResult<()> {
        call::close(&self.wrapper)
    }
}
