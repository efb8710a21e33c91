//! API errors and the one place they become HTTP status codes and JSON bodies.
//!
//! Every handler returns `Result<Response, ApiError>`; units below (catalog, write path, query)
//! keep their own error enums and convert here. A client mistake is always 4xx with a body that
//! names the problem; 5xx is only for our own failures.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use pipeline::catalog::CatalogError;
use pipeline::write::LineReject;
use serde_json::json;

pub type Resp = Response<Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// Too much at once: the client should slow down (429, with Retry-After).
    #[error("{0}")]
    TooManyRequests(String),
    /// More than the server allows for one request, retrying will not help (429).
    #[error("{0}")]
    OverLimit(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{error}")]
    LineErrors { error: String, data: Vec<LineReject> },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    GatewayTimeout(String),
    /// No room on the server's disk for the write (507); it may be sent again later.
    #[error("{0}")]
    InsufficientStorage(String),
    /// The client took too long to send its request (408; the connection is closed).
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::LineErrors { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) | ApiError::OverLimit(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn into_response(self) -> Resp {
        let status = self.status();
        let body = match &self {
            ApiError::LineErrors { error, data } => json!({
                "error": error,
                "data": data.iter().map(|r| json!({
                    "original_line": r.original_line,
                    "line_number": r.line_number,
                    "error_message": r.error_message,
                })).collect::<Vec<_>>(),
            }),
            other => json!({ "error": other.to_string() }),
        };
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut r = json_response(status, &body);
        if status == StatusCode::SERVICE_UNAVAILABLE || matches!(self, ApiError::TooManyRequests(_) | ApiError::InsufficientStorage(_)) {
            // A full buffer or a busy shard clears soon, a full disk may, and a shard stopped
            // by a failed WAL write leaves the others: a retry may succeed, so say when.
            r.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

pub fn empty_response(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::DatabaseExists(_)
            | CatalogError::TableExists(_)
            | CatalogError::TriggerExists(_)
            | CatalogError::TokenExists(_) => ApiError::Conflict(e.to_string()),
            CatalogError::DatabaseNotFound(_)
            | CatalogError::TableNotFound(_)
            | CatalogError::TriggerNotFound(_)
            | CatalogError::TokenNotFound(_) => ApiError::NotFound(e.to_string()),
            CatalogError::InvalidName(_) | CatalogError::ColumnConflict { .. } | CatalogError::OperatorToken(_) => {
                ApiError::BadRequest(e.to_string())
            }
            CatalogError::Io(_) | CatalogError::Corrupt(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<pipeline::shard::WriteError> for ApiError {
    fn from(e: pipeline::shard::WriteError) -> Self {
        match e {
            pipeline::shard::WriteError::Prepare(pipeline::write::PrepareError::Catalog(c)) => c.into(),
            pipeline::shard::WriteError::Busy(_)
            | pipeline::shard::WriteError::BufferFull { .. }
            | pipeline::shard::WriteError::WalFailed(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::query::QueryError> for ApiError {
    fn from(e: crate::query::QueryError) -> Self {
        use crate::query::QueryError as Q;
        match e {
            Q::DatabaseNotFound(_) => ApiError::NotFound(e.to_string()),
            Q::Invalid(_) | Q::ReadOnly(_) => ApiError::BadRequest(e.to_string()),
            // 429, as InfluxDB 3 answers a query past its memory pool.
            Q::ResourcesExhausted(_) => ApiError::OverLimit(e.to_string()),
            Q::Timeout(_) => ApiError::GatewayTimeout(e.to_string()),
            Q::Internal(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        match e {
            E::Catalog(c) => c.into(),
            E::Spec(_) | E::Invalid(_) | E::Plugin(_) => ApiError::BadRequest(e.to_string()),
            E::Conflict(_) => ApiError::Conflict(e.to_string()),
            E::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            E::Package(crate::engine::packages::PackageError::Disabled) => ApiError::Forbidden(e.to_string()),
            // pip refusing a package is the request's problem: 400 with pip's own words.
            E::Package(_) => ApiError::BadRequest(e.to_string()),
            E::NoRoute(_) => ApiError::NotFound(e.to_string()),
            E::Timeout(_) => ApiError::GatewayTimeout(e.to_string()),
        }
    }
}

impl From<weir_wire::params::ParamError> for ApiError {
    fn from(e: weir_wire::params::ParamError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        if e.is_forbidden() {
            ApiError::Forbidden(e.to_string())
        } else {
            ApiError::Unauthorized(e.to_string())
        }
    }
}

impl From<crate::auth::issue::IssueError> for ApiError {
    fn from(e: crate::auth::issue::IssueError) -> Self {
        match e {
            crate::auth::issue::IssueError::Catalog(c) => c.into(),
            crate::auth::issue::IssueError::Token(t) => ApiError::Internal(t.to_string()),
        }
    }
}
