//! `GET|POST /api/v3/query_sql`: parameters from the query string or a JSON body.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::{Method, Response};
use serde::Deserialize;

use super::error::{ApiError, Resp};
use crate::auth::{Action, Principal};
use crate::query::format::{encode, Format};
use crate::query::QueryEngine;

#[derive(Debug, Default, Deserialize)]
struct QueryBody {
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

fn parse_request(parts: &Parts, qs: &HashMap<String, String>, body: &[u8]) -> Result<QueryBody, ApiError> {
    let mut req = QueryBody::default();
    if parts.method == Method::POST && !body.iter().all(|b| b.is_ascii_whitespace()) {
        req = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}; expected {{\"db\", \"q\", \"format\", \"params\"}}")))?;
    }
    // Query-string values fill what the body left out.
    req.db = req.db.or_else(|| qs.get("db").cloned());
    req.q = req.q.or_else(|| qs.get("q").cloned());
    req.format = req.format.or_else(|| qs.get("format").cloned());
    if req.params.is_none() {
        if let Some(p) = qs.get("params") {
            let v: serde_json::Value = serde_json::from_str(p)
                .map_err(|e| ApiError::BadRequest(format!("invalid 'params': {e}; expected a JSON object")))?;
            match v {
                serde_json::Value::Object(m) => req.params = Some(m),
                _ => return Err(ApiError::BadRequest("invalid 'params': expected a JSON object".into())),
            }
        }
    }
    Ok(req)
}

pub async fn query_sql(
    engine: &QueryEngine,
    principal: &Principal,
    parts: &Parts,
    qs: &HashMap<String, String>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let req = parse_request(parts, qs, body)?;
    let db = req.db.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::BadRequest("missing 'db' naming the database".into()))?;
    principal.require(Action::Read(&db))?;
    let q = req.q.filter(|s| !s.trim().is_empty()).ok_or_else(|| ApiError::BadRequest("missing 'q' holding the SQL query".into()))?;
    let format = match req.format.as_deref() {
        None | Some("") => Format::Json,
        Some(f) => Format::parse(f)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid format '{f}': expected json, jsonl, csv, pretty or parquet")))?,
    };
    let out = engine.sql(&db, &q, req.params.as_ref()).await?;
    let bytes = encode(format, &out.schema, &out.batches).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(format.content_type()));
    Ok(r)
}
