//! `key_by(..).process(KeyedProcessFunction)` from Python: the engine's keyed process
//! operator calls the Python function per record and per timer with the GIL held, and the
//! function reaches its key's state and timers through a [`KeyedCtx`] valid for that call only.
//! Python state values are pickled bytes in the engine's keyed state (`py:value:<name>`,
//! `py:list:<name>`, `py:map:<name>`), so they are checkpointed, restored and redistributed
//! by key group like every operator's.

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use weir::contract::{TimeDomain, UserResult};
use weir::operators::keyed_process::{KeyedContext, KeyedProcessFunction};
use weir::prelude::*;

use crate::call::{self, describe, plain, value};

/// A Python keyed process function: `element(ctx, names, values, time)` and `timer(ctx,
/// timestamp, event_time)` of the package's wrapper, each returning the output rows as lists of
/// values.
pub struct PyKeyedProcess {
    /// The wrapper (one per subtask: cloning deep-copies it, as each PyFlink subtask has its own
    /// function object).
    wrapper: Arc<Py<PyAny>>,
    /// The input's field names, made once.
    names: Option<Py<PyTuple>>,
}

impl PyKeyedProcess {
    pub fn new(wrapper: Py<PyAny>) -> Self {
        PyKeyedProcess {
            wrapper: Arc::new(wrapper),
            names: None,
        }
    }
}

impl Clone for PyKeyedProcess {
    fn clone(&self) -> Self {
        PyKeyedProcess::new(call::copy_for_subtask(&self.wrapper))
    }
}

/// The current key's state and timers, for the duration of one call into Python.
#[pyclass(name = "KeyedCtx", module = "weir._weir", unsendable)]
pub struct KeyedCtx {
    /// Valid while the call that made it runs; null after (a state handle kept by the function
    /// and used later fails cleanly instead of touching freed memory).
    ctx: *mut KeyedContext<'static>,
}

impl KeyedCtx {
    fn get(&mut self) -> PyResult<&mut KeyedContext<'static>> {
        if self.ctx.is_null() {
            return Err(PyRuntimeError::new_err(
                "keyed state and timers can only be used inside process_element or on_timer",
            ));
        }
        // SAFETY: non-null only during the call that set it, which holds the `&mut` it came from
        // and the GIL (the object is `unsendable`: it never leaves that thread).
        #[allow(unsafe_code)]
        Ok(unsafe { &mut *self.ctx })
    }
}

fn value_desc(name: &str) -> ValueStateDescriptor<Vec<u8>> {
    ValueStateDescriptor::new(&format!("py:value:{name}"))
}
fn list_desc(name: &str) -> ListStateDescriptor<Vec<u8>> {
    ListStateDescriptor::new(&format!("py:list:{name}"))
}
fn map_desc(name: &str) -> MapStateDescriptor<Vec<u8>, Vec<u8>> {
    MapStateDescriptor::new(&format!("py:map:{name}"))
}

#[pymethods]
impl KeyedCtx {
    fn value_get<'py>(&mut self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let v = self.get()?.state().value(&value_desc(name));
        Ok(v.map(|b| PyBytes::new(py, &b)))
    }

    fn value_put(&mut self, name: &str, bytes: Vec<u8>) -> PyResult<()> {
        self.get()?.state().update(&value_desc(name), bytes);
        Ok(())
    }

    /// Clears a state of the current key (`kind`: value, list or map).
    fn clear(&mut self, kind: &str, name: &str) -> PyResult<()> {
        self.get()?.state().clear(&format!("py:{kind}:{name}"));
        Ok(())
    }

    fn list_get<'py>(&mut self, py: Python<'py>, name: &str) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let items = self.get()?.state().list(&list_desc(name));
        Ok(items.iter().map(|b| PyBytes::new(py, b)).collect())
    }

    fn list_add(&mut self, name: &str, bytes: Vec<u8>) -> PyResult<()> {
        self.get()?.state().add(&list_desc(name), bytes);
        Ok(())
    }

    fn list_put(&mut self, name: &str, items: Vec<Vec<u8>>) -> PyResult<()> {
        let state = self.get()?.state();
        state.clear(&format!("py:list:{name}"));
        for item in items {
            state.add(&list_desc(name), item);
        }
        Ok(())
    }

    fn map_get<'py>(&mut self, py: Python<'py>, name: &str, key: Vec<u8>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let v = self.get()?.state().get_entry(&map_desc(name), &key);
        Ok(v.map(|b| PyBytes::new(py, &b)))
    }

    fn map_put(&mut self, name: &str, key: Vec<u8>, value: Vec<u8>) -> PyResult<()> {
        self.get()?.state().put_entry(&map_desc(name), key, value);
        Ok(())
    }

    fn map_remove(&mut self, name: &str, key: Vec<u8>) -> PyResult<()> {
        self.get()?.state().remove_entry(&map_desc(name), &key);
        Ok(())
    }

    fn map_items<'py>(
        &mut self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let entries = self.get()?.state().entries(&map_desc(name));
        Ok(entries
            .iter()
            .map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v)))
            .collect())
    }

    fn register_event_time_timer(&mut self, timestamp: i64) -> PyResult<()> {
        self.get()?.register_event_time_timer(timestamp);
        Ok(())
    }

    fn register_processing_time_timer(&mut self, timestamp: i64) -> PyResult<()> {
        self.get()?.register_processing_time_timer(timestamp);
        Ok(())
    }

    fn delete_event_time_timer(&mut self, timestamp: i64) -> PyResult<()> {
        self.get()?.delete_event_time_timer(timestamp);
        Ok(())
    }

    fn delete_processing_time_timer(&mut self, timestamp: i64) -> PyResult<()> {
        self.get()?.delete_processing_time_timer(timestamp);
        Ok(())
    }

    fn current_watermark(&mut self) -> PyResult<i64> {
        Ok(self.get()?.current_watermark())
    }

    fn current_processing_time(&mut self) -> PyResult<i64> {
        Ok(self.get()?.current_processing_time())
    }

    fn current_key<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let key = self.get()?.current_key().clone();
        let list = PyList::empty(py);
        for v in &key {
            list.append(value(py, v)?)?;
        }
        Ok(list)
    }
}

/// Calls `method` of the wrapper with a context for `ctx` first and `args` after; the output
/// rows it returns (lists of plain values) go to `out`.
fn call_with_ctx<'py>(
    py: Python<'py>,
    wrapper: &Py<PyAny>,
    method: &str,
    ctx: &mut KeyedContext<'_>,
    rest: Vec<Bound<'py, PyAny>>,
    out: &mut Vec<Row>,
) -> UserResult<()> {
    // The lifetime is erased for the call's duration only: the object is nulled below, before
    // `ctx`'s borrow ends, whatever the call did.
    #[allow(unsafe_code)]
    let raw: *mut KeyedContext<'static> = unsafe { std::mem::transmute(ctx as *mut KeyedContext<'_>) };
    let handle = Bound::new(py, KeyedCtx { ctx: raw }).map_err(|e| describe(py, e))?;
    let mut args = vec![handle.clone().into_any()];
    args.extend(rest);
    let result = PyTuple::new(py, args).and_then(|a| wrapper.bind(py).call_method1(method, a));
    handle.borrow_mut().ctx = std::ptr::null_mut();
    let rows = result.map_err(|e| describe(py, e))?;
    for row in rows.try_iter().map_err(|e| describe(py, e))? {
        let row = row.map_err(|e| describe(py, e))?;
        let mut values = Vec::new();
        for v in row.try_iter().map_err(|e| describe(py, e))? {
            values.push(plain(&v.map_err(|e| describe(py, e))?)?);
        }
        out.push(values);
    }
    Ok(())
}

impl KeyedProcessFunction for PyKeyedProcess {
    fn process_element(&mut self, row: RowRef<'_>, ctx: &mut KeyedContext<'_>, out: &mut Vec<Row>) -> UserResult<()> {
        let schema = row.schema();
        let time = ctx.timestamp();
        let values = row.to_row();
        call::attach(|py| {
            let names = match &self.names {
                Some(n) => n.clone_ref(py),
                None => {
                    let n = PyTuple::new(py, schema.fields().iter().map(|f| f.name().as_str()))
                        .map_err(|e| describe(py, e))?
                        .unbind();
                    self.names = Some(n.clone_ref(py));
                    n
                }
            };
            let args = (|| -> PyResult<Vec<Bound<'_, PyAny>>> {
                let list = PyList::empty(py);
                for v in &values {
                    list.append(value(py, v)?)?;
                }
                Ok(vec![
                    names.into_bound(py).into_any(),
                    list.into_any(),
                    time.into_pyobject(py)?.into_any(),
                ])
            })()
            .map_err(|e| describe(py, e))?;
            call_with_ctx(py, &self.wrapper, "element", ctx, args, out)
        })
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_>,
        out: &mut Vec<Row>,
    ) -> UserResult<()> {
        let event_time = matches!(domain, TimeDomain::EventTime);
        call::attach(|py| {
            let args = vec![
                timestamp
                    .into_pyobject(py)
                    .map_err(|e| describe(py, e.into()))?
                    .into_any(),
                pyo3::types::PyBool::new(py, event_time).to_owned().into_any(),
            ];
            call_with_ctx(py, &self.wrapper, "timer", ctx, args, out)
        })
    }

    fn close(&mut self) -> UserResult<()> {
        call::close(&self.wrapper)
    }
}
