//! The native half of Weir's Python package: the engine's environment, streams and windows as
//! Python classes (`weir._weir`), and Python functions run on Arrow batches inside the engine's
//! tasks. The PyFlink-named API users write against lives in the pure-Python `weir` package on
//! top of this module.

mod bridge;
mod call;
mod env;
mod key_column;
mod map;
mod process;
mod reduce;
mod stream;
mod table;
mod worker;

use pyo3::prelude::*;

/// The module `weir._weir`.
#[pymodule]
fn _weir(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<env::PyEnv>()?;
    m.add_class::<stream::PyStream>()?;
    m.add_class::<stream::PyKeyed>()?;
    m.add_class::<stream::PyWindowed>()?;
    m.add_class::<stream::PyCollected>()?;
    m.add_class::<process::KeyedCtx>()?;
    m.add_class::<table::PyTableEnv>()?;
    m.add_class::<table::PyTable>()?;
    m.add_function(wrap_pyfunction!(env::init_logging, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
