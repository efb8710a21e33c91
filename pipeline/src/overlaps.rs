//! Where a table may hold the same point more than once: the time ranges queries must dedupe.
//!
//! A point is (table, tag set, time). Writing it again must read back as one row, but merging
//! every row at query time would sort every scan. Instead each table keeps, per series, the
//! latest time it has seen; a row at or before its series' latest time (or before the table's
//! `floor`, the newest time of rows persisted before this process started) *may* repeat an
//! earlier one, and the range of such times is recorded. Any copy of a point then lies inside a
//! recorded range, so queries merge only the files and batches that overlap one, and scan the
//! rest as they are. In-order writes, the usual case, record nothing and cost one hash lookup
//! per series per batch.
//!
//! The ranges are a superset: a false alarm costs a merge, never a wrong answer. They only
//! grow while the process runs (the persister saves them in the file index, and start-up seeds
//! them back), so two files written before a restart stay merged after it.
//!
//! Pure bookkeeping over batches; it never changes a row.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Int32Type};
use arrow::record_batch::RecordBatch;

/// Series remembered per table; past this the map is cleared and `floor` raised to the newest
/// time seen (conservative: every older row then counts as a possible repeat).
const MAX_SERIES: usize = 1 << 20;
/// Ranges kept per table; past this, neighbours are joined (a superset stays correct).
const MAX_RANGES: usize = 4096;

/// Sorted, disjoint, inclusive time ranges (ns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(i64, i64)>);

impl Ranges {
    pub fn as_slice(&self) -> &[(i64, i64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `[lo, hi]`, joining it with the ranges it touches.
    pub fn insert(&mut self, lo: i64, hi: i64) {
        if lo > hi {
            return;
        }
        // First range that ends at or after lo - 1 (could touch).
        let start = self.0.partition_point(|r| r.1 < lo.saturating_sub(1));
        let mut end = start;
        let (mut nlo, mut nhi) = (lo, hi);
        while end < self.0.len() && self.0[end].0 <= hi.saturating_add(1) {
            nlo = nlo.min(self.0[end].0);
            nhi = nhi.max(self.0[end].1);
            end += 1;
        }
        self.0.splice(start..end, [(nlo, nhi)]);
        self.bound();
    }

    /// Whether `[lo, hi]` meets any range.
    pub fn overlaps(&self, lo: i64, hi: i64) -> bool {
        let i = self.0.partition_point(|r| r.1 < lo);
        self.0.get(i).is_some_and(|r| r.0 <= hi)
    }

    /// Drops the parts before `cutoff` (rows there are gone, by retention).
    pub fn trim_below(&mut self, cutoff: i64) {
        self.0.retain(|r| r.1 >= cutoff);
        if let Some(first) = self.0.first_mut() {
            first.0 = first.0.max(cutoff);
        }
    }

    fn bound(&mut self) {
        while self.0.len() > MAX_RANGES {
            // Join each pair: half as many ranges, each covering what its two did.
            self.0 = self.0.chunks(2).map(|c| (c[0].0, c[c.len() - 1].1)).collect();
        }
    }
}

/// One table's record of where repeated points may be.
#[derive(Debug, Default)]
pub struct Overlaps {
    /// Series (tag values, encoded) → the newest time of its rows seen.
    latest: HashMap<Box<[u8]>, i64, foldhash::fast::RandomState>,
    /// Rows at or before this may repeat a row this process has not seen.
    floor: Option<i64>,
    ranges: Ranges,
}

impl Overlaps {
    /// Starts from what was persisted before: the newest persisted time, and saved ranges.
    pub fn seed(&mut self, floor: Option<i64>, ranges: &[(i64, i64)]) {
        self.floor = self.floor.max(floor);
        for &(lo, hi) in ranges {
            self.ranges.insert(lo, hi);
        }
    }

    pub fn ranges(&self) -> &Ranges {
        &self.ranges
    }

    pub fn trim_below(&mut self, cutoff: i64) {
        self.ranges.trim_below(cutoff);
    }

    /// Notes a batch about to be buffered. Batches without a `time` column are ignored.
    pub fn observe(&mut self, batch: &RecordBatch) {
        let Some(times) = batch
            .column_by_name("time")
            .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        else {
            return;
        };
        let tags: Vec<_> = batch
            .columns()
            .iter()
            .filter(|c| matches!(c.data_type(), DataType::Dictionary(k, _) if **k == DataType::Int32))
            .map(|c| c.as_dictionary::<Int32Type>())
            .collect();
        let n = batch.num_rows();
        let k = tags.len();
        // Each row's series as its dictionary keys (-1: null), one flat vector, so a row's key
        // is a slice and grouping rows allocates nothing per row.
        let mut keys = Vec::with_capacity(n * k);
        for r in 0..n {
            for t in &tags {
                keys.push(if t.is_valid(r) { t.keys().value(r) } else { -1 });
            }
        }
        struct Local {
            first_row: usize,
            min: i64,
            max: i64,
            in_order: bool,
        }
        let mut local: HashMap<&[i32], Local, foldhash::fast::RandomState> = HashMap::default();
        for (r, &t) in times.values().iter().enumerate() {
            let key = &keys[r * k..(r + 1) * k];
            match local.get_mut(key) {
                Some(s) => {
                    s.in_order &= t > s.max;
                    s.min = s.min.min(t);
                    s.max = s.max.max(t);
                }
                None => {
                    local.insert(key, Local { first_row: r, min: t, max: t, in_order: true });
                }
            }
        }
        let mut name = Vec::new();
        for s in local.values() {
            if !s.in_order {
                self.ranges.insert(s.min, s.max);
            }
            name.clear();
            for t in &tags {
                let r = s.first_row;
                if t.is_valid(r) {
                    let values = t.values().as_string::<i32>();
                    let v = values.value(t.keys().value(r) as usize).as_bytes();
                    name.push(1);
                    name.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    name.extend_from_slice(v);
                } else {
                    name.push(0);
                }
            }
            let seen = match self.latest.get_mut(name.as_slice()) {
                Some(latest) => Some(std::mem::replace(latest, (*latest).max(s.max))),
                None => {
                    self.latest.insert(name.as_slice().into(), s.max);
                    None
                }
            };
            if let Some(before) = seen.max(self.floor).filter(|&b| s.min <= b) {
                self.ranges.insert(s.min, before.min(s.max));
            }
        }
        if self.latest.len() > MAX_SERIES {
            let newest = self.latest.values().copied().max();
            self.floor = self.floor.max(newest);
            self.latest.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Float64Array};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("host", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
            Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        ]));
        let host: DictionaryArray<Int32Type> = rows.iter().map(|r| r.0).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![1.0; rows.len()])),
                Arc::new(host),
                Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn in_order_writes_record_no_range() {
        let mut o = Overlaps::default();
        o.observe(&batch(&[("a", 1), ("b", 1), ("a", 2), ("b", 2)]));
        o.observe(&batch(&[("b", 3), ("a", 3), ("c", 0)]));
        assert!(o.ranges().is_empty(), "{:?}", o.ranges());
    }

    #[test]
    fn a_repeated_point_is_inside_a_range_within_and_across_batches() {
        let mut o = Overlaps::default();
        o.observe(&batch(&[("a", 5), ("a", 5)]));
        assert_eq!(o.ranges().as_slice(), &[(5, 5)]);
        o.observe(&batch(&[("b", 10), ("b", 20)]));
        // b@15..20 again: only up to the 20 seen before can repeat.
        o.observe(&batch(&[("b", 15), ("b", 30)]));
        assert_eq!(o.ranges().as_slice(), &[(5, 5), (15, 20)]);
        assert!(o.ranges().overlaps(18, 100));
        assert!(!o.ranges().overlaps(6, 14));
    }

    #[test]
    fn rows_before_the_persisted_floor_may_repeat_unseen_rows() {
        let mut o = Overlaps::default();
        o.seed(Some(100), &[(1, 2)]);
        o.observe(&batch(&[("new", 90), ("new", 150)]));
        assert_eq!(o.ranges().as_slice(), &[(1, 2), (90, 100)]);
    }

    #[test]
    fn ranges_join_touching_neighbours_and_stay_bounded() {
        let mut r = Ranges::default();
        r.insert(10, 20);
        r.insert(21, 25);
        r.insert(1, 3);
        r.insert(2, 11);
        assert_eq!(r.as_slice(), &[(1, 25)]);
        for i in 0..(MAX_RANGES as i64 * 3) {
            r.insert(100 + i * 10, 100 + i * 10);
        }
        assert!(r.as_slice().len() <= MAX_RANGES);
        // Every point inserted is still covered.
        assert!((0..(MAX_RANGES as i64 * 3)).all(|i| r.overlaps(100 + i * 10, 100 + i * 10)));
        r.trim_below(200);
        assert_eq!(r.as_slice()[0].0, 200);
    }
}
