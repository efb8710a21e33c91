//! WAL triggers read from the log through the real binary: cursors, at-least-once across
//! `kill -9` (DESIGN.md invariant 9), catch-up from the WAL, and a slow trigger that slows
//! nothing but itself (invariants 4 and 9).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{wait_for, Server};
use serde_json::json;

/// Writes one `seen` row per row handed over (tag `id` = the row's `id` field, the row's own
/// time), so a repeated hand-over is one row again (point semantics) and `count(*)` is the
/// number of distinct rows seen. Sleeps `args["sleep"]` seconds per call.
const RECORDER: &str = r#"import time

def process_writes(influxdb3_local, table_batches, args=None):
    for b in table_batches:
        for r in b["rows"]:
            influxdb3_local.write(LineBuilder("seen").tag("by", args["name"]).tag("id", str(r["id"])).int64_field("n", 1).time_ns(r["time"]))
    influxdb3_local.info("rows", sum(len(b["rows"]) for b in table_batches))
    time.sleep(float(args.get("sleep", "0")))
"#;

fn recorder(s: &Server, name: &str, sleep: &str) {
    s.create_trigger("db", name, "recorder.py", "table:src", Some(json!({"name": name, "sleep": sleep})), json!({}));
}

fn seen(s: &Server, by: &str) -> i64 {
    s.try_query("db", &format!("SELECT count(*) AS n FROM seen WHERE by = '{by}'"))
        .and_then(|r| r.first().and_then(|r| r["n"].as_i64()))
        .unwrap_or(0)
}

/// Writes `n` rows to `src` in writes of `per` rows, ids from `first`; each acked.
fn write_rows(s: &Server, first: usize, n: usize, per: usize) {
    for start in (first..first + n).step_by(per) {
        let body: Vec<String> = (start..(start + per).min(first + n)).map(|i| format!("src id={i}i {}", 1_000 + i)).collect();
        let (status, text) = s.write("db", &body.join("\n"));
        assert_eq!(status, 204, "{text}");
    }
}

#[test]
fn invariant_9_an_acked_write_reaches_every_enabled_wal_trigger_at_least_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--trigger-max-batch-rows", "20"];
    let mut s = Server::start_in(dir.path(), &args);
    s.add_plugin("recorder.py", RECORDER);
    assert_eq!(s.write("db", "src id=0i 1").0, 204);
    // A slow one (one call of at most 20 rows a second) and a quick one.
    recorder(&s, "slow", "1");
    recorder(&s, "quick", "0");
    let mut acked = 0;
    for cycle in 0..2 {
        write_rows(&s, acked, 200, 10);
        acked += 200;
        // Killed right after the acks: the slow trigger cannot have handled them all.
        let before = seen(&s, "slow");
        s.kill9();
        assert!(before < acked as i64, "cycle {cycle}: the slow trigger had already seen {before} of {acked}");
        s = Server::start_in(dir.path(), &args);
        wait_for(120, "every acked row to reach both triggers", || {
            (seen(&s, "slow") == acked as i64 && seen(&s, "quick") == acked as i64).then_some(())
        });
    }
    let ids: BTreeSet<i64> = s.query("db", "SELECT id FROM seen WHERE by = 'slow'").iter().filter_map(|r| r["id"].as_str()?.parse().ok()).collect();
    assert_eq!(ids, (0..acked as i64).collect(), "every acked row, none invented");
}

#[test]
fn a_trigger_behind_the_in_memory_log_reads_its_rows_back_from_the_wal_across_persists() {
    // One byte of commit log: every read goes to the WAL. Persisting every second, with tiny
    // windows: the segments the trigger still needs are persisted long before it reads them.
    let args = ["--trigger-memory-bytes", "1", "--gen1-duration", "1s", "--persist-threshold-bytes", "1", "--trigger-max-batch-rows", "20"];
    let s = Server::start(&args);
    s.add_plugin("recorder.py", RECORDER);
    s.add_plugin(
        "order.py",
        "def process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.info(','.join(str(r['id']) for b in table_batches for r in b['rows']))\n",
    );
    assert_eq!(s.write("db", "src id=0i 1").0, 204);
    recorder(&s, "slow", "0.5");
    s.create_trigger("db", "order", "order.py", "table:src", None, json!({}));
    write_rows(&s, 0, 300, 5);
    wait_for(120, "every row to reach the slow trigger", || (seen(&s, "slow") == 300).then_some(()));
    let files = s.query("db", "SELECT count(*) AS n FROM system.parquet_files WHERE table_name = 'src'");
    assert!(files[0]["n"].as_i64() > Some(0), "rows were persisted meanwhile");
    let order: Vec<i64> = wait_for(60, "every row in the order log", || {
        let v: Vec<i64> = s
            .engine_logs("db")
            .iter()
            .filter(|(t, _, _)| t == "order")
            .flat_map(|(_, _, m)| m.split(',').filter_map(|n| n.parse().ok()).collect::<Vec<_>>())
            .collect();
        (v.len() >= 300).then_some(v)
    });
    assert_eq!(order, (0..300).collect::<Vec<_>>(), "once each, in commit order");
}

#[test]
fn invariant_9_a_slow_trigger_never_slows_writes_or_other_triggers() {
    // 10 ms ticks; one trigger takes 2 s a call. Writes and the quick trigger must not notice.
    let s = Server::start(&["--trigger-max-batch-rows", "1000"]);
    s.add_plugin("recorder.py", RECORDER);
    s.add_plugin(
        "latency.py",
        "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    now = time.time_ns()\n    \
         for b in table_batches:\n        for r in b['rows']:\n            influxdb3_local.write(LineBuilder('lat').tag('id', str(r['id'])).int64_field('ns', now - r['sent']))\n",
    );
    assert_eq!(s.write("db", "src id=0i,sent=0i 1").0, 204);
    recorder(&s, "slow", "2");
    s.create_trigger("db", "quick", "latency.py", "table:src", None, json!({}));
    let mut write_ms = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let sent = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let t = Instant::now();
        let (status, text) = s.write("db", &format!("src id={i}i,sent={sent}i {}", 10 + i));
        write_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 204, "{text}");
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let writes = i;
    let lat: Vec<f64> = wait_for(30, "every row to reach the quick trigger", || {
        let rows = s.try_query("db", "SELECT ns FROM lat")?;
        (rows.len() >= writes).then(|| rows.iter().filter_map(|r| r["ns"].as_f64()).map(|ns| ns / 1e6).collect())
    });
    let p99 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) * 99 / 100]
    };
    let (write_p99, quick_p99) = (p99(write_ms), p99(lat));
    // Without the slow trigger, both are tens of milliseconds here; a stall would be seconds.
    assert!(write_p99 < 500.0, "write p99 {write_p99:.1} ms");
    assert!(quick_p99 < 1000.0, "quick trigger p99 {quick_p99:.1} ms from write to plugin");
    // The slow trigger is behind, visibly, and catches up in few, large calls.
    let sql = "SELECT trigger_name, lag_commits, cursor, calls FROM system.processing_engine_triggers WHERE trigger_name = 'slow'";
    let slow = s.query("db", sql);
    assert!(slow[0]["lag_commits"].as_u64() > Some(10), "{slow:?}");
    wait_for(60, "the slow trigger to catch up", || (seen(&s, "slow") == writes as i64).then_some(()));
    let calls = s.query("db", sql)[0]["calls"].as_u64().unwrap_or(0);
    assert!(calls < 30, "{calls} calls for {writes} writes: rows after the cursor are taken together");
}

#[test]
fn a_cursor_survives_a_restart_and_rows_handled_before_it_are_not_handed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    s.add_plugin("recorder.py", RECORDER);
    assert_eq!(s.write("db", "src id=0i 1").0, 204);
    recorder(&s, "t", "0");
    write_rows(&s, 0, 50, 10);
    wait_for(30, "50 rows seen", || (seen(&s, "t") == 50).then_some(()));
    let cursor = wait_for(10, "the cursor to be saved", || {
        let c = s.query("db", "SELECT cursor FROM system.processing_engine_triggers")[0]["cursor"].as_u64()?;
        let saved = std::fs::read_to_string(dir.path().join("data/weir/triggers/cursors.json")).ok()?;
        saved.contains(&format!("\"next_commit\": {}", c + 1)).then_some(c)
    });
    s.kill9();
    let s = Server::start_in(dir.path(), &[]);
    write_rows(&s, 50, 10, 10);
    wait_for(30, "60 rows seen", || (seen(&s, "t") == 60).then_some(()));
    let row = &s.query("db", "SELECT cursor, calls FROM system.processing_engine_triggers")[0];
    assert!(row["cursor"].as_u64() > Some(cursor), "{row}");
    assert_eq!(row["calls"].as_u64(), Some(1), "one call after the restart, for the new rows only: {row}");
}

#[test]
fn a_trigger_past_its_max_lag_is_marked_lagging_and_disable_enable_starts_it_at_now() {
    let s = Server::start(&["--trigger-max-lag", "1s"]);
    // Stuck for a minute a call, in steps the cancellation of a disable can interrupt.
    s.add_plugin("stuck.py", "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    for _ in range(600):\n        time.sleep(0.1)\n");
    assert_eq!(s.write("db", "src id=0i 1").0, 204);
    s.create_trigger("db", "stuck", "stuck.py", "table:src", None, json!({}));
    write_rows(&s, 0, 20, 2);
    let sql = "SELECT state, lag_commits, lag_seconds FROM system.processing_engine_triggers";
    let row = wait_for(20, "the trigger to be marked lagging", || {
        let rows = s.query("db", sql);
        (rows[0]["state"] == "lagging").then(|| rows[0].clone())
    });
    assert!(row["lag_seconds"].as_f64() > Some(1.0) && row["lag_commits"].as_u64() >= Some(9), "{row}");
    let logs = s.engine_logs("db");
    assert!(logs.iter().any(|(t, l, m)| t == "stuck" && l == "WARN" && m.starts_with("trigger is lagging")), "{logs:?}");
    // Its rows are kept: it stays behind, never advanced by itself.
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.query("db", sql)[0]["lag_commits"].as_u64() >= Some(9));
    // Disable and enable: it starts again at the current commit.
    for action in ["disable", "enable"] {
        let (status, body) =
            s.post_json(&format!("/api/v3/configure/processing_engine_trigger/{action}"), &json!({"db": "db", "trigger_name": "stuck"}));
        assert_eq!(status, 200, "{body}");
    }
    let row = wait_for(10, "the trigger to run with nothing behind", || {
        let rows = s.query("db", sql);
        (rows[0]["state"] == "running" && rows[0]["lag_commits"].as_u64() == Some(0)).then(|| rows[0].clone())
    });
    assert!(row["lag_seconds"].as_f64() < Some(1.0), "{row}");
}

#[test]
fn replay_runs_a_trigger_over_a_stored_time_range_in_time_order_in_bounded_calls() {
    // Persisting at once in 1 s windows: the range spans Parquet files and the buffer.
    let s = Server::start(&["--trigger-max-batch-rows", "25", "--gen1-duration", "1s", "--persist-threshold-bytes", "1"]);
    s.add_plugin(
        "backfill.py",
        "def process_writes(influxdb3_local, table_batches, args=None):\n    \
         rows = [r for b in table_batches for r in b['rows']]\n    \
         for r in rows:\n        influxdb3_local.write(LineBuilder('out').tag('id', str(r['id'])).int64_field('n', r['id']).time_ns(r['time']))\n    \
         influxdb3_local.info(f\"{len(rows)} {rows[0]['time']} {rows[-1]['time']}\")\n",
    );
    // 200 rows, 0.1 s apart, written out of time order (newest first), two per timestamp.
    let sec = 1_000_000_000i64;
    let t0 = 1_700_000_000 * sec;
    for chunk in (0..100).rev().collect::<Vec<i64>>().chunks(10) {
        let body: Vec<String> = chunk.iter().flat_map(|i| [format!("src,s=a id={i}i {}", t0 + i * sec / 10), format!("src,s=b id={}i {}", i + 100, t0 + i * sec / 10)]).collect();
        assert_eq!(s.write("db", &body.join("\n")).0, 204);
    }
    let (status, body) = s.post_json(
        "/api/v3/configure/processing_engine_trigger",
        &json!({"db": "db", "trigger_name": "backfill", "plugin_filename": "backfill.py", "trigger_specification": "table:src", "disabled": true}),
    );
    assert_eq!(status, 200, "{body}");
    wait_for(30, "some rows to be persisted", || {
        let n = s.query("db", "SELECT count(*) AS n FROM system.parquet_files")[0]["n"].as_i64()?;
        (n > 0).then_some(())
    });
    // [2 s, 7 s): ids 20..70 of both series, 100 rows.
    let (start, end) = (crate_time(t0 + 2 * sec), (t0 + 7 * sec).to_string());
    let out = std::process::Command::new(common::BIN)
        .args(["replay", "trigger", "-d", "db", "--start", &start, "--end", &end, "backfill", "--host", &s.base, "--token", common::TOKEN])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("100 rows in"), "progress is shown: {err}");
    let ids: BTreeSet<i64> = s.query("db", "SELECT n FROM out").iter().filter_map(|r| r["n"].as_i64()).collect();
    let want: BTreeSet<i64> = (20..70).chain(120..170).collect();
    assert_eq!(ids, want, "exactly the rows of the range");
    let calls: Vec<(usize, i64, i64)> = s
        .engine_logs("db")
        .iter()
        .filter(|(t, l, _)| t == "backfill" && l == "INFO")
        .filter_map(|(_, _, m)| {
            let v: Vec<i64> = m.split(' ').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[0] as usize, v[1], v[2]))
        })
        .collect();
    assert!(calls.len() >= 4 && calls.iter().all(|c| c.0 <= 25), "bounded calls: {calls:?}");
    assert!(calls.windows(2).all(|w| w[0].2 < w[1].1), "calls in time order, no timestamp split: {calls:?}");
    // Replay is for WAL triggers over a real range of a trigger that exists.
    let replay = |body: serde_json::Value| s.post_json("/api/v3/configure/processing_engine_trigger/replay", &body);
    assert_eq!(replay(json!({"db": "db", "trigger_name": "backfill", "start": end, "end": start})).0, 400);
    assert_eq!(replay(json!({"db": "db", "trigger_name": "nope", "start": start, "end": end})).0, 404);
    let (status, text) = replay(json!({"db": "db", "trigger_name": "backfill", "start": "yesterday", "end": end}));
    assert!(status == 400 && text.contains("RFC 3339"), "{text}");
}

/// RFC 3339 in UTC, as a user would type it.
fn crate_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let out = std::process::Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("test setup");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_trigger_holding_more_wal_than_its_max_lag_in_bytes_is_marked_lagging() {
    // Persisting every second closes segments (the shards rotate after each persist).
    let s = Server::start(&["--trigger-max-lag", "4KiB", "--gen1-duration", "1s", "--persist-threshold-bytes", "1"]);
    s.add_plugin("stuck.py", "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    for _ in range(600):\n        time.sleep(0.1)\n");
    assert_eq!(s.write("db", "src id=0i 1").0, 204);
    s.create_trigger("db", "stuck", "stuck.py", "table:src", None, json!({}));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while Instant::now() < deadline {
        write_rows(&s, i, 100, 100);
        i += 100;
        if s.query("db", "SELECT state FROM system.processing_engine_triggers")[0]["state"] == "lagging" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = s.engine_logs("db");
    assert!(logs.iter().any(|(t, l, m)| t == "stuck" && l == "WARN" && m.contains("bytes of WAL")), "{logs:?}");
}

#[test]
fn an_async_wal_trigger_gets_every_row_and_its_cursor_waits_for_its_oldest_open_call() {
    let s = Server::start(&["--trigger-max-batch-rows", "10", "--py-executors", "2"]);
    s.add_plugin("recorder.py", RECORDER);
    assert_eq!(s.write("db", "src id=0i 1").0, 204);
    s.create_trigger("db", "a", "recorder.py", "table:src", Some(json!({"name": "a", "sleep": "0.2"})), json!({"run_async": true}));
    write_rows(&s, 0, 200, 10);
    wait_for(60, "every row to reach the async trigger", || (seen(&s, "a") == 200).then_some(()));
    let row = wait_for(10, "its cursor to pass every commit", || {
        let rows = s.query("db", "SELECT lag_commits, queued_events, calls FROM system.processing_engine_triggers");
        (rows[0]["lag_commits"].as_u64() == Some(0) && rows[0]["queued_events"].as_u64() == Some(0)).then(|| rows[0].clone())
    });
    assert!(row["calls"].as_u64() >= Some(2), "{row}");
}
