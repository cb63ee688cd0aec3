//! Streams, keyed streams and windowed streams as Python classes. Each method adds to the
//! job's graph and returns the new stream; Python functions given here are called on whole
//! batches (see [`crate::call`]).

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use weir::prelude::*;

use crate::bridge::{batch_to_py, schema_from_py};
use crate::call;
use crate::env::{error, options};
use crate::key_column::KeyColumn;
use crate::map::PyMapBatches;
use crate::process::PyKeyedProcess;
use crate::reduce::PyReduce;

/// `weir._weir.Stream`: a stream of batches.
#[pyclass(name = "Stream", module = "weir._weir", from_py_object)]
#[derive(Clone)]
pub struct PyStream {
    s: DataStream,
}

impl PyStream {
    pub fn new(s: DataStream) -> Self {
        PyStream { s }
    }

    pub fn inner(&self) -> &DataStream {
        &self.s
    }
}

#[pymethods]
impl PyStream {
    /// Names the node that produced this stream (its metrics and state go by this name).
    fn name(&self, name: &str) -> PyStream {
        PyStream::new(self.s.clone().name(name))
    }

    /// A stable id for the node's state across job changes.
    fn uid(&self, uid: &str) -> PyStream {
        PyStream::new(self.s.clone().uid(uid))
    }

    fn set_parallelism(&self, parallelism: usize) -> PyResult<PyStream> {
        if parallelism == 0 {
            return Err(PyValueError::new_err("parallelism must be at least 1"));
        }
        Ok(PyStream::new(self.s.clone().set_parallelism(parallelism)))
    }

    /// `f(batch) -> batch` on every batch; `schema`: the output's (none keeps the input's).
    #[pyo3(signature = (name, f, schema=None))]
    fn map_batches(&self, name: &str, f: Py<PyAny>, schema: Option<&Bound<'_, PyAny>>) -> PyResult<PyStream> {
        let output = schema.map(schema_from_py).transpose()?;
        let op = PyMapBatches { output, f: Arc::new(f) };
        Ok(PyStream::new(self.s.transform(name, Arc::new(op))))
    }

    /// Keeps the rows where the SQL condition holds (evaluated by the engine, no Python).
    fn filter_expr(&self, condition: &str) -> PyStream {
        PyStream::new(self.s.filter_expr(condition))
    }

    /// The named columns, in this order.
    fn select(&self, fields: Vec<String>) -> PyStream {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        PyStream::new(self.s.select(&fields))
    }

    /// Keyed by `f`'s key of each record: `f(batch)` returns the batch with the key appended
    /// as the one field of `key_schema`.
    fn key_by_function(&self, name: &str, f: Py<PyAny>, key_schema: &Bound<'_, PyAny>) -> PyResult<PyKeyed> {
        let schema = schema_from_py(key_schema)?;
        let [field] = &schema.fields().iter().map(|f| f.as_ref().clone()).collect::<Vec<_>>()[..] else {
            return Err(PyValueError::new_err("a key selector's key is one field"));
        };
        let field = field.clone();
        let key = field.name().clone();
        let op = KeyColumn { field, f: Arc::new(f) };
        let with_key = self.s.transform(name, Arc::new(op));
        Ok(PyKeyed {
            k: with_key.key_by(vec![key]),
        })
    }

    fn key_by(&self, fields: Vec<String>) -> PyResult<PyKeyed> {
        if fields.is_empty() {
            return Err(PyValueError::new_err("key_by needs at least one field"));
        }
        Ok(PyKeyed {
            k: self.s.key_by(fields),
        })
    }

    fn rebalance(&self) -> PyStream {
        PyStream::new(self.s.rebalance())
    }

    fn shuffle(&self) -> PyStream {
        PyStream::new(self.s.shuffle())
    }

    fn broadcast(&self) -> PyStream {
        PyStream::new(self.s.broadcast())
    }

    fn union(&self, others: Vec<PyStream>) -> PyStream {
        let others: Vec<&DataStream> = others.iter().map(|o| &o.s).collect();
        PyStream::new(self.s.union(&others))
    }

    /// Rows to a built-in sink connector with its options (JSON text).
    fn sink(&self, connector: &str, name: &str, options_json: &str) -> PyResult<PyStream> {
        let factory = weir::connectors::registry::sink(connector, name, &options(options_json)?).map_err(error)?;
        Ok(PyStream::new(self.s.add_sink_named(name, factory)))
    }

    /// Rows to standard output as JSON lines.
    fn print(&self) -> PyStream {
        PyStream::new(self.s.print())
    }

    /// Rows kept in memory for the program to read after the job (`execute_and_collect`).
    fn collect(&self, name: &str) -> PyCollected {
        let c = Collect::new();
        self.s.add_sink_named(name, Arc::new(c.clone()));
        PyCollected { c }
    }
}

/// `weir._weir.Collected`: what a `collect` sink received.
#[pyclass(name = "Collected", module = "weir._weir")]
pub struct PyCollected {
    c: Collect,
}

#[pymethods]
impl PyCollected {
    /// The batches received, as `pyarrow.RecordBatch`es (in arrival order per subtask).
    fn batches<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.c.batches().iter().map(|(_, b)| batch_to_py(py, b)).collect()
    }
}

/// `weir._weir.Keyed`: a stream partitioned by key fields.
#[pyclass(name = "Keyed", module = "weir._weir")]
pub struct PyKeyed {
    k: KeyedStream,
}

#[pymethods]
impl PyKeyed {
    /// A keyed process function: the package's wrapper with `element` and `timer` methods (see
    /// [`crate::process`]), its rows of `schema`.
    fn process(&self, name: &str, wrapper: Py<PyAny>, schema: &Bound<'_, PyAny>) -> PyResult<PyStream> {
        let schema = schema_from_py(schema)?;
        Ok(PyStream::new(
            self.k.process(schema, PyKeyedProcess::new(wrapper)).name(name),
        ))
    }

    /// Flink's rolling reduce: `f(names, running, record) -> values` per record after a key's
    /// first; the running value is keyed state and goes out per record.
    fn reduce(&self, name: &str, wrapper: Py<PyAny>) -> PyStream {
        PyStream::new(self.k.reduce(PyReduce::new(wrapper)).name(name))
    }

    /// The keyed stream as a plain stream (its partitioning kept for the next operator).
    fn stream(&self) -> PyStream {
        PyStream::new(self.k.stream().clone())
    }

    /// Windows of `kind` (`tumbling`, `sliding`, `session`), sizes in milliseconds, on event
    /// time (the source's watermark field, or `time_field`) or on the processing clock.
    #[pyo3(signature = (kind, size_ms, slide_ms=None, processing_time=false, time_field=None))]
    fn window(
        &self,
        kind: &str,
        size_ms: u64,
        slide_ms: Option<u64>,
        processing_time: bool,
        time_field: Option<String>,
    ) -> PyResult<PyWindowed> {
        let size = Duration::from_millis(size_ms);
        let mut assigner = match (kind, processing_time) {
            ("tumbling", false) => TumblingEventTimeWindows::of(size),
            ("tumbling", true) => TumblingProcessingTimeWindows::of(size),
            ("sliding", false) => SlidingEventTimeWindows::of(size, Duration::from_millis(slide_ms.unwrap_or(size_ms))),
            ("sliding", true) => {
                SlidingProcessingTimeWindows::of(size, Duration::from_millis(slide_ms.unwrap_or(size_ms)))
            }
            ("session", false) => EventTimeSessionWindows::with_gap(size),
            (other, _) => {
                return Err(PyValueError::new_err(format!(
                    "window kind '{other}' (processing time: {processing_time}) is not supported"
                )));
            }
        };
        if let Some(field) = time_field {
            assigner = assigner.on(&field);
        }
        assigner.validate().map_err(error)?;
        Ok(PyWindowed {
            w: self.k.window(assigner),
        })
    }
}

/// `weir._weir.Windowed`: a keyed stream cut into windows.
#[pyclass(name = "Windowed", module = "weir._weir")]
pub struct PyWindowed {
    w: WindowedStream,
}

#[pymethods]
impl PyWindowed {
    /// Records later than the watermark by up to this much still update their window.
    fn allowed_lateness(&self, ms: u64) -> PyWindowed {
        PyWindowed {
            w: self.w.clone().allowed_lateness(Duration::from_millis(ms)),
        }
    }

    /// `f(key, window_start, window_end, elements) -> batch` per fired window; `schema`: the
    /// output's (none: the input's).
    #[pyo3(signature = (name, f, schema=None))]
    fn process(&self, name: &str, f: Py<PyAny>, schema: Option<&Bound<'_, PyAny>>) -> PyResult<PyStream> {
        let schema = schema.map(schema_from_py).transpose()?;
        let f = Arc::new(f);
        let function =
            move |ctx: &WindowContext<'_>, elements: &[Row], out: &mut Vec<Row>| call::window(&f, ctx, elements, out);
        let s = match schema {
            Some(schema) => self.w.process(schema, function),
            None => self.w.process_keeping_schema(function),
        };
        Ok(PyStream::new(s.name(name)))
    }
}
