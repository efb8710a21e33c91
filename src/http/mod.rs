//! The HTTP API: routing, and the split between the shard and the query runtime.
//!
//! Every request arrives on a shard (glommio). Writes are served right there, on the shard that
//! owns the WAL they go to. Everything else is read off the socket by the shard and handed to
//! the query runtime (tokio), whose answer comes back on a one-shot channel: the shard never
//! blocks on a query, and DataFusion never runs on a shard. Two exceptions: health and ping are
//! answered on the shard, and request triggers go from the shard straight to the Python
//! executors, the shard awaiting the answer.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

pub mod balance;
pub mod body;
mod configure;
pub mod conn;
pub mod deadline;
mod engine;
mod influxql;

pub use self::influxql::influxql_rows;
pub mod error;
pub mod h2;
pub mod io;
pub mod paths;
mod profile;
mod query;
mod tokens;
pub mod write;

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::Catalog;
use pipeline::shard::Shard;
use serde_json::json;

use self::body::{query_params, read_body, uri_params, BodyLimits};
use self::error::{json_response, ApiError, Resp};
use self::paths::Access;
use self::write::Flavor;
use crate::auth::{Action, Authority, Principal};
use crate::query::QueryEngine;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the query runtime needs to answer non-write requests. Shared by all shards.
pub struct Api {
    pub catalog: Arc<Catalog>,
    pub buffer: Arc<WriteBuffer>,
    pub storage: Arc<crate::storage::Storage>,
    pub query: Arc<QueryEngine>,
    pub engine: crate::engine::Engine,
    pub max_body_bytes: usize,
    /// Timeouts and the cap on open connections.
    pub connections: conn::ConnLimits,
    /// Permits for HTTP queries running at once (`--max-concurrent-queries`).
    pub queries: Arc<tokio::sync::Semaphore>,
    pub metrics: crate::metrics::Metrics,
    pub auth: Arc<Authority>,
}

/// What one shard's connections share.
pub struct ShardContext {
    pub shard: Rc<Shard>,
    pub api: Arc<Api>,
    pub runtime: tokio::runtime::Handle,
    /// Bounds on waits for request-trigger answers and request bodies, and connection alarms.
    pub deadlines: Rc<deadline::Deadlines>,
}

fn write_flavor(method: &Method, path: &str) -> Option<Flavor> {
    if method != Method::POST {
        return None;
    }
    match path {
        paths::WRITE_V3 => Some(Flavor::V3),
        paths::WRITE_V2 => Some(Flavor::V2),
        paths::WRITE_V1 => Some(Flavor::V1),
        _ => None,
    }
}

/// Serves one request on a shard.
pub async fn serve(ctx: Rc<ShardContext>, req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match route(&ctx, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    Ok(resp)
}

/// Who sent `req`, checked against what its route needs before any of its body is read. Routes
/// scoped to a database check the database once they know it.
fn admit(auth: &Authority, req: &Request<Incoming>) -> Result<Principal, ApiError> {
    let path = req.uri().path();
    let access = paths::access(path);
    match access {
        Access::Public | Access::Bootstrap => return Ok(Principal::Anonymous),
        Access::System if auth.public_metrics() => return Ok(Principal::Anonymous),
        _ => {}
    }
    let principal = auth.identify(req.headers(), req.uri(), paths::takes_v1_credentials(path))?;
    match access {
        Access::Admin => principal.require(Action::Admin)?,
        Access::System => principal.require(Action::System)?,
        _ => {}
    }
    Ok(principal)
}

async fn route(ctx: &Rc<ShardContext>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let limit = BodyLimits { bytes: ctx.api.max_body_bytes, within: ctx.api.connections.body_timeout, deadlines: &ctx.deadlines };
    let principal = admit(&ctx.api.auth, &req)?;
    if let Some(flavor) = write_flavor(req.method(), req.uri().path()) {
        let params = write::parse_params(flavor, &uri_params(req.uri()))?;
        principal.require(Action::Write(&params.db))?;
        let (_, body) = read_body(req, limit).await?;
        return write::write(&ctx.shard, params, &body).await;
    }
    let (parts, body) = read_body(req, limit).await?;
    // Answers that need nothing of the query runtime are given right here.
    match (parts.uri.path(), &parts.method) {
        (paths::HEALTH, &Method::GET | &Method::HEAD) => return Ok(text(StatusCode::OK, "OK")),
        (paths::PING, &Method::GET | &Method::POST | &Method::HEAD) => return Ok(ping()),
        _ => {}
    }
    if parts.uri.path().starts_with(paths::ENGINE_PREFIX) && (parts.method == Method::GET || parts.method == Method::POST) {
        return engine::serve_request(&ctx.api.engine, &ctx.deadlines, &principal, &parts, body).await;
    }
    let (mut tx, rx) = futures_channel::oneshot::channel();
    let api = ctx.api.clone();
    ctx.runtime.spawn(async move {
        // A client that goes away drops `rx`: the work is dropped with it, which stops a
        // query's execution rather than letting it run to an answer nobody reads.
        let answer = {
            let work = std::pin::pin!(handle(&api, &principal, parts, body));
            match futures::future::select(work, tx.cancellation()).await {
                futures::future::Either::Left((r, _)) => Some(r.unwrap_or_else(|e| e.into_response())),
                futures::future::Either::Right(_) => None,
            }
        };
        match answer {
            Some(r) => {
                let _ = tx.send(r);
            }
            None => tracing::debug!("the client went away; its request was stopped"),
        }
    });
    rx.await.map_err(|_| ApiError::Internal("the query runtime dropped the request".into()))
}

/// Serves a non-write request on the query runtime (health, ping and request triggers are
/// answered by `route` on the shard and never reach it). `principal` has passed its route's
/// check ([`paths::ROUTES`]); database-scoped routes check it again here.
pub async fn handle(api: &Api, principal: &Principal, parts: Parts, body: Bytes) -> Result<Resp, ApiError> {
    let qs = query_params(&parts);
    let path = parts.uri.path();
    let m = &parts.method;
    match path {
        paths::QUERY_SQL | paths::QUERY_V1 | paths::QUERY_INFLUXQL if m == Method::GET || m == Method::POST => {
            let _permit = api.queries.clone().try_acquire_owned().map_err(|_| {
                ApiError::TooManyRequests(
                    "as many queries as allowed at once are running (--max-concurrent-queries); try again shortly".into(),
                )
            })?;
            let started = std::time::Instant::now();
            let r = match path {
                paths::QUERY_SQL => query::query_sql(&api.query, principal, &parts, &qs, &body).await,
                paths::QUERY_V1 => influxql::query_v1(api, principal, &parts, &body).await,
                _ => influxql::query_v3(api, principal, &parts, &qs, &body).await,
            };
            api.metrics.observe_query(started.elapsed(), r.is_ok());
            r
        }
        paths::METRICS if m == Method::GET => Ok(api.metrics.response(&api.engine)),
        paths::PPROF_PROFILE if m == Method::GET => profile::profile(&qs, profile::Format::Pprof).await,
        paths::PPROF_FLAMEGRAPH if m == Method::GET => profile::profile(&qs, profile::Format::Flamegraph).await,
        paths::CONFIGURE_DATABASE => match *m {
            Method::GET => configure::list_databases(&api.catalog, &qs),
            Method::POST => configure::create_database(&api.catalog, &body, &qs),
            Method::PUT => configure::update_database(&api.catalog, &body, &qs),
            Method::DELETE => configure::delete_database(&api.catalog, &api.buffer, &api.storage, &body, &qs),
            _ => Err(not_allowed(&parts)),
        },
        paths::CONFIGURE_TABLE => match *m {
            Method::POST => configure::create_table(&api.catalog, &body),
            Method::DELETE => configure::delete_table(&api.catalog, &api.buffer, &api.storage, &body, &qs),
            _ => Err(not_allowed(&parts)),
        },
        paths::TRIGGER => match *m {
            Method::POST => engine::create_trigger(&api.engine, &body).await,
            Method::PUT => engine::update_trigger(&api.engine, &body).await,
            Method::DELETE => engine::delete_trigger(&api.engine, &body, &qs),
            _ => Err(not_allowed(&parts)),
        },
        paths::TRIGGER_ENABLE if m == Method::POST => engine::set_disabled(&api.engine, &body, &qs, false),
        paths::TRIGGER_DISABLE if m == Method::POST => engine::set_disabled(&api.engine, &body, &qs, true),
        paths::TRIGGER_REPLAY => match *m {
            Method::POST => engine::start_replay(&api.engine, &body),
            Method::GET => engine::replay_progress(&api.engine, &qs),
            _ => Err(not_allowed(&parts)),
        },
        paths::PLUGIN_TEST_WAL if m == Method::POST => engine::test_wal(&api.engine, &body).await,
        paths::PLUGIN_TEST_SCHEDULE if m == Method::POST => engine::test_schedule(&api.engine, &body).await,
        paths::INSTALL_PACKAGES if m == Method::POST => engine::install_packages(&api.engine, &body).await,
        paths::INSTALL_REQUIREMENTS if m == Method::POST => engine::install_requirements(&api.engine, &body).await,
        paths::PLUGIN_FILES if m == Method::POST || m == Method::PUT => engine::put_plugin_file(&api.engine, &body, &qs).await,
        paths::PLUGIN_DIRECTORY if m == Method::PUT => engine::put_plugin_directory(&api.engine, &body).await,
        paths::TOKEN_ADMIN if m == Method::POST => tokens::create_operator(&api.auth),
        paths::TOKEN_ADMIN_REGENERATE if m == Method::POST => tokens::regenerate_operator(&api.auth, principal),
        paths::TOKEN_NAMED_ADMIN if m == Method::POST => tokens::create_named_admin(&api.auth, &body),
        paths::TOKEN_RESOURCE if m == Method::POST => tokens::create_resource(&api.auth, &body),
        paths::TOKEN => match *m {
            Method::GET => Ok(tokens::list(&api.auth)),
            Method::DELETE => tokens::delete(&api.auth, &body, &qs),
            _ => Err(not_allowed(&parts)),
        },
        paths::HEALTH
        | paths::PING
        | paths::QUERY_SQL
        | paths::QUERY_V1
        | paths::QUERY_INFLUXQL
        | paths::METRICS
        | paths::PPROF_PROFILE
        | paths::PPROF_FLAMEGRAPH
        | paths::WRITE_V1
        | paths::WRITE_V2
        | paths::WRITE_V3
        | paths::TRIGGER_ENABLE
        | paths::TRIGGER_DISABLE
        | paths::PLUGIN_TEST_WAL
        | paths::PLUGIN_TEST_SCHEDULE
        | paths::INSTALL_PACKAGES
        | paths::INSTALL_REQUIREMENTS
        | paths::PLUGIN_FILES
        | paths::PLUGIN_DIRECTORY
        | paths::TOKEN_ADMIN
        | paths::TOKEN_ADMIN_REGENERATE
        | paths::TOKEN_NAMED_ADMIN
        | paths::TOKEN_RESOURCE => Err(not_allowed(&parts)),
        _ => Err(ApiError::NotFound(format!("no route for {} {}", parts.method, path))),
    }
}

fn not_allowed(parts: &Parts) -> ApiError {
    ApiError::MethodNotAllowed { method: parts.method.to_string(), path: parts.uri.path().to_string() }
}

fn text(status: StatusCode, s: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(s.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn ping() -> Resp {
    let mut r = json_response(StatusCode::OK, &json!({ "version": VERSION, "revision": "weir", "product": "weir" }));
    let h = r.headers_mut();
    h.insert("x-influxdb-version", hyper::header::HeaderValue::from_static(VERSION));
    h.insert("x-influxdb-build", hyper::header::HeaderValue::from_static("weir"));
    r
}
