//! A table as queries see it: its Parquet files and its buffered batches, as one scan.
//!
//! Taken from one [`crate::storage::Storage::view`], so a persist running meanwhile cannot make
//! rows appear twice or not at all. Time predicates prune files by the index's min/max before
//! any is opened, and are handed to the Parquet reader for row groups and pages; every
//! predicate is also applied after the scan (`Inexact`), so pruning can only skip, never
//! decide. There is no limit on the number of files a query may read.
//!
//! Points (tag set, time) written more than once are merged where they may be: files and
//! batches that meet one of the table's overlap ranges ([`pipeline::overlaps`]) are read
//! together, in write order, and merged before anything above sees them; the rest are scanned
//! as they are, which is every row of a table written in time order.
//!
//! It never writes, and never reads a file the index does not list.

use std::sync::Arc;

use arrow::array::TimestampNanosecondArray;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use pipeline::batch::align;
use pipeline::overlaps::Ranges;

use crate::storage::index::ParquetFile;
use crate::storage::points::{sort_and_merge_chunks, time_range, times};

/// The URL the store is registered under in each query's session.
pub const STORE_URL: &str = "weir://store";

#[derive(Debug)]
pub struct TableView {
    pub schema: SchemaRef,
    /// Buffered batches as built (each holds the columns its rows had), spread over
    /// partitions; the scan fits them to the columns a query reads.
    pub buffered: Vec<Vec<RecordBatch>>,
    pub files: Vec<ParquetFile>,
    /// Where files and batches may share points ([`pipeline::overlaps`]).
    pub overlaps: Ranges,
    /// Rows older than this are past the database's retention period: never shown.
    pub cutoff: Option<i64>,
    pub partitions: usize,
}

#[async_trait]
impl TableProvider for TableView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (lo, hi) = time_bounds(filters);
        let lo = lo.max(self.cutoff.unwrap_or(i64::MIN));
        let mut files: Vec<&ParquetFile> = self.files.iter().filter(|f| f.max_time >= lo && f.min_time <= hi).collect();
        let mut buffered = match self.cutoff {
            Some(c) => self.buffered.iter().map(|p| retained(p, c)).collect::<Result<Vec<_>>>()?,
            None => self.buffered.clone(),
        };
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !self.overlaps.is_empty() {
            // Files and batches that meet an overlap range may share points: merge them first.
            let (dirty_files, clean_files): (Vec<&ParquetFile>, Vec<&ParquetFile>) =
                files.into_iter().partition(|f| self.overlaps.overlaps(f.min_time, f.max_time));
            files = clean_files;
            let mut dirty_batches = Vec::new();
            for part in &mut buffered {
                let (dirty, clean): (Vec<RecordBatch>, Vec<RecordBatch>) = std::mem::take(part).into_iter().partition(|b| {
                    time_range(b).ok().flatten().is_some_and(|(a, z)| z >= lo && a <= hi && self.overlaps.overlaps(a, z))
                });
                *part = clean;
                dirty_batches.extend(dirty);
            }
            if !dirty_files.is_empty() || !dirty_batches.is_empty() {
                inputs.push(self.merged(state, dirty_files, dirty_batches, projection, filters).await?);
            }
        }
        // Files holding rows on both sides of the retention cutoff are read with the cutoff
        // applied row by row in the reader; the rest as they are.
        let (straddling, whole): (Vec<&ParquetFile>, Vec<&ParquetFile>) =
            files.into_iter().partition(|f| self.cutoff.is_some_and(|c| f.min_time < c));
        if !whole.is_empty() {
            let predicate = conjunction(filters.iter().cloned());
            inputs.push(self.parquet_scan(state, &whole, predicate, self.partitions, projection, limit)?);
        }
        if let (false, Some(c)) = (straddling.is_empty(), self.cutoff) {
            let predicate = conjunction(filters.iter().cloned().chain([not_before(c)]));
            inputs.push(self.parquet_scan(state, &straddling, predicate, self.partitions, projection, limit)?);
        }
        if !buffered.iter().all(|p| p.is_empty()) || inputs.is_empty() {
            // Fitted to the projection only: a batch padded with nulls for every column of a
            // table with hundreds of sparse columns cost memory no query had asked for.
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            let fitted = buffered
                .iter()
                .map(|part| part.iter().map(|b| align(b, &projected)).collect::<std::result::Result<Vec<_>, _>>())
                .collect::<std::result::Result<Vec<_>, _>>()?;
            inputs.push(MemorySourceConfig::try_new_exec(&fitted, projected, None)?);
        }
        if inputs.len() == 1 {
            return Ok(inputs.remove(0));
        }
        UnionExec::try_new(inputs)
    }
}

impl TableView {
    /// A Parquet scan of `files` in `partitions` groups (files kept in order within a group).
    fn parquet_scan(
        &self,
        state: &dyn Session,
        files: &[&ParquetFile],
        predicate: Option<Expr>,
        partitions: usize,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut source = ParquetSource::new(self.schema.clone());
        if let Some(predicate) = predicate {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        if self.cutoff.is_some_and(|c| files.iter().any(|f| f.min_time < c)) {
            // The retention cutoff is in the predicate and must hold row by row, not only
            // prune row groups: nothing above the scan applies it again.
            source = source.with_pushdown_filters(true);
        }
        let n = partitions.clamp(1, files.len().max(1));
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); n];
        for (i, f) in files.iter().enumerate() {
            groups[i % n].push(PartitionedFile::new(f.path.clone(), f.size_bytes));
        }
        let url = ObjectStoreUrl::parse(STORE_URL)?;
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    /// The rows of `files` and `batches`, each point once (fields merged, the last write
    /// winning), as a scan. Files are read in the order they were written, then the buffer,
    /// so "last" is the order of writes. Only predicates on tags and `time` are pushed below
    /// the merge: one on a field could drop the row whose value wins. Runs the merge here, at
    /// planning, over just the overlapping part of the table.
    async fn merged(
        &self,
        state: &dyn Session,
        mut files: Vec<&ParquetFile>,
        batches: Vec<RecordBatch>,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        files.sort_by_key(|f| f.id);
        let mut all = Vec::new();
        if !files.is_empty() {
            let key_filters = filters.iter().filter(|f| on_key_columns(f, &self.schema)).cloned();
            let key_filters = key_filters.chain(self.cutoff.map(not_before));
            let plan = self.parquet_scan(state, &files, conjunction(key_filters), 1, None, None)?;
            all = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        }
        for b in &batches {
            all.push(align(b, &self.schema)?);
        }
        let rows = state.config().batch_size();
        let merged = sort_and_merge_chunks(&arrow::compute::concat_batches(&self.schema, &all)?, rows)?;
        Ok(MemorySourceConfig::try_new_exec(&[merged], self.schema.clone(), projection.cloned())?)
    }
}

/// `time >= cutoff`.
fn not_before(cutoff: i64) -> Expr {
    datafusion::prelude::col("time").gt_eq(datafusion::prelude::lit(ScalarValue::TimestampNanosecond(Some(cutoff), None)))
}

/// The rows of `batches` at or after `cutoff`; batches wholly after it are kept as they are
/// (no copy), those wholly before dropped.
fn retained(batches: &[RecordBatch], cutoff: i64) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        match time_range(b)? {
            Some((lo, _)) if lo >= cutoff => out.push(b.clone()),
            Some((_, hi)) if hi >= cutoff => {
                let keep = arrow::compute::kernels::cmp::gt_eq(times(b)?, &TimestampNanosecondArray::new_scalar(cutoff))?;
                out.push(arrow::compute::filter_record_batch(b, &keep)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether `filter` reads only tag columns and `time` (safe to apply before points merge).
fn on_key_columns(filter: &Expr, schema: &SchemaRef) -> bool {
    filter.column_refs().iter().all(|c| {
        schema.field_with_name(&c.name).is_ok_and(|f| c.name == "time" || matches!(f.data_type(), DataType::Dictionary(_, _)))
    })
}

/// The inclusive range of `time` (ns) that rows passing every filter can lie in, from the
/// filters that compare `time` with a constant; anything else leaves the range open.
fn time_bounds(filters: &[Expr]) -> (i64, i64) {
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    let mut visit = |e: &Expr| {
        if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e {
            let (op, value) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) if c.name == "time" => (*op, v),
                (Expr::Literal(v, _), Expr::Column(c)) if c.name == "time" => match op.swap() {
                    Some(op) => (op, v),
                    None => return,
                },
                _ => return,
            };
            let Some(t) = timestamp_ns(value) else { return };
            match op {
                Operator::Gt => lo = lo.max(t.saturating_add(1)),
                Operator::GtEq => lo = lo.max(t),
                Operator::Lt => hi = hi.min(t.saturating_sub(1)),
                Operator::LtEq => hi = hi.min(t),
                Operator::Eq => {
                    lo = lo.max(t);
                    hi = hi.min(t);
                }
                _ => {}
            }
        }
    };
    for f in filters {
        // Conjunctions arrive split; `a AND b` inside one filter is split here too.
        let mut stack = vec![f];
        while let Some(e) = stack.pop() {
            if let Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) = e {
                stack.push(left);
                stack.push(right);
            } else {
                visit(e);
            }
        }
    }
    (lo, hi)
}

fn timestamp_ns(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(t: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(Some(t), None))
    }

    #[test]
    fn time_predicates_bound_the_range_and_others_leave_it_open() {
        assert_eq!(time_bounds(&[]), (i64::MIN, i64::MAX));
        assert_eq!(time_bounds(&[col("time").gt_eq(ts(10)), col("time").lt(ts(20))]), (10, 19));
        assert_eq!(time_bounds(&[col("time").gt(ts(10)).and(col("host").eq(lit("a")))]), (11, i64::MAX));
        assert_eq!(time_bounds(&[ts(5).lt_eq(col("time"))]), (5, i64::MAX));
        // An OR is not a bound.
        assert_eq!(time_bounds(&[col("time").lt(ts(5)).or(col("time").gt(ts(50)))]), (i64::MIN, i64::MAX));
    }
}
