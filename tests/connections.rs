//! Bounds on connections: slow heads, slow bodies and idle sockets are dropped after their
//! timeouts while normal requests still get through, and connections past `--max-connections`
//! are answered 503.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

fn connect(s: &Server) -> TcpStream {
    let addr = s.base.trim_start_matches("http://");
    TcpStream::connect(addr).expect("connect")
}

/// Reads what is there without waiting, into `seen`; whether the server has closed `c`.
fn closed_by_server(c: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            // Reset by the server: closed too.
            Err(_) => return true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends half a request head.
    HalfHead,
    /// Sends a whole head promising 10 MiB, and 1 KiB of it.
    HalfBody,
    /// Sends a whole request, reads its answer, then stays idle.
    IdleAfterRequest,
}

#[test]
fn slow_and_idle_connections_are_dropped_while_normal_requests_get_through() {
    let s = Server::start(&["--http-header-timeout", "2s", "--http-idle-timeout", "3s", "--http-body-timeout", "2s"]);
    let want = 2000u64;
    // This process holds the client side of every connection: it needs the descriptors too.
    let room = weir::http::conn::raise_descriptor_limit().saturating_sub(200);
    let n = want.min(room) as usize;
    assert!(n >= 500, "this test needs ~2,000 descriptors; the limit allows {room}");
    let kinds = [Kind::Silent, Kind::HalfHead, Kind::HalfBody, Kind::IdleAfterRequest];
    let auth = format!("Authorization: {}\r\n", common::bearer());
    let mut held: Vec<(Kind, TcpStream, Instant)> = Vec::with_capacity(n);
    for i in 0..n {
        let kind = kinds[i % kinds.len()];
        let mut c = connect(&s);
        match kind {
            Kind::Silent => {}
            Kind::HalfHead => c.write_all(b"POST /api/v3/write_lp?db=d HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("send"),
            Kind::HalfBody => {
                let head = format!("POST /api/v3/write_lp?db=d HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 10485760\r\n\r\n");
                c.write_all(head.as_bytes()).expect("send");
                c.write_all(&[b'#'; 1024]).expect("send");
            }
            Kind::IdleAfterRequest => c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").expect("send"),
        }
        c.set_nonblocking(true).expect("nonblocking");
        held.push((kind, c, Instant::now()));
    }
    // With all of them open, a normal write and query on fresh connections are served.
    let started = Instant::now();
    assert_eq!(s.write("d", "cpu v=1 1").0, 204);
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM cpu")[0]["n"], 1);
    eprintln!("a write and a query beside {n} held connections took {:?}", started.elapsed());

    // Every one is closed by the server once its timeout has passed, and not before.
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut open: Vec<usize> = (0..n).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|&i| {
            let (kind, c, since) = &mut held[i];
            if !closed_by_server(c, &mut seen[i]) {
                return true;
            }
            // Idle ones wait out the idle timeout (3 s); slow heads and bodies, theirs (2 s).
            let least = match kind {
                Kind::Silent | Kind::IdleAfterRequest => Duration::from_millis(2900),
                Kind::HalfHead | Kind::HalfBody => Duration::from_millis(1900),
            };
            assert!(since.elapsed() >= least, "a {kind:?} connection was closed after {:?}", since.elapsed());
            false
        });
        if !open.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let left: Vec<Kind> = open.iter().map(|&i| held[i].0).collect();
    assert!(left.is_empty(), "{} connections still open 30 s on: {:?}", left.len(), &left[..left.len().min(10)]);
    for (i, (kind, _, _)) in held.iter().enumerate() {
        let text = String::from_utf8_lossy(&seen[i]);
        match kind {
            Kind::HalfBody => {
                assert!(text.starts_with("HTTP/1.1 408"), "a slow body is answered 408: {text}");
                assert!(text.contains("--http-body-timeout"), "{text}");
            }
            Kind::IdleAfterRequest => assert!(text.starts_with("HTTP/1.1 200"), "{text}"),
            Kind::Silent | Kind::HalfHead => assert!(text.is_empty(), "{kind:?} got {text}"),
        }
    }
    // Nothing half-sent was written, and the server still serves.
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM cpu")[0]["n"], 1);
}

#[test]
fn connections_past_the_cap_get_503_and_room_returns_when_they_close() {
    let s = Server::start(&["--max-connections", "20"]);
    let mut held: Vec<TcpStream> = (0..20).map(|_| connect(&s)).collect();
    // Accepted (and counted) by the server before the next one arrives.
    std::thread::sleep(Duration::from_millis(500));
    let mut over = connect(&s);
    over.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = over.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = String::new();
    let _ = over.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("--max-connections"), "{answer}");
    held.truncate(10);
    let (status, _) = common::wait_for(10, "room for a connection", || {
        let r = s.get("/health");
        (r.0 == 200).then_some(r)
    });
    assert_eq!(status, 200);
    drop(held);
}
