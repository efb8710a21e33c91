//! A table as queries see it: its Parquet files and its buffered batches, as one scan.
//!
//! Taken from one [`crate::storage::Storage::view`], so a persist running meanwhile cannot make
//! rows appear twice or not at all. Time predicates prune files by the index's min/max before
//! any is opened, and are handed to the Parquet reader for row groups and pages; every
//! predicate is also applied after the scan (`Inexact`), so pruning can only skip, never
//! decide. There is no limit on the number of files a query may read.
//!
//! It never writes, and never reads a file the index does not list.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
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

use crate::storage::index::ParquetFile;

/// The URL the store is registered under in each query's session.
pub const STORE_URL: &str = "weir://store";

#[derive(Debug)]
pub struct TableView {
    pub schema: SchemaRef,
    /// Buffered batches, aligned to `schema`, spread over partitions.
    pub buffered: Vec<Vec<RecordBatch>>,
    pub files: Vec<ParquetFile>,
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
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let (lo, hi) = time_bounds(filters);
        let files: Vec<&ParquetFile> = self.files.iter().filter(|f| f.max_time >= lo && f.min_time <= hi).collect();
        if !files.is_empty() {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            let mut source = ParquetSource::new(self.schema.clone());
            if let Some(predicate) = conjunction(filters.iter().cloned()) {
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let n = self.partitions.clamp(1, files.len());
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
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !self.buffered.iter().all(|p| p.is_empty()) || inputs.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(&self.buffered, self.schema.clone(), projection.cloned())?);
        }
        UnionExec::try_new(inputs)
    }
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
