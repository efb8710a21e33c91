//! Bounds on queries: a memory pool (429 past it), a time limit (504), a cap on queries at once
//! (429 with Retry-After), and a query stopped when its client goes away.

mod common;

use std::time::{Duration, Instant};

use common::{send, Server};
use serde_json::json;

/// Counting ten billion rows: far longer than any limit below, even optimised.
const ENDLESS: &str = "SELECT count(*) AS n FROM generate_series(1, 10000000000)";

fn sql(s: &Server, q: &str) -> (u16, String) {
    s.post_json("/api/v3/query_sql", &json!({ "db": "d", "q": q }))
}

#[test]
fn a_query_past_the_memory_pool_gets_429_and_small_ones_still_run() {
    let s = Server::start(&["--query-memory-bytes", "2000000"]);
    let body: String = (0..200_000).map(|i| format!("cpu,host=h{} v={i} {i}\n", i % 1000)).collect();
    assert_eq!(s.write("d", &body).0, 204);
    let (status, body) = sql(&s, "SELECT host, v FROM cpu ORDER BY v DESC");
    assert_eq!(status, 429, "{}", &body[..body.len().min(300)]);
    assert!(body.contains("--query-memory-bytes"), "{body}");
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM cpu")[0]["n"], 200_000);
}

#[test]
fn a_query_past_its_time_limit_is_stopped_with_504() {
    let s = Server::start(&["--query-timeout", "1s"]);
    assert_eq!(s.write("d", "cpu v=1 1").0, 204);
    let started = Instant::now();
    let (status, body) = sql(&s, ENDLESS);
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("--query-timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(20), "stopped near its limit: {:?}", started.elapsed());
    assert_eq!(sql(&s, "SELECT 1 AS one").0, 200);
}

#[test]
fn queries_past_the_cap_get_429_and_a_query_whose_client_left_frees_its_place() {
    let s = Server::start(&["--max-concurrent-queries", "1", "--query-timeout", "60s"]);
    assert_eq!(s.write("d", "cpu v=1 1").0, 204);
    // The client gives up after a second; the server must stop the query then, not after 60 s.
    let url = s.url("/api/v3/query_sql");
    let leaver = std::thread::spawn(move || {
        let req = ureq::post(&url).set("Authorization", &common::bearer()).timeout(Duration::from_secs(1));
        req.send_string(&json!({ "db": "d", "q": ENDLESS }).to_string()).is_err()
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = ureq::post(&s.url("/api/v3/query_sql"))
        .set("Authorization", &common::bearer())
        .send_string(&json!({ "db": "d", "q": "SELECT 1 AS one" }).to_string());
    match r {
        Err(ureq::Error::Status(429, resp)) => {
            assert_eq!(resp.header("Retry-After"), Some("1"));
            assert!(resp.into_string().unwrap_or_default().contains("--max-concurrent-queries"));
        }
        other => panic!("expected 429 while the cap is taken, got {:?}", other.map(|r| r.status())),
    }
    assert!(leaver.join().unwrap(), "the leaving client timed out");
    common::wait_for(15, "the abandoned query to be stopped and its place freed", || {
        (send(ureq::post(&s.url("/api/v3/query_sql")), Some(json!({ "db": "d", "q": "SELECT 1 AS one" }).to_string().as_bytes())).0 == 200)
            .then_some(())
    });
}

#[test]
fn a_line_past_the_column_limit_is_refused_by_its_number_and_the_rest_are_kept() {
    let s = Server::start(&[]);
    let wide: String = (0..600).map(|i| format!("f{i}=1")).collect::<Vec<_>>().join(",");
    let (status, body) = s.write("d", &format!("cpu v=1 1\nwide {wide} 2\ncpu v=2 3"));
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["line_number"], 2, "{body}");
    assert!(v["data"][0]["error_message"].as_str().unwrap().contains("at most 500 columns"), "{body}");
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM cpu")[0]["n"], 2);
    assert!(s.try_query("d", "SELECT * FROM wide").is_none(), "no table was made for the refused line");
}

#[test]
fn lines_past_the_tag_and_length_limits_are_refused_by_number_and_the_rest_are_kept() {
    let s = Server::start(&[]);
    let tags: String = (0..300).map(|i| format!(",t{i}=x")).collect();
    let long = "x".repeat(2 << 20);
    let body = format!("cpu v=1 1\nmany{tags} v=1 2\ncpu v=2 3\nlong s=\"{long}\" 4\ncpu v=3 5");
    let (status, text) = s.write("d", &body);
    assert_eq!(status, 400, "{}", &text[..text.len().min(500)]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["line_number"], 2, "{text}");
    assert!(v["data"][0]["error_message"].as_str().unwrap().contains("300 tags, more than the limit of 250"), "{text}");
    assert_eq!(v["data"][1]["line_number"], 4);
    assert!(v["data"][1]["error_message"].as_str().unwrap().contains("more than the limit of 1048576"));
    assert!(v["data"][1]["original_line"].as_str().unwrap().len() <= 1024, "a refused line is echoed cut");
    assert!(text.len() < 64 * 1024, "the answer does not repeat the 2 MiB line");
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM cpu")[0]["n"], 3);
}

/// The server's peak resident memory so far, in bytes.
fn peak_rss(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()).expect("kB") * 1024
}

#[test]
fn a_query_over_a_sparse_table_costs_memory_for_the_columns_it_reads() {
    let s = Server::start(&[]);
    // 400 fields, each written by its own requests: every buffered batch holds two of them.
    for k in 0..400 {
        let body: String = (0..2000).map(|i| format!("sparse id={}i,f{k}={i}i {}\n", k * 2000 + i, k * 2000 + i)).collect();
        assert_eq!(s.write("d", &body).0, 204);
    }
    let before = peak_rss(&s);
    let rows = s.query("d", "SELECT id FROM sparse ORDER BY id DESC LIMIT 1");
    assert_eq!(rows[0]["id"], 799_999);
    let rows = s.query("d", "SELECT count(f7) AS n FROM sparse");
    assert_eq!(rows[0]["n"], 2000);
    // Padding every batch to all 400 columns would take 800,000 rows x 400 columns x 9 bytes
    // (2.9 GB) at once; the columns read take a few MB.
    let grown = peak_rss(&s).saturating_sub(before);
    assert!(grown < 256 << 20, "the queries grew the peak RSS by {} MiB", grown >> 20);
}

#[test]
fn a_query_over_merged_points_is_counted_at_its_size_not_its_slices() {
    let s = Server::start(&["--query-memory-bytes", "16000000", "--gen1-duration", "1s"]);
    // One second of 2023, in nanoseconds: one window, one file per persist.
    let body = |from: i64| -> String { (from..from + 50_000).map(|i| format!("m,h=a id={i}i {}\n", 1_700_000_000_000_000_000 + i)).collect() };
    let write = |from: i64| s.post("/api/v3/write_lp?db=d&precision=ns", body(from).as_bytes()).0;
    for k in 0..6 {
        assert_eq!(write(k * 50_000), 204);
    }
    common::wait_for(30, "the rows to be persisted", || {
        let n = s.try_query("d", "SELECT sum(row_count) AS n FROM system.parquet_files")?[0]["n"].as_i64()?;
        (n == 300_000).then_some(())
    });
    // The same points again: every file and batch now needs merging at query time.
    for k in 0..6 {
        assert_eq!(write(k * 50_000), 204);
    }
    // 300,000 merged rows are 2.4 MB of `id`; counted once per 8,192-row slice of one merged
    // batch they were 88 MB, past the 16 MB pool.
    let (status, body) = sql(&s, "SELECT id FROM m WHERE id < 100");
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM m")[0]["n"], 300_000);
}
