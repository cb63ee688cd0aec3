//! The execution environment as a Python class: job settings, sources, and running the job.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;
use weir::prelude::*;

use crate::bridge::{batch_from_py, schema_from_py};
use crate::stream::PyStream;

/// An engine error as a Python exception: plan and configuration errors are the caller's
/// (`ValueError`), the rest happened while running (`RuntimeError`).
pub fn error(e: weir::contract::error::WeirError) -> PyErr {
    if e.is_retryable() {
        PyRuntimeError::new_err(e.to_string())
    } else {
        PyValueError::new_err(e.to_string())
    }
}

/// Connector options given as JSON text (the Python side serializes its descriptors).
pub(crate) fn options(json: &str) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(PyValueError::new_err("connector options must be a JSON object")),
        Err(e) => Err(PyValueError::new_err(format!("connector options: {e}"))),
    }
}

/// Logs to standard error at `level` (`RUST_LOG` wins when set); once per process.
#[pyfunction]
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("weir={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `weir._weir.Env`: one job being built.
#[pyclass(name = "Env", module = "weir._weir")]
pub struct PyEnv {
    pub(crate) env: StreamExecutionEnvironment,
}

#[pymethods]
impl PyEnv {
    #[new]
    fn new() -> Self {
        PyEnv {
            env: StreamExecutionEnvironment::new(),
        }
    }

    fn set_parallelism(&self, parallelism: usize) -> PyResult<()> {
        if parallelism == 0 {
            return Err(PyValueError::new_err("parallelism must be at least 1"));
        }
        self.env.set_parallelism(parallelism);
        Ok(())
    }

    fn parallelism(&self) -> usize {
        self.env.config().parallelism
    }

    fn set_max_parallelism(&self, max_parallelism: u32) {
        self.env.set_max_parallelism(max_parallelism);
    }

    fn set_batch_size(&self, rows: usize) {
        self.env.set_batch_size(rows);
    }

    fn enable_checkpointing(&self, interval_ms: u64) {
        self.env.enable_checkpointing(Duration::from_millis(interval_ms));
    }

    fn set_checkpoint_storage(&self, url: &str) {
        self.env.set_checkpoint_storage(url);
    }

    /// Where state starts from: `fresh`, `latest` (the job's newest complete checkpoint, if
    /// any) or a checkpoint or savepoint directory.
    fn set_restore(&self, from: &str) {
        let from = match from {
            "" | "fresh" => RestoreFrom::Fresh,
            "latest" => RestoreFrom::Latest,
            path => RestoreFrom::Snapshot(path.to_string()),
        };
        self.env.set_restore(from);
    }

    fn set_dead_letter(&self, location: &str) {
        self.env.set_dead_letter(location);
    }

    /// A source of a built-in connector with its options (JSON text); `watermark`: the
    /// event-time field, the out-of-orderness and the idle timeout in milliseconds.
    #[pyo3(signature = (connector, name, options_json, watermark=None))]
    fn source(
        &self,
        connector: &str,
        name: &str,
        options_json: &str,
        watermark: Option<(String, u64, Option<u64>)>,
    ) -> PyResult<PyStream> {
        let factory = weir::connectors::registry::source(connector, name, &options(options_json)?).map_err(error)?;
        let stream = self.env.add_source_named(name, factory);
        Ok(PyStream::new(with_watermark(stream, watermark)))
    }

    /// A bounded source of `batches` (Flink's `from_collection`).
    #[pyo3(signature = (name, schema, batches, watermark=None))]
    fn collection(
        &self,
        name: &str,
        schema: &Bound<'_, PyAny>,
        batches: Vec<Bound<'_, PyAny>>,
        watermark: Option<(String, u64, Option<u64>)>,
    ) -> PyResult<PyStream> {
        let schema = schema_from_py(schema)?;
        let batches = batches.iter().map(batch_from_py).collect::<PyResult<Vec<_>>>()?;
        let source = Collection::new(name, schema, batches).map_err(error)?;
        let stream = self.env.add_source_named(name, Arc::new(source));
        Ok(PyStream::new(with_watermark(stream, watermark)))
    }

    /// Runs the job to its end in this process; its counters as JSON text. The GIL is released
    /// while it runs (Python functions in the job take it per batch); Ctrl-C stops the job.
    /// Started as a worker of a cluster (`weir cluster job.py`, a `weir-worker-python` pod: the
    /// worker's place in `WEIR_ORDINAL`, `WEIR_PEERS`…), it runs this process's share of the
    /// job instead.
    fn execute(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        if crate::worker::is_worker() {
            return crate::worker::run(py, &self.env, name);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
        let env = self.env.clone();
        let metrics = env.metrics();
        let cancel = CancellationToken::new();
        let (job, stop) = (name.to_string(), cancel.clone());
        let run = rt.spawn(async move { env.execute_with(&job, &metrics, stop).await });
        let result = crate::worker::wait(py, &rt, run, || cancel.cancel())?;
        let r = result.map_err(error)?;
        let json = serde_json::json!({
            "name": r.name,
            "duration_ms": r.duration.as_millis() as u64,
            "cancelled": r.cancelled,
            "restarts": r.restarts,
            "nodes": r.metrics,
        });
        Ok(json.to_string())
    }

    /// The physical plan as text.
    fn explain(&self, py: Python<'_>) -> PyResult<String> {
        let env = self.env.clone();
        block_on(py, async move { env.explain().await })?.map_err(error)
    }
}

/// Runs `f` to its end on a runtime of this thread, with the GIL released.
pub(crate) fn block_on<T: Send>(py: Python<'_>, f: impl std::future::Future<Output = T> + Send) -> PyResult<T> {
    py.detach(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
        Ok(rt.block_on(f))
    })
}

fn with_watermark(stream: DataStream, watermark: Option<(String, u64, Option<u64>)>) -> DataStream {
    match watermark {
        Some((field, ms, idle)) => {
            let mut strategy = WatermarkStrategy::bounded_out_of_orderness(&field, Duration::from_millis(ms));
            strategy.idle_timeout = idle.map(Duration::from_millis);
            stream.with_watermarks(strategy)
        }
        None => stream,
    }
}
