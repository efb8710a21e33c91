//! HTTP/2 on the HTTP port: gRPC, that is Arrow Flight ([`crate::flight`]), beside HTTP/1.1.
//!
//! A shard peeks at a new connection's first bytes; one that opens with HTTP/2's connection
//! preface (`PRI * HTTP/2.0`, which no HTTP/1 request starts with) is handed whole, socket and
//! all, to the query runtime, where hyper's HTTP/2 server runs the Flight service. Every other
//! connection stays on its shard as HTTP/1.1. It never reads past the preface's first bytes
//! (they are peeked, not taken) and never blocks a shard.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::balance::Open;
use super::Api;

/// How HTTP/2's preface begins; four bytes tell it from any HTTP/1 method.
const PREFACE: &[u8; 4] = b"PRI ";

/// What a connection's first bytes say it speaks.
#[derive(Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Closed before a byte arrived, or silent past the idle timeout.
    Gone,
}

/// Peeks at `stream` until its first bytes tell HTTP/2 from HTTP/1 (at most `idle` waiting).
pub async fn sniff(stream: &glommio::net::TcpStream, idle: Duration) -> Protocol {
    let started = std::time::Instant::now();
    loop {
        let mut first = [0u8; 4];
        let left = idle.saturating_sub(started.elapsed());
        let n = match glommio::timer::timeout(left, async { stream.peek(&mut first).await }).await {
            Ok(n) => n,
            Err(_) => return Protocol::Gone,
        };
        if n == 0 {
            return Protocol::Gone;
        }
        if first[..n] != PREFACE[..n] {
            return Protocol::Http1;
        }
        if n == PREFACE.len() {
            return Protocol::Http2;
        }
        // A preface cut short in transit: peek again once more has arrived.
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves an HTTP/2 connection on the query runtime; the shard's stream is closed once the
/// socket is duplicated. `open` keeps the connection counted until it ends.
pub fn serve_on_runtime(runtime: &tokio::runtime::Handle, api: Arc<Api>, stream: glommio::net::TcpStream, open: Open) {
    // SAFETY: the descriptor is open while `stream` lives; the duplicate outlives the drop.
    let fd: OwnedFd = match unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(error = %e, "could not hand an HTTP/2 connection over");
            return;
        }
    };
    drop(stream);
    runtime.spawn(async move {
        let _open = open;
        let std_stream = std::net::TcpStream::from(fd);
        if std_stream.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else { return };
        let sql = Arc::new(crate::flight_sql::WeirFlightSql::new(api.clone()));
        let svc = hyper_util::service::TowerToHyperService::new(crate::flight::service(api, sql));
        let mut builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder.timer(hyper_util::rt::TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
        if let Err(e) = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await {
            tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
        }
    });
}
