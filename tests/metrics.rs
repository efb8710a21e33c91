//! `/metrics` in the Prometheus text format reflects what the server did.

mod common;

use common::Server;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .expect("test setup")
}

#[test]
fn counts_writes_lines_flushes_and_queries() {
    let s = Server::start(&[]);
    assert_eq!(s.write("m", "a f=1 1\na f=2 2").0, 204);
    assert_eq!(s.write("m", "a f=3 3\nbad").0, 400);
    s.query("m", "SELECT * FROM a");
    let _ = s.get("/api/v3/query_sql?db=m&q=SELEKT");
    let (status, text) = s.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "weir_write_requests_total"), 2.0);
    assert_eq!(metric(&text, "weir_write_lines_total"), 3.0);
    assert_eq!(metric(&text, "weir_write_rejected_lines_total"), 1.0);
    assert!(metric(&text, "weir_wal_flushes_total") >= 1.0);
    assert!(metric(&text, "weir_wal_flush_duration_seconds_count") >= 1.0);
    assert_eq!(metric(&text, "weir_query_requests_total"), 2.0);
    assert_eq!(metric(&text, "weir_query_errors_total"), 1.0);
    assert!(text.contains("# TYPE weir_query_duration_seconds histogram"));
    assert!(text.contains("weir_query_duration_seconds_bucket{le=\"+Inf\"} 2"));
}

#[test]
fn counts_calls_and_errors_per_trigger() {
    let s = Server::start(&[]);
    s.add_example("raises.py");
    s.add_example("count_rows.py");
    assert_eq!(s.write("m", "a f=1 1").0, 204);
    s.create_trigger("m", "bad", "raises.py", "all_tables", None, serde_json::json!({}));
    s.create_trigger("m", "good", "count_rows.py", "table:a", None, serde_json::json!({}));
    assert_eq!(s.write("m", "a f=2 2").0, 204);
    let m = |text: &str, name: &str, t: &str| metric(text, &format!("{name}{{db=\"m\",trigger=\"{t}\"}}"));
    let text = common::wait_for(20, "both triggers' calls", || {
        let (_, text) = s.get("/metrics");
        let seen = |t| text.contains(&format!("weir_trigger_calls_total{{db=\"m\",trigger=\"{t}\"}}"));
        // Every call of the raising plugin is an error, none of the good one's, and each call
        // has its latency observed (counters are read one by one, so wait until they agree).
        (seen("bad")
            && seen("good")
            && m(&text, "weir_trigger_calls_total", "bad") >= 1.0
            && m(&text, "weir_trigger_calls_total", "good") >= 1.0
            && m(&text, "weir_trigger_errors_total", "bad") == m(&text, "weir_trigger_calls_total", "bad")
            && m(&text, "weir_trigger_call_duration_seconds_count", "good") == m(&text, "weir_trigger_calls_total", "good"))
        .then_some(text)
    });
    assert_eq!(m(&text, "weir_trigger_errors_total", "good"), 0.0);
    // Nothing waits for either once their calls are done.
    let text = common::wait_for(20, "the triggers to be idle", || {
        let (_, text) = s.get("/metrics");
        (m(&text, "weir_trigger_queued_events", "good") == 0.0 && m(&text, "weir_trigger_lag_seconds", "bad") == 0.0).then_some(text)
    });
    assert!(text.contains("# TYPE weir_trigger_lag_seconds gauge"), "{text}");
}

/// A trigger that falls behind shows it in `/metrics`: events waiting, and the oldest's wait.
#[test]
fn a_slow_trigger_shows_its_queue_and_lag() {
    let s = Server::start(&[]);
    s.add_plugin("slow.py", "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    time.sleep(1)\n");
    assert_eq!(s.write("m", "a f=1 1").0, 204);
    s.create_trigger("m", "slow", "slow.py", "table:a", None, serde_json::json!({}));
    for i in 2..5 {
        assert_eq!(s.write("m", &format!("a f={i} {i}")).0, 204);
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    let m = |text: &str, name: &str| metric(text, &format!("{name}{{db=\"m\",trigger=\"slow\"}}"));
    common::wait_for(20, "the slow trigger's lag", || {
        let (_, text) = s.get("/metrics");
        (m(&text, "weir_trigger_queued_events") >= 1.0 && m(&text, "weir_trigger_lag_seconds") > 0.2).then_some(())
    });
}

/// The profiling endpoints sample the running server: an SVG flamegraph, a pprof protobuf, one
/// profile at a time (409 for a second), and a clear 400 for a bad duration.
#[test]
fn pprof_profile_and_flamegraph() {
    use std::io::Read;
    let s = Server::start(&[]);
    // Two profiles asked for together: whichever starts first runs 3 s, so the other, sent at
    // the same moment, finds it running. Which one wins is up to the scheduler.
    let start = |path: &str| {
        let url = s.url(path);
        std::thread::spawn(move || common::send(ureq::get(&url), None))
    };
    let flame = start("/debug/pprof/flamegraph?seconds=3");
    let other = start("/debug/pprof/flamegraph?seconds=3");
    // Work for the profiler to see while it samples.
    for i in 0..50 {
        assert_eq!(s.write("p", &format!("cpu v={i} {i}")).0, 204);
    }
    let mut answers = [flame.join().unwrap(), other.join().unwrap()];
    answers.sort_by_key(|(status, _)| *status);
    let [(ok, svg), (conflict, body)] = answers;
    assert_eq!((ok, conflict), (200, 409), "{body}");
    assert!(body.contains("already"), "{body}");
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..svg.len().min(200)]);

    let resp = ureq::get(&s.url("/debug/pprof/profile?seconds=1")).set("Authorization", &common::bearer()).call().unwrap();
    assert_eq!(resp.header("Content-Type"), Some("application/octet-stream"));
    let mut bytes = Vec::new();
    resp.into_reader().read_to_end(&mut bytes).unwrap();
    // A pprof Profile starts with field 1 (sample_type), length-delimited: tag byte 0x0a.
    assert_eq!(bytes.first(), Some(&0x0a), "{} bytes", bytes.len());

    for bad in ["0", "abc", "301"] {
        let (status, body) = s.get(&format!("/debug/pprof/profile?seconds={bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("seconds must be"), "{body}");
    }
}

#[test]
fn shows_the_write_buffer_and_the_parquet_files() {
    let s = Server::start(&["--gen1-duration", "1s", "--max-buffer-bytes", "100000000"]);
    // Two series, one second: one file.
    assert_eq!(s.write("m", "a,t=x f=1 1\na,t=y f=2 1").0, 204);
    let (_, text) = s.get("/metrics");
    assert_eq!(metric(&text, "weir_write_buffer_cap_bytes"), 100_000_000.0);
    let text = common::wait_for(30, "the rows to be persisted", || {
        let (_, text) = s.get("/metrics");
        (metric(&text, "weir_parquet_rows") == 2.0 && metric(&text, "weir_write_buffer_bytes") == 0.0).then_some(text)
    });
    assert_eq!(metric(&text, "weir_parquet_files"), 1.0);
    assert!(metric(&text, "weir_parquet_bytes") > 0.0);
    assert!(metric(&text, "weir_persisted_through_commit") >= 1.0);
}
