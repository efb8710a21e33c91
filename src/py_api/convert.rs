//! Arrow to Python: rows as dicts, for `table_batches` and for `influxdb3_local.query()`.
//!
//! Column-wise: each column is downcast once into a [`Reader`], dictionary values (tags) become
//! Python strings once per distinct value, and column names are interned once per batch; then
//! each row is one dict filled by the readers. Every Arrow type converts: numbers, strings,
//! bytes, timestamps (to `int` nanoseconds, as InfluxDB 3 hands `time` to plugins), dates,
//! times, durations, decimals, lists, structs and maps; anything else becomes its display string
//! rather than an error (InfluxDB 3 raises on many types).
//!
//! Budget: ≥ 1 M rows/s of TSBS-like rows into dicts on one core. It never copies Arrow buffers.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString};

/// What to do with a null cell.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// Leave the key out (`table_batches`: an absent column is absent from the row).
    Omit,
    /// Set it to `None` (query results).
    AsNone,
}

/// Rows are built this many at a time, column by column: each column fills the chunk's dicts
/// in one typed loop (no per-cell dispatch on the column's type), and the chunk's dicts stay in
/// cache while all the columns visit them. Keys still go in in column order in every dict.
const CHUNK: usize = 128;

/// Appends one dict per row of `batch` to `out`.
pub fn append_rows(py: Python<'_>, batch: &RecordBatch, nulls: Nulls, out: &Bound<'_, PyList>) -> PyResult<()> {
    let schema = batch.schema();
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = PyString::intern(py, field.name());
        cols.push((name, Reader::new(py, array)?));
    }
    let n = batch.num_rows();
    let mut dicts = Vec::with_capacity(CHUNK.min(n));
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        dicts.extend((start..end).map(|_| PyDict::new(py)));
        for (name, reader) in &cols {
            reader.fill(py, name, start, &dicts, nulls)?;
        }
        for dict in dicts.drain(..) {
            out.append(dict)?;
        }
        start = end;
    }
    Ok(())
}

/// Sets `name` in each of `dicts` (rows `start..`) to what `cell` gives for its row.
#[inline(always)]
fn fill_each<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyString>,
    start: usize,
    dicts: &[Bound<'py, PyDict>],
    nulls: Nulls,
    mut cell: impl FnMut(usize) -> PyResult<Option<Bound<'py, PyAny>>>,
) -> PyResult<()> {
    for (i, dict) in dicts.iter().enumerate() {
        match cell(start + i)? {
            Some(v) => dict.set_item(name, v)?,
            None if nulls == Nulls::AsNone => dict.set_item(name, py.None())?,
            None => {}
        }
    }
    Ok(())
}

/// One column, downcast once.
enum Reader<'a> {
    Null,
    Bool(&'a arrow::array::BooleanArray),
    I8(&'a arrow::array::Int8Array),
    I16(&'a arrow::array::Int16Array),
    I32(&'a arrow::array::Int32Array),
    I64(&'a arrow::array::Int64Array),
    U8(&'a arrow::array::UInt8Array),
    U16(&'a arrow::array::UInt16Array),
    U32(&'a arrow::array::UInt32Array),
    U64(&'a arrow::array::UInt64Array),
    F16(&'a arrow::array::Float16Array),
    F32(&'a arrow::array::Float32Array),
    F64(&'a arrow::array::Float64Array),
    Utf8(&'a arrow::array::StringArray),
    LargeUtf8(&'a arrow::array::LargeStringArray),
    Utf8View(&'a arrow::array::StringViewArray),
    Binary(&'a arrow::array::BinaryArray),
    LargeBinary(&'a arrow::array::LargeBinaryArray),
    BinaryView(&'a arrow::array::BinaryViewArray),
    FixedBinary(&'a arrow::array::FixedSizeBinaryArray),
    /// Any timestamp, as nanoseconds: the raw value times `scale`.
    Timestamp { values: &'a [i64], nulls: Option<&'a arrow::buffer::NullBuffer>, scale: i64 },
    /// A dictionary: the distinct values converted once, looked up by key.
    Dict { keys: Vec<Option<usize>>, values: Vec<Option<Py<PyAny>>> },
    /// Anything built from Python objects per cell (dates, decimals, nested types...).
    Objects(Vec<Option<Py<PyAny>>>),
}

impl<'a> Reader<'a> {
    fn new(py: Python<'_>, array: &'a ArrayRef) -> PyResult<Reader<'a>> {
        Ok(match array.data_type() {
            DataType::Null => Reader::Null,
            DataType::Boolean => Reader::Bool(array.as_boolean()),
            DataType::Int8 => Reader::I8(array.as_primitive()),
            DataType::Int16 => Reader::I16(array.as_primitive()),
            DataType::Int32 => Reader::I32(array.as_primitive()),
            DataType::Int64 => Reader::I64(array.as_primitive()),
            DataType::UInt8 => Reader::U8(array.as_primitive()),
            DataType::UInt16 => Reader::U16(array.as_primitive()),
            DataType::UInt32 => Reader::U32(array.as_primitive()),
            DataType::UInt64 => Reader::U64(array.as_primitive()),
            DataType::Float16 => Reader::F16(array.as_primitive()),
            DataType::Float32 => Reader::F32(array.as_primitive()),
            DataType::Float64 => Reader::F64(array.as_primitive()),
            DataType::Utf8 => Reader::Utf8(array.as_string()),
            DataType::LargeUtf8 => Reader::LargeUtf8(array.as_string()),
            DataType::Utf8View => Reader::Utf8View(array.as_string_view()),
            DataType::Binary => Reader::Binary(array.as_binary()),
            DataType::LargeBinary => Reader::LargeBinary(array.as_binary()),
            DataType::BinaryView => Reader::BinaryView(array.as_binary_view()),
            DataType::FixedSizeBinary(_) => Reader::FixedBinary(array.as_fixed_size_binary()),
            DataType::Timestamp(unit, _) => {
                let scale = match unit {
                    TimeUnit::Second => 1_000_000_000,
                    TimeUnit::Millisecond => 1_000_000,
                    TimeUnit::Microsecond => 1_000,
                    TimeUnit::Nanosecond => 1,
                };
                return timestamp_reader(py, array, scale);
            }
            DataType::Dictionary(_, _) => {
                let dict = array.as_any_dictionary();
                let values = objects(py, dict.values())?;
                let keys = dict.normalized_keys();
                let keys = (0..array.len()).map(|i| if array.is_null(i) { None } else { keys.get(i).copied() }).collect();
                Reader::Dict { keys, values }
            }
            _ => Reader::Objects(objects(py, array)?),
        })
    }

    /// Fills this column's cell into each row dict of a chunk. The types TSBS-like data is made
    /// of get their own loops; the rest go cell by cell through [`Reader::get`].
    fn fill<'py>(&self, py: Python<'py>, name: &Bound<'py, PyString>, start: usize, dicts: &[Bound<'py, PyDict>], nulls: Nulls) -> PyResult<()> {
        match self {
            Reader::F64(a) => fill_each(py, name, start, dicts, nulls, |row| Ok((!a.is_null(row)).then(|| PyFloat::new(py, a.value(row)).into_any()))),
            Reader::I64(a) => fill_each(py, name, start, dicts, nulls, |row| Ok((!a.is_null(row)).then(|| a.value(row).into_pyobject(py).map(|v| v.into_any())).transpose()?)),
            Reader::Utf8(a) => fill_each(py, name, start, dicts, nulls, |row| Ok(str_cell(py, a.is_null(row), || a.value(row)))),
            Reader::Utf8View(a) => fill_each(py, name, start, dicts, nulls, |row| Ok(str_cell(py, a.is_null(row), || a.value(row)))),
            Reader::Dict { keys, values } => fill_each(py, name, start, dicts, nulls, |row| {
                Ok(keys.get(row).copied().flatten().and_then(|k| values.get(k)).and_then(|v| v.as_ref()).map(|v| v.bind(py).clone()))
            }),
            Reader::Timestamp { values, nulls: None, scale: 1 } => {
                fill_each(py, name, start, dicts, nulls, |row| Ok(Some(values[row].into_pyobject(py)?.into_any())))
            }
            _ => fill_each(py, name, start, dicts, nulls, |row| self.get(py, row)),
        }
    }

    fn get<'py>(&self, py: Python<'py>, row: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
        macro_rules! prim {
            ($a:expr) => {
                if $a.is_null(row) {
                    None
                } else {
                    Some($a.value(row).into_pyobject(py)?.into_any())
                }
            };
        }
        Ok(match self {
            Reader::Null => None,
            Reader::Bool(a) => {
                if a.is_null(row) {
                    None
                } else {
                    Some(pyo3::types::PyBool::new(py, a.value(row)).to_owned().into_any())
                }
            }
            Reader::I8(a) => prim!(a),
            Reader::I16(a) => prim!(a),
            Reader::I32(a) => prim!(a),
            Reader::I64(a) => prim!(a),
            Reader::U8(a) => prim!(a),
            Reader::U16(a) => prim!(a),
            Reader::U32(a) => prim!(a),
            Reader::U64(a) => prim!(a),
            Reader::F16(a) => {
                if a.is_null(row) {
                    None
                } else {
                    Some(a.value(row).to_f64().into_pyobject(py)?.into_any())
                }
            }
            Reader::F32(a) => prim!(a),
            Reader::F64(a) => prim!(a),
            Reader::Utf8(a) => str_cell(py, a.is_null(row), || a.value(row)),
            Reader::LargeUtf8(a) => str_cell(py, a.is_null(row), || a.value(row)),
            Reader::Utf8View(a) => str_cell(py, a.is_null(row), || a.value(row)),
            Reader::Binary(a) => bytes_cell(py, a.is_null(row), || a.value(row)),
            Reader::LargeBinary(a) => bytes_cell(py, a.is_null(row), || a.value(row)),
            Reader::BinaryView(a) => bytes_cell(py, a.is_null(row), || a.value(row)),
            Reader::FixedBinary(a) => bytes_cell(py, a.is_null(row), || a.value(row)),
            Reader::Timestamp { values, nulls, scale } => {
                if nulls.is_some_and(|n| n.is_null(row)) {
                    None
                } else {
                    let v = values[row];
                    match v.checked_mul(*scale) {
                        Some(ns) => Some(ns.into_pyobject(py)?.into_any()),
                        // Out of the i64 nanosecond range: keep the exact value as a Python int.
                        None => Some((v as i128 * *scale as i128).into_pyobject(py)?.into_any()),
                    }
                }
            }
            Reader::Dict { keys, values } => match keys.get(row).copied().flatten() {
                Some(k) => values.get(k).and_then(|v| v.as_ref()).map(|v| v.bind(py).clone()),
                None => None,
            },
            Reader::Objects(v) => v.get(row).and_then(|v| v.as_ref()).map(|v| v.bind(py).clone()),
        })
    }
}

fn str_cell<'py, 's>(py: Python<'py>, null: bool, v: impl FnOnce() -> &'s str) -> Option<Bound<'py, PyAny>> {
    (!null).then(|| PyString::new(py, v()).into_any())
}

fn bytes_cell<'py, 's>(py: Python<'py>, null: bool, v: impl FnOnce() -> &'s [u8]) -> Option<Bound<'py, PyAny>> {
    (!null).then(|| PyBytes::new(py, v()).into_any())
}

/// Timestamps of any unit, read as their raw i64 values and null mask (no copy).
fn timestamp_reader<'a>(_py: Python<'_>, array: &'a ArrayRef, scale: i64) -> PyResult<Reader<'a>> {
    fn parts<T: ArrowPrimitiveType<Native = i64>>(a: &arrow::array::PrimitiveArray<T>) -> (&[i64], Option<&arrow::buffer::NullBuffer>) {
        (a.values().as_ref(), a.nulls())
    }
    let (values, nulls) = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => parts(array.as_primitive::<TimestampSecondType>()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => parts(array.as_primitive::<TimestampMillisecondType>()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => parts(array.as_primitive::<TimestampMicrosecondType>()),
        _ => parts(array.as_primitive::<TimestampNanosecondType>()),
    };
    Ok(Reader::Timestamp { values, nulls, scale })
}

/// Converts every cell of `array` to a Python object (None for nulls), for the types that need
/// Python constructors or recursion.
fn objects(py: Python<'_>, array: &ArrayRef) -> PyResult<Vec<Option<Py<PyAny>>>> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    match array.data_type() {
        DataType::Date32 | DataType::Date64 => {
            let date = py.import("datetime")?.getattr("date")?;
            let days: Vec<Option<i64>> = match array.data_type() {
                DataType::Date32 => array.as_primitive::<Date32Type>().iter().map(|d| d.map(i64::from)).collect(),
                _ => array.as_primitive::<Date64Type>().iter().map(|d| d.map(|ms| ms.div_euclid(86_400_000))).collect(),
            };
            for d in days {
                // 719163 is the proleptic ordinal of 1970-01-01.
                out.push(match d {
                    Some(d) => date.call_method1("fromordinal", (d + 719_163,)).ok().map(|v| v.unbind()),
                    None => None,
                });
            }
        }
        DataType::Time32(_) | DataType::Time64(_) | DataType::Duration(_) => {
            let dt = py.import("datetime")?;
            let is_time = matches!(array.data_type(), DataType::Time32(_) | DataType::Time64(_));
            let micros = micros_of(array);
            for m in micros {
                out.push(match m {
                    None => None,
                    Some(us) if is_time => {
                        let (h, rest) = (us / 3_600_000_000, us % 3_600_000_000);
                        let (mi, rest) = (rest / 60_000_000, rest % 60_000_000);
                        let (s, us) = (rest / 1_000_000, rest % 1_000_000);
                        dt.getattr("time")?.call1((h, mi, s, us)).ok().map(|v| v.unbind())
                    }
                    Some(us) => {
                        let kwargs = PyDict::new(py);
                        kwargs.set_item("microseconds", us)?;
                        dt.getattr("timedelta")?.call((), Some(&kwargs)).ok().map(|v| v.unbind())
                    }
                });
            }
        }
        DataType::Decimal32(_, _) | DataType::Decimal64(_, _) | DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => {
            let decimal = py.import("decimal")?.getattr("Decimal")?;
            let fmt = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).map_err(to_py)?;
            for i in 0..n {
                out.push(if array.is_null(i) { None } else { Some(decimal.call1((fmt.value(i).to_string(),))?.unbind()) });
            }
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) | DataType::ListView(_) | DataType::LargeListView(_) => {
            for i in 0..n {
                if array.is_null(i) {
                    out.push(None);
                    continue;
                }
                let item = list_item(array, i);
                let list = PyList::empty(py);
                for v in objects_or_scalars(py, &item)? {
                    list.append(v.unwrap_or_else(|| py.None()))?;
                }
                out.push(Some(list.into_any().unbind()));
            }
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let children: Vec<Vec<Option<Py<PyAny>>>> = s.columns().iter().map(|c| objects_or_scalars(py, c)).collect::<PyResult<_>>()?;
            for i in 0..n {
                if array.is_null(i) {
                    out.push(None);
                    continue;
                }
                let d = PyDict::new(py);
                for (f, col) in fields.iter().zip(&children) {
                    d.set_item(f.name(), col[i].as_ref().map(|v| v.clone_ref(py)).unwrap_or_else(|| py.None()))?;
                }
                out.push(Some(d.into_any().unbind()));
            }
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let keys = objects_or_scalars(py, m.keys())?;
            let values = objects_or_scalars(py, m.values())?;
            let offsets = m.value_offsets();
            for i in 0..n {
                if array.is_null(i) {
                    out.push(None);
                    continue;
                }
                let d = PyDict::new(py);
                for j in offsets[i] as usize..offsets[i + 1] as usize {
                    let k = keys[j].as_ref().map(|v| v.clone_ref(py)).unwrap_or_else(|| py.None());
                    let v = values[j].as_ref().map(|v| v.clone_ref(py)).unwrap_or_else(|| py.None());
                    d.set_item(k, v)?;
                }
                out.push(Some(d.into_any().unbind()));
            }
        }
        _ => {
            // Intervals, unions and whatever comes next: their display text, never an error.
            let fmt = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).map_err(to_py)?;
            for i in 0..n {
                out.push(if array.is_null(i) { None } else { Some(PyString::new(py, &fmt.value(i).to_string()).into_any().unbind()) });
            }
        }
    }
    Ok(out)
}

/// Every cell of `array` as a Python object, whatever its type (the path nested types take).
fn objects_or_scalars(py: Python<'_>, array: &ArrayRef) -> PyResult<Vec<Option<Py<PyAny>>>> {
    let reader = Reader::new(py, array)?;
    (0..array.len()).map(|i| Ok(reader.get(py, i)?.map(|v| v.unbind()))).collect()
}

fn list_item(array: &ArrayRef, i: usize) -> ArrayRef {
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(i),
        DataType::LargeList(_) => array.as_list::<i64>().value(i),
        DataType::FixedSizeList(_, _) => array.as_fixed_size_list().value(i),
        DataType::ListView(_) => array.as_list_view::<i32>().value(i),
        _ => array.as_list_view::<i64>().value(i),
    }
}

/// Times and durations as microseconds (sub-microsecond digits dropped, as `datetime` does).
fn micros_of(array: &ArrayRef) -> Vec<Option<i64>> {
    fn scaled<T: ArrowPrimitiveType>(a: &arrow::array::PrimitiveArray<T>, f: impl Fn(T::Native) -> i64) -> Vec<Option<i64>> {
        a.iter().map(|v| v.map(&f)).collect()
    }
    match array.data_type() {
        DataType::Time32(TimeUnit::Second) => scaled(array.as_primitive::<Time32SecondType>(), |v| v as i64 * 1_000_000),
        DataType::Time32(_) => scaled(array.as_primitive::<Time32MillisecondType>(), |v| v as i64 * 1_000),
        DataType::Time64(TimeUnit::Microsecond) => scaled(array.as_primitive::<Time64MicrosecondType>(), |v| v),
        DataType::Time64(_) => scaled(array.as_primitive::<Time64NanosecondType>(), |v| v / 1_000),
        DataType::Duration(TimeUnit::Second) => scaled(array.as_primitive::<DurationSecondType>(), |v| v.saturating_mul(1_000_000)),
        DataType::Duration(TimeUnit::Millisecond) => scaled(array.as_primitive::<DurationMillisecondType>(), |v| v.saturating_mul(1_000)),
        DataType::Duration(TimeUnit::Microsecond) => scaled(array.as_primitive::<DurationMicrosecondType>(), |v| v),
        _ => scaled(array.as_primitive::<DurationNanosecondType>(), |v| v / 1_000),
    }
}

fn to_py(e: arrow::error::ArrowError) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(e.to_string())
}
