//! Query output formats: json, jsonl, csv, pretty, parquet.
//!
//! JSON rows are objects keyed by column, nulls left out, `time` (any timestamp) as an RFC 3339
//! string in UTC; tags (dictionaries) come out as plain strings. It only encodes; it never runs
//! a query.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, SecondsFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    JsonLines,
    Csv,
    Pretty,
    Parquet,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "json" => Format::Json,
            "jsonl" => Format::JsonLines,
            "csv" => Format::Csv,
            "pretty" => Format::Pretty,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::JsonLines => "application/jsonl",
            Format::Csv => "text/csv",
            Format::Pretty => "text/plain; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("could not encode the result: {0}")]
    Arrow(#[from] ArrowError),
    #[error("could not encode the result as Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Encodes a result.
pub fn encode(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, FormatError> {
    match format {
        Format::Json | Format::JsonLines => {
            let batches = batches.iter().map(presentable).collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            if format == Format::Json {
                let mut w = arrow_json::ArrayWriter::new(Vec::new());
                w.write_batches(&refs)?;
                w.finish()?;
                let out = w.into_inner();
                // The writer emits nothing at all for zero rows; an empty array is still JSON.
                Ok(if out.is_empty() { b"[]".to_vec() } else { out })
            } else {
                let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
                w.write_batches(&refs)?;
                w.finish()?;
                Ok(w.into_inner())
            }
        }
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(Vec::new());
            if batches.is_empty() {
                // Still write the header line.
                w.write(&RecordBatch::new_empty(plain_schema(schema)))?;
            }
            for b in batches {
                w.write(&presentable(b)?)?;
            }
            Ok(w.into_inner())
        }
        Format::Pretty => {
            let mut text = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(schema.clone())])?.to_string()
            } else {
                arrow::util::pretty::pretty_format_batches(batches)?.to_string()
            };
            text.push('\n');
            Ok(text.into_bytes())
        }
        Format::Parquet => {
            let mut out = Vec::new();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
            Ok(out)
        }
    }
}

fn plain_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Dictionary(_, v) => (**v).clone(),
        DataType::Timestamp(_, _) => DataType::Utf8,
        other => other.clone(),
    }
}

fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}

/// Dictionaries become their values; timestamps become RFC 3339 strings in UTC.
fn presentable(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = plain_schema(&batch.schema());
    let cols: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Dictionary(_, v) => cast(c, v),
            DataType::Timestamp(_, _) => rfc3339(c),
            _ => Ok(c.clone()),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(schema, cols)
}

fn rfc3339(c: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let ns = cast(c, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
    let ns = ns
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| ArrowError::CastError("timestamp".into()))?;
    let mut b = StringBuilder::with_capacity(ns.len(), ns.len() * 30);
    for i in 0..ns.len() {
        if ns.is_null(i) {
            b.append_null();
        } else {
            let t = DateTime::from_timestamp_nanos(ns.value(i));
            b.append_value(t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
    Ok(Arc::new(b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Float64Array};
    use arrow::datatypes::Int32Type;

    fn sample() -> RecordBatch {
        let host: DictionaryArray<Int32Type> = vec![Some("a"), None].into_iter().collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("host", host.data_type().clone(), true),
            Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("usage", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(host),
                Arc::new(TimestampNanosecondArray::from(vec![1_700_000_000_000_000_000, 1_700_000_000_500_000_000])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_rows_with_rfc3339_time_and_no_nulls() {
        let b = sample();
        let out = String::from_utf8(encode(Format::Json, &b.schema(), &[b]).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"[{"host":"a","time":"2023-11-14T22:13:20Z","usage":1.5},{"time":"2023-11-14T22:13:20.500Z"}]"#
        );
    }

    #[test]
    fn empty_results_are_still_well_formed() {
        let b = sample();
        let schema = b.schema();
        assert_eq!(encode(Format::Json, &schema, &[]).unwrap(), b"[]");
        assert_eq!(encode(Format::JsonLines, &schema, &[]).unwrap(), b"");
        assert_eq!(String::from_utf8(encode(Format::Csv, &schema, &[]).unwrap()).unwrap(), "host,time,usage\n");
    }

    #[test]
    fn csv_and_pretty() {
        let b = sample();
        let csv = String::from_utf8(encode(Format::Csv, &b.schema(), std::slice::from_ref(&b)).unwrap()).unwrap();
        assert_eq!(csv, "host,time,usage\na,2023-11-14T22:13:20Z,1.5\n,2023-11-14T22:13:20.500Z,\n");
        let pretty = String::from_utf8(encode(Format::Pretty, &b.schema(), &[b]).unwrap()).unwrap();
        assert!(pretty.contains("| host | time"), "{pretty}");
    }
}
