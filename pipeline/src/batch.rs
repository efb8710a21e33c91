//! Building Arrow record batches from validated lines, one builder per table per flush.
//!
//! Owns the Arrow shape of a table: tags are `Dictionary(Int32, Utf8)`, fields by type, `time`
//! is `Timestamp(Nanosecond, None)` and never null. Columns appear in a builder as rows bring
//! them; earlier rows read as null. [`table_schema`] gives the full schema of a table (columns
//! sorted by name, as InfluxDB 3 shows them), and [`align`] fits an older batch to it.
//!
//! It never validates: lines reaching it already fit the catalog.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, ArrayRef, BooleanBuilder, DictionaryArray, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampNanosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::catalog::{ColumnKind, FieldType, Table};
use crate::lp::{FieldValue, ParsedLine, SeriesId};

/// The Arrow type of a column kind.
pub fn data_type(kind: ColumnKind) -> DataType {
    match kind {
        ColumnKind::Tag => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        ColumnKind::Time => DataType::Timestamp(TimeUnit::Nanosecond, None),
        ColumnKind::Field(FieldType::Float) => DataType::Float64,
        ColumnKind::Field(FieldType::Integer) => DataType::Int64,
        ColumnKind::Field(FieldType::UInteger) => DataType::UInt64,
        ColumnKind::Field(FieldType::String) => DataType::Utf8,
        ColumnKind::Field(FieldType::Boolean) => DataType::Boolean,
    }
}

/// The Arrow field of a column.
pub fn arrow_field(name: &str, kind: ColumnKind) -> Field {
    Field::new(name, data_type(kind), kind != ColumnKind::Time)
}

/// The full schema of a table, columns sorted by name.
pub fn table_schema(table: &Table) -> SchemaRef {
    let mut cols: Vec<_> = table.columns.iter().collect();
    cols.sort_by(|a, b| a.name.cmp(&b.name));
    Arc::new(Schema::new(cols.into_iter().map(|c| arrow_field(&c.name, c.kind)).collect::<Vec<_>>()))
}

/// Fits `batch` to `schema`: columns it lacks become nulls, column order follows `schema`.
/// Zero-copy for columns it has.
pub fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            _ => new_null_array(f.data_type(), rows),
        })
        .collect();
    RecordBatch::try_new_with_options(schema.clone(), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))
}

/// A tag column: dictionary keys this builder assigns itself, so that a row's keys, once
/// found, can be reused whole for the next row of the same series.
struct TagBuilder {
    keys: Int32Builder,
    values: StringBuilder,
    index: HashMap<Box<str>, i32, foldhash::fast::RandomState>,
}

impl TagBuilder {
    fn new(rows: usize) -> TagBuilder {
        TagBuilder { keys: Int32Builder::with_capacity(rows), values: StringBuilder::new(), index: HashMap::default() }
    }

    /// The key of `value`, added to the dictionary if new.
    fn key(&mut self, value: &str) -> i32 {
        if let Some(&k) = self.index.get(value) {
            return k;
        }
        // A flush holds at most MAX_PENDING_BYTES of lines, far fewer than 2^31 values.
        let k = i32::try_from(self.index.len()).expect("fewer than 2^31 tag values in one flush");
        self.values.append_value(value);
        self.index.insert(value.into(), k);
        k
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values: ArrayRef = Arc::new(self.values.finish());
        self.index.clear();
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(self.keys.finish(), values)?))
    }
}

enum ColumnBuilder {
    Tag(TagBuilder),
    Float(Float64Builder),
    Integer(Int64Builder),
    UInteger(UInt64Builder),
    String(StringBuilder),
    Boolean(BooleanBuilder),
}

impl ColumnBuilder {
    /// A builder with room for `rows` values (strings and dictionary values grow as needed).
    fn new(kind: ColumnKind, rows: usize) -> ColumnBuilder {
        match kind {
            ColumnKind::Tag | ColumnKind::Time => ColumnBuilder::Tag(TagBuilder::new(rows)),
            ColumnKind::Field(FieldType::Float) => ColumnBuilder::Float(Float64Builder::with_capacity(rows)),
            ColumnKind::Field(FieldType::Integer) => ColumnBuilder::Integer(Int64Builder::with_capacity(rows)),
            ColumnKind::Field(FieldType::UInteger) => ColumnBuilder::UInteger(UInt64Builder::with_capacity(rows)),
            ColumnKind::Field(FieldType::String) => ColumnBuilder::String(StringBuilder::new()),
            ColumnKind::Field(FieldType::Boolean) => ColumnBuilder::Boolean(BooleanBuilder::new()),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        // Arrow's builders materialise a validity bitmap on any call, even for zero nulls, and
        // then set a bit for every value after it.
        if n == 0 {
            return;
        }
        match self {
            ColumnBuilder::Tag(b) => b.keys.append_nulls(n),
            ColumnBuilder::Float(b) => b.append_nulls(n),
            ColumnBuilder::Integer(b) => b.append_nulls(n),
            ColumnBuilder::UInteger(b) => b.append_nulls(n),
            ColumnBuilder::String(b) => {
                for _ in 0..n {
                    b.append_null()
                }
            }
            ColumnBuilder::Boolean(b) => b.append_nulls(n),
        }
    }

    fn append_field(&mut self, v: &FieldValue<'_>) {
        match (self, v) {
            (ColumnBuilder::Float(b), FieldValue::Float(x)) => b.append_value(*x),
            (ColumnBuilder::Integer(b), FieldValue::Integer(x)) => b.append_value(*x),
            (ColumnBuilder::UInteger(b), FieldValue::UInteger(x)) => b.append_value(*x),
            (ColumnBuilder::String(b), FieldValue::String(x)) => b.append_value(x),
            (ColumnBuilder::Boolean(b), FieldValue::Boolean(x)) => b.append_value(*x),
            // Validation guarantees the kinds agree; a mismatch would be a bug, kept as a null.
            (b, _) => b.append_nulls(1),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            ColumnBuilder::Tag(b) => b.finish()?,
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Integer(b) => Arc::new(b.finish()),
            ColumnBuilder::UInteger(b) => Arc::new(b.finish()),
            ColumnBuilder::String(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
        })
    }
}

struct Col {
    name: String,
    kind: ColumnKind,
    builder: ColumnBuilder,
    len: usize,
}

/// Series remembered per builder; past this, new series are looked up tag by tag.
const MAX_SERIES: usize = 1 << 16;

/// A series' tag keys: `series_keys[at..at + len]`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeysAt {
    at: u32,
    len: u32,
}

impl KeysAt {
    const NONE: KeysAt = KeysAt { at: u32::MAX, len: 0 };
}

/// Accumulates one table's rows of one flush.
pub struct TableBuilder {
    pub db_id: u32,
    pub db_name: Arc<str>,
    pub table: Arc<Table>,
    cols: Vec<Col>,
    index: HashMap<String, usize>,
    /// The column each key position of the previous row went to: rows of one table nearly
    /// always list their keys in the same order, so one name comparison usually finds the
    /// column without hashing.
    order: Vec<usize>,
    /// Each series seen (its raw measurement and tags) → where the dictionary keys of its tags,
    /// in the line's order, are in `series_keys`: a series seen before costs one hash of its
    /// bytes, not one per tag.
    series: HashMap<Box<[u8]>, KeysAt, foldhash::fast::RandomState>,
    series_keys: Vec<i32>,
    /// The same, by the parser's series number in body `body` (`KeysAt::NONE` if not known):
    /// the lines of one body find their series without hashing it again.
    by_id: Vec<KeysAt>,
    body: u64,
    keys: Vec<i32>,
    /// How many keys the last row had: the positions of `order` that describe it.
    last_width: usize,
    time: TimestampNanosecondBuilder,
    rows: usize,
    /// Rows the caller expects: columns start with room for them, since growing by doubling
    /// copies each column several times over.
    expected_rows: usize,
}

impl TableBuilder {
    pub fn new(db_id: u32, db_name: Arc<str>, table: Arc<Table>) -> TableBuilder {
        TableBuilder::with_capacity(db_id, db_name, table, 0)
    }

    /// A builder whose columns start with room for `rows` rows.
    pub fn with_capacity(db_id: u32, db_name: Arc<str>, table: Arc<Table>, rows: usize) -> TableBuilder {
        TableBuilder {
            db_id,
            db_name,
            table,
            cols: Vec::new(),
            index: HashMap::new(),
            order: Vec::new(),
            series: HashMap::default(),
            series_keys: Vec::new(),
            by_id: Vec::new(),
            body: u64::MAX,
            keys: Vec::new(),
            last_width: 0,
            time: TimestampNanosecondBuilder::with_capacity(rows),
            rows: 0,
            expected_rows: rows,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The column for the key at position `at` of the row being appended.
    fn col(&mut self, at: usize, name: &str, kind: ColumnKind) -> &mut Col {
        let guess = self.order.get(at).copied().filter(|&i| crate::name_eq::same_name(&self.cols[i].name, name));
        let i = match guess.or_else(|| self.index.get(name).copied()) {
            Some(i) => i,
            None => {
                let mut builder = ColumnBuilder::new(kind, self.expected_rows.max(self.rows));
                builder.append_nulls(self.rows);
                self.cols.push(Col { name: name.to_string(), kind, builder, len: self.rows });
                self.index.insert(name.to_string(), self.cols.len() - 1);
                self.cols.len() - 1
            }
        };
        match self.order.get_mut(at) {
            Some(o) => *o = i,
            None => self.order.push(i),
        }
        let rows = self.rows;
        let c = &mut self.cols[i];
        if c.len < rows {
            c.builder.append_nulls(rows - c.len);
            c.len = rows;
        }
        c
    }

    /// The column for key position `at`; by position alone when `same_shape`, since the last
    /// row put its key at `at` into that column and has filled it up to this row.
    #[inline(always)]
    fn slot(&mut self, same_shape: bool, at: usize, name: &str, kind: ColumnKind) -> &mut Col {
        match self.order.get(at) {
            Some(&i) if same_shape => &mut self.cols[i],
            _ => self.col(at, name, kind),
        }
    }

    /// The keys of a series seen before: by the parser's number for it if it has one and this
    /// body has seen it, else by its bytes. Switches `by_id` to the line's body.
    fn known_keys(&mut self, line: &ParsedLine<'_>, series_id: Option<SeriesId>) -> Option<KeysAt> {
        let Some(sid) = series_id else {
            return self.series.get(line.series).copied();
        };
        if sid.body != self.body {
            self.body = sid.body;
            self.by_id.clear();
        }
        if let Some(&k) = self.by_id.get(sid.id as usize).filter(|k| **k != KeysAt::NONE) {
            return Some(k);
        }
        let k = self.series.get(line.series).copied()?;
        self.remember_by_id(sid, k);
        Some(k)
    }

    /// Records where the keys of the series the parser numbered `sid` are, for the rest of
    /// its body (which [`TableBuilder::known_keys`] has made the current one).
    fn remember_by_id(&mut self, sid: SeriesId, k: KeysAt) {
        let id = sid.id as usize;
        if self.by_id.len() <= id {
            self.by_id.resize(id + 1, KeysAt::NONE);
        }
        self.by_id[id] = k;
    }

    /// Appends one row. The line's column names are distinct (validated). `same_shape` is the
    /// caller's word that the line has the same keys, in the same order and with the same
    /// field types, as the last row appended to this builder (as [`crate::write::GoodLine`]
    /// tells); it lets the row skip finding its columns by name. `series_id` is the parser's
    /// number for the line's series ([`crate::lp::Item::series_id`]), if it gave one.
    pub fn append(&mut self, line: &ParsedLine<'_>, time_ns: i64, same_shape: bool, series_id: Option<SeriesId>) {
        let width = line.tags.len() + line.fields.len();
        let same_shape = same_shape && self.rows > 0 && self.last_width == width;
        self.keys.clear();
        let known = match self.known_keys(line, series_id) {
            Some(k) if k.len as usize == line.tags.len() => {
                let at = k.at as usize;
                self.keys.extend_from_slice(&self.series_keys[at..at + k.len as usize]);
                true
            }
            _ => false,
        };
        for (at, (k, v)) in line.tags.iter().enumerate() {
            let reuse = if known { self.keys.get(at).copied() } else { None };
            let c = self.slot(same_shape, at, k, ColumnKind::Tag);
            c.len += 1;
            let ColumnBuilder::Tag(b) = &mut c.builder else { continue };
            let key = reuse.unwrap_or_else(|| b.key(v));
            b.keys.append_value(key);
            if !known {
                self.keys.push(key);
            }
        }
        if !known && !line.tags.is_empty() && self.series.len() < MAX_SERIES && self.keys.len() == line.tags.len() {
            let k = KeysAt { at: self.series_keys.len() as u32, len: self.keys.len() as u32 };
            self.series_keys.extend_from_slice(&self.keys);
            self.series.insert(line.series.into(), k);
            if let Some(sid) = series_id {
                self.remember_by_id(sid, k);
            }
        }
        let n = line.tags.len();
        for (at, (k, v)) in line.fields.iter().enumerate() {
            let c = self.slot(same_shape, n + at, k, ColumnKind::Field(crate::write::field_type(v)));
            c.builder.append_field(v);
            c.len += 1;
        }
        self.time.append_value(time_ns);
        self.rows += 1;
        self.last_width = width;
    }

    /// Finishes the batch of the rows appended so far.
    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let rows = self.rows;
        let mut fields = Vec::with_capacity(self.cols.len() + 1);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len() + 1);
        self.cols.sort_by(|a, b| a.name.cmp(&b.name));
        for c in &mut self.cols {
            if c.len < rows {
                c.builder.append_nulls(rows - c.len);
            }
            fields.push(arrow_field(&c.name, c.kind));
            arrays.push(c.builder.finish()?);
        }
        fields.push(arrow_field("time", ColumnKind::Time));
        arrays.push(Arc::new(self.time.finish()));
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use arrow::util::pretty::pretty_format_batches;

    /// One builder holding `body`'s lines of table `m`, validated as a write is, each at its
    /// own timestamp.
    fn builder(body: &str) -> TableBuilder {
        let catalog = crate::catalog::Catalog::in_memory();
        let p = crate::write::prepare(&catalog, "d", body.as_bytes(), crate::write::Precision::Nanosecond, 0, false).unwrap();
        assert!(p.rejects.is_empty(), "{:?}", p.rejects);
        let mut b = TableBuilder::new(0, "d".into(), p.tables[p.good[0].table].clone());
        for g in &p.good {
            b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
        }
        b
    }

    /// The batch [`builder`] makes of `body`.
    fn build(body: &str) -> RecordBatch {
        builder(body).finish().unwrap()
    }

    #[test]
    fn series_numbers_of_each_body_find_their_own_tags() {
        // Both bodies number their first series 0, but it is a different series in each; and
        // the second body's series are known to the builder only by their bytes.
        let catalog = crate::catalog::Catalog::in_memory();
        let mut b: Option<TableBuilder> = None;
        for body in ["m,h=a f=1 1\nm,h=b f=2 2\nm,h=a f=3 3", "m,h=b f=4 4\nm,h=c f=5 5\nm,h=a f=6 6\nm,h=b f=7 7"] {
            let p = crate::write::prepare(&catalog, "d", body.as_bytes(), crate::write::Precision::Nanosecond, 0, false).unwrap();
            let b = b.get_or_insert_with(|| TableBuilder::new(0, "d".into(), p.tables[p.good[0].table].clone()));
            for g in &p.good {
                assert!(g.series_id.is_some());
                b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
            }
        }
        let batch = b.unwrap().finish().unwrap();
        let h = arrow::compute::cast(batch.column_by_name("h").unwrap(), &DataType::Utf8).unwrap();
        let h: Vec<_> = arrow::array::AsArray::as_string::<i32>(&h).iter().map(|v| v.unwrap().to_string()).collect();
        assert_eq!(h, ["a", "b", "a", "b", "c", "a", "b"]);
    }

    #[test]
    fn rows_of_one_shape_fill_their_columns_by_position() {
        // Runs of one shape take the fast path; each change of keys or types must leave it.
        let batch = build("m,a=1 f=1 1\nm,a=2 f=2 2\nm,b=3 f=3 3\nm,b=4 g=4 4\nm,b=5 h=5i 5\nm,b=6 h=6i 6\nm,a=7 f=7 7");
        let text = pretty_format_batches(&[batch]).unwrap().to_string();
        let expected = "\
+---+---+-----+-----+---+-------------------------------+
| a | b | f   | g   | h | time                          |
+---+---+-----+-----+---+-------------------------------+
| 1 |   | 1.0 |     |   | 1970-01-01T00:00:00.000000001 |
| 2 |   | 2.0 |     |   | 1970-01-01T00:00:00.000000002 |
|   | 3 | 3.0 |     |   | 1970-01-01T00:00:00.000000003 |
|   | 4 |     | 4.0 |   | 1970-01-01T00:00:00.000000004 |
|   | 5 |     |     | 5 | 1970-01-01T00:00:00.000000005 |
|   | 6 |     |     | 6 | 1970-01-01T00:00:00.000000006 |
| 7 |   | 7.0 |     |   | 1970-01-01T00:00:00.000000007 |
+---+---+-----+-----+---+-------------------------------+";
        assert_eq!(text, expected);
    }

    #[test]
    fn rows_that_reorder_their_keys_land_in_the_right_columns() {
        let batch = build("m,a=1,b=2 f=1,g=2 1\nm,b=3,a=4 g=3,f=4 2\nm,a=5 f=5 3\nm,b=6,a=7 g=6 4");
        let text = pretty_format_batches(&[batch]).unwrap().to_string();
        let expected = "\
+---+---+-----+-----+-------------------------------+
| a | b | f   | g   | time                          |
+---+---+-----+-----+-------------------------------+
| 1 | 2 | 1.0 | 2.0 | 1970-01-01T00:00:00.000000001 |
| 4 | 3 | 4.0 | 3.0 | 1970-01-01T00:00:00.000000002 |
| 5 |   | 5.0 |     | 1970-01-01T00:00:00.000000003 |
| 7 | 6 |     | 6.0 | 1970-01-01T00:00:00.000000004 |
+---+---+-----+-----+-------------------------------+";
        assert_eq!(text, expected);
    }

    #[test]
    fn repeated_series_read_back_with_their_own_tags() {
        use arrow::array::AsArray;
        // Series come back after others, one shares a value with another, and one escapes.
        let batch = build("m,h=a,r=x f=1 1\nm,h=b,r=x f=2 2\nm,h=a,r=x f=3 3\nm,h=a f=4 4\nm,h=b,r=x f=5 5\nm,h=a\\ b,r=y f=6 6\nm,h=a\\ b,r=y f=7 7");
        let read = |name: &str| -> Vec<Option<String>> {
            let col = batch.column_by_name(name).unwrap().as_dictionary::<Int32Type>();
            let values = col.values().as_string::<i32>();
            col.keys().iter().map(|k| k.map(|k| values.value(k as usize).to_string())).collect()
        };
        let s = |v: &str| Some(v.to_string());
        assert_eq!(read("h"), vec![s("a"), s("b"), s("a"), s("a"), s("b"), s("a b"), s("a b")]);
        assert_eq!(read("r"), vec![s("x"), s("x"), s("x"), None, s("x"), s("y"), s("y")]);
        // Each distinct value is stored once.
        assert_eq!(batch.column_by_name("h").unwrap().as_dictionary::<Int32Type>().values().len(), 3);
    }

    #[test]
    fn dense_rows_build_no_validity_bitmap() {
        // Arrow drops an all-valid bitmap when it finishes an array, but a builder that has one
        // sets a bit for every value it takes: rows without gaps must never make one.
        let b = builder("m,h=a f=1,g=2i,s=\"x\",ok=true 1\nm,h=b f=3,g=4i,s=\"y\",ok=false 2");
        for c in &b.cols {
            let bitmap = match &c.builder {
                ColumnBuilder::Tag(t) => t.keys.validity_slice(),
                ColumnBuilder::Float(f) => f.validity_slice(),
                ColumnBuilder::Integer(i) => i.validity_slice(),
                ColumnBuilder::UInteger(u) => u.validity_slice(),
                ColumnBuilder::String(s) => s.validity_slice(),
                ColumnBuilder::Boolean(x) => x.validity_slice(),
            };
            assert!(bitmap.is_none(), "column {} built a validity bitmap", c.name);
        }
    }

    #[test]
    fn sparse_columns_read_as_null() {
        let batch = build("m,h=a f=1 1\nm g=2i 2\nm,h=b f=3,s=\"x\",ok=true 3");
        let text = pretty_format_batches(&[batch]).unwrap().to_string();
        let expected = "\
+-----+---+---+------+---+-------------------------------+
| f   | g | h | ok   | s | time                          |
+-----+---+---+------+---+-------------------------------+
| 1.0 |   | a |      |   | 1970-01-01T00:00:00.000000001 |
|     | 2 |   |      |   | 1970-01-01T00:00:00.000000002 |
| 3.0 |   | b | true | x | 1970-01-01T00:00:00.000000003 |
+-----+---+---+------+---+-------------------------------+";
        assert_eq!(text, expected);
    }
}
