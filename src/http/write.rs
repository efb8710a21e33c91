//! The three write endpoints (v3 `write_lp`, v2 `write`, v1 `write`), served on the shard that
//! received the request.
//!
//! Turns query parameters into a [`WriteRequest`], stages it on the shard and waits for the
//! flush that makes it durable before answering 204. Never acks before the WAL record is
//! durable (unless the client asked for `no_sync`).

use std::collections::HashMap;

use hyper::StatusCode;
use pipeline::shard::{Shard, WriteRequest};
use pipeline::write::Precision;

use super::body::bool_param;
use super::error::{empty_response, ApiError, Resp};

/// Which API flavour the write came through: they name the database and precision differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    V1,
    V2,
    V3,
}

pub struct WriteParams {
    pub db: String,
    pub precision: Precision,
    pub accept_partial: bool,
    pub no_sync: bool,
}

pub fn parse_params(flavor: Flavor, q: &HashMap<String, String>) -> Result<WriteParams, ApiError> {
    let db_key = if flavor == Flavor::V2 { "bucket" } else { "db" };
    let db = q
        .get(db_key)
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::BadRequest(format!("missing query parameter '{db_key}' naming the database")))?;
    let default_precision = if flavor == Flavor::V3 { Precision::Auto } else { Precision::Nanosecond };
    let precision = match q.get("precision").map(|s| s.as_str()) {
        None | Some("") => default_precision,
        Some(p) => Precision::parse(p).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid precision '{p}': expected auto, ns, us, ms or s (v1 also n, u)"))
        })?,
    };
    Ok(WriteParams {
        db,
        precision,
        accept_partial: bool_param(q, "accept_partial", true)?,
        no_sync: bool_param(q, "no_sync", false)?,
    })
}

/// Writes `body` on `shard` and waits until it is durable.
pub async fn write(shard: &Shard, params: WriteParams, body: &[u8]) -> Result<Resp, ApiError> {
    let req = WriteRequest {
        db: &params.db,
        body,
        precision: params.precision,
        accept_partial: params.accept_partial,
        no_sync: params.no_sync,
        default_time_ns: crate::time::now_ns(),
    };
    let accepted = shard.write(&req)?;
    if let Some(durable) = accepted.durable {
        match durable.await {
            Ok(Ok(())) => {}
            Ok(Err(e @ pipeline::shard::FlushError::DiskFull(_))) => return Err(ApiError::InsufficientStorage(e.to_string())),
            Ok(Err(e)) => return Err(ApiError::Internal(format!("write not durable: {e}"))),
            Err(_) => return Err(ApiError::Internal("write not durable: the shard stopped".into())),
        }
    }
    if accepted.rejects.is_empty() {
        return Ok(empty_response(StatusCode::NO_CONTENT));
    }
    let error = if accepted.lines_written > 0 {
        "partial write of line protocol occurred".to_string()
    } else if !params.accept_partial {
        "parsing failed for write_lp endpoint: no lines were written (accept_partial=false)".to_string()
    } else {
        "parsing failed for write_lp endpoint: no valid lines".to_string()
    };
    Err(ApiError::LineErrors { error, data: accepted.rejects })
}
