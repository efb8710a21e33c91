//! The rows of a planned `SELECT` ([`super::plan`]) made into InfluxQL's answer: one series per
//! tag set, empty `GROUP BY time` buckets filled (`fill(null|none|previous|linear|N)`), the
//! per-series `LIMIT`/`OFFSET` and the `SLIMIT`/`SOFFSET` on series applied.
//!
//! It only reshapes Arrow batches already computed; it never queries.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, UInt64Type, Float64Type};
use arrow::record_batch::RecordBatch;

use super::ast::{Fill, Nanos};
use super::plan::{SelectPlan, Transform};

/// Most buckets one series may be filled out to: past it the query is refused, as InfluxDB
/// refuses "too many points in the group by interval".
pub const MAX_BUCKETS: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Cell {
    fn number(&self) -> Option<f64> {
        match self {
            Cell::Int(n) => Some(*n as f64),
            Cell::UInt(n) => Some(*n as f64),
            Cell::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Int(n) => (*n).into(),
            Cell::UInt(n) => (*n).into(),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
            Cell::Str(s) => s.clone().into(),
            Cell::Bool(b) => (*b).into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub tags: Vec<(String, String)>,
    /// The value columns' names (`time` comes first and is not among them).
    pub columns: Vec<String>,
    pub rows: Vec<(Nanos, Vec<Cell>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

fn cell(col: &ArrayRef, row: usize) -> Cell {
    if col.is_null(row) {
        return Cell::Null;
    }
    match col.data_type() {
        DataType::Int64 => Cell::Int(col.as_primitive::<Int64Type>().value(row)),
        DataType::UInt64 => Cell::UInt(col.as_primitive::<UInt64Type>().value(row)),
        DataType::Float64 => Cell::Float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Cell::Bool(col.as_boolean().value(row)),
        DataType::Utf8 => Cell::Str(col.as_string::<i32>().value(row).to_string()),
        _ => Cell::Null,
    }
}

/// A column in one of the types [`cell`] reads: integers, floats and strings stay; every other
/// type (dictionary tags, timestamps, smaller integers) is cast.
fn normalize(col: &ArrayRef) -> Result<ArrayRef, ShapeError> {
    let to = match col.data_type() {
        DataType::Int64 | DataType::UInt64 | DataType::Float64 | DataType::Boolean | DataType::Utf8 => return Ok(col.clone()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Timestamp(_, _) => DataType::Int64,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::UInt64,
        DataType::Float16 | DataType::Float32 | DataType::Decimal128(_, _) => DataType::Float64,
        DataType::Null => return Ok(arrow::array::new_null_array(&DataType::Utf8, col.len())),
        _ => DataType::Utf8,
    };
    arrow::compute::cast(col, &to).map_err(|e| ShapeError(e.to_string()))
}

/// Splits the plan's rows into series and applies fill and the limits. `now` bounds a `GROUP BY
/// time` query with no upper time in its WHERE clause, as InfluxDB does.
pub fn shape(plan: &SelectPlan, batches: &[RecordBatch], now: Nanos) -> Result<Vec<Series>, ShapeError> {
    let ngroups = plan.group_tags.len();
    let nvalues = plan.columns.len();
    let mut series: Vec<Series> = Vec::new();
    for b in batches {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| ShapeError(format!("the planned query lost its column {name}")));
        let time = normalize(col("__t")?)?;
        let groups = (0..ngroups).map(|i| col(&format!("__g{i}")).and_then(normalize)).collect::<Result<Vec<_>, _>>()?;
        let values = (0..nvalues).map(|i| col(&format!("__f{i}")).and_then(normalize)).collect::<Result<Vec<_>, _>>()?;
        let count = match b.column_by_name("__n") {
            Some(c) => Some(normalize(c)?),
            None => None,
        };
        for row in 0..b.num_rows() {
            if let Some(n) = &count {
                if cell(n, row) == Cell::Int(0) {
                    continue;
                }
            }
            let t = match cell(&time, row) {
                Cell::Int(t) => t,
                _ => 0,
            };
            let tags: Vec<(String, String)> = plan
                .group_tags
                .iter()
                .zip(&groups)
                .map(|(k, c)| (k.clone(), match cell(c, row) { Cell::Str(s) => s, _ => String::new() }))
                .collect();
            let cells: Vec<Cell> = values.iter().map(|c| cell(c, row)).collect();
            let t = if plan.aggregate && plan.group_time.is_none() { plan.lower.unwrap_or(0) } else { t };
            match series.last_mut() {
                Some(s) if s.tags == tags => s.rows.push((t, cells)),
                _ => series.push(Series { name: plan.measurement.clone(), tags, columns: plan.columns.clone(), rows: vec![(t, cells)] }),
            }
        }
    }
    if let (Some((every, offset)), true) = (plan.group_time, plan.fill != Fill::None) {
        fill_buckets(plan, &mut series, every, offset, now)?;
    }
    if plan.transforms.iter().any(Option::is_some) {
        for s in &mut series {
            apply_transforms(&plan.transforms, &mut s.rows, plan.descending);
        }
    }
    let soffset = plan.soffset.unwrap_or(0) as usize;
    let mut series: Vec<Series> = series.into_iter().skip(soffset).collect();
    if let Some(n) = plan.slimit {
        series.truncate(n as usize);
    }
    for s in &mut series {
        let offset = plan.offset.unwrap_or(0) as usize;
        if offset > 0 {
            s.rows.drain(..offset.min(s.rows.len()));
        }
        if let Some(n) = plan.limit {
            s.rows.truncate(n as usize);
        }
    }
    series.retain(|s| !s.rows.is_empty());
    Ok(series)
}

/// Applies each column's transformation along the series in time order; a row none of whose
/// transformed columns has a value left (the first, for a derivative) is dropped.
fn apply_transforms(transforms: &[Option<Transform>], rows: &mut Vec<(Nanos, Vec<Cell>)>, descending: bool) {
    if descending {
        rows.reverse();
    }
    for (c, t) in transforms.iter().enumerate() {
        if let Some(t) = t {
            transform_column(rows, c, *t);
        }
    }
    rows.retain(|r| transforms.iter().enumerate().any(|(c, t)| t.is_some() && r.1[c] != Cell::Null));
    if descending {
        rows.reverse();
    }
}

fn transform_column(rows: &mut [(Nanos, Vec<Cell>)], c: usize, t: Transform) {
    let mut prev: Option<(Nanos, Cell)> = None;
    let mut window: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let mut sum: Option<Cell> = None;
    for (time, cells) in rows.iter_mut() {
        let v = std::mem::replace(&mut cells[c], Cell::Null);
        let Some(x) = v.number() else { continue };
        let out = match t {
            Transform::Derivative { unit, non_negative } => match &prev {
                Some((pt, pv)) if *time != *pt => {
                    let d = (x - pv.number().unwrap_or(0.0)) / ((*time - *pt) as f64 / unit as f64);
                    if non_negative && d < 0.0 { Cell::Null } else { Cell::Float(d) }
                }
                _ => Cell::Null,
            },
            Transform::Difference { non_negative } => match &prev {
                Some((_, Cell::Int(p))) if matches!(v, Cell::Int(_)) => {
                    let d = (x as i64).wrapping_sub(*p);
                    if non_negative && d < 0 { Cell::Null } else { Cell::Int(d) }
                }
                Some((_, p)) => {
                    let d = x - p.number().unwrap_or(0.0);
                    if non_negative && d < 0.0 { Cell::Null } else { Cell::Float(d) }
                }
                None => Cell::Null,
            },
            Transform::MovingAverage(n) => {
                window.push_back(x);
                if window.len() > n {
                    window.pop_front();
                }
                if window.len() == n { Cell::Float(window.iter().sum::<f64>() / n as f64) } else { Cell::Null }
            }
            Transform::CumulativeSum => {
                let next = match (&sum, &v) {
                    (None, v) => v.clone(),
                    (Some(Cell::Int(a)), Cell::Int(b)) => Cell::Int(a.wrapping_add(*b)),
                    (Some(a), _) => Cell::Float(a.number().unwrap_or(0.0) + x),
                };
                sum = Some(next.clone());
                next
            }
            Transform::Elapsed { unit } => match &prev {
                Some((pt, _)) => Cell::Int((*time - *pt) / unit),
                None => Cell::Null,
            },
        };
        prev = Some((*time, v));
        cells[c] = out;
    }
}

fn bucket(t: Nanos, every: Nanos, offset: Nanos) -> Nanos {
    (t - offset).div_euclid(every) * every + offset
}

fn fill_buckets(plan: &SelectPlan, series: &mut [Series], every: Nanos, offset: Nanos, now: Nanos) -> Result<(), ShapeError> {
    let data_min = series.iter().flat_map(|s| s.rows.iter().map(|r| r.0)).min();
    let data_max = series.iter().flat_map(|s| s.rows.iter().map(|r| r.0)).max();
    let Some(start) = plan.lower.map(|l| bucket(l, every, offset)).or(data_min) else { return Ok(()) };
    // Without an upper bound the range ends now, as InfluxDB's does; with no bound at all, it
    // is the data's own span (a whole epoch of empty buckets helps no one).
    let upper = match (plan.upper, plan.lower, data_max) {
        (Some(u), _, _) => u,
        (None, Some(_), d) => now.max(d.unwrap_or(now)),
        (None, None, Some(d)) => d,
        (None, None, None) => return Ok(()),
    };
    let end = bucket(upper, every, offset);
    if end < start {
        return Ok(());
    }
    let buckets = (end - start) / every + 1;
    if buckets > MAX_BUCKETS {
        return Err(ShapeError(format!(
            "GROUP BY time over this range makes {buckets} buckets, more than {MAX_BUCKETS}: narrow the time range or widen the interval"
        )));
    }
    for s in series.iter_mut() {
        let mut known = std::mem::take(&mut s.rows);
        known.sort_by_key(|r| r.0);
        let width = s.columns.len();
        let mut rows: Vec<(Nanos, Vec<Cell>)> = Vec::with_capacity(buckets as usize);
        let mut it = known.into_iter().peekable();
        let mut t = start;
        while t <= end {
            match it.peek() {
                Some((kt, _)) if *kt == t => rows.push(it.next().map_or((t, vec![Cell::Null; width]), |r| r)),
                _ => rows.push((t, vec![Cell::Null; width])),
            }
            t += every;
        }
        // Buckets outside [start, end] (a WHERE with OR, say) keep their place.
        rows.extend(it);
        rows.sort_by_key(|r| r.0);
        for c in 0..width {
            fill_column(&mut rows, c, plan.fill);
        }
        if plan.descending {
            rows.reverse();
        }
        s.rows = rows;
    }
    Ok(())
}

fn fill_column(rows: &mut [(Nanos, Vec<Cell>)], c: usize, fill: Fill) {
    match fill {
        Fill::Null | Fill::None => {}
        Fill::Value(v) => {
            let ints = rows.iter().any(|r| matches!(r.1[c], Cell::Int(_) | Cell::UInt(_)));
            for r in rows.iter_mut().filter(|r| r.1[c] == Cell::Null) {
                r.1[c] = if ints && v.fract() == 0.0 { Cell::Int(v as i64) } else { Cell::Float(v) };
            }
        }
        Fill::Previous => {
            let mut last = Cell::Null;
            for r in rows.iter_mut() {
                if r.1[c] == Cell::Null {
                    r.1[c] = last.clone();
                } else {
                    last = r.1[c].clone();
                }
            }
        }
        Fill::Linear => {
            let known: Vec<(usize, Nanos, f64)> = rows.iter().enumerate().filter_map(|(i, r)| r.1[c].number().map(|v| (i, r.0, v))).collect();
            let ints = rows.iter().any(|r| matches!(r.1[c], Cell::Int(_)));
            for w in known.windows(2) {
                let ((i0, t0, v0), (i1, t1, v1)) = (w[0], w[1]);
                for (i, r) in rows.iter_mut().enumerate().take(i1).skip(i0 + 1) {
                    let v = v0 + (v1 - v0) * (r.0 - t0) as f64 / (t1 - t0) as f64;
                    r.1[c] = if ints { Cell::Int(v as i64) } else { Cell::Float(v) };
                    let _ = i;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(fill: Fill, lower: Option<Nanos>, upper: Option<Nanos>) -> SelectPlan {
        SelectPlan {
            sql: String::new(),
            measurement: "m".into(),
            columns: vec!["mean".into()],
            transforms: vec![None],
            group_tags: vec![],
            aggregate: true,
            group_time: Some((10, 0)),
            fill,
            lower,
            upper,
            descending: false,
            limit: None,
            offset: None,
            slimit: None,
            soffset: None,
        }
    }

    fn series(rows: Vec<(Nanos, Cell)>) -> Vec<Series> {
        vec![Series { name: "m".into(), tags: vec![], columns: vec!["mean".into()], rows: rows.into_iter().map(|(t, c)| (t, vec![c])).collect() }]
    }

    fn filled(fill: Fill) -> Vec<Cell> {
        let mut s = series(vec![(10, Cell::Float(1.0)), (40, Cell::Float(4.0))]);
        fill_buckets(&plan(fill, Some(0), Some(59)), &mut s, 10, 0, 1000).unwrap();
        assert_eq!(s[0].rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 10, 20, 30, 40, 50]);
        s[0].rows.iter().map(|r| r.1[0].clone()).collect()
    }

    #[test]
    fn fill_modes_fill_the_empty_buckets_of_the_range() {
        use Cell::*;
        assert_eq!(filled(Fill::Null), vec![Null, Float(1.0), Null, Null, Float(4.0), Null]);
        assert_eq!(filled(Fill::Value(7.5)), vec![Float(7.5), Float(1.0), Float(7.5), Float(7.5), Float(4.0), Float(7.5)]);
        assert_eq!(filled(Fill::Previous), vec![Null, Float(1.0), Float(1.0), Float(1.0), Float(4.0), Float(4.0)]);
        assert_eq!(filled(Fill::Linear), vec![Null, Float(1.0), Float(2.0), Float(3.0), Float(4.0), Null]);
    }

    #[test]
    fn transformations_follow_influxdb() {
        use Cell::*;
        let rows = || vec![(0, vec![Int(10)]), (1_000_000_000, vec![Int(14)]), (3_000_000_000, vec![Int(12)]), (4_000_000_000, vec![Null]), (5_000_000_000, vec![Int(20)])];
        let run = |t: Transform| {
            let mut r = rows();
            apply_transforms(&[Some(t)], &mut r, false);
            r.into_iter().map(|(t, c)| (t / 1_000_000_000, c[0].clone())).collect::<Vec<_>>()
        };
        assert_eq!(run(Transform::Derivative { unit: 1_000_000_000, non_negative: false }), vec![(1, Float(4.0)), (3, Float(-1.0)), (5, Float(4.0))]);
        assert_eq!(run(Transform::Derivative { unit: 1_000_000_000, non_negative: true }), vec![(1, Float(4.0)), (5, Float(4.0))]);
        assert_eq!(run(Transform::Difference { non_negative: false }), vec![(1, Int(4)), (3, Int(-2)), (5, Int(8))]);
        assert_eq!(run(Transform::MovingAverage(2)), vec![(1, Float(12.0)), (3, Float(13.0)), (5, Float(16.0))]);
        assert_eq!(run(Transform::CumulativeSum), vec![(0, Int(10)), (1, Int(24)), (3, Int(36)), (5, Int(56))]);
        assert_eq!(run(Transform::Elapsed { unit: 1_000_000_000 }), vec![(1, Int(1)), (3, Int(2)), (5, Int(2))]);
    }

    #[test]
    fn buckets_start_at_the_offset_and_a_huge_range_is_refused() {
        assert_eq!(bucket(25, 10, 3), 23);
        assert_eq!(bucket(-5, 10, 0), -10);
        let mut s = series(vec![(0, Cell::Int(1))]);
        let e = fill_buckets(&plan(Fill::Null, Some(0), Some(10 * MAX_BUCKETS + 10)), &mut s, 10, 0, 0).unwrap_err();
        assert!(e.0.contains("more than"), "{e}");
    }
}
