//! `/metrics` in the Prometheus text format reflects what the server did.

mod common;

use common::Server;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .unwrap()
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
