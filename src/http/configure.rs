//! `/api/v3/configure/database` and `/api/v3/configure/table`: create, list, update (a
//! database's retention period), delete.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::{Catalog, CatalogOp, Column, ColumnKind, FieldType};
use serde::Deserialize;

use super::error::{empty_response, ApiError, Resp};
use crate::query::format::{encode, Format};
use crate::storage::{Forget, Storage};

pub(super) fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}; expected {shape}")))
}

/// A name from the JSON body or, failing that, the query string.
pub(super) fn name_from(body: &[u8], qs: &HashMap<String, String>, key: &str) -> Result<String, ApiError> {
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        let v: serde_json::Value = json_body(body, &format!("{{\"{key}\": ...}}"))?;
        if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
            return Ok(s.to_string());
        }
    }
    qs.get(key).filter(|s| !s.is_empty()).cloned().ok_or_else(|| ApiError::BadRequest(format!("missing '{key}'")))
}

pub fn list_databases(catalog: &Catalog, qs: &HashMap<String, String>) -> Result<Resp, ApiError> {
    let format = match qs.get("format").map(|s| s.as_str()) {
        None | Some("") => Format::Json,
        Some(f) => Format::parse(f).ok_or_else(|| ApiError::BadRequest(format!("invalid format '{f}'")))?,
    };
    let snapshot = catalog.snapshot();
    let names: Vec<&str> = snapshot.databases.keys().map(|s| s.as_str()).collect();
    let schema = Arc::new(Schema::new(vec![Field::new("iox::database", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(names))])
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let bytes = encode(format, &schema, &[batch]).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(format.content_type()));
    Ok(r)
}

/// The database's name and retention period (`None`: keep rows forever), from the JSON body
/// or the query string.
fn database_and_retention(body: &[u8], qs: &HashMap<String, String>) -> Result<(String, Option<u64>), ApiError> {
    let name = name_from(body, qs, "db")?;
    let period = if body.iter().all(|b| b.is_ascii_whitespace()) {
        qs.get("retention_period").cloned()
    } else {
        let v: serde_json::Value = json_body(body, "{\"db\": ..., \"retention_period\": \"30d\"}")?;
        match v.get("retention_period") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(ApiError::BadRequest(format!("'retention_period' must be a string like \"30d\", not {other}"))),
        }
    };
    let retention_ns = match period {
        Some(p) => pipeline::retention::parse(&p).map_err(ApiError::BadRequest)?,
        None => None,
    };
    Ok((name, retention_ns))
}

pub fn create_database(catalog: &Catalog, body: &[u8], qs: &HashMap<String, String>) -> Result<Resp, ApiError> {
    let (name, retention_ns) = database_and_retention(body, qs)?;
    catalog.update(&[CatalogOp::CreateDatabase { name, retention_ns }])?;
    Ok(empty_response(StatusCode::OK))
}

/// `PUT`: sets the retention period (a missing or null one clears it, as `none` does).
pub fn update_database(catalog: &Catalog, body: &[u8], qs: &HashMap<String, String>) -> Result<Resp, ApiError> {
    let (db, retention_ns) = database_and_retention(body, qs)?;
    catalog.update(&[CatalogOp::SetRetention { db, retention_ns }])?;
    Ok(empty_response(StatusCode::OK))
}

pub fn delete_database(
    catalog: &Catalog,
    buffer: &WriteBuffer,
    storage: &Storage,
    body: &[u8],
    qs: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let db = name_from(body, qs, "db")?;
    let id = catalog.snapshot().db(&db).map(|d| d.id).ok_or_else(|| ApiError::NotFound(format!("database '{db}' not found")))?;
    catalog.update(&[CatalogOp::DeleteDatabase(db)])?;
    buffer.drop_database(id);
    storage.forget_later(Forget { db_id: id, table_id: None });
    Ok(empty_response(StatusCode::OK))
}

#[derive(Deserialize)]
struct FieldDef {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct CreateTable {
    db: String,
    table: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    fields: Vec<FieldDef>,
}

pub fn create_table(catalog: &Catalog, body: &[u8]) -> Result<Resp, ApiError> {
    let req: CreateTable = json_body(body, r#"{"db", "table", "tags": [..], "fields": [{"name", "type"}]}"#)?;
    let mut columns: Vec<Column> = req.tags.iter().map(|t| Column { name: t.clone(), kind: ColumnKind::Tag }).collect();
    for f in &req.fields {
        let t = FieldType::parse(&f.kind).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "field '{}' has unknown type '{}': expected float, integer, uinteger, string or boolean",
                f.name, f.kind
            ))
        })?;
        columns.push(Column { name: f.name.clone(), kind: ColumnKind::Field(t) });
    }
    for c in &columns {
        if c.name.is_empty() || c.name == "time" {
            return Err(ApiError::BadRequest(format!("invalid column name '{}'", c.name)));
        }
    }
    if catalog.snapshot().db(&req.db).is_none() {
        return Err(ApiError::NotFound(format!("database '{}' not found", req.db)));
    }
    catalog.update(&[CatalogOp::CreateTable { db: req.db, table: req.table, columns }])?;
    Ok(empty_response(StatusCode::OK))
}

pub fn delete_table(
    catalog: &Catalog,
    buffer: &WriteBuffer,
    storage: &Storage,
    body: &[u8],
    qs: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let db = name_from(body, qs, "db")?;
    let table = name_from(body, qs, "table")?;
    let snapshot = catalog.snapshot();
    let dbm = snapshot.db(&db).ok_or_else(|| ApiError::NotFound(format!("database '{db}' not found")))?;
    let t = dbm.table(&table).ok_or_else(|| ApiError::NotFound(format!("table '{table}' not found in database '{db}'")))?;
    let (db_id, table_id) = (dbm.id, t.id);
    catalog.update(&[CatalogOp::DeleteTable { db, table }])?;
    buffer.drop_table(db_id, table_id);
    storage.forget_later(Forget { db_id, table_id: Some(table_id) });
    Ok(empty_response(StatusCode::OK))
}
