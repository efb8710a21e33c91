//! InfluxQL over HTTP: v1's `GET|POST /query` (`db`, `q`, `epoch`, form bodies; JSON `results`
//! and `series` as InfluxDB 1.x answers, CSV with `Accept: application/csv`) and InfluxDB 3's
//! `/api/v3/query_influxql` (`db`, `q`, `format`, rows with an `iox::measurement` column).
//!
//! Thin: statements are parsed, planned and shaped by [`crate::influxql`]; `CREATE DATABASE`
//! and `DROP DATABASE` go to the same code as `/api/v3/configure/database`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::error::{json_response, ApiError, Resp};
use super::Api;
use crate::auth::{Action, Principal};
use crate::influxql::ast::Statement;
use crate::influxql::series::{Cell, Series};
use crate::influxql::{self, parser};
use crate::query::format::{encode, Format};

/// The request's parameters: the query string, and a form body (`q=...&db=...`) on top.
fn params(parts: &Parts, body: &[u8]) -> HashMap<String, String> {
    let mut p = super::body::query_params(parts);
    let form = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        p.extend(weir_wire::params::query_string(std::str::from_utf8(body).ok()));
    }
    p
}

/// Runs every statement; each answers its series or its error, as InfluxDB 1.x does.
async fn run(api: &Api, principal: &Principal, db: Option<&str>, statements: &[Statement]) -> Vec<Result<(bool, Vec<Series>), String>> {
    let now = crate::time::now_ns();
    let mut out = Vec::with_capacity(statements.len());
    for stmt in statements {
        let result = async {
            match stmt {
                Statement::CreateDatabase(name) => {
                    principal.require(Action::Admin).map_err(|e| e.to_string())?;
                    let body = json!({ "db": name }).to_string();
                    super::configure::create_database(&api.catalog, body.as_bytes(), &HashMap::new()).map_err(|e| e.to_string())?;
                    Ok((false, Vec::new()))
                }
                Statement::DropDatabase(name) => {
                    principal.require(Action::Admin).map_err(|e| e.to_string())?;
                    let body = json!({ "db": name }).to_string();
                    super::configure::delete_database(&api.catalog, &api.buffer, &api.storage, body.as_bytes(), &HashMap::new())
                        .map_err(|e| e.to_string())?;
                    Ok((false, Vec::new()))
                }
                Statement::ShowDatabases => {
                    principal.require(Action::Admin).map_err(|e| e.to_string())?;
                    let snapshot = api.catalog.snapshot();
                    influxql::execute(&api.query, &snapshot, db, stmt, now).await.map(|s| (false, s)).map_err(|e| e.to_string())
                }
                _ => {
                    let name = db.filter(|d| !d.is_empty()).ok_or_else(|| "database name required".to_string())?;
                    principal.require(Action::Read(name)).map_err(|e| e.to_string())?;
                    let snapshot = api.catalog.snapshot();
                    let series = influxql::execute(&api.query, &snapshot, Some(name), stmt, now).await.map_err(|e| e.to_string())?;
                    Ok((influxql::has_time(stmt), series))
                }
            }
        }
        .await;
        out.push(result);
    }
    out
}

fn parse(q: Option<&String>) -> Result<Vec<Statement>, ApiError> {
    let q = q.filter(|q| !q.trim().is_empty()).ok_or_else(|| ApiError::BadRequest("missing required parameter \"q\"".into()))?;
    parser::parse(q).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A time as v1 writes it: RFC 3339, or an integer in `epoch`'s unit.
fn time_json(ns: i64, epoch: Option<i64>) -> serde_json::Value {
    match epoch {
        Some(div) => (ns.div_euclid(div)).into(),
        None => crate::time::format_instant(ns).into(),
    }
}

fn epoch_divisor(epoch: Option<&String>) -> Result<Option<i64>, ApiError> {
    Ok(match epoch.map(|s| s.as_str()) {
        None | Some("") => None,
        Some("ns" | "n") => Some(1),
        Some("u" | "µ" | "us") => Some(1_000),
        Some("ms") => Some(1_000_000),
        Some("s") => Some(1_000_000_000),
        Some("m") => Some(60_000_000_000),
        Some("h") => Some(3_600_000_000_000),
        Some(e) => return Err(ApiError::BadRequest(format!("invalid epoch '{e}': expected ns, u, ms, s, m or h"))),
    })
}

/// `GET|POST /query`.
pub async fn query_v1(api: &Api, principal: &Principal, parts: &Parts, body: &[u8]) -> Result<Resp, ApiError> {
    let p = params(parts, body);
    let statements = parse(p.get("q"))?;
    let epoch = epoch_divisor(p.get("epoch"))?;
    let db = p.get("db").map(|s| s.as_str());
    let running = api.query.recent.start("influxql", "http", db.unwrap_or_default(), p.get("q").map_or("", |s| s.as_str()));
    let results = run(api, principal, db, &statements).await;
    running.finish(results.iter().find_map(|r| r.as_ref().err().cloned()));
    let wants_csv = parts.headers.get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/csv") || v.contains("text/csv"));
    if wants_csv {
        return Ok(csv_v1(&results, epoch));
    }
    let mut out = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let mut entry = json!({ "statement_id": i });
        match r {
            Err(e) => entry["error"] = e.clone().into(),
            Ok((timed, series)) if !series.is_empty() => {
                entry["series"] = series.iter().map(|s| series_json(s, *timed, epoch)).collect::<Vec<_>>().into();
            }
            Ok(_) => {}
        }
        out.push(entry);
    }
    Ok(json_response(StatusCode::OK, &json!({ "results": out })))
}

fn series_json(s: &Series, timed: bool, epoch: Option<i64>) -> serde_json::Value {
    let mut columns: Vec<&str> = Vec::new();
    if timed {
        columns.push("time");
    }
    columns.extend(s.columns.iter().map(|c| c.as_str()));
    let values: Vec<serde_json::Value> = s
        .rows
        .iter()
        .map(|(t, cells)| {
            let mut row: Vec<serde_json::Value> = Vec::with_capacity(cells.len() + 1);
            if timed {
                row.push(time_json(*t, epoch));
            }
            row.extend(cells.iter().map(Cell::to_json));
            row.into()
        })
        .collect();
    let mut v = json!({ "name": s.name, "columns": columns, "values": values });
    if !s.tags.is_empty() {
        v["tags"] = s.tags.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>().into();
    }
    v
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// InfluxDB 1.x's CSV: `name,tags,time,<columns>` then a line per row.
fn csv_v1(results: &[Result<(bool, Vec<Series>), String>], epoch: Option<i64>) -> Resp {
    let mut out = String::new();
    let mut header: Option<Vec<String>> = None;
    for r in results {
        let Ok((timed, series)) = r else { continue };
        for s in series {
            let mut cols = vec!["name".to_string(), "tags".to_string()];
            if *timed {
                cols.push("time".into());
            }
            cols.extend(s.columns.iter().cloned());
            if header.as_ref() != Some(&cols) {
                if header.is_some() {
                    out.push('\n');
                }
                out.push_str(&cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
                out.push('\n');
                header = Some(cols);
            }
            let tags = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            for (t, cells) in &s.rows {
                let mut line = vec![csv_field(&s.name), csv_field(&tags)];
                if *timed {
                    line.push(match time_json(*t, Some(epoch.unwrap_or(1))) {
                        serde_json::Value::Number(n) => n.to_string(),
                        other => other.to_string(),
                    });
                }
                line.extend(cells.iter().map(|c| match c {
                    Cell::Null => String::new(),
                    Cell::Str(s) => csv_field(s),
                    other => other.to_json().to_string(),
                }));
                out.push_str(&line.join(","));
                out.push('\n');
            }
        }
    }
    let mut r = Response::new(Full::new(Bytes::from(out)));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/csv"));
    r
}

/// `GET|POST /api/v3/query_influxql`: the answer as rows, in `format`, as `query_sql` answers.
pub async fn query_v3(api: &Api, principal: &Principal, parts: &Parts, qs: &HashMap<String, String>, body: &[u8]) -> Result<Resp, ApiError> {
    let req = weir_wire::params::QueryRequest::parse(parts.method == hyper::Method::POST, qs, body)?;
    let statements = parse(req.q.as_ref())?;
    let format = match req.format.as_deref() {
        None | Some("") => Format::Json,
        Some(f) => Format::parse(f).ok_or_else(|| ApiError::BadRequest(format!("invalid format '{f}': expected json, jsonl, csv, pretty or parquet")))?,
    };
    let running = api.query.recent.start("influxql", "http", req.db.as_deref().unwrap_or_default(), req.q.as_deref().unwrap_or_default());
    let results = run(api, principal, req.db.as_deref(), &statements).await;
    running.finish(results.iter().find_map(|r| r.as_ref().err().cloned()));
    let mut batches = Vec::new();
    for r in results {
        match r {
            Err(e) => return Err(ApiError::BadRequest(e)),
            Ok((timed, series)) => batches.extend(series.iter().map(|s| rows_batch(s, timed))),
        }
    }
    let batches = batches.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| ApiError::Internal(e.to_string()))?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::new(vec![Field::new("iox::measurement", DataType::Utf8, false)])));
    // Series of one answer may differ in columns: each batch is encoded on its own schema.
    let mut bytes = Vec::new();
    if batches.iter().all(|b| b.schema() == schema) {
        bytes = encode(format, &schema, &batches).map_err(|e| ApiError::Internal(e.to_string()))?;
    } else {
        for b in &batches {
            bytes.extend(encode(format, &b.schema(), std::slice::from_ref(b)).map_err(|e| ApiError::Internal(e.to_string()))?);
        }
    }
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(format.content_type()));
    Ok(r)
}

/// InfluxQL `q` on `db` as Arrow rows (a batch per series), for Flight's `influxql` tickets.
/// The first failing statement's error is the answer's.
pub async fn influxql_rows(api: &Api, principal: &Principal, db: &str, q: &str) -> Result<Vec<RecordBatch>, String> {
    let statements = parser::parse(q).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for r in run(api, principal, Some(db), &statements).await {
        let (timed, series) = r?;
        for s in &series {
            out.push(rows_batch(s, timed).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

/// One series as Arrow rows: `iox::measurement`, `time`, its tags, its columns.
fn rows_batch(s: &Series, timed: bool) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = s.rows.len();
    let mut fields = vec![Field::new("iox::measurement", DataType::Utf8, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![s.name.as_str(); n]))];
    if timed {
        fields.push(Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false));
        cols.push(Arc::new(TimestampNanosecondArray::from_iter_values(s.rows.iter().map(|r| r.0))));
    }
    for (k, v) in &s.tags {
        fields.push(Field::new(k, DataType::Utf8, false));
        cols.push(Arc::new(StringArray::from(vec![v.as_str(); n])));
    }
    for (i, name) in s.columns.iter().enumerate() {
        let cells: Vec<&Cell> = s.rows.iter().map(|r| &r.1[i]).collect();
        let (dt, array): (DataType, ArrayRef) = if cells.iter().all(|c| matches!(c, Cell::Null | Cell::Int(_))) {
            (DataType::Int64, Arc::new(Int64Array::from_iter(cells.iter().map(|c| if let Cell::Int(v) = c { Some(*v) } else { None }))))
        } else if cells.iter().all(|c| matches!(c, Cell::Null | Cell::UInt(_))) {
            (DataType::UInt64, Arc::new(UInt64Array::from_iter(cells.iter().map(|c| if let Cell::UInt(v) = c { Some(*v) } else { None }))))
        } else if cells.iter().all(|c| matches!(c, Cell::Null | Cell::Int(_) | Cell::UInt(_) | Cell::Float(_))) {
            (DataType::Float64, Arc::new(Float64Array::from_iter(cells.iter().map(|c| match c {
                Cell::Int(v) => Some(*v as f64),
                Cell::UInt(v) => Some(*v as f64),
                Cell::Float(v) => Some(*v),
                _ => None,
            }))))
        } else if cells.iter().all(|c| matches!(c, Cell::Null | Cell::Bool(_))) {
            (DataType::Boolean, Arc::new(BooleanArray::from_iter(cells.iter().map(|c| if let Cell::Bool(v) = c { Some(*v) } else { None }))))
        } else {
            (DataType::Utf8, Arc::new(StringArray::from_iter(cells.iter().map(|c| match c {
                Cell::Null => None,
                Cell::Str(s) => Some(s.clone()),
                other => Some(other.to_json().to_string()),
            }))))
        };
        fields.push(Field::new(name, dt, true));
        cols.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}
