//! Schedule and request triggers, execution time limits and re-entrancy, through the binary.

mod common;

use std::time::{Duration, Instant};

use common::{send, wait_for, Server};
use serde_json::json;

fn get_with(s: &Server, path: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut req = ureq::get(&s.url(path)).timeout(Duration::from_secs(60)).set("Authorization", &common::bearer());
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(r) => {
            let ct = r.header("content-type").map(str::to_string);
            (r.status(), r.into_string().unwrap_or_default(), ct)
        }
        Err(ureq::Error::Status(code, r)) => {
            let ct = r.header("content-type").map(str::to_string);
            (code, r.into_string().unwrap_or_default(), ct)
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

#[test]
fn every_trigger_fires_on_epoch_aligned_ticks_with_naive_utc_call_time() {
    let s = Server::start(&[]);
    s.add_plugin(
        "tick.py",
        r#"
from datetime import timezone

def process_scheduled_call(influxdb3_local, call_time, args=None):
    assert call_time.tzinfo is None, "call_time is naive"
    ns = int(call_time.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000 + call_time.microsecond * 1000
    influxdb3_local.write(LineBuilder("ticks").int64_field("call_ns", ns).string_field("who", args["who"]))
"#,
    );
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    s.create_trigger("db", "every", "tick.py", "every:1s", Some(json!({"who": "every"})), json!({}));
    s.create_trigger("db", "cron", "tick.py", "cron:*/1 * * * * *", Some(json!({"who": "cron"})), json!({}));
    // A crontab day range that reaches 7 (Sunday) is taken, as crontab takes it.
    s.create_trigger("db", "weekend", "tick.py", "cron:0 0 * * 5-7", Some(json!({"who": "weekend"})), json!({}));
    let rows = wait_for(20, "two ticks of each", || {
        let r = s.try_query("db", "SELECT who, call_ns FROM ticks ORDER BY call_ns")?;
        let n = |w: &str| r.iter().filter(|x| x["who"] == w).count();
        (n("every") >= 2 && n("cron") >= 2).then_some(r)
    });
    for r in &rows {
        let ns = r["call_ns"].as_i64().unwrap();
        assert_eq!(ns % 1_000_000_000, 0, "ticks fall on whole seconds: {r}");
    }
}

#[test]
fn a_tick_due_while_the_call_still_runs_is_skipped_and_logged() {
    let s = Server::start(&[]);
    s.add_plugin(
        "slow.py",
        "import time\ndef process_scheduled_call(influxdb3_local, call_time, args=None):\n    influxdb3_local.info('start', call_time)\n    time.sleep(2.5)\n",
    );
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    s.create_trigger("db", "slow", "slow.py", "every:1s", None, json!({}));
    let logs = wait_for(20, "a skipped tick", || {
        let l = s.engine_logs("db");
        l.iter().any(|(_, level, m)| level == "WARN" && m.contains("skipped: the previous call is still running")).then_some(l)
    });
    let starts = logs.iter().filter(|(_, _, m)| m.starts_with("start")).count();
    assert!(starts <= 2, "ticks were not piled up: {logs:?}");
}

#[test]
fn request_trigger_answers_every_response_shape() {
    let s = Server::start(&[]);
    s.add_plugin(
        "api.py",
        r#"
import json

class Response:  # shaped like flask.Response
    def __init__(self, data, status, headers):
        self.status_code, self.headers, self._data = status, headers, data
    def get_data(self):
        return self._data

def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    shape = query_parameters.get("shape", "dict")
    if shape == "echo":
        return {"query": query_parameters, "headers": {k: v for k, v in request_headers.items() if k.startswith("x-")},
                "has_auth": "authorization" in request_headers, "body": request_body.decode(), "args": args}
    if shape == "old":
        return 201, {"X-Old": "yes"}, "created"
    if shape == "flask":
        return {"ok": True}, 202, {"X-Flask": "yes"}
    if shape == "str":
        return "<b>hi</b>"
    if shape == "list":
        return [1, 2]
    if shape == "response":
        return Response(b"raw", 418, {"X-Resp": "teapot"})
    if shape == "raise":
        raise KeyError("missing thing")
    if shape == "bad":
        return object()
"#,
    );
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    s.create_trigger("db", "api", "api.py", "request:my/api", Some(json!({"k": "v"})), json!({}));

    let (status, body) = send(
        ureq::post(&s.url("/api/v3/engine/my/api?shape=echo&a=1")).set("X-One", "1").set("Authorization", &common::bearer()),
        Some(b"payload"),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["query"], json!({"shape": "echo", "a": "1"}));
    assert_eq!(v["headers"], json!({"x-one": "1"}));
    assert_eq!(v["has_auth"], json!(false), "Authorization is removed");
    assert_eq!(v["body"], "payload");
    assert_eq!(v["args"], json!({"k": "v"}));

    let (status, body, _) = get_with(&s, "/api/v3/engine/my/api?shape=old", &[]);
    assert_eq!((status, body.as_str()), (201, "created"));
    let (status, body, ct) = get_with(&s, "/api/v3/engine/my/api?shape=flask", &[]);
    assert_eq!((status, body.as_str(), ct.as_deref()), (202, r#"{"ok": true}"#, Some("application/json")));
    let (status, body, ct) = get_with(&s, "/api/v3/engine/my/api?shape=str", &[]);
    assert_eq!((status, body.as_str()), (200, "<b>hi</b>"));
    assert!(ct.unwrap_or_default().starts_with("text/html"));
    let (status, body, _) = get_with(&s, "/api/v3/engine/my/api?shape=list", &[]);
    assert_eq!((status, body.as_str()), (200, "[1, 2]"));
    let (status, body, _) = get_with(&s, "/api/v3/engine/my/api?shape=response", &[]);
    assert_eq!((status, body.as_str()), (418, "raw"));
    for shape in ["raise", "bad"] {
        let (status, body, ct) = get_with(&s, &format!("/api/v3/engine/my/api?shape={shape}"), &[]);
        assert_eq!(status, 500, "{body}");
        assert_eq!(ct.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(if shape == "raise" { "KeyError" } else { "TypeError" }), "{body}");
    }
    let (status, body, _) = get_with(&s, "/api/v3/engine/nothing/here", &[]);
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].as_str().unwrap().contains("nothing/here"));

    // A path is unique across databases.
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "other"})).0, 200);
    let (status, body) = s.post_json(
        "/api/v3/configure/processing_engine_trigger",
        &json!({"db": "other", "trigger_name": "dup", "plugin_filename": "api.py", "trigger_specification": "path:my/api"}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already used"), "{body}");
}

#[test]
fn a_spinning_plugin_is_interrupted_and_everything_else_keeps_working() {
    let s = Server::start(&["--py-executors", "1"]);
    s.add_plugin("spin.py", "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n    while True:\n        pass\n");
    s.add_plugin("hello.py", "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n    return {'hello': 'world'}\n");
    s.add_plugin("spin_wal.py", "def process_writes(influxdb3_local, table_batches, args=None):\n    while True:\n        pass\n");
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "spin", "spin.py", "request:spin", None, json!({"timeout": "2s"}));
    s.create_trigger("db", "hello", "hello.py", "request:hello", None, json!({}));
    s.create_trigger("db", "spin_wal", "spin_wal.py", "table:cpu", None, json!({"timeout": "1s", "error_behavior": "disable"}));

    let url = s.url("/api/v3/engine/spin");
    let spinner = std::thread::spawn(move || {
        let started = Instant::now();
        let r = send(ureq::get(&url), None);
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    // While it spins on the only configured executor: writes, queries and other triggers work.
    let started = Instant::now();
    assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
    assert!(s.count("db", "cpu") >= 2);
    let (status, body, _) = get_with(&s, "/api/v3/engine/hello", &[]);
    assert_eq!((status, body.as_str()), (200, r#"{"hello": "world"}"#));
    assert!(started.elapsed() < Duration::from_secs(2), "answered before the spinner's limit");

    let ((status, body), elapsed) = spinner.join().unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("time limit"), "{body}");
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10), "{elapsed:?}");
    // The WAL trigger that spun was interrupted, logged and disabled (its error behaviour).
    let logs = wait_for(20, "the WAL spinner to be disabled", || {
        let r = s.try_query("db", "SELECT disabled FROM system.processing_engine_triggers WHERE trigger_name = 'spin_wal'")?;
        (r == vec![json!({"disabled": true})]).then(|| s.engine_logs("db"))
    });
    assert!(logs.iter().any(|(t, _, m)| t == "spin_wal" && m.contains("exceeded its time limit of 1000 ms")), "{logs:?}");
    assert!(logs.iter().any(|(t, _, m)| t == "spin" && m.contains("TimeoutError")), "{logs:?}");
}

fn reentrant(executors: &str) {
    let s = Server::start(&["--py-executors", executors]);
    s.add_plugin("callee.py", "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n    return {'from': 'callee', 'got': request_body.decode()}\n");
    s.add_plugin(
        "caller.py",
        r#"
import json, os, urllib.request

def call(url, body):
    # The server hands its plugins a token for calling it back, as InfluxDB 3 does.
    headers = {"Authorization": "Bearer " + os.environ["INFLUXDB3_AUTH_TOKEN"]}
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())

def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"caller": True, "callee": call(args["url"], "ping")}

def process_writes(influxdb3_local, table_batches, args=None):
    answer = call(args["url"], "from-wal")
    influxdb3_local.write(LineBuilder("alerts").string_field("answer", answer["got"]))
"#,
    );
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    let callee_url = s.url("/api/v3/engine/callee");
    s.create_trigger("db", "callee", "callee.py", "request:callee", None, json!({}));
    s.create_trigger("db", "caller", "caller.py", "request:caller", Some(json!({"url": callee_url})), json!({}));
    s.create_trigger("db", "alerter", "caller.py", "table:cpu", Some(json!({"url": callee_url})), json!({}));
    let (status, body, _) = get_with(&s, "/api/v3/engine/caller", &[]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("test setup");
    assert_eq!(v, json!({"caller": true, "callee": {"from": "callee", "got": "ping"}}));
    // A WAL plugin that POSTs to a request trigger, as published alerting plugins do.
    assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
    let rows = s.wait_rows(30, "db", "SELECT answer FROM alerts");
    assert_eq!(rows, vec![json!({"answer": "from-wal"})]);
}

#[test]
fn reentrant_call_to_a_request_trigger_answers_with_one_executor() {
    reentrant("1");
}

#[test]
fn reentrant_call_to_a_request_trigger_answers_with_several_executors() {
    reentrant("3");
}

#[test]
fn bad_schedules_and_timeouts_are_refused() {
    let s = Server::start(&[]);
    s.add_plugin("tick.py", "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n");
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    for (spec, settings, want) in [
        ("every:0s", json!({}), "greater than zero"),
        ("cron:61 * * * * *", json!({}), "cron"),
        ("schedule:* * *", json!({}), "5, 6 or 7 fields"),
        ("every:1s", json!({"timeout": "0s"}), "timeout"),
    ] {
        let (status, body) = s.post_json(
            "/api/v3/configure/processing_engine_trigger",
            &json!({"db": "db", "trigger_name": "t", "plugin_filename": "tick.py", "trigger_specification": spec, "trigger_settings": settings}),
        );
        assert_eq!(status, 400, "{spec}: {body}");
        assert!(body.contains(want), "{spec}: {body}");
    }
}

#[test]
fn example_heartbeat_writes_on_schedule_and_tests_dry() {
    let s = Server::start(&[]);
    s.add_example("heartbeat.py");
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    // Dry: the answer names the tick it ran for, and nothing is written.
    let (status, body) = s.post_json(
        "/api/v3/plugin_test/schedule",
        &json!({"filename": "heartbeat.py", "database": "db", "schedule": "*/5 * * * * *", "input_arguments": {"source": "dry"}}),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let at = v["trigger_time"].as_str().unwrap().to_string();
    let secs: u32 = at[17..19].parse().unwrap();
    assert_eq!(secs % 5, 0, "{at}");
    let line = v["database_writes"]["db"][0].as_str().unwrap();
    assert!(line.starts_with("heartbeat,source=dry scheduled_ns="), "{line}");
    assert!(s.try_query("db", "SELECT * FROM heartbeat").is_none(), "a dry run writes nothing");
    let (status, _) = s.post_json("/api/v3/plugin_test/schedule", &json!({"filename": "heartbeat.py", "database": "db", "schedule": "request:x"}));
    assert_eq!(status, 400);
    // No schedule (or null, as `influxdb3 test schedule_plugin` sends): every second.
    for body in [json!({"filename": "heartbeat.py", "database": "db"}), json!({"filename": "heartbeat.py", "database": "db", "schedule": null})] {
        let (status, text) = s.post_json("/api/v3/plugin_test/schedule", &body);
        assert_eq!(status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["trigger_time"].as_str().unwrap().starts_with("20"), "{text}");
    }
    // `path` names the plugin as `plugin_filename` does.
    let (status, text) = s.post_json(
        "/api/v3/configure/processing_engine_trigger",
        &json!({"db": "db", "trigger_name": "by_path", "path": "heartbeat.py", "trigger_specification": "every:1h"}),
    );
    assert_eq!(status, 200, "{text}");
    // For real.
    s.create_trigger("db", "hb", "heartbeat.py", "every:1s", Some(json!({"source": "live"})), json!({}));
    let rows = s.wait_rows(20, "db", "SELECT source, scheduled_ns FROM heartbeat");
    assert_eq!(rows[0]["source"], "live");
    assert_eq!(rows[0]["scheduled_ns"].as_i64().unwrap() % 1_000_000_000, 0);
}

#[test]
fn example_hello_request_answers_with_the_latest_row() {
    let s = Server::start(&[]);
    s.add_example("hello_request.py");
    assert_eq!(s.write("db", "cpu,host=a usage=1 1\ncpu,host=b usage=2 2").0, 204);
    s.create_trigger("db", "hello", "hello_request.py", "request:hello", Some(json!({"table": "cpu"})), json!({}));
    let (status, body, _) = get_with(&s, "/api/v3/engine/hello?name=you", &[]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["hello"], "you");
    assert_eq!(v["latest"]["host"], "b");
}

/// Serves `files` over HTTP on a free port, for the plugin repository; returns its base URL.
fn plugin_repo(files: Vec<(&'static str, &'static str)>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup");
    let base = format!("http://{}/", listener.local_addr().expect("test setup"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let resp = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            };
            let _ = stream.write_all(resp.as_bytes());
        }
    });
    base
}

#[test]
fn gh_plugins_are_fetched_from_the_plugin_repo_and_cached() {
    let repo = plugin_repo(vec![(
        "team/greeter/greeter.py",
        "def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n    return 'fetched'\n",
    )]);
    let s = Server::start(&["--plugin-repo", &repo]);
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    s.create_trigger("db", "g", "gh:team/greeter/greeter.py", "request:greet", None, json!({}));
    assert!(s.plugin_dir().join(".gh/team/greeter/greeter.py").is_file(), "cached under the plugin dir");
    let (status, body, _) = get_with(&s, "/api/v3/engine/greet", &[]);
    assert_eq!((status, body.as_str()), (200, "fetched"));
    let (status, body) = s.post_json(
        "/api/v3/configure/processing_engine_trigger",
        &json!({"db": "db", "trigger_name": "x", "plugin_filename": "gh:team/missing.py", "trigger_specification": "request:x"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("could not fetch") && body.contains("404"), "{body}");
    let (status, body) = s.post_json(
        "/api/v3/configure/processing_engine_trigger",
        &json!({"db": "db", "trigger_name": "y", "plugin_filename": "gh:../escape.py", "trigger_specification": "request:y"}),
    );
    assert_eq!(status, 400, "{body}");
}

/// Disabling or deleting a trigger stops the call it is running (SPEC: InfluxDB 3.9.8+ does):
/// `asyncio.CancelledError` is raised in it, which `except Exception` does not swallow, long
/// before its own time limit; the call is logged as cancelled, not as a failure.
#[test]
fn disabling_or_deleting_a_trigger_cancels_its_running_call() {
    let s = Server::start(&["--py-executors", "1"]);
    let spinner = "def process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.info('spinning')\n    while True:\n        try:\n            sum(range(100))\n        except Exception:\n            pass\n";
    s.add_plugin("spin.py", spinner);
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "sync_spin", "spin.py", "table:cpu", None, json!({"timeout": "60s", "error_behavior": "retry"}));
    s.create_trigger("db", "async_spin", "spin.py", "table:cpu", None, json!({"timeout": "60s", "run_async": true}));
    assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
    wait_for(20, "both spinners to start", || {
        let logs = s.engine_logs("db");
        let started = |t: &str| logs.iter().any(|(n, _, m)| n == t && m == "spinning");
        (started("sync_spin") && started("async_spin")).then_some(())
    });

    let started = Instant::now();
    let (status, body) = s.post_json("/api/v3/configure/processing_engine_trigger/disable", &json!({"db": "db", "trigger_name": "sync_spin"}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.delete_json("/api/v3/configure/processing_engine_trigger", &json!({"db": "db", "trigger_name": "async_spin", "force": true}));
    assert_eq!(status, 200, "{body}");
    let logs = wait_for(20, "both calls to be cancelled", || {
        let logs = s.engine_logs("db");
        let cancelled = |t: &str| logs.iter().any(|(n, l, m)| n == t && l == "WARN" && m.contains("cancelled"));
        (cancelled("sync_spin") && cancelled("async_spin")).then_some(logs)
    });
    assert!(started.elapsed() < Duration::from_secs(10), "cancelled long before the 60 s limit: {:?}", started.elapsed());
    // Cancelled, not failed: no retry of the sync trigger, no time-limit message.
    assert!(!logs.iter().any(|(_, _, m)| m.contains("retry") || m.contains("time limit")), "{logs:?}");
    // The executor is free again: a new trigger's call runs.
    s.add_plugin("mark.py", "def process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.info('marked')\n");
    s.create_trigger("db", "mark", "mark.py", "table:cpu", None, json!({}));
    assert_eq!(s.write("db", "cpu usage=3 3").0, 204);
    wait_for(20, "the next trigger to run", || s.engine_logs("db").iter().any(|(n, _, m)| n == "mark" && m == "marked").then_some(()));
}

/// On SIGTERM the server waits for a running call, and the write it makes when it returns, up
/// to `--shutdown-timeout`; a call that never ends holds the exit back no longer than that.
#[test]
fn shutdown_waits_for_running_calls_up_to_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--shutdown-timeout", "30s"]);
    s.add_plugin(
        "slow.py",
        "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.info('started')\n    time.sleep(1.5)\n    influxdb3_local.write(LineBuilder('done').int64_field('n', 1))\n",
    );
    assert_eq!(s.write("db", "cpu usage=1 1").0, 204);
    s.create_trigger("db", "slow", "slow.py", "table:cpu", None, json!({}));
    assert_eq!(s.write("db", "cpu usage=2 2").0, 204);
    wait_for(20, "the slow call to start", || s.engine_logs("db").iter().any(|(_, _, m)| m == "started").then_some(()));
    let started = Instant::now();
    s.stop();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(20), "waited for the call: {took:?}");
    drop(s);
    let s = Server::start_in(dir.path(), &[]);
    assert_eq!(s.count("db", "done"), 1, "the call's write was made before the exit");
    drop(s);

    let mut s = Server::start_in(dir.path(), &["--shutdown-timeout", "1s"]);
    s.add_plugin("spin.py", "def process_writes(influxdb3_local, table_batches, args=None):\n    influxdb3_local.info('spinning')\n    while True:\n        pass\n");
    s.create_trigger("db", "spin", "spin.py", "table:cpu", None, json!({"timeout": "60s"}));
    assert_eq!(s.write("db", "cpu usage=3 3").0, 204);
    wait_for(20, "the spinner to start", || s.engine_logs("db").iter().any(|(_, _, m)| m == "spinning").then_some(()));
    let started = Instant::now();
    s.stop();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "gave up after the timeout: {took:?}");
    assert!(!s.is_running());
}

#[test]
fn call_time_reads_as_utc_in_any_server_time_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_in_with(dir.path(), &[], |cmd| {
        cmd.env("TZ", "America/New_York");
    });
    s.add_plugin(
        "when.py",
        r#"
from datetime import timedelta, timezone

def process_scheduled_call(influxdb3_local, call_time, args=None):
    assert call_time.tzinfo is None, "call_time is naive, as InfluxDB 3 passes it"
    a = call_time.replace(tzinfo=timezone.utc).timestamp()
    b = call_time.timestamp()
    c = call_time.astimezone(timezone.utc).timestamp()
    d = (call_time - timedelta(hours=1)).timestamp() + 3600
    influxdb3_local.write(LineBuilder("when").float64_field("a", a).float64_field("b", b).float64_field("c", c).float64_field("d", d))
"#,
    );
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "db"})).0, 200);
    let (status, body) = s.post_json("/api/v3/plugin_test/schedule", &json!({"filename": "when.py", "database": "db", "schedule": "every:10s"}));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let line = v["database_writes"]["db"][0].as_str().expect("a line").to_string();
    let values: Vec<f64> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| {
            let part = line.split([' ', ',']).find(|p| p.starts_with(&format!("{k}="))).expect("field");
            part[2..].parse::<f64>().expect("number")
        })
        .collect();
    assert!(values.iter().all(|x| *x == values[0]), "every habit gives the same instant: {line}");
    let at = chrono::DateTime::parse_from_rfc3339(v["trigger_time"].as_str().expect("time")).expect("rfc3339");
    assert_eq!(values[0], at.timestamp() as f64, "{line} vs {at}");
}
