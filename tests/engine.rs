//! The processing engine end to end, through the real binary: the example plugins, trigger
//! management, error behaviours, the DESIGN.md invariants 4 and 5, and the places SPEC §9 says
//! InfluxDB 3 falls short.

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Server};
use serde_json::json;

const TRIGGER: &str = "/api/v3/configure/processing_engine_trigger";

fn count_of(s: &Server, db: &str, sql: &str) -> Option<i64> {
    s.try_query(db, sql)?.first()?.get("n")?.as_i64()
}

#[test]
fn example_count_rows_counts_each_flush() {
    let s = Server::start(&[]);
    s.add_example("count_rows.py");
    assert_eq!(s.write("db", "cpu,host=a usage=1 1").0, 204);
    s.create_trigger("db", "counter", "count_rows.py", "table:cpu", Some(json!({"measurement": "counts"})), json!({}));
    assert_eq!(s.write("db", "cpu,host=a usage=1 2\ncpu,host=b usage=2 3\nmem,host=a used=1 4").0, 204);
    let rows = s.wait_rows(20, "db", "SELECT \"table\", rows FROM counts");
    assert_eq!(rows, vec![json!({"table": "cpu", "rows": 2})], "only table:cpu rows, counted once");
    let logs = s.engine_logs("db");
    assert!(logs.iter().any(|(t, l, m)| t == "counter" && l == "INFO" && m == "table cpu had 2 rows"), "{logs:?}");
}

/// Writes are committed one by one as they arrive, but a `table:` trigger still gets one call per
/// tick of the flush clock with the rows of every commit since the last tick: ten writes in
/// quick succession, with a 3 s clock, reach the plugin in at most two calls (a tick may fall
/// between them) holding all ten rows.
#[test]
fn a_flush_event_holds_every_commit_since_the_last_tick() {
    let s = Server::start(&["--wal-flush-interval", "3s"]);
    s.add_example("count_rows.py");
    let (status, body) = s.post_json("/api/v3/configure/database", &json!({"db": "db"}));
    assert_eq!(status, 200, "{body}");
    s.create_trigger("db", "counter", "count_rows.py", "table:cpu", Some(json!({"measurement": "counts"})), json!({}));
    for i in 0..10 {
        assert_eq!(s.write("db", &format!("cpu,host=a usage={i} {}", 100 + i)).0, 204);
    }
    let calls = wait_for(30, "ten rows counted", || {
        let calls: Vec<i64> =
            s.try_query("db", "SELECT rows FROM counts").unwrap_or_default().iter().filter_map(|r| r["rows"].as_i64()).collect();
        (calls.iter().sum::<i64>() >= 10).then_some(calls)
    });
    assert_eq!(calls.iter().sum::<i64>(), 10, "every row reaches the plugin once: {calls:?}");
    assert!(calls.len() <= 2, "one call per tick, not per commit: {calls:?}");
}

/// A write acked before a trigger exists is published on a later tick of the flush clock, but it
/// is not the new trigger's to see: with a 3 s clock the first write and the next two land in
/// the same flush, and the plugin must count only the two.
#[test]
fn a_trigger_sees_only_writes_committed_after_it_starts() {
    let s = Server::start(&["--wal-flush-interval", "3s"]);
    s.add_example("count_rows.py");
    assert_eq!(s.write("db", "cpu,host=a usage=1 1").0, 204);
    s.create_trigger("db", "counter", "count_rows.py", "table:cpu", Some(json!({"measurement": "counts"})), json!({}));
    assert_eq!(s.write("db", "cpu,host=a usage=2 2\ncpu,host=b usage=3 3").0, 204);
    let calls = wait_for(30, "two rows counted", || {
        let calls: Vec<i64> =
            s.try_query("db", "SELECT rows FROM counts").unwrap_or_default().iter().filter_map(|r| r["rows"].as_i64()).collect();
        (calls.iter().sum::<i64>() >= 2).then_some(calls)
    });
    assert_eq!(calls, vec![2], "the row written before the trigger is not counted");
}

#[test]
fn invariant_4_plugin_exception_affects_only_its_trigger() {
    let s = Server::start(&[]);
    s.add_example("raises.py");
    s.add_example("count_rows.py");
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "bad", "raises.py", "all_tables", None, json!({"error_behavior": "log"}));
    s.create_trigger("db", "good", "count_rows.py", "all_tables", None, json!({}));
    for i in 0..3 {
        assert_eq!(s.write("db", &format!("cpu usage={i} {}", 10 + i)).0, 204);
    }
    // The good trigger saw every flush; the bad one failed on each and stayed enabled.
    wait_for(20, "three counts", || (count_of(&s, "db", "SELECT sum(rows) AS n FROM row_counts WHERE \"table\" = 'cpu'")? >= 3).then_some(()));
    let logs = s.engine_logs("db");
    let errors: Vec<_> = logs.iter().filter(|(t, l, _)| t == "bad" && l == "ERROR").collect();
    assert!(!errors.is_empty(), "{logs:?}");
    // The log carries the Python traceback, not only the message (SPEC §9).
    let text = &errors[0].2;
    assert!(text.contains("Traceback (most recent call last)"), "{text}");
    assert!(text.contains("in check") && text.contains("ValueError: boom"), "{text}");
    let triggers = s.query("db", "SELECT trigger_name, disabled FROM system.processing_engine_triggers ORDER BY trigger_name");
    assert_eq!(triggers, vec![json!({"trigger_name": "bad", "disabled": false}), json!({"trigger_name": "good", "disabled": false})]);
    // Writes and queries still work.
    assert_eq!(s.write("db", "cpu usage=9 99").0, 204);
    assert!(s.count("db", "cpu") >= 5);
}

#[test]
fn example_copy_to_db_writes_to_another_database() {
    let s = Server::start(&[]);
    s.add_example("copy_to_db.py");
    assert_eq!(s.write("src", "m,host=a v=1.5,n=3i,ok=true 1000000000").0, 204);
    s.create_trigger("src", "copy", "copy_to_db.py", "table:m", Some(json!({"target_db": "dst"})), json!({}));
    s.create_trigger("src", "copy_sync", "copy_to_db.py", "table:m", Some(json!({"target_db": "dst_sync", "sync": "true"})), json!({}));
    assert_eq!(s.write("src", "m,host=b v=2.5,n=4i,ok=false 2000000000").0, 204);
    for db in ["dst", "dst_sync"] {
        let rows = s.wait_rows(20, db, "SELECT host, v, n, ok, time FROM m");
        assert_eq!(rows, vec![json!({"host": "b", "v": 2.5, "n": 4, "ok": false, "time": "2033-05-18T03:33:20Z"})], "{db}");
    }
}

#[test]
fn example_cache_counter_keeps_state_between_calls() {
    let s = Server::start(&[]);
    s.add_example("cache_counter.py");
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "a", "cache_counter.py", "table:cpu", None, json!({}));
    s.create_trigger("db", "b", "cache_counter.py", "table:cpu", None, json!({}));
    for i in 0..3 {
        assert_eq!(s.write("db", &format!("cpu usage=1 {}\ncpu usage=2 {}", 10 + i, 20 + i)).0, 204);
        // One flush per write, so each trigger is called three times.
        wait_for(20, "both triggers' calls", || {
            (count_of(&s, "db", "SELECT count(*) AS n FROM cache_totals")? >= 2 * (i + 1)).then_some(())
        });
    }
    let rows = s.query("db", "SELECT max(trigger_total) AS t, max(global_total) AS g, max(calls) AS c FROM cache_totals");
    // Per trigger: 3 calls of 2 rows. Global: both triggers add to one total.
    assert_eq!(rows, vec![json!({"t": 6, "g": 12, "c": 3})]);
}

#[test]
fn example_query_params_reads_with_placeholders() {
    let s = Server::start(&[]);
    s.add_example("query_params.py");
    assert_eq!(s.write("db", "cpu,host=a usage=1 1\ncpu,host=b usage=50 2").0, 204);
    s.create_trigger("db", "q", "query_params.py", "table:cpu", Some(json!({"host": "a"})), json!({}));
    assert_eq!(s.write("db", "cpu,host=a usage=7 3").0, 204);
    let rows = s.wait_rows(20, "db", "SELECT host, points, max FROM host_summary");
    assert_eq!(rows, vec![json!({"host": "a", "points": 2, "max": 7.0})]);
}

#[test]
fn invariant_5_sync_trigger_calls_one_at_a_time_in_wal_order() {
    // Two shards whatever the machine: each write below may land on either, and a write acked
    // before the next is sent must still come first.
    let s = Server::start(&["--shards", "2"]);
    // Records each call's ids; flags any overlap or any id not above the last one seen.
    s.add_plugin(
        "ordered.py",
        r#"
import time

def process_writes(influxdb3_local, table_batches, args=None):
    cache = influxdb3_local.cache
    if cache.get("running"):
        influxdb3_local.error("overlap")
    cache.put("running", True)
    last = cache.get("last", default=-1)
    for b in table_batches:
        for r in b["rows"]:
            if r["id"] <= last:
                influxdb3_local.error("out of order", r["id"], "after", last)
            last = r["id"]
    cache.put("last", last)
    time.sleep(0.02)  # widen the window an overlap would need
    influxdb3_local.write(LineBuilder("seen").int64_field("last", last))
    cache.put("running", False)
"#,
    );
    assert_eq!(s.write("db", "k id=0i 1").0, 204);
    s.create_trigger("db", "ordered", "ordered.py", "table:k", None, json!({}));
    // Concurrent writers, each with increasing ids in its own range, would not give one WAL
    // order; one writer sending quickly gives many flushes queued behind a slow plugin.
    for id in 1..=60i64 {
        assert_eq!(s.post("/api/v3/write_lp?db=db", format!("k id={id}i {id}").as_bytes()).0, 204);
    }
    wait_for(60, "the last id", || (count_of(&s, "db", "SELECT max(last) AS n FROM seen")? == 60).then_some(()));
    let logs = s.engine_logs("db");
    let bad: Vec<_> = logs.iter().filter(|(_, l, _)| l == "ERROR").collect();
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn disable_on_error_is_saved_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Server::start_in(dir.path(), &[]);
        s.add_example("raises.py");
        assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
        s.create_trigger("db", "fragile", "raises.py", "all_tables", None, json!({"error_behavior": "disable"}));
        assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
        wait_for(20, "the trigger to disable itself", || {
            let r = s.try_query("db", "SELECT disabled FROM system.processing_engine_triggers")?;
            (r == vec![json!({"disabled": true})]).then_some(())
        });
        let logs = s.engine_logs("db");
        assert!(logs.iter().any(|(_, _, m)| m.contains("disabled after an error")), "{logs:?}");
    }
    let s = Server::start_in(dir.path(), &[]);
    let r = s.query("db", "SELECT trigger_name, disabled, error_behavior FROM system.processing_engine_triggers");
    assert_eq!(r, vec![json!({"trigger_name": "fragile", "disabled": true, "error_behavior": "disable"})]);
    // Enabled again, it runs (and, still raising, disables itself again).
    let (status, body) = s.post_json(&format!("{TRIGGER}/enable"), &json!({"db": "db", "trigger_name": "fragile"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.write("db", "cpu usage=3 3").0, 204);
    wait_for(20, "a second disable", || {
        let r = s.try_query("db", "SELECT disabled FROM system.processing_engine_triggers")?;
        (r == vec![json!({"disabled": true})]).then_some(())
    });
}

#[test]
fn retry_is_bounded_with_backoff() {
    let s = Server::start(&[]);
    s.add_example("raises.py");
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "again", "raises.py", "table:cpu", None, json!({"error_behavior": "retry"}));
    let started = Instant::now();
    assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
    let logs = wait_for(30, "the retries to give up", || {
        let l = s.engine_logs("db");
        l.iter().any(|(_, _, m)| m.contains("giving up")).then_some(l)
    });
    let failures = logs.iter().filter(|(_, l, m)| l == "ERROR" && m.contains("plugin call failed")).count();
    assert_eq!(failures, 6, "one call and five retries: {logs:?}");
    let retries: Vec<_> = logs.iter().filter(|(_, _, m)| m.starts_with("retry ")).map(|(_, _, m)| m.clone()).collect();
    assert_eq!(retries.len(), 5, "{retries:?}");
    assert!(retries[0].contains("in 100 ms") && retries[4].contains("in 1600 ms"), "{retries:?}");
    // The backoff is real waiting: 100+200+400+800+1600 ms at least.
    assert!(started.elapsed() >= Duration::from_millis(3100));
    // Nothing more after giving up, and the trigger stays enabled.
    std::thread::sleep(Duration::from_millis(300));
    let later = s.engine_logs("db").iter().filter(|(_, l, m)| l == "ERROR" && m.contains("plugin call failed")).count();
    assert_eq!(later, 6);
}

#[test]
fn table_trigger_on_a_table_created_later_works() {
    let s = Server::start(&[]);
    s.add_example("count_rows.py");
    let (status, body) = s.post_json("/api/v3/configure/database", &json!({"db": "db"}));
    assert_eq!(status, 200, "{body}");
    s.create_trigger("db", "early", "count_rows.py", "table:later", None, json!({}));
    assert_eq!(s.write("db", "later v=1 1\nlater v=2 2").0, 204);
    wait_for(20, "the count of a table that did not exist", || {
        (count_of(&s, "db", "SELECT sum(rows) AS n FROM row_counts")? == 2).then_some(())
    });
}

#[test]
fn trigger_management_refuses_bad_input_with_4xx() {
    let s = Server::start(&[]);
    s.add_example("count_rows.py");
    s.add_plugin("broken.py", "def process_writes(influxdb3_local, table_batches, args=None)\n    pass\n");
    s.add_plugin("sched_only.py", "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n");
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    let create = |name: &str, db: &str, file: &str, spec: &str| {
        s.post_json(TRIGGER, &json!({"db": db, "trigger_name": name, "plugin_filename": file, "trigger_specification": spec}))
    };
    let cases = [
        (create("t", "db", "nope.py", "all_tables"), 400, "not found"),
        (create("t", "db", "broken.py", "all_tables"), 400, "SyntaxError"),
        (create("t", "db", "sched_only.py", "all_tables"), 400, "process_writes"),
        (create("t", "db", "count_rows.py", "every:0s"), 400, "greater than zero"),
        (create("t", "db", "count_rows.py", "tables:cpu"), 400, "unknown kind"),
        (create("t", "db", "../etc/passwd.py", "all_tables"), 400, "inside the plugin directory"),
        (create("t", "nodb", "count_rows.py", "all_tables"), 404, "not found"),
        (create("", "db", "count_rows.py", "all_tables"), 400, "trigger_name"),
    ];
    for ((status, body), want_status, want_text) in cases {
        assert_eq!(status, want_status, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON error body: {body}"));
        assert!(v["error"].as_str().unwrap_or_default().contains(want_text), "{body} should mention {want_text}");
    }
    assert_eq!(create("t", "db", "count_rows.py", "all_tables").0, 200);
    let (status, body) = create("t", "db", "count_rows.py", "all_tables");
    assert_eq!(status, 409, "{body}");
    // Deleting an enabled trigger needs force; enable and disable are idempotent.
    let (status, body) = s.delete_json(TRIGGER, &json!({"db": "db", "trigger_name": "t"}));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("force"), "{body}");
    for _ in 0..2 {
        assert_eq!(s.post_json(&format!("{TRIGGER}/disable"), &json!({"db": "db", "trigger_name": "t"})).0, 200);
    }
    assert_eq!(s.post_json(&format!("{TRIGGER}/enable"), &json!({"db": "db", "trigger_name": "nope"})).0, 404);
    assert_eq!(s.delete_json(TRIGGER, &json!({"db": "db", "trigger_name": "t"})).0, 200);
    assert_eq!(s.delete_json(TRIGGER, &json!({"db": "db", "trigger_name": "t"})).0, 404);
    assert_eq!(create("t2", "db", "count_rows.py", "all_tables").0, 200);
    assert_eq!(s.delete_json(TRIGGER, &json!({"db": "db", "trigger_name": "t2", "force": true})).0, 200);
    assert!(s.is_running_ok());
}

#[test]
fn triggers_survive_restart_and_keep_firing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Server::start_in(dir.path(), &[]);
        s.add_example("count_rows.py");
        assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
        s.create_trigger("db", "c", "count_rows.py", "table:cpu", Some(json!({"measurement": "n"})), json!({"run_async": true}));
    }
    let s = Server::start_in(dir.path(), &[]);
    let args = s.query("db", "SELECT trigger_name, argument_key, argument_value FROM system.processing_engine_trigger_arguments");
    assert_eq!(args, vec![json!({"trigger_name": "c", "argument_key": "measurement", "argument_value": "n"})]);
    assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
    wait_for(20, "a count after restart", || (count_of(&s, "db", "SELECT sum(rows) AS n FROM n")? == 1).then_some(()));
}

#[test]
fn query_converts_every_arrow_type_sql_returns() {
    let s = Server::start(&[]);
    s.add_plugin(
        "types.py",
        r#"
def process_writes(influxdb3_local, table_batches, args=None):
    rows = influxdb3_local.query("""
        SELECT arrow_cast(-5, 'Int8') AS i8, arrow_cast(7, 'UInt16') AS u16, 1.5 AS f,
               arrow_cast(2.5, 'Float32') AS f32, 'text' AS s, arrow_cast('v', 'Utf8View') AS sv,
               true AS b, NULL AS n, DATE '2024-01-02' AS d,
               arrow_cast(TIMESTAMP '2024-01-02T03:04:05.123456789', 'Timestamp(Microsecond, None)') AS ts,
               INTERVAL '1 day' AS iv, arrow_cast(90, 'Duration(Second)') AS dur,
               make_array(1, 2, 3) AS arr, named_struct('a', 1, 'b', 'x') AS st,
               arrow_cast(1.25, 'Decimal128(5, 2)') AS dec, arrow_cast('ab', 'Binary') AS bin,
               arrow_cast('06:07:08', 'Time64(Microsecond)') AS tm,
               arrow_cast('k', 'Dictionary(Int32, Utf8)') AS dict, host, time
        FROM cpu ORDER BY time LIMIT 1""")
    r = rows[0]
    influxdb3_local.info(repr(sorted((k, type(v).__name__, v) for k, v in r.items())))
"#,
    );
    assert_eq!(s.write("db", "cpu,host=h usage=1 1").0, 204);
    s.create_trigger("db", "t", "types.py", "table:cpu", None, json!({}));
    assert_eq!(s.write("db", "cpu,host=h usage=2 2").0, 204);
    let logs = wait_for(20, "the types", || {
        let l = s.engine_logs("db");
        (!l.is_empty()).then_some(l)
    });
    let (_, level, text) = &logs[0];
    assert_eq!(level, "INFO", "{text}");
    for want in [
        "('i8', 'int', -5)",
        "('u16', 'int', 7)",
        "('f', 'float', 1.5)",
        "('f32', 'float', 2.5)",
        "('s', 'str', 'text')",
        "('sv', 'str', 'v')",
        "('b', 'bool', True)",
        "('n', 'NoneType', None)",
        "('d', 'date', datetime.date(2024, 1, 2))",
        "('ts', 'int', 1704164645123456000)",
        "('dur', 'timedelta', datetime.timedelta(seconds=90))",
        "('arr', 'list', [1, 2, 3])",
        "('st', 'dict', {'a': 1, 'b': 'x'})",
        "('dec', 'Decimal', Decimal('1.25'))",
        "('bin', 'bytes', b'ab')",
        "('tm', 'time', datetime.time(6, 7, 8))",
        "('dict', 'str', 'k')",
        "('host', 'str', 'h')",
        "('time', 'int', 1000000000)",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    assert!(text.contains("('iv', 'str', "), "{text}");
}

#[test]
fn line_builder_refuses_what_line_protocol_cannot_carry() {
    let s = Server::start(&[]);
    s.add_plugin(
        "lb.py",
        r#"
def attempt(influxdb3_local, name, make):
    try:
        influxdb3_local.info(name, "ok", make().build())
    except InfluxDBError as e:
        influxdb3_local.info(name, type(e).__name__, str(e))

def process_writes(influxdb3_local, table_batches, args=None):
    attempt(influxdb3_local, "newline-tag", lambda: LineBuilder("m").tag("t", "a\nb").int64_field("f", 1))
    attempt(influxdb3_local, "empty-tag", lambda: LineBuilder("m").tag("t", "").int64_field("f", 1))
    attempt(influxdb3_local, "nan", lambda: LineBuilder("m").float64_field("f", float("nan")))
    attempt(influxdb3_local, "newline-string", lambda: LineBuilder("m").string_field("s", 'a\n"b"\\'))
    attempt(influxdb3_local, "escapes", lambda: LineBuilder("m ,x").tag("t", "a b,c=d\\").float64_field("f", 1e300))
    influxdb3_local.write(LineBuilder("m ,x").tag("t", "a b,c=d\\").string_field("s", 'a\n"b"\\').time_ns(5))
"#,
    );
    let (status, body) = s.post_json(
        "/api/v3/plugin_test/wal",
        &json!({"filename": "lb.py", "database": "db", "input_lp": "cpu usage=1 1"}),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let logs: Vec<String> = v["log_lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    let find = |name: &str| logs.iter().find(|l| l.starts_with(&format!("INFO: {name} "))).cloned().unwrap_or_default();
    assert!(find("newline-tag").contains("InvalidLineError") && find("newline-tag").contains("line break"), "{logs:?}");
    assert!(find("empty-tag").contains("InvalidLineError") && find("empty-tag").contains("empty value"), "{logs:?}");
    assert!(find("nan").contains("InvalidLineError") && find("nan").contains("nan"), "{logs:?}");
    assert!(find("newline-string").contains(" ok "), "{logs:?}");
    assert!(find("escapes").contains(r#"m\ \,x,t=a\ b\,c\=d\\ f=1e+300"#), "{logs:?}");
    assert_eq!(v["errors"], json!([]), "{body}");
    // And what it builds is what the server parses back: write it for real and read it.
    let lines = v["database_writes"]["db"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(s.post("/api/v3/write_lp?db=db2&precision=ns", lines[0].as_str().unwrap().as_bytes()).0, 204);
    let rows = s.query("db2", "SELECT t, s, time FROM \"m ,x\"");
    assert_eq!(rows, vec![json!({"t": "a b,c=d\\", "s": "a\n\"b\"\\", "time": "1970-01-01T00:00:00.000000005Z"})]);
}

#[test]
fn plugin_test_wal_reports_logs_writes_and_errors_and_writes_nothing() {
    let s = Server::start(&[]);
    s.add_example("count_rows.py");
    s.add_example("raises.py");
    let (status, body) = s.post_json(
        "/api/v3/plugin_test/wal",
        &json!({"filename": "count_rows.py", "database": "dry", "input_lp": "cpu,host=a usage=1 1\ncpu usage=2 2\nbad line", "input_arguments": {"measurement": "c"}}),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["log_lines"], json!(["INFO: table cpu had 2 rows"]));
    assert_eq!(v["database_writes"], json!({"dry": ["c,table=cpu rows=2i"]}));
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "the bad input line: {body}");
    // Nothing was written: the database does not exist.
    assert_eq!(s.get("/api/v3/query_sql?db=dry&q=SELECT%201").0, 404);
    let (status, body) = s.post_json("/api/v3/plugin_test/wal", &json!({"filename": "raises.py", "database": "dry", "input_lp": "cpu usage=1 1"}));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ValueError: boom"), "{body}");
    let (status, _) = s.post_json("/api/v3/plugin_test/wal", &json!({"filename": "missing.py", "database": "dry", "input_lp": ""}));
    assert_eq!(status, 400);
}

/// A dry run is under the same time limit as a trigger's call: a plugin that never returns is
/// stopped, the request answers with the reason, and the executor serves the next call.
#[test]
fn plugin_test_of_a_plugin_that_never_returns_is_stopped_at_the_time_limit() {
    let s = Server::start(&["--plugin-timeout", "300ms", "--py-executors", "1"]);
    s.add_plugin("spins.py", "def process_writes(influxdb3_local, table_batches, args=None):\n    while True:\n        pass\n");
    s.add_example("count_rows.py");
    let (status, body) = s.post_json("/api/v3/plugin_test/wal", &json!({"filename": "spins.py", "database": "dry", "input_lp": "cpu usage=1 1"}));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("time limit of 300 ms"), "{body}");
    let (status, body) = s.post_json(
        "/api/v3/plugin_test/wal",
        &json!({"filename": "count_rows.py", "database": "dry", "input_lp": "cpu usage=1 1", "input_arguments": {"measurement": "c"}}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("table cpu had 1 rows"), "{body}");
}

#[test]
fn changed_plugin_file_is_used_from_the_next_call() {
    let s = Server::start(&[]);
    let version = |v: i64| format!("def process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.write(LineBuilder('ver').int64_field('v', {v}))\n");
    s.add_plugin("ver.py", &version(1));
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "ver", "ver.py", "table:cpu", None, json!({}));
    assert_eq!(s.write("db", "cpu usage=1 2").0, 204);
    wait_for(20, "version 1", || (count_of(&s, "db", "SELECT max(v) AS n FROM ver")? == 1).then_some(()));
    // Same size, so only the content and mtime change.
    std::thread::sleep(Duration::from_millis(20));
    s.add_plugin("ver.py", &version(2));
    assert_eq!(s.write("db", "cpu usage=1 3").0, 204);
    wait_for(20, "version 2", || (count_of(&s, "db", "SELECT max(v) AS n FROM ver")? == 2).then_some(()));
}

#[test]
fn package_plugins_and_sibling_modules_import() {
    let s = Server::start(&[]);
    s.add_plugin("pkg/helpers.py", "def label():\n    return 'from-helper'\n");
    s.add_plugin(
        "pkg/__init__.py",
        "from . import helpers\n\ndef process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.info(helpers.label(), __name__ != '', PLUGIN_DIR_OK)\n\nimport os\nPLUGIN_DIR_OK = os.environ['PLUGIN_DIR'] == os.environ['INFLUXDB3_PLUGIN_DIR']\n",
    );
    let (status, body) = s.post_json("/api/v3/plugin_test/wal", &json!({"filename": "pkg", "database": "db", "input_lp": "cpu usage=1 1"}));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("INFO: from-helper True True"), "{body}");
}

#[test]
fn install_packages_reports_pip_failure() {
    let s = Server::start(&[]);
    let (status, body) = s.post_json(
        "/api/v3/configure/plugin_environment/install_packages",
        &json!({"packages": ["weir-no-such-package-3f9c2b"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("pip install failed"), "{body}");
    let (status, body) = s.post_json("/api/v3/configure/plugin_environment/install_packages", &json!({"packages": ["--index-url=http://x"]}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = s.post_json("/api/v3/configure/plugin_environment/install_requirements", &json!({"requirements_location": "nope.txt"}));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not found"), "{body}");
}

impl Server {
    fn is_running_ok(&self) -> bool {
        self.get("/health").0 == 200
    }
}

/// Installs pyarrow from PyPI into the server's plugin venv through the API, then reads a
/// flush as a pyarrow.RecordBatch. Slow (a wheel download), so it is one test for both.
#[test]
fn example_arrow_sum_reads_the_flush_as_a_pyarrow_batch_after_install_packages() {
    let s = Server::start(&[]);
    s.add_example("arrow_sum.py");
    let (status, body) = s.post_json("/api/v3/configure/plugin_environment/install_packages", &json!({"packages": ["pyarrow"]}));
    assert_eq!(status, 200, "installing pyarrow: {body}");
    assert!(s.plugin_dir().join(".venv/bin/python").exists());
    assert_eq!(s.write("db", "cpu,host=a usage=1 1").0, 204);
    s.create_trigger("db", "sum", "arrow_sum.py", "table:cpu", None, json!({}));
    assert_eq!(s.write("db", "cpu,host=a usage=1.5 2\ncpu,host=b usage=2.25 3\ncpu,host=c idle=1 4").0, 204);
    let rows = s.wait_rows(30, "db", "SELECT \"table\", rows, sum FROM arrow_sums");
    assert_eq!(rows, vec![json!({"table": "cpu", "rows": 3, "sum": 3.75})], "{:?}", s.engine_logs("db"));
}

/// `system.processing_engine_triggers` shows each trigger's live state beside its definition:
/// running or disabled, calls and errors, the last call's time, call durations, and how far a
/// slow trigger is behind (events waiting, and for how long).
#[test]
fn processing_engine_triggers_shows_each_triggers_live_state() {
    let s = Server::start(&[]);
    s.add_plugin("ok.py", "def process_writes(influxdb3_local, table_batches, args=None):\n    pass\n");
    s.add_plugin("bad.py", "def process_writes(influxdb3_local, table_batches, args=None):\n    raise ValueError('no')\n");
    s.add_plugin("slow.py", "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    time.sleep(1)\n");
    assert_eq!(s.write("db", "cpu usage=0 1").0, 204);
    for (name, file) in [("ok", "ok.py"), ("bad", "bad.py"), ("slow", "slow.py"), ("off", "ok.py")] {
        s.create_trigger("db", name, file, "table:cpu", None, json!({}));
    }
    let (status, body) = s.post_json("/api/v3/configure/processing_engine_trigger/disable", &json!({"db": "db", "trigger_name": "off"}));
    assert_eq!(status, 200, "{body}");
    for i in 1..=3 {
        assert_eq!(s.write("db", &format!("cpu usage={i} {}", i + 1)).0, 204);
        std::thread::sleep(Duration::from_millis(30));
    }
    let sql = "SELECT trigger_name, state, queued_events, lag_seconds, calls, errors, last_call_time, \
               call_duration_p50_seconds FROM system.processing_engine_triggers ORDER BY trigger_name";
    let row = |rows: &[serde_json::Value], name: &str| rows.iter().find(|r| r["trigger_name"] == name).cloned().unwrap_or_default();
    // While the slow trigger works through its events, it shows them waiting.
    let behind = wait_for(20, "the slow trigger to show events waiting", || {
        let rows = s.query("db", sql);
        let slow = row(&rows, "slow");
        (slow["queued_events"].as_u64() >= Some(1) && slow["lag_seconds"].as_f64() > Some(0.2)).then_some(slow)
    });
    assert_eq!(behind["state"], "running", "{behind}");
    let rows = wait_for(20, "every call to be counted", || {
        let rows = s.query("db", sql);
        // Flushes waiting for a trigger are joined into fewer calls: done once none waits (the
        // slow one takes seconds, so the quick ones are long done by then).
        let done = |n: &str| row(&rows, n)["calls"].as_u64() >= Some(1) && row(&rows, n)["queued_events"].as_u64() == Some(0);
        let slow_calls = row(&rows, "slow")["calls"].as_u64() >= Some(2);
        (done("ok") && done("bad") && done("slow") && slow_calls).then_some(rows)
    });
    let (ok, bad, slow, off) = (row(&rows, "ok"), row(&rows, "bad"), row(&rows, "slow"), row(&rows, "off"));
    assert_eq!((ok["state"].as_str(), ok["errors"].as_u64(), ok["queued_events"].as_u64()), (Some("running"), Some(0), Some(0)), "{ok}");
    assert!(ok["last_call_time"].is_string(), "{ok}");
    assert!(bad["errors"].as_u64() >= Some(1) && bad["errors"] == bad["calls"], "{bad}");
    // The slow calls took about a second each: the p50 bucket bound says so.
    assert!(slow["call_duration_p50_seconds"].as_f64().is_some_and(|p| (1.0..=2.5).contains(&p)), "{slow}");
    assert_eq!(off["state"], "disabled", "{off}");
    assert!(off["calls"].is_null(), "a trigger the engine does not run has no live state: {off}");
}

/// A synchronous trigger that falls behind is given the flushes waiting for it joined into one
/// call, in commit order, never more than `--trigger-max-batch-rows` rows a call: it catches up
/// in fewer calls instead of one call per flush.
#[test]
fn a_trigger_that_falls_behind_catches_up_in_joined_calls() {
    let s = Server::start(&["--trigger-max-batch-rows", "8"]);
    s.add_plugin(
        "slow_log.py",
        "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    rows = [r['n'] for b in table_batches for r in b['rows']]\n    influxdb3_local.info(','.join(str(n) for n in rows))\n    time.sleep(0.5)\n",
    );
    assert_eq!(s.write("db", "cpu n=0i 1").0, 204);
    s.create_trigger("db", "slow", "slow_log.py", "table:cpu", None, json!({}));
    for i in 1..=30 {
        // One write per flush: each is acked (its flush durable) before the next is sent.
        assert_eq!(s.write("db", &format!("cpu n={i}i {}", i + 1)).0, 204);
    }
    let calls = wait_for(30, "all 30 rows to reach the trigger", || {
        let calls: Vec<Vec<i64>> = s
            .engine_logs("db")
            .into_iter()
            .filter(|(t, _, _)| t == "slow")
            .map(|(_, _, m)| m.split(',').filter_map(|n| n.parse().ok()).collect())
            .collect();
        (calls.iter().map(Vec::len).sum::<usize>() >= 30).then_some(calls)
    });
    let delivered: Vec<i64> = calls.iter().flatten().copied().collect();
    assert_eq!(delivered, (1..=30).collect::<Vec<_>>(), "every row once, in commit order: {calls:?}");
    assert!(calls.len() < 30, "the waiting flushes were joined: {calls:?}");
    // The cap bounds what joining adds; one flush is never split, and on a loaded machine one
    // flush may carry several of these writes, so a single call can pass 8. Without the cap the
    // 30 rows would come in two or three calls.
    assert!(calls.len() >= 4, "joining stopped at the cap: {calls:?}");
}

#[test]
fn internal_answers_the_engine_tables_for_every_database_and_takes_no_writes() {
    let s = Server::start(&[]);
    s.add_plugin(
        "hello.py",
        "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n    influxdb3_local.info('hello from ' + args['db'])\n    return {}\n",
    );
    for db in ["alpha", "beta"] {
        assert_eq!(s.post_json("/api/v3/configure/database", &serde_json::json!({"db": db})).0, 200);
        s.create_trigger(db, &format!("hello_{db}"), "hello.py", &format!("request:hello_{db}"), Some(serde_json::json!({"db": db})), serde_json::json!({}));
        assert_eq!(s.get(&format!("/api/v3/engine/hello_{db}")).0, 200);
    }
    let logs = s.query("_internal", "SELECT trigger_name, log_text FROM system.processing_engine_logs ORDER BY event_time");
    for db in ["alpha", "beta"] {
        assert!(logs.iter().any(|r| r["log_text"] == format!("hello from {db}")), "{logs:?}");
    }
    let triggers = s.query("_internal", "SELECT trigger_name FROM system.processing_engine_triggers ORDER BY trigger_name");
    assert_eq!(triggers, vec![serde_json::json!({"trigger_name": "hello_alpha"}), serde_json::json!({"trigger_name": "hello_beta"})]);
    // One database's view stays its own.
    let own = s.query("alpha", "SELECT log_text FROM system.processing_engine_logs");
    assert!(own.iter().all(|r| r["log_text"] == "hello from alpha"), "{own:?}");
    let (status, body) = s.write("_internal", "m v=1");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("server's own database"), "{body}");
}

#[test]
fn a_trigger_is_created_before_its_plugins_packages_are_installed_with_a_warning() {
    let s = Server::start(&[]);
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    s.add_plugin("needs_pkg.py", "import not_installed_yet_pkg\n\ndef process_writes(influxdb3_local, table_batches, args=None):\n    pass\n");
    s.add_plugin("no_func.py", "import not_installed_yet_pkg\n\ndef something_else():\n    pass\n");
    s.add_plugin("broken.py", "import not_installed_yet_pkg\n\ndef process_writes(:\n");
    let create = |name: &str, file: &str| {
        s.post_json(
            "/api/v3/configure/processing_engine_trigger",
            &json!({"db": "db", "trigger_name": name, "plugin_filename": file, "trigger_specification": "all_tables"}),
        )
    };
    let (status, body) = create("t", "needs_pkg.py");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("warning") && body.contains("not_installed_yet_pkg"), "{body}");
    let logs = s.engine_logs("db");
    assert!(logs.iter().any(|(t, level, text)| t == "t" && level == "WARN" && text.contains("cannot be imported yet")), "{logs:?}");
    // A missing function or a syntax error is still refused.
    let (status, body) = create("u", "no_func.py");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("process_writes"), "{body}");
    let (status, body) = create("v", "broken.py");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SyntaxError"), "{body}");
}
