//! DataFusion schema providers: a database's tables, and the `system` tables.
//!
//! A table is served from a snapshot of its buffered batches taken when the query plans it,
//! each batch aligned to the table's current schema (columns added later read as null).

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use pipeline::batch::{align, table_schema};
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::{CatalogSnapshot, Database, Table};

/// The batches of one table, aligned to its schema and spread over `partitions`.
pub fn batches_for(
    buffer: &WriteBuffer,
    db: &Database,
    table: &Table,
    partitions: usize,
) -> Result<(SchemaRef, Vec<Vec<RecordBatch>>), DataFusionError> {
    let schema = table_schema(table);
    let snapshot = buffer.snapshot(db.id, table.id);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions.clamp(1, snapshot.len().max(1))];
    let n = parts.len();
    for (i, b) in snapshot.iter().enumerate() {
        parts[i % n].push(align(b, &schema)?);
    }
    Ok((schema, parts))
}

pub struct DbSchema {
    db: Arc<Database>,
    buffer: Arc<WriteBuffer>,
    partitions: usize,
}

impl DbSchema {
    pub fn new(db: Arc<Database>, buffer: Arc<WriteBuffer>, partitions: usize) -> DbSchema {
        DbSchema { db, buffer, partitions }
    }
}

impl std::fmt::Debug for DbSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSchema").field("db", &self.db.name).finish()
    }
}

#[async_trait]
impl SchemaProvider for DbSchema {
    fn table_names(&self) -> Vec<String> {
        self.db.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(table) = self.db.table(name) else {
            return Ok(None);
        };
        let (schema, parts) = batches_for(&self.buffer, &self.db, table, self.partitions)?;
        Ok(Some(Arc::new(MemTable::try_new(schema, parts)?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.db.tables.contains_key(name)
    }
}

/// `system.databases` and `system.tables`, built from one catalog snapshot.
#[derive(Debug)]
pub struct SystemSchema {
    catalog: Arc<CatalogSnapshot>,
}

impl SystemSchema {
    pub fn new(catalog: Arc<CatalogSnapshot>) -> SystemSchema {
        SystemSchema { catalog }
    }

    fn databases(&self) -> Result<RecordBatch, DataFusionError> {
        let names: Vec<&str> = self.catalog.databases.keys().map(|s| s.as_str()).collect();
        let tables: Vec<u64> = self.catalog.databases.values().map(|d| d.tables.len() as u64).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("database_name", DataType::Utf8, false),
            Field::new("table_count", DataType::UInt64, false),
        ]));
        let cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(names)), Arc::new(UInt64Array::from(tables))];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    fn tables(&self) -> Result<RecordBatch, DataFusionError> {
        let mut dbs = Vec::new();
        let mut tables = Vec::new();
        let mut columns = Vec::new();
        for d in self.catalog.databases.values() {
            for t in d.tables.values() {
                dbs.push(d.name.clone());
                tables.push(t.name.clone());
                columns.push(t.columns.len() as u64);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("database_name", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_count", DataType::UInt64, false),
        ]));
        let cols: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(dbs)), Arc::new(StringArray::from(tables)), Arc::new(UInt64Array::from(columns))];
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

const SYSTEM_TABLES: &[&str] = &["databases", "tables"];

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let batch = match name {
            "databases" => self.databases()?,
            "tables" => self.tables()?,
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}
