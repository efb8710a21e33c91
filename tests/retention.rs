//! Retention periods through the real binary: set at creation (HTTP and CLI), rows past the
//! period leave queries at once, and their Parquet files are deleted (issue "Storage", point 10).

mod common;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{wait_for, Server, BIN};

const S: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("test setup").as_nanos() as i64
}

fn create(s: &Server, db: &str, period: &str) -> (u16, String) {
    s.post_json("/api/v3/configure/database", &serde_json::json!({ "db": db, "retention_period": period }))
}

#[test]
fn a_retention_period_is_set_at_creation_and_bad_ones_are_refused() {
    let s = Server::start(&[]);
    assert_eq!(create(&s, "monthly", "30d").0, 200);
    for bad in ["10m", "forever", "30 d"] {
        let (status, body) = create(&s, "bad", bad);
        assert_eq!(status, 400, "{bad}: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(err["error"].as_str().unwrap().contains("retention period"), "{body}");
    }
    let out = Command::new(BIN)
        .args(["create", "database", "weekly", "--retention-period", "2w", "--host", &s.base, "--token", common::TOKEN])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = s.query("monthly", "SELECT database_name, retention_period FROM system.databases ORDER BY database_name");
    let got: Vec<(String, String)> =
        rows.iter().map(|r| (r["database_name"].as_str().unwrap().into(), r["retention_period"].as_str().unwrap().into())).collect();
    assert_eq!(got, vec![("monthly".into(), "30d".into()), ("weekly".into(), "2w".into())]);
}

#[test]
fn rows_past_the_retention_period_leave_queries_in_the_buffer_and_in_files() {
    // Every write is persisted at once (threshold 1 byte) into day-wide windows, so one file
    // holds rows on both sides of the cutoff.
    let s = Server::start(&["--gen1-duration", "1d", "--persist-threshold-bytes", "1"]);
    assert_eq!(create(&s, "r", "1h").0, 200);
    let now = now_ns();
    let hour = 3600 * S;
    let body = format!(
        "m,h=a v=1 {}\nm,h=a v=2 {}\nm,h=a v=3 {}\nm,h=a v=4 {}\n",
        now - 3 * hour,
        now - hour + 4 * S,
        now - hour / 2,
        now
    );
    assert_eq!(s.write("r", &body).0, 204);
    let count = |s: &Server| s.query("r", "SELECT count(*) AS n FROM m")[0]["n"].as_i64().unwrap();
    let sum = |s: &Server| s.query("r", "SELECT sum(v) AS n FROM m")[0]["n"].as_f64().unwrap();
    assert_eq!(count(&s), 3, "the row 3 h old is past the period");
    wait_for(30, "the rows to be persisted", || {
        s.try_query("r", "SELECT count(*) AS n FROM system.parquet_files").and_then(|r| (r[0]["n"].as_i64()? > 0).then_some(()))
    });
    // A predicate that would keep it does not bring it back, from the file either.
    assert_eq!(s.query("r", "SELECT count(*) AS n FROM m WHERE time < now()")[0]["n"], 3);
    assert_eq!(sum(&s), 9.0);
    // Four seconds on, the row an hour old has aged out too.
    wait_for(30, "the second row to age out", || (count(&s) == 2).then_some(()));
    assert_eq!(sum(&s), 7.0);
}

#[test]
fn files_wholly_past_the_retention_period_are_deleted() {
    let s = Server::start(&["--gen1-duration", "1s"]);
    assert_eq!(create(&s, "r", "1h").0, 200);
    let now = now_ns();
    // One row 2 h old (never written to a file) and one that ages out 3 s from now.
    assert_eq!(s.write("r", &format!("m,h=a v=1 {}\nm,h=b v=2 {}\n", now - 7200 * S, now - 3600 * S + 3 * S)).0, 204);
    let listed = wait_for(30, "a Parquet file", || {
        s.try_query("r", "SELECT path, row_count FROM system.parquet_files").filter(|r| !r.is_empty())
    });
    assert_eq!(listed.len(), 1, "the row already past the period is not persisted: {listed:?}");
    assert_eq!(listed[0]["row_count"], 1);
    let path = s.data_dir.join(listed[0]["path"].as_str().unwrap());
    assert!(path.exists());
    wait_for(30, "the expired file to be removed", || {
        let rows = s.try_query("r", "SELECT count(*) AS n FROM system.parquet_files")?;
        (rows[0]["n"] == 0 && !path.exists()).then_some(())
    });
    assert_eq!(s.query("r", "SELECT count(*) AS n FROM m")[0]["n"], 0);
}
