//! InfluxDB's point semantics on Arrow batches: sort by series and time, and merge repeated
//! points.
//!
//! A point is (table, tag set, time). Rows of the same point are merged into one: for each
//! field the last non-null value wins, in the order the rows came (later writes later), as
//! InfluxDB does when the same point is written again. Persistence sorts and merges each file's
//! rows here, so a file holds each point once, in series-then-time order (which Parquet's
//! statistics and run-length encoding like).
//!
//! Pure functions over batches; they never look at the catalog or the store.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, TimestampNanosecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

/// Which columns form the point key: tags (dictionary columns) and `time`.
fn key_columns(batch: &RecordBatch) -> Result<(Vec<usize>, usize), ArrowError> {
    let schema = batch.schema();
    let mut tags = Vec::new();
    let mut time = None;
    for (i, f) in schema.fields().iter().enumerate() {
        match f.data_type() {
            DataType::Dictionary(_, _) => tags.push(i),
            DataType::Timestamp(_, _) if f.name() == "time" => time = Some(i),
            _ => {}
        }
    }
    let time = time.ok_or_else(|| ArrowError::SchemaError("a table batch without a time column".into()))?;
    Ok((tags, time))
}

/// The rows of `batch` sorted by series (tag columns in schema order) then time, each point
/// once, its fields merged (the last non-null value of each wins). The sort is stable, so
/// "last" is the order rows had in `batch`.
pub fn sort_and_merge(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(batch.clone());
    }
    let (tags, time) = key_columns(batch)?;
    let keys: Vec<ArrayRef> = tags.iter().chain(std::iter::once(&time)).map(|&i| batch.column(i).clone()).collect();
    let converter = RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
    let rows = converter.convert_columns(&keys)?;
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    // Runs of one point: [start, end) in `order`.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=n {
        if i == n || rows.row(order[i] as usize) != rows.row(order[start] as usize) {
            runs.push((start, i));
            start = i;
        }
    }
    let columns = if runs.len() == n {
        let idx = UInt32Array::from(order);
        batch.columns().iter().map(|c| take(c, &idx, None)).collect::<Result<Vec<_>, _>>()?
    } else {
        let is_key = |i: usize| i == time || tags.contains(&i);
        batch
            .columns()
            .iter()
            .enumerate()
            .map(|(ci, col)| {
                let idx: UInt32Array = runs
                    .iter()
                    .map(|&(s, e)| {
                        let run = &order[s..e];
                        let pick = if is_key(ci) {
                            run[0]
                        } else {
                            // The last row of the run that has this field, else the last row.
                            run.iter().rev().copied().find(|&r| col.is_valid(r as usize)).unwrap_or(run[run.len() - 1])
                        };
                        Some(pick)
                    })
                    .collect();
                take(col, &idx, None)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    RecordBatch::try_new(batch.schema(), columns)
}

/// The `time` column of `batch`.
pub fn times(batch: &RecordBatch) -> Result<&TimestampNanosecondArray, ArrowError> {
    let (_, time) = key_columns(batch)?;
    batch
        .column(time)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| ArrowError::SchemaError("time is not a nanosecond timestamp".into()))
}

/// Splits `batch` by time window (`window_ns` wide, aligned to the epoch), keyed by each
/// window's start in nanoseconds.
pub fn split_by_window(batch: &RecordBatch, window_ns: i64) -> Result<BTreeMap<i64, RecordBatch>, ArrowError> {
    let times = times(batch)?;
    let window_ns = window_ns.max(1);
    let mut groups: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in times.values().iter().enumerate() {
        groups.entry(t.div_euclid(window_ns) * window_ns).or_default().push(i as u32);
    }
    if groups.len() == 1 {
        return Ok(groups.into_keys().map(|w| (w, batch.clone())).collect());
    }
    groups
        .into_iter()
        .map(|(w, idx)| {
            let idx = UInt32Array::from(idx);
            let cols = batch.columns().iter().map(|c| take(c, &idx, None)).collect::<Result<Vec<_>, _>>()?;
            Ok((w, RecordBatch::try_new(batch.schema(), cols)?))
        })
        .collect()
}

/// The smallest and largest time in `batch` (`None` if it has no rows).
pub fn time_range(batch: &RecordBatch) -> Result<Option<(i64, i64)>, ArrowError> {
    let times = times(batch)?;
    Ok(arrow::compute::min(times).zip(arrow::compute::max(times)))
}

/// The key columns' names (tags in schema order, then `time`), for Parquet's sorting metadata.
pub fn sort_key_indices(batch: &RecordBatch) -> Result<Vec<usize>, ArrowError> {
    let (tags, time) = key_columns(batch)?;
    Ok(tags.into_iter().chain(std::iter::once(time)).collect())
}


#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Float64Array, Int64Array};
    use arrow::datatypes::{Field, Int32Type, Schema, TimeUnit};

    fn batch(rows: &[(&str, i64, Option<f64>, Option<i64>)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("host", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
            Field::new("i", DataType::Int64, true),
            Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        ]));
        let host: DictionaryArray<Int32Type> = rows.iter().map(|r| r.0).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                Arc::new(host),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn pretty(b: &RecordBatch) -> String {
        arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b)).unwrap().to_string()
    }

    #[test]
    fn rows_are_sorted_by_series_then_time() {
        let b = batch(&[("b", 2, Some(1.0), None), ("a", 3, Some(2.0), None), ("b", 1, Some(3.0), None), ("a", 1, Some(4.0), None)]);
        let got = sort_and_merge(&b).unwrap();
        let hosts: Vec<_> = (0..4).map(|i| arrow::util::display::array_value_to_string(got.column(1), i).unwrap()).collect();
        assert_eq!(hosts, ["a", "a", "b", "b"]);
        let t = got.column(3).as_any().downcast_ref::<TimestampNanosecondArray>().unwrap();
        assert_eq!(t.values().to_vec(), vec![1, 3, 1, 2]);
    }

    #[test]
    fn a_point_written_again_merges_its_fields_the_last_write_winning() {
        // a@1 written three times: f=1 then f=2 (wins), and i=7 only in the middle write.
        let b = batch(&[("a", 1, Some(1.0), None), ("b", 1, Some(9.0), None), ("a", 1, None, Some(7)), ("a", 1, Some(2.0), None)]);
        let got = sort_and_merge(&b).unwrap();
        let want = "\
+-----+------+---+-------------------------------+
| f   | host | i | time                          |
+-----+------+---+-------------------------------+
| 2.0 | a    | 7 | 1970-01-01T00:00:00.000000001 |
| 9.0 | b    |   | 1970-01-01T00:00:00.000000001 |
+-----+------+---+-------------------------------+";
        assert_eq!(pretty(&got), want);
    }

    #[test]
    fn rows_split_into_epoch_aligned_windows() {
        let b = batch(&[("a", 5, None, None), ("a", 15, None, None), ("a", -1, None, None), ("a", 9, None, None)]);
        let w = split_by_window(&b, 10).unwrap();
        assert_eq!(w.keys().copied().collect::<Vec<_>>(), vec![-10, 0, 10]);
        assert_eq!(w[&0].num_rows(), 2);
        assert_eq!(time_range(&w[&0]).unwrap(), Some((5, 9)));
    }
}
