//! Arrow batches and schemas across the boundary with pyarrow through the Arrow C data
//! interface: the buffers are shared, not copied. (arrow's own `pyarrow` feature would put
//! PyO3, and so libpython, under every binary of the workspace that uses arrow.)

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, RecordBatchOptions, StructArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi, to_ffi};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

fn arrow_err(e: arrow::error::ArrowError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn pyarrow_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("pyarrow")?.getattr(name)
}

/// `batch` as a `pyarrow.RecordBatch` over the same buffers.
pub fn batch_to_py<'py>(py: Python<'py>, batch: &RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let array: StructArray = batch.clone().into();
    let (mut ffi_array, mut ffi_schema) = to_ffi(&array.to_data()).map_err(arrow_err)?;
    // pyarrow takes the structures over (it marks them released; dropping them then is a no-op).
    pyarrow_class(py, "RecordBatch")?.call_method1(
        "_import_from_c",
        (
            std::ptr::addr_of_mut!(ffi_array) as usize,
            std::ptr::addr_of_mut!(ffi_schema) as usize,
        ),
    )
}

/// A `pyarrow.RecordBatch` as a batch over the same buffers.
pub fn batch_from_py(value: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    let class = pyarrow_class(value.py(), "RecordBatch")?;
    if !value.is_instance(&class)? {
        return Err(PyTypeError::new_err(format!(
            "expected a pyarrow.RecordBatch, got {}",
            value.get_type().name()?
        )));
    }
    let mut ffi_array = FFI_ArrowArray::empty();
    let mut ffi_schema = FFI_ArrowSchema::empty();
    value.call_method1(
        "_export_to_c",
        (
            std::ptr::addr_of_mut!(ffi_array) as usize,
            std::ptr::addr_of_mut!(ffi_schema) as usize,
        ),
    )?;
    let schema = Arc::new(Schema::try_from(&ffi_schema).map_err(arrow_err)?);
    // SAFETY: pyarrow filled both structures with a valid struct array and its type.
    #[allow(unsafe_code)]
    let data = unsafe { from_ffi(ffi_array, &ffi_schema) }.map_err(arrow_err)?;
    if !matches!(data.data_type(), DataType::Struct(_)) {
        return Err(PyTypeError::new_err(
            "a record batch crossed as something other than a struct",
        ));
    }
    let rows = data.len();
    let (_, columns, _) = StructArray::from(data).into_parts();
    let options = RecordBatchOptions::default().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(arrow_err)
}

/// A `pyarrow.Schema` as a schema.
pub fn schema_from_py(value: &Bound<'_, PyAny>) -> PyResult<SchemaRef> {
    let class = pyarrow_class(value.py(), "Schema")?;
    if !value.is_instance(&class)? {
        return Err(PyTypeError::new_err(format!(
            "expected a pyarrow.Schema, got {}",
            value.get_type().name()?
        )));
    }
    let mut ffi_schema = FFI_ArrowSchema::empty();
    value.call_method1("_export_to_c", (std::ptr::addr_of_mut!(ffi_schema) as usize,))?;
    Ok(Arc::new(Schema::try_from(&ffi_schema).map_err(arrow_err)?))
}
