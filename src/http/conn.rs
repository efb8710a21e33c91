//! Bounds on a connection's time and on how many are open.
//!
//! A connection is idle (waiting for a request), reading a request head, or busy (its request
//! is being served: the body is read under its own timeout, the query under the query timeout).
//! Idle too long, or a head that takes too long to arrive, and the connection is closed: a slow
//! or silent client can hold a socket for at most one timeout, never a shard's memory or a
//! descriptor for ever. This module owns that clock and the limits; it never reads or writes
//! a socket itself (the I/O adapter asks it, on each read that would wait, whether time is up).

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::deadline::{Alarm, Deadlines};

/// The flags that bound connections (`--http-*-timeout`, `--max-connections`).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// From a request head's first byte to its last.
    pub header_timeout: Duration,
    /// With no request in flight and nothing sent or received.
    pub idle_timeout: Duration,
    /// From a request head to its body's last byte.
    pub body_timeout: Duration,
    /// Open connections over all shards; past it a new one is answered 503 and closed.
    pub max_connections: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Waiting for a request since the instant given (the last byte sent or received).
    Idle(Instant),
    /// A request head is arriving; its first byte came at the instant given.
    Head(Instant),
    /// A request is being served.
    Busy,
}

/// One connection's phase, shared by its I/O adapter and its request handler.
pub struct ConnClock {
    phase: Cell<Phase>,
}

impl ConnClock {
    pub fn new() -> Rc<ConnClock> {
        Rc::new(ConnClock { phase: Cell::new(Phase::Idle(Instant::now())) })
    }

    /// A request's head has arrived whole: its handler runs.
    pub fn busy(&self) {
        self.phase.set(Phase::Busy);
    }

    /// Its answer is given: the connection is idle from now.
    pub fn done(&self) {
        self.phase.set(Phase::Idle(Instant::now()));
    }
}

/// What the I/O adapter consults: the clock, the limits, and an alarm to be woken by.
pub struct Watch {
    clock: Rc<ConnClock>,
    alarm: Alarm,
    header: Duration,
    idle: Duration,
}

impl Watch {
    pub fn new(clock: Rc<ConnClock>, deadlines: &Deadlines, limits: &ConnLimits) -> Watch {
        Watch { clock, alarm: deadlines.alarm(), header: limits.header_timeout, idle: limits.idle_timeout }
    }

    /// Bytes arrived: on an idle connection they start a request head.
    pub fn on_read(&self, n: usize) {
        if n > 0 {
            if let Phase::Idle(_) = self.clock.phase.get() {
                self.clock.phase.set(Phase::Head(Instant::now()));
            }
        }
    }

    /// Bytes went out: an answer still streaming keeps the connection from going idle.
    pub fn on_write(&self) {
        if let Phase::Idle(_) = self.clock.phase.get() {
            self.clock.phase.set(Phase::Idle(Instant::now()));
        }
    }

    /// A read would wait: an error once the phase's time is up, else arms the alarm to wake
    /// the connection when it will be.
    pub fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let (due, what) = match self.clock.phase.get() {
            Phase::Busy => {
                // Not timed here, but looked at again one idle period on: hyper may not read
                // again after writing the answer, so without this wake-up a connection that goes
                // idle would never start its idle clock.
                let _ = self.alarm.poll_at(Instant::now() + self.idle, cx);
                return Poll::Pending;
            }
            Phase::Idle(since) => (since + self.idle, "idle"),
            Phase::Head(since) => (since + self.header, "request head"),
        };
        match self.alarm.poll_at(due, cx) {
            Poll::Ready(()) => {
                tracing::debug!(phase = what, "closing a connection past its timeout");
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, format!("{what} timeout")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The answer to a connection over `--max-connections`, written before it is closed.
pub fn refusal(max: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!("the server has as many connections open as allowed ({max}, --max-connections); try again shortly"),
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `--max-connections` when not given: what the descriptor limit leaves after a reserve for
/// files, the WAL, plugins and the connections that are refused.
pub fn default_max_connections(descriptors: u64) -> usize {
    let reserve = (descriptors / 4).min(1024);
    (descriptors.saturating_sub(reserve) as usize).max(16)
}

/// Raises the soft limit on open descriptors to the hard one (as most servers do) and returns
/// it. A refusal leaves the limit as it was.
pub fn raise_descriptor_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: as above; it only reads the struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Waker;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_connections: 10,
        }
    }

    #[test]
    fn a_busy_connection_never_times_out_and_an_idle_one_starts_its_clock_when_done() {
        let list = Deadlines::default();
        let clock = ConnClock::new();
        let watch = Watch::new(clock.clone(), &list, &limits());
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        assert!(watch.poll_expired(&mut cx).is_pending());
        clock.phase.set(Phase::Idle(Instant::now() - Duration::from_secs(61)));
        assert!(watch.poll_expired(&mut cx).is_ready(), "idle past the idle timeout");
        clock.busy();
        assert!(watch.poll_expired(&mut cx).is_pending(), "a request being served is not timed here");
        clock.done();
        assert!(watch.poll_expired(&mut cx).is_pending());
    }

    #[test]
    fn the_head_timeout_counts_from_the_first_byte() {
        let list = Deadlines::default();
        let clock = ConnClock::new();
        let watch = Watch::new(clock.clone(), &list, &limits());
        watch.on_read(5);
        let Phase::Head(first) = clock.phase.get() else { panic!("bytes on an idle connection start a head") };
        watch.on_read(5);
        assert_eq!(clock.phase.get(), Phase::Head(first), "more bytes do not restart the head clock");
        clock.phase.set(Phase::Head(Instant::now() - Duration::from_secs(11)));
        let waker = Waker::from(Arc::new(Noop));
        assert!(watch.poll_expired(&mut Context::from_waker(&waker)).is_ready());
    }

    #[test]
    fn the_default_cap_leaves_descriptors_in_reserve() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(20_000), 18_976);
        assert_eq!(default_max_connections(10), 16);
    }

    #[test]
    fn a_refused_connection_gets_a_whole_503() {
        let r = String::from_utf8(refusal(7)).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 "));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains("--max-connections"));
    }

    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
}
