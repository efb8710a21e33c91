//! What survives a restart, a `kill -9` and a damaged WAL (DESIGN.md invariants 1, 2 and 6).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use common::{send, Server};

fn values(s: &Server, db: &str, sql: &str, col: &str) -> Vec<String> {
    s.query(db, sql).iter().map(|r| r[col].to_string()).collect()
}

#[test]
fn restart_keeps_every_acked_write_and_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--shards", "2"]);
    assert_eq!(s.write("a", "cpu,host=x u=1 1\ncpu,host=y u=2 2").0, 204);
    assert_eq!(s.write("a", "cpu,host=z u=3,extra=\"e\" 3\nmem free=7i 4").0, 204);
    assert_eq!(s.write("b", "disk used=0.5 5").0, 204);
    // Series repeated in a body are logged once in its WAL entry; escaped ones are logged whole.
    assert_eq!(s.write("a", "cpu,host=x u=4 6\ncpu,host=w\\ x u=5 7\ncpu,host=x u=6 8\ncpu,host=w\\ x u=7 9").0, 204);
    assert_eq!(s.write("gone", "t f=1 1").0, 204);
    assert_eq!(send(ureq::delete(&s.url("/api/v3/configure/database?db=gone")), None).0, 200);
    let before_cpu = values(&s, "a", "SELECT * FROM cpu ORDER BY time", "extra");
    s.stop();

    let s = Server::start_in(dir.path(), &[]);
    assert_eq!(values(&s, "a", "SELECT * FROM cpu ORDER BY time", "extra"), before_cpu);
    assert_eq!(s.count("a", "cpu"), 7);
    assert_eq!(s.count("a", "mem"), 1);
    assert_eq!(s.count("b", "disk"), 1);
    // The deleted database stays deleted although its rows are still in the WAL.
    assert_eq!(s.get("/api/v3/query_sql?db=gone&q=select%201").0, 404);
    // Column types survive too.
    let (status, _) = s.write("a", "cpu,host=q u=1i 9");
    assert_eq!(status, 400);
}

/// A write is acked once its WAL record is durable, not on the next tick of the flush clock:
/// with a 60 s clock, writes still come back at once, are queryable, and survive `kill -9`.
/// The clock then paces only the WAL-flush events that triggers see.
#[test]
fn writes_are_acked_when_durable_not_at_the_flush_tick() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--wal-flush-interval", "60s"]);
    let started = std::time::Instant::now();
    for i in 0..20 {
        assert_eq!(s.write("g", &format!("m v={i}i {i}")).0, 204);
    }
    assert!(started.elapsed() < Duration::from_secs(30), "20 writes took {:?}: they waited for the clock", started.elapsed());
    assert_eq!(s.count("g", "m"), 20);
    s.kill9();
    let s = Server::start_in(dir.path(), &[]);
    assert_eq!(s.count("g", "m"), 20);
}

/// Sends one write; `None` when the server is gone (connection refused or reset).
fn try_write(url: &str, body: &str) -> Option<u16> {
    match ureq::post(url).set("Authorization", &common::bearer()).timeout(Duration::from_secs(10)).send_string(body) {
        Ok(r) => Some(r.status()),
        Err(ureq::Error::Status(code, _)) => Some(code),
        Err(_) => None,
    }
}

#[test]
fn invariant_1_acked_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeSet<(u32, u32)>>> = Arc::default();
    for round in 0..3u32 {
        let mut s = Server::start_in(dir.path(), &["--shards", "2"]);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4u32)
            .map(|w| {
                let url = s.url("/api/v3/write_lp?db=k");
                let acked = acked.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let id = round * 1_000_000 + w * 100_000 + i;
                        // Several lines per request, all carrying the same id; two points (the
                        // tag n differs), since one point written twice is one row.
                        let body = format!("k,w={w},n=0 id={id}i {id}\nk,w={w},n=1 id={id}i {id}");
                        match try_write(&url, &body) {
                            Some(204) => {
                                acked.lock().insert((w, id));
                            }
                            Some(other) => panic!("unexpected status {other}"),
                            None => break,
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700 + 300 * round as u64));
        s.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 50, "the test must ack a fair number of writes, got {}", acked.len());
    let s = Server::start_in(dir.path(), &[]);
    let rows = s.query("k", "SELECT w, id, n FROM k");
    let mut found: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut lines_per_id: std::collections::HashMap<u32, usize> = Default::default();
    for r in &rows {
        let w: u32 = r["w"].as_str().unwrap().parse().unwrap();
        let id = r["id"].as_u64().unwrap() as u32;
        found.insert((w, id));
        *lines_per_id.entry(id).or_default() += 1;
    }
    let missing: Vec<_> = acked.difference(&found).take(5).collect();
    assert!(missing.is_empty(), "{} acked writes lost after kill -9, e.g. {missing:?}", acked.difference(&found).count());
    // Never half a write: each request's two lines are there together or not at all.
    assert!(lines_per_id.values().all(|&n| n == 2), "a write was torn");
}

fn newest_segment(data: &std::path::Path) -> std::path::PathBuf {
    let dir = data.join("weir").join("wal").join("shard-000");
    let mut segs: Vec<_> = std::fs::read_dir(&dir).expect("test setup").map(|e| e.expect("test setup").path()).collect();
    segs.retain(|p| std::fs::metadata(p).expect("test setup").len() > 0);
    segs.sort();
    segs.pop().expect("a non-empty segment")
}

#[test]
fn invariant_2_torn_or_corrupt_wal_tail_is_cut_and_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--shards", "1"]);
    assert_eq!(s.write("t", "m v=1 1").0, 204);
    assert_eq!(s.write("t", "m v=2 2").0, 204);
    s.kill9();

    // A torn tail: a record's header and the start of its payload, as a crash mid-write leaves.
    let seg = newest_segment(&s.data_dir);
    let good_len = std::fs::metadata(&seg).unwrap().len();
    let mut bytes = std::fs::read(&seg).unwrap();
    let torn: Vec<u8> = bytes[..20].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&seg, &bytes).unwrap();

    let mut s = Server::start_in(dir.path(), &[]);
    assert_eq!(s.count("t", "m"), 2, "both acked writes survive the torn tail");
    assert!(s.log().contains("cutting"), "the cut is logged: {}", s.log());
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len, "the tail is cut on disk");
    assert_eq!(s.write("t", "m v=3 3").0, 204);
    s.kill9();

    // A flipped byte inside the newest record: its checksum fails, it is cut, older ones stay.
    let seg = newest_segment(&s.data_dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() - 4;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    assert_eq!(s.count("t", "m"), 2);
    assert!(s.log().contains("checksum"), "{}", s.log());
    assert_eq!(s.write("t", "m v=4 4").0, 204);
    s.stop();

    // Garbage that is not a record at all.
    let seg = newest_segment(&s.data_dir);
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0]).unwrap();
    drop(f);
    let s = Server::start_in(dir.path(), &[]);
    assert_eq!(s.count("t", "m"), 3);
}

#[test]
fn invariant_6_read_your_writes() {
    let s = Server::start(&["--shards", "2"]);
    for i in 0..100 {
        let (status, text) = s.write("ryw", &format!("m,k=v{} v={i}i {}", i % 7, i + 1));
        assert_eq!(status, 204, "{text}");
        let rows = s.query("ryw", &format!("SELECT count(*) AS n FROM m WHERE v = {i}"));
        assert_eq!(rows[0]["n"], 1, "write {i} not visible to the next query");
    }
    assert_eq!(s.count("ryw", "m"), 100);
}

#[test]
fn a_failed_wal_write_is_never_acked_and_stops_its_shard() {
    use std::os::unix::process::CommandExt;
    // A file-size limit makes the WAL's writes fail past 2 MiB, as a full disk would.
    const LIMIT: libc::rlim_t = 2 << 20;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--shards", "1", "--gen1-duration", "1d"];
    let mut s = Server::start_in_with(dir.path(), &flags, |cmd| {
        // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let body = |req: usize| -> String {
        (0..2_000).map(|i| format!("m,req=r{req} v={i}i,pad=\"{}\" {}\n", "x".repeat(100), 1_000_000 + i)).collect()
    };
    let mut acked: i64 = 0;
    let mut refused = None;
    for req in 0..40 {
        let (status, text) = s.write("full", &body(req));
        match status {
            204 => {
                assert!(refused.is_none(), "a write was acked after the WAL failed");
                acked += 1;
            }
            _ => {
                refused.get_or_insert((status, text));
            }
        }
    }
    // The write whose record failed gets 500 ("not durable"); the ones after it 503.
    let (status, text) = refused.expect("the WAL never failed: is the file-size limit in force?");
    assert!(status == 500 || status == 503, "{status}: {text}");
    assert!(text.contains("durable") || text.contains("WAL"), "{text}");
    assert!(acked > 0, "nothing was acked before the limit");
    // The shard stays stopped: a small write is refused too.
    assert_eq!(s.write("full", "m v=1i 1").0, 503);
    assert!(s.is_running(), "the server died instead of refusing");
    s.kill9();
    // Without the limit every acked write is back, and nothing of the refused ones.
    let s = Server::start_in(dir.path(), &flags);
    assert_eq!(s.count("full", "m"), acked * 2_000);
    let reqs = s.query("full", "SELECT count(DISTINCT req) AS n FROM m");
    assert_eq!(reqs[0]["n"], acked);
}
