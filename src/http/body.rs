//! Reading request bodies and query strings, with every size bounded.
//!
//! A body over the limit is refused with 413, whether it says so in `Content-Length`, streams
//! past it, or inflates past it from gzip; one that has not arrived whole within the body
//! timeout, with 408. Nothing here interprets the bytes.

use std::collections::HashMap;
use std::io::Read;
use std::task::Poll;
use std::time::Duration;

use futures::future::Either;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::Request;

use super::deadline::Deadlines;
use super::error::ApiError;

/// How much of a body may arrive, and by when.
#[derive(Clone, Copy)]
pub struct BodyLimits<'a> {
    pub bytes: usize,
    pub within: Duration,
    pub deadlines: &'a Deadlines,
}

/// Reads the whole body, refusing more than `limit.bytes` bytes or a body still arriving after
/// `limit.within`, and inflates gzip.
pub async fn read_body(req: Request<Incoming>, limit: BodyLimits<'_>) -> Result<(Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let BodyLimits { bytes: limit, within, deadlines } = limit;
    if let Some(len) = parts.headers.get(hyper::header::CONTENT_LENGTH) {
        if len.to_str().ok().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n > limit as u64) {
            return Err(ApiError::TooLarge(limit));
        }
    }
    let mut collect = std::pin::pin!(Limited::new(body, limit).collect());
    // Most bodies are already here whole: only one still arriving arms a deadline.
    let collected = match futures::poll!(&mut collect) {
        Poll::Ready(r) => r,
        Poll::Pending => match futures::future::select(collect, deadlines.after(within)).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => {
                return Err(ApiError::RequestTimeout(format!(
                    "the request body did not arrive whole within {within:?} (--http-body-timeout)"
                )))
            }
        },
    };
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return Err(ApiError::TooLarge(limit));
            }
            return Err(ApiError::BadRequest(format!("could not read the request body: {e}")));
        }
    };
    let gzip = parts
        .headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok((parts, bytes));
    }
    Ok((parts, gunzip(&bytes, limit)?))
}

/// Inflates a gzip body, refusing more than `limit` bytes of output.
pub fn gunzip(bytes: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
    let mut dec = flate2::read::GzDecoder::new(bytes).take(limit as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| ApiError::BadRequest(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// The query string as a map (last value wins).
pub fn query_params(parts: &Parts) -> HashMap<String, String> {
    uri_params(&parts.uri)
}

/// The query string's parameters (a repeated name keeps its last value).
pub fn uri_params(uri: &hyper::Uri) -> HashMap<String, String> {
    weir_wire::params::query_string(uri.query())
}

/// Parses a boolean parameter; absent means `default`.
pub fn bool_param(params: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    Ok(weir_wire::params::flag(params, name, default)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_inflates_and_bounds_output() {
        assert_eq!(&gunzip(&gz(b"m f=1"), 100).unwrap()[..], b"m f=1");
        let bomb = gz(&vec![b'a'; 10_000]);
        assert!(matches!(gunzip(&bomb, 1000), Err(ApiError::TooLarge(1000))));
        assert!(matches!(gunzip(b"not gzip", 1000), Err(ApiError::BadRequest(_))));
    }
}
