//! The Table API as Python classes: SQL statements and queries over the same job as the
//! environment's DataStreams (Flink's `StreamTableEnvironment`).

use pyo3::prelude::*;
use weir::prelude::*;

use crate::env::{PyEnv, block_on, error};
use crate::stream::PyStream;

/// `weir._weir.TableEnv`: SQL over one environment's job.
#[pyclass(name = "TableEnv", module = "weir._weir")]
pub struct PyTableEnv {
    t: TableEnvironment,
}

/// `weir._weir.Table`: a planned query, not yet part of the job.
#[pyclass(name = "Table", module = "weir._weir")]
pub struct PyTable {
    t: Table,
}

#[pymethods]
impl PyTableEnv {
    #[new]
    fn new(env: PyRef<'_, PyEnv>) -> Self {
        PyTableEnv {
            t: TableEnvironment::create(&env.env),
        }
    }

    /// DDL, views, `SET`, and `INSERT INTO` (which adds to the job).
    fn execute_sql(&self, sql: &str) -> PyResult<()> {
        self.t.execute_sql(sql).map_err(error)
    }

    fn sql_query(&self, query: &str) -> PyResult<PyTable> {
        Ok(PyTable {
            t: self.t.sql_query(query).map_err(error)?,
        })
    }

    fn create_temporary_view(&self, py: Python<'_>, name: &str, stream: PyRef<'_, PyStream>) -> PyResult<()> {
        let (t, s) = (self.t.clone(), stream.inner().clone());
        block_on(py, async move { t.create_temporary_view(name, &s).await })?.map_err(error)
    }

    #[pyo3(name = "from_data_stream")]
    fn table_of_stream(&self, py: Python<'_>, stream: PyRef<'_, PyStream>) -> PyResult<PyTable> {
        let (t, s) = (self.t.clone(), stream.inner().clone());
        let table = block_on(py, async move { t.from_data_stream(&s).await })?.map_err(error)?;
        Ok(PyTable { t: table })
    }

    fn to_data_stream(&self, table: PyRef<'_, PyTable>) -> PyResult<PyStream> {
        Ok(PyStream::new(self.t.to_data_stream(&table.t).map_err(error)?))
    }

    fn to_changelog_stream(&self, table: PyRef<'_, PyTable>) -> PyResult<PyStream> {
        Ok(PyStream::new(self.t.to_changelog_stream(&table.t).map_err(error)?))
    }
}

#[pymethods]
impl PyTable {
    fn explain(&self) -> String {
        self.t.explain()
    }

    fn columns(&self) -> Vec<String> {
        self.t.columns()
    }
}
