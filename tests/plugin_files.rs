//! Plugin code managed over the API (issue 17, point 7): `weir create trigger --upload`,
//! `weir update trigger`, `weir show plugins`, `/api/v3/plugins/files|directory` and
//! `system.plugin_files`, against the real binary.

mod common;

use std::process::Command;

use common::{send, wait_for, Server, BIN};
use serde_json::json;

fn weir(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).arg("--host").arg(&s.base).env("WEIR_AUTH_TOKEN", common::TOKEN).output().expect("run weir");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn put_json(s: &Server, path: &str, body: &serde_json::Value) -> (u16, String) {
    send(ureq::put(&s.url(path)).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))
}

/// A WAL plugin that records each call: which code ran (`code`), the trigger's `v` argument,
/// and how many rows it was given. Each call takes 50 ms, so an update usually lands while one
/// runs.
fn counter(code: &str) -> String {
    format!(
        "import time\ndef process_writes(influxdb3_local, table_batches, args=None):\n    time.sleep(0.05)\n    n = sum(len(b['rows']) for b in table_batches)\n    \
         influxdb3_local.write(LineBuilder('seen').tag('code', '{code}').tag('v', (args or {{}}).get('v', '-')).int64_field('rows', n))\n"
    )
}

/// The sum of `rows` per (code, v) the counter recorded.
fn seen(s: &Server) -> Vec<serde_json::Value> {
    s.try_query("db", "SELECT code, v, CAST(sum(rows) AS BIGINT) AS rows FROM seen GROUP BY code, v ORDER BY code, v").unwrap_or_default()
}

/// `create trigger --upload` sends local code; `update trigger --upload` replaces it and the
/// arguments, and the trigger carries on from its place in the WAL: every row written before,
/// during and after the update is counted once.
#[test]
fn upload_then_update_a_trigger_from_the_cli_without_losing_a_row() {
    let s = Server::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("counter.py");
    std::fs::write(&file, counter("one")).unwrap();
    assert_eq!(s.write("db", "cpu v=0 1").0, 204);
    let (ok, _, err) = weir(
        &s,
        &["create", "trigger", "-d", "db", "--upload", "--path", file.to_str().unwrap(), "--trigger-spec", "table:cpu", "--trigger-arguments", "v=1", "cnt"],
    );
    assert!(ok, "{err}");
    assert!(s.plugin_dir().join("counter.py").is_file(), "the upload did not reach the plugin directory");
    assert_eq!(s.write("db", "cpu v=1 2\ncpu v=2 3").0, 204);
    wait_for(30, "the first calls", || (seen(&s) == vec![json!({"code": "one", "v": "1", "rows": 2})]).then_some(()));

    let (ok, out, err) = weir(&s, &["show", "plugins", "--format", "json"]);
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["plugin_name"], "cnt");
    assert_eq!(listed[0]["file_name"], "counter.py");
    assert_eq!(listed[0]["size_bytes"], counter("one").len());

    // Rows keep arriving while the trigger is updated.
    let writer = {
        let (base, n) = (s.base.clone(), 200);
        std::thread::spawn(move || {
            for i in 0..n {
                let req = ureq::post(&format!("{base}/api/v3/write_lp?db=db")).set("Authorization", &common::bearer());
                assert_eq!(send(req, Some(format!("cpu v={i} {}", 100 + i).as_bytes())).0, 204);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    std::fs::write(&file, counter("two")).unwrap();
    let (ok, _, err) = weir(
        &s,
        &["update", "trigger", "-d", "db", "--trigger-name", "cnt", "--upload", "--path", file.to_str().unwrap(), "--trigger-arguments", "v=2"],
    );
    assert!(ok, "{err}");
    writer.join().unwrap();
    assert_eq!(s.write("db", "cpu v=9 1000").0, 204);
    let rows = wait_for(30, "every row counted", || {
        let r = seen(&s);
        let total: i64 = r.iter().map(|x| x["rows"].as_i64().unwrap_or(0)).sum();
        (total >= 203 && r.iter().any(|x| x["code"] == "two")).then_some(r)
    });
    let total: i64 = rows.iter().map(|x| x["rows"].as_i64().unwrap_or(0)).sum();
    assert_eq!(total, 203, "rows lost or counted twice across the update: {rows:?}");
    // The new code lands first (the upload), then the new arguments: never old code with new
    // arguments.
    assert!(rows.iter().all(|r| r["code"] == "two" || r["v"] == "1"), "{rows:?}");
    assert!(rows.iter().any(|r| r["code"] == "two" && r["v"] == "2"), "{rows:?}");

    let (ok, _, err) = weir(&s, &["update", "trigger", "-d", "db", "cnt", "--disabled", "--error-behavior", "Retry"]);
    assert!(ok, "{err}");
    let t = s.query("db", "SELECT disabled, error_behavior, plugin_filename FROM system.processing_engine_triggers");
    assert_eq!(t, vec![json!({"disabled": true, "error_behavior": "retry", "plugin_filename": "counter.py"})]);
    let args = s.query("db", "SELECT argument_key, argument_value FROM system.processing_engine_trigger_arguments");
    assert_eq!(args, vec![json!({"argument_key": "v", "argument_value": "2"})]);
}

/// The HTTP side: a file by JSON or raw body, a package directory replaced as a whole (and
/// reloaded at the next call), `system.plugin_files`, and clear refusals.
#[test]
fn plugin_files_and_directories_over_http() {
    let s = Server::start(&[]);
    assert_eq!(s.write("db", "cpu v=0 1").0, 204);
    let pkg = |answer: &str| {
        json!({"plugin_name": "hook", "files": [
            {"relative_path": "__init__.py", "content": "from .answer import ANSWER\n\ndef process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):\n    return {'answer': ANSWER}\n"},
            {"relative_path": "answer.py", "content": format!("ANSWER = '{answer}'\n")},
        ]})
    };
    let (status, body) = put_json(&s, "/api/v3/plugins/directory", &pkg("first"));
    assert_eq!(status, 200, "{body}");
    s.create_trigger("db", "hook", "hook", "request:hook", None, json!({}));
    let get = || {
        let (status, body) = send(ureq::get(&s.url("/api/v3/engine/hook")), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON answer")["answer"].clone()
    };
    assert_eq!(get(), "first");
    let (status, body) = put_json(&s, "/api/v3/plugins/directory", &pkg("second"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(), "second", "the package was not reloaded");

    // A raw body with ?plugin_name=, as curl --data-binary sends it.
    let req = ureq::post(&s.url("/api/v3/plugins/files?plugin_name=conf/settings.toml"));
    assert_eq!(send(req, Some(b"threshold = 3\n")).0, 200);
    assert_eq!(std::fs::read_to_string(s.plugin_dir().join("conf/settings.toml")).unwrap(), "threshold = 3\n");
    let (status, body) = s.post_json("/api/v3/plugins/files", &json!({"plugin_name": "solo.py", "content": "def process_writes(influxdb3_local, table_batches, args=None):\n    pass\n"}));
    assert_eq!(status, 200, "{body}");
    s.create_trigger("db", "solo", "solo.py", "table:cpu", None, json!({}));

    let files = s.query("db", "SELECT plugin_name, file_name, size_bytes FROM system.plugin_files ORDER BY plugin_name, file_name");
    assert_eq!(files[0], json!({"plugin_name": "hook", "file_name": "hook/__init__.py", "size_bytes": pkg("x")["files"][0]["content"].as_str().unwrap().len()}));
    assert_eq!(files[1]["file_name"], "hook/answer.py");
    assert_eq!(files[2]["plugin_name"], "solo");
    assert_eq!(files.len(), 3, "{files:?}");
    let everywhere = s.query("_internal", "SELECT count(*) AS n FROM system.plugin_files");
    assert_eq!(everywhere, vec![json!({"n": 3})]);

    for (name, why) in [("../escape.py", "without '..'"), (".venv/lib/evil.py", "starting with '.'"), ("/etc/x.py", "relative path")] {
        let (status, body) = s.post_json("/api/v3/plugins/files", &json!({"plugin_name": name, "content": "x = 1\n"}));
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(why), "{name}: {body}");
    }
    let (status, body) = put_json(&s, "/api/v3/plugins/directory", &json!({"plugin_name": "nopkg", "files": [{"relative_path": "m.py", "content": ""}]}));
    assert_eq!(status, 400);
    assert!(body.contains("__init__.py"), "{body}");
    let (status, _) = s.post_json("/api/v3/plugins/files", &json!({"content": "no name"}));
    assert_eq!(status, 400);

    // Updates that cannot be: another spec, an unknown trigger, a plugin that does not exist.
    let (status, body) = put_json(&s, "/api/v3/configure/processing_engine_trigger", &json!({"db": "db", "trigger_name": "solo", "trigger_specification": "all_tables"}));
    assert_eq!(status, 400);
    assert!(body.contains("cannot change"), "{body}");
    let (status, _) = put_json(&s, "/api/v3/configure/processing_engine_trigger", &json!({"db": "db", "trigger_name": "nope"}));
    assert_eq!(status, 404);
    let (status, body) = put_json(&s, "/api/v3/configure/processing_engine_trigger", &json!({"db": "db", "trigger_name": "solo", "plugin_filename": "missing.py"}));
    assert_eq!(status, 400, "{body}");
    let t = s.query("db", "SELECT plugin_filename FROM system.processing_engine_triggers WHERE trigger_name = 'solo'");
    assert_eq!(t, vec![json!({"plugin_filename": "solo.py"})], "a refused update changed the trigger");
}
