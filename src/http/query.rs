//! `GET|POST /api/v3/query_sql`: parameters from the query string or a JSON body.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::{Method, Response};
use weir_wire::params::QueryRequest;

use super::error::{ApiError, Resp};
use crate::auth::{Action, Principal};
use crate::query::format::{encode, Format};
use crate::query::QueryEngine;

pub async fn query_sql(
    engine: &QueryEngine,
    principal: &Principal,
    parts: &Parts,
    qs: &HashMap<String, String>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let req = QueryRequest::parse(parts.method == Method::POST, qs, body)?;
    let db = req.db.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::BadRequest("missing 'db' naming the database".into()))?;
    principal.require(Action::Read(&db))?;
    let q = req.q.filter(|s| !s.trim().is_empty()).ok_or_else(|| ApiError::BadRequest("missing 'q' holding the SQL query".into()))?;
    let format = match req.format.as_deref() {
        None | Some("") => Format::Json,
        Some(f) => Format::parse(f)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid format '{f}': expected json, jsonl, csv, pretty or parquet")))?,
    };
    let running = engine.recent.start("sql", "http", &db, &q);
    let out = engine.sql(&db, &q, req.params.as_ref()).await;
    running.finish(out.as_ref().err().map(|e| e.to_string()));
    let out = out?;
    let bytes = encode(format, &out.schema, &out.batches).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(format.content_type()));
    Ok(r)
}
