//! InfluxQL: the query language of InfluxDB 1.x, which Grafana's InfluxQL data source, the v1
//! `influxdb` clients and many dashboards still speak. Parsed here ([`parser`]), planned onto
//! DataFusion SQL ([`plan`]), and the rows made into InfluxQL's series ([`series`]).
//!
//! It reads only: `SELECT` and `SHOW` are answered here; `CREATE DATABASE` and `DROP DATABASE`
//! are the HTTP layer's, which holds the catalog and the storage. No InfluxQL parser exists on
//! crates.io, so this one is ours.

pub mod plan;
pub mod series;

pub use weir_wire::influxql::{ast, parser};

use std::collections::BTreeSet;

use pipeline::catalog::{CatalogSnapshot, ColumnKind, Database, FieldType};
use regex::Regex;

use self::ast::{NameFilter, Statement};
use self::plan::Columns;
use self::series::{Cell, Series};
use crate::query::quote::{ident, literal};
use crate::query::{QueryEngine, QueryError};

#[derive(Debug, thiserror::Error)]
pub enum InfluxqlError {
    #[error(transparent)]
    Parse(#[from] parser::ParseError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Shape(#[from] series::ShapeError),
    #[error("database not found: {0}")]
    DatabaseNotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// A measurement's tags and fields, from the catalog.
fn columns(db: &Database, measurement: &str) -> Columns {
    let mut c = Columns::default();
    if let Some(t) = db.table(measurement) {
        for col in &t.columns {
            match col.kind {
                ColumnKind::Tag => {
                    c.tags.insert(col.name.clone());
                }
                ColumnKind::Field(_) => {
                    c.fields.insert(col.name.clone());
                }
                ColumnKind::Time => {}
            }
        }
    }
    c
}

fn matches(filter: &NameFilter, name: &str) -> Result<bool, InfluxqlError> {
    let re = |r: &str| Regex::new(r).map_err(|e| InfluxqlError::Invalid(format!("invalid regular expression /{r}/: {e}")));
    Ok(match filter {
        NameFilter::Eq(n) => n == name,
        NameFilter::NotEq(n) => n != name,
        NameFilter::Regex(r) => re(r)?.is_match(name),
        NameFilter::NotRegex(r) => !re(r)?.is_match(name),
        NameFilter::In(v) => v.iter().any(|n| n == name),
    })
}

fn one_column(name: &str, column: &str, values: impl IntoIterator<Item = String>) -> Series {
    Series {
        name: name.to_string(),
        tags: Vec::new(),
        columns: vec![column.to_string()],
        rows: values.into_iter().map(|v| (0, vec![Cell::Str(v)])).collect(),
    }
}

/// The measurements a `FROM` names (all of them without one).
fn measurements<'a>(db: &'a Database, from: &Option<String>) -> Vec<&'a str> {
    match from {
        Some(m) => db.table(m).map(|t| t.name.as_str()).into_iter().collect(),
        None => db.tables.keys().map(|s| s.as_str()).collect(),
    }
}

/// Whether a series' rows carry a time column in the answer (SHOW answers have none).
pub fn has_time(stmt: &Statement) -> bool {
    matches!(stmt, Statement::Select(_))
}

/// Runs one `SELECT` or `SHOW` on database `db` (`SHOW DATABASES` needs none).
pub async fn execute(engine: &QueryEngine, catalog: &CatalogSnapshot, db: Option<&str>, stmt: &Statement, now: i64) -> Result<Vec<Series>, InfluxqlError> {
    if let Statement::ShowDatabases = stmt {
        return Ok(vec![one_column("databases", "name", catalog.databases.keys().cloned())]);
    }
    let db_name = db.filter(|d| !d.is_empty()).ok_or_else(|| InfluxqlError::Invalid("database name required (the 'db' parameter)".into()))?;
    let database = catalog.db(db_name).ok_or_else(|| InfluxqlError::DatabaseNotFound(db_name.to_string()))?;
    match stmt {
        Statement::Select(s) => {
            if database.table(&s.from).is_none() {
                return Ok(Vec::new());
            }
            let plan = plan::plan_select(s, &columns(database, &s.from), now)?;
            let out = engine.sql(db_name, &plan.sql, None).await?;
            Ok(series::shape(&plan, &out.batches, now)?)
        }
        Statement::ShowMeasurements { filter, limit } => {
            let mut names = Vec::new();
            for name in database.tables.keys() {
                if filter.as_ref().map(|f| matches(f, name)).transpose()?.unwrap_or(true) {
                    names.push(name.clone());
                }
            }
            if let Some(n) = limit {
                names.truncate(*n as usize);
            }
            Ok(if names.is_empty() { Vec::new() } else { vec![one_column("measurements", "name", names)] })
        }
        Statement::ShowTagKeys { from } => Ok(measurements(database, from)
            .into_iter()
            .map(|m| one_column(m, "tagKey", columns(database, m).tags))
            .filter(|s| !s.rows.is_empty())
            .collect()),
        Statement::ShowFieldKeys { from } => Ok(measurements(database, from)
            .into_iter()
            .filter_map(|m| {
                let t = database.table(m)?;
                let mut fields: Vec<(&str, FieldType)> = t
                    .columns
                    .iter()
                    .filter_map(|c| match c.kind {
                        ColumnKind::Field(ft) => Some((c.name.as_str(), ft)),
                        _ => None,
                    })
                    .collect();
                fields.sort_by_key(|f| f.0);
                let rows: Vec<(i64, Vec<Cell>)> =
                    fields.into_iter().map(|(name, ft)| (0, vec![Cell::Str(name.to_string()), Cell::Str(field_type(ft).into())])).collect();
                (!rows.is_empty()).then(|| Series { name: m.to_string(), tags: Vec::new(), columns: vec!["fieldKey".into(), "fieldType".into()], rows })
            })
            .collect()),
        Statement::ShowTagValues { from, keys, condition } => {
            let mut out = Vec::new();
            for m in measurements(database, from) {
                let mut rows = Vec::new();
                let cols = columns(database, m);
                let filter = match condition {
                    Some(c) => format!(" AND {}", plan::where_sql(c, &cols, now)?),
                    None => String::new(),
                };
                for key in cols.tags.iter() {
                    if !matches(keys, key)? {
                        continue;
                    }
                    let q = format!("SELECT DISTINCT CAST({k} AS VARCHAR) AS v FROM {t} WHERE {k} IS NOT NULL{filter} ORDER BY v", k = ident(key), t = ident(m));
                    for value in strings(engine.sql(db_name, &q, None).await?.batches)? {
                        rows.push((0, vec![Cell::Str(key.clone()), Cell::Str(value)]));
                    }
                }
                if !rows.is_empty() {
                    out.push(Series { name: m.to_string(), tags: Vec::new(), columns: vec!["key".into(), "value".into()], rows });
                }
            }
            Ok(out)
        }
        Statement::ShowSeries { from } => {
            let mut keys = BTreeSet::new();
            for m in measurements(database, from) {
                let tags: Vec<String> = columns(database, m).tags.into_iter().collect();
                if tags.is_empty() {
                    keys.insert(m.to_string());
                    continue;
                }
                // One string per tag set, built in SQL: `m,k1=v1,k2=v2` (unset tags left out).
                let parts: Vec<String> = tags
                    .iter()
                    .map(|t| format!("CASE WHEN {q} IS NULL THEN '' ELSE {lit} || CAST({q} AS VARCHAR) END", q = ident(t), lit = literal(&format!(",{t}="))))
                    .collect();
                let q = format!("SELECT DISTINCT {} || {} AS k FROM {}", literal(m), parts.join(" || "), ident(m));
                keys.extend(strings(engine.sql(db_name, &q, None).await?.batches)?);
            }
            Ok(if keys.is_empty() { Vec::new() } else { vec![one_column("", "key", keys)] })
        }
        Statement::ShowRetentionPolicies => {
            let duration = database.retention_ns.map_or("0s".to_string(), |ns| format!("{}h0m0s", ns / 3_600_000_000_000));
            Ok(vec![Series {
                name: String::new(),
                tags: Vec::new(),
                columns: ["name", "duration", "shardGroupDuration", "replicaN", "default"].map(String::from).to_vec(),
                rows: vec![(0, vec![Cell::Str("autogen".into()), Cell::Str(duration), Cell::Str("168h0m0s".into()), Cell::Int(1), Cell::Bool(true)])],
            }])
        }
        Statement::ShowDatabases | Statement::CreateDatabase(_) | Statement::DropDatabase(_) => {
            Err(InfluxqlError::Invalid(format!("{} is not answered here", stmt.kind())))
        }
    }
}

fn field_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Float => "float",
        FieldType::Integer => "integer",
        FieldType::UInteger => "unsigned",
        FieldType::String => "string",
        FieldType::Boolean => "boolean",
    }
}

/// The first column of `batches`, as strings.
fn strings(batches: Vec<arrow::record_batch::RecordBatch>) -> Result<Vec<String>, InfluxqlError> {
    let mut out = Vec::new();
    for b in batches {
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).map_err(|e| InfluxqlError::Invalid(e.to_string()))?;
        let col = arrow::array::AsArray::as_string::<i32>(&col);
        out.extend(col.iter().flatten().map(str::to_string));
    }
    Ok(out)
}
