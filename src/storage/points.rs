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
    // One chunk of any size: exactly one batch.
    Ok(sort_and_merge_chunks(batch, usize::MAX)?.pop().unwrap_or_else(|| batch.slice(0, 0)))
}

/// As [`sort_and_merge`], in batches of at most `chunk_rows` rows, each with buffers of its
/// own. A query hands these on rather than slices of one large batch: every slice reports the
/// whole buffer it shares as its size, and DataFusion's memory pool counted a 5 M-row merge,
/// sliced for a repartition, as 26 GB.
pub fn sort_and_merge_chunks(batch: &RecordBatch, chunk_rows: usize) -> Result<Vec<RecordBatch>, ArrowError> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(vec![batch.clone()]);
    }
    let (tags, time) = key_columns(batch)?;
    let times = times(batch)?.values();
    let (order, runs) = match series_keys(batch, &tags)? {
        Some(series) => {
            let mut order: Vec<u32> = (0..n as u32).collect();
            // Stable, and quick on the runs of rising time that writes mostly are.
            order.sort_by_key(|&r| (series[r as usize], times[r as usize]));
            let same = |a: u32, b: u32| series[a as usize] == series[b as usize] && times[a as usize] == times[b as usize];
            let runs = point_runs(&order, same);
            (order, runs)
        }
        None => {
            let keys: Vec<ArrayRef> = tags.iter().chain(std::iter::once(&time)).map(|&i| batch.column(i).clone()).collect();
            let converter = RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
            let rows = converter.convert_columns(&keys)?;
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
            let runs = point_runs(&order, |a, b| rows.row(a as usize) == rows.row(b as usize));
            (order, runs)
        }
    };
    // For each column, the input row each output row takes.
    let picks: Vec<std::borrow::Cow<'_, [u32]>> = if runs.len() == n {
        batch.columns().iter().map(|_| std::borrow::Cow::Borrowed(&order[..])).collect()
    } else {
        let is_key = |i: usize| i == time || tags.contains(&i);
        batch
            .columns()
            .iter()
            .enumerate()
            .map(|(ci, col)| {
                let idx: Vec<u32> = runs
                    .iter()
                    .map(|&(s, e)| {
                        let run = &order[s..e];
                        if is_key(ci) {
                            run[0]
                        } else {
                            // The last row of the run that has this field, else the last row.
                            run.iter().rev().copied().find(|&r| col.is_valid(r as usize)).unwrap_or(run[run.len() - 1])
                        }
                    })
                    .collect();
                std::borrow::Cow::Owned(idx)
            })
            .collect()
    };
    let out_rows = runs.len();
    let chunk = chunk_rows.max(1);
    let mut out = Vec::with_capacity(out_rows.div_ceil(chunk));
    let mut from = 0;
    while from < out_rows {
        let to = out_rows.min(from.saturating_add(chunk));
        let columns = batch
            .columns()
            .iter()
            .zip(&picks)
            .map(|(col, idx)| take(col, &UInt32Array::from(idx[from..to].to_vec()), None))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(RecordBatch::try_new(batch.schema(), columns)?);
        from = to;
    }
    Ok(out)
}

/// Runs of one point in `order`, as `[start, end)`.
fn point_runs(order: &[u32], same: impl Fn(u32, u32) -> bool) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || !same(order[i], order[start]) {
            runs.push((start, i));
            start = i;
        }
    }
    runs
}

/// Each row's series as one number that orders as the tag values do (nulls first, then by
/// value, tag by tag in schema order): each dictionary's values are ranked once, and a row's
/// ranks are read as the digits of a mixed-radix number. Comparing these is much cheaper than
/// comparing rows of tag strings. `None` (use the general path) for tags that are not
/// `Dictionary(Int32, Utf8)` without null values, or too many tag combinations for a `u64`.
fn series_keys(batch: &RecordBatch, tags: &[usize]) -> Result<Option<Vec<u64>>, ArrowError> {
    use arrow::array::{DictionaryArray, StringArray};
    use arrow::datatypes::Int32Type;
    let mut cols = Vec::with_capacity(tags.len());
    let mut radix: u64 = 1;
    for &i in tags {
        let Some(dict) = batch.column(i).as_any().downcast_ref::<DictionaryArray<Int32Type>>() else { return Ok(None) };
        let Some(values) = dict.values().as_any().downcast_ref::<StringArray>() else { return Ok(None) };
        if values.null_count() > 0 {
            return Ok(None);
        }
        let mut by_value: Vec<u32> = (0..values.len() as u32).collect();
        by_value.sort_unstable_by(|&a, &b| values.value(a as usize).cmp(values.value(b as usize)));
        // Rank 0 is null; equal values (a merged dictionary may repeat one) share a rank.
        let mut rank = vec![0u64; values.len()];
        let mut next = 0u64;
        for (k, &v) in by_value.iter().enumerate() {
            if k == 0 || values.value(v as usize) != values.value(by_value[k - 1] as usize) {
                next += 1;
            }
            rank[v as usize] = next;
        }
        let Some(r) = radix.checked_mul(next + 1) else { return Ok(None) };
        radix = r;
        cols.push((dict.keys(), rank, next + 1));
    }
    let mut keys = vec![0u64; batch.num_rows()];
    for (ids, rank, base) in &cols {
        for (row, key) in keys.iter_mut().enumerate() {
            let digit = if ids.is_null(row) { 0 } else { rank.get(ids.value(row) as usize).copied().unwrap_or(0) };
            *key = *key * base + digit;
        }
    }
    Ok(Some(keys))
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
    #[test]
    fn a_merge_in_chunks_is_the_merge_cut_into_batches_with_buffers_of_their_own() {
        let whole_in = batch(&[("a", 3, Some(1.0), None), ("b", 1, Some(2.0), Some(1)), ("a", 3, None, Some(7)), ("a", 1, None, None), ("b", 2, Some(4.0), None)]);
        let whole = sort_and_merge(&whole_in).unwrap();
        let chunks = sort_and_merge_chunks(&whole_in, 2).unwrap();
        assert_eq!(chunks.iter().map(|c| c.num_rows()).collect::<Vec<_>>(), vec![2, 2], "4 points: (a,3) merged");
        assert_eq!(arrow::compute::concat_batches(&whole.schema(), &chunks).unwrap(), whole);
        // Each chunk owns its buffers: its reported size is its own, not the whole merge's.
        let big: Vec<(&str, i64, Option<f64>, Option<i64>)> = (0..100_000).map(|i| ("a", i, Some(i as f64), Some(i))).collect();
        let big = batch(&big);
        let chunks = sort_and_merge_chunks(&big, 1000).unwrap();
        assert_eq!(chunks.len(), 100);
        assert!(chunks[0].get_array_memory_size() * 20 < big.get_array_memory_size());
    }

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

    /// One row of the test table: host, time, f, i.
    type Row<'a> = (Option<&'a str>, i64, Option<f64>, Option<i64>);
    type OwnedRow = (Option<String>, i64, Option<f64>, Option<i64>);

    /// The naive statement of the rule: stable sort by (host, nulls first; time), then per
    /// point the last non-null value of each field.
    fn naive(rows: &[Row<'_>]) -> Vec<OwnedRow> {
        let mut sorted: Vec<_> = rows.to_vec();
        sorted.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut out: Vec<OwnedRow> = Vec::new();
        for r in sorted {
            match out.last_mut() {
                Some(last) if last.0.as_deref() == r.0 && last.1 == r.1 => {
                    last.2 = r.2.or(last.2);
                    last.3 = r.3.or(last.3);
                }
                _ => out.push((r.0.map(str::to_string), r.1, r.2, r.3)),
            }
        }
        out
    }

    fn read_back(b: &RecordBatch) -> Vec<OwnedRow> {
        let f = b.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        let i = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        let t = b.column(3).as_any().downcast_ref::<TimestampNanosecondArray>().unwrap();
        (0..b.num_rows())
            .map(|r| {
                let host = b.column(1).is_valid(r).then(|| arrow::util::display::array_value_to_string(b.column(1), r).unwrap());
                (host, t.value(r), f.is_valid(r).then(|| f.value(r)), i.is_valid(r).then(|| i.value(r)))
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn sorting_and_merging_follows_the_naive_rule(
            rows in proptest::collection::vec(
                (proptest::option::weighted(0.9, 0..4usize), 0..5i64, proptest::option::of(0..100i32), proptest::option::of(0..100i64)),
                0..60,
            )
        ) {
            // Hosts drawn from a dictionary that repeats a value, as a merged one may.
            let names = ["b", "a", "c", "a"];
            let rows: Vec<_> = rows.iter().map(|&(h, t, f, i)| (h.map(|h| names[h]), t, f.map(f64::from), i)).collect();
            let keys: arrow::array::Int32Array = rows.iter().map(|r| r.0.map(|h| names.iter().position(|n| *n == h).unwrap() as i32)).collect();
            let host = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(arrow::array::StringArray::from(names.to_vec()))).unwrap();
            let b = batch(&rows.iter().map(|r| ("x", r.1, r.2, r.3)).collect::<Vec<_>>());
            let mut cols = b.columns().to_vec();
            cols[1] = Arc::new(host);
            let b = RecordBatch::try_new(b.schema(), cols).unwrap();
            let got = read_back(&sort_and_merge(&b).unwrap());
            proptest::prop_assert_eq!(got, naive(&rows));
        }
    }

    #[test]
    fn too_many_tag_combinations_for_one_number_still_sort_right() {
        // Five tags of 10,001 values each: more combinations than a u64 holds.
        let values: Arc<arrow::array::StringArray> = Arc::new((0..10_001).map(|v| format!("v{v:05}")).collect::<Vec<_>>().into());
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for t in 0..5 {
            fields.push(Field::new(format!("t{t}"), DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true));
            let keys = arrow::array::Int32Array::from(vec![10_000 - t, 3, 10_000 - t]);
            cols.push(Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values.clone()).unwrap()));
        }
        fields.push(Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false));
        cols.push(Arc::new(TimestampNanosecondArray::from(vec![5, 9, 5])));
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        assert!(series_keys(&b, &[0, 1, 2, 3, 4]).unwrap().is_none());
        let got = sort_and_merge(&b).unwrap();
        assert_eq!(got.num_rows(), 2, "the repeated point is merged");
        assert_eq!(arrow::util::display::array_value_to_string(got.column(0), 0).unwrap(), "v00003");
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
