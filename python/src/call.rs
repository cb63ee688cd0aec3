//! Calling Python from the engine's tasks: the GIL is taken once per batch (or per fired
//! window), the batch crosses as a `pyarrow.RecordBatch` through the Arrow C data interface (no
//! copy), and a Python exception becomes the task's error with Python's own description.

use std::cell::Cell;

use arrow::record_batch::RecordBatch;
use pyo3::prelude::*;
use pyo3::types::PyList;
use weir::contract::UserResult;
use weir::prelude::*;

use crate::bridge::{batch_from_py, batch_to_py};

thread_local! {
    /// Whether this thread keeps a Python thread state (see [`attach`]).
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// `Python::attach` for the engine's task threads. Taking the GIL on a thread without a Python
/// thread state creates one and destroys it again on release, microseconds each time — per
/// record for a keyed function. The first call on a thread therefore registers the thread once
/// more, so its state outlives the call (released with the GIL, never destroyed) and later calls
/// only take the GIL.
pub fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    Python::attach(|py| {
        KEPT.with(|kept| {
            if !kept.get() {
                kept.set(true);
                // SAFETY: called with the GIL held (inside `attach`), where `PyGILState_Ensure`
                // only counts one more use of this thread's state and returns; the count is
                // never given back, so the state stays registered for the thread's life.
                #[allow(unsafe_code)]
                unsafe {
                    pyo3::ffi::PyGILState_Ensure();
                }
            }
        });
        f(py)
    })
}

/// A Python exception as the engine's error text: the exception's own message (the `weir`
/// package's wrappers put the function's name, file and line and the record there).
pub fn describe(py: Python<'_>, e: PyErr) -> weir::contract::UserError {
    let kind = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let text = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    format!("{kind}: {text}").into()
}

/// `f(batch)` for a Python `f` returning a `pyarrow.RecordBatch`.
pub fn batch_to_batch(f: &Py<PyAny>, batch: RecordBatch) -> UserResult<RecordBatch> {
    attach(|py| {
        let arg = batch_to_py(py, &batch).map_err(|e| describe(py, e))?;
        let out = f.bind(py).call1((arg,)).map_err(|e| describe(py, e))?;
        batch_from_py(&out).map_err(|e| describe(py, e))
    })
}

/// This subtask's own copy of a Python function object (`copy.deepcopy`, as PyFlink gives each
/// subtask its own unpickled copy), so `open`/`close` and whatever the object keeps are per
/// subtask; an object that cannot be copied is shared, with a warning.
pub fn copy_for_subtask(f: &Py<PyAny>) -> Py<PyAny> {
    attach(|py| {
        match py
            .import("copy")
            .and_then(|copy| copy.call_method1("deepcopy", (f.bind(py),)))
        {
            Ok(copy) => copy.unbind(),
            Err(e) => {
                tracing::warn!(error = %describe(py, e), "a Python function could not be copied per subtask; its subtasks share it");
                f.clone_ref(py)
            }
        }
    })
}

/// Calls `close()` of a Python operator's function at the end of its input, when it has one.
pub fn close(f: &Py<PyAny>) -> UserResult<()> {
    attach(|py| {
        let f = f.bind(py);
        if f.hasattr("close").map_err(|e| describe(py, e))? {
            f.call_method0("close").map_err(|e| describe(py, e))?;
        }
        Ok(())
    })
}

/// A plain Python value (None, bool, int, float, str; the package's wrappers turn datetimes into
/// milliseconds) as a row value.
pub fn plain(v: &Bound<'_, PyAny>) -> UserResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = v.extract::<i64>() {
        return Ok(Value::Int(i));
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(Value::Float(f));
    }
    if let Ok(s) = v.extract::<String>() {
        return Ok(Value::Str(s));
    }
    Err(format!("a Python function returned {v}, which is not None, a bool, a number or a string").into())
}

/// A row value as a Python object (timestamps as milliseconds since the epoch).
pub fn value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Int(i) | Value::Timestamp(i) => i.into_pyobject(py)?.into_any(),
        Value::UInt(u) => u.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
    })
}

/// `f(key, window_start, window_end, elements)` for one fired window; its rows out.
pub fn window(f: &Py<PyAny>, ctx: &WindowContext<'_>, elements: &[Row], out: &mut Vec<Row>) -> UserResult<()> {
    let batch = weir::row::rows_to_batch(ctx.schema(), elements)?;
    let w = ctx.window();
    attach(|py| {
        let key = PyList::empty(py);
        for v in ctx.key() {
            key.append(value(py, v).map_err(|e| describe(py, e))?)
                .map_err(|e| describe(py, e))?;
        }
        let arg = batch_to_py(py, &batch).map_err(|e| describe(py, e))?;
        let result = f
            .bind(py)
            .call1((key, w.start, w.end, arg))
            .map_err(|e| describe(py, e))?;
        let result = batch_from_py(&result).map_err(|e| describe(py, e))?;
        out.extend((0..result.num_rows()).map(|i| RowRef::new(&result, i).to_row()));
        Ok(())
    })
}
