//! The client commands of the `weir` binary against a running server.

mod common;

use std::process::Command;

use common::{Server, BIN};

fn weir(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).arg("--host").arg(&s.base).env("WEIR_AUTH_TOKEN", common::TOKEN).output().expect("run weir");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn create_write_query_show_delete() {
    let s = Server::start(&[]);
    let (ok, out, err) = weir(&s, &["create", "database", "clidb"]);
    assert!(ok, "{err}");
    assert!(out.contains("created"), "{out}");
    let (ok, _, err) = weir(&s, &["create", "database", "clidb"]);
    assert!(!ok);
    assert!(err.contains("409") && err.contains("already exists"), "{err}");

    let (ok, _, err) = weir(&s, &["write", "--database", "clidb", "cpu,host=a usage=1.5 1700000000"]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.lp");
    std::fs::write(&file, "cpu,host=b usage=2.5 1700000001\n").unwrap();
    let (ok, _, err) = weir(&s, &["write", "-d", "clidb", "--file", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, _, err) = weir(&s, &["write", "-d", "clidb", "cpu usage=oops"]);
    assert!(!ok);
    assert!(err.contains("line_number"), "{err}");

    let (ok, out, err) = weir(&s, &["query", "-d", "clidb", "--format", "csv", "SELECT host, usage FROM cpu ORDER BY host"]);
    assert!(ok, "{err}");
    assert_eq!(out, "host,usage\na,1.5\nb,2.5\n");
    let (ok, out, _) =
        weir(&s, &["query", "-d", "clidb", "--params", r#"{"h":"b"}"#, "SELECT usage FROM cpu WHERE host = $h"]);
    assert!(ok);
    assert!(out.contains("2.5"), "{out}");
    let (ok, _, err) = weir(&s, &["query", "-d", "clidb", "SELEKT"]);
    assert!(!ok);
    assert!(err.contains("400"), "{err}");

    let (ok, out, _) = weir(&s, &["show", "databases"]);
    assert!(ok);
    assert!(out.contains("clidb"), "{out}");
    let (ok, _, err) = weir(&s, &["delete", "database", "clidb"]);
    assert!(ok, "{err}");
    let (_, out, _) = weir(&s, &["show", "databases", "--format", "json"]);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn serve_refuses_bad_flags_clearly() {
    let out = Command::new(BIN).args(["serve", "--wal-flush-interval", "0s"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("greater than zero"));
    let out = Command::new(BIN).args(["serve", "--object-store", "s3", "--data-dir", "/tmp/weir-s3-test"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --bucket"));
}

#[test]
fn trigger_commands_create_test_disable_enable_delete() {
    let s = Server::start(&[]);
    s.add_example("count_rows.py");
    let (ok, _, err) = weir(&s, &["create", "database", "tdb"]);
    assert!(ok, "{err}");
    let (ok, out, err) = weir(
        &s,
        &[
            "create", "trigger", "-d", "tdb", "--trigger-spec", "table:cpu", "--path", "count_rows.py",
            "--trigger-arguments", "measurement=n", "--trigger-arguments-json", r#"{"note": "a,b"}"#,
            "--error-behavior", "retry", "--run-asynchronous", "cli_counter",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("created"), "{out}");
    let args = s.query("tdb", "SELECT argument_key, argument_value FROM system.processing_engine_trigger_arguments ORDER BY argument_key");
    assert_eq!(args, vec![serde_json::json!({"argument_key": "measurement", "argument_value": "n"}), serde_json::json!({"argument_key": "note", "argument_value": "a,b"})]);
    let t = s.query("tdb", "SELECT error_behavior, run_async, disabled FROM system.processing_engine_triggers");
    assert_eq!(t, vec![serde_json::json!({"error_behavior": "retry", "run_async": true, "disabled": false})]);

    let (ok, _, err) = weir(&s, &["create", "trigger", "-d", "tdb", "--trigger-spec", "every:0s", "--plugin-filename", "count_rows.py", "x"]);
    assert!(!ok);
    assert!(err.contains("400") && err.contains("greater than zero"), "{err}");

    let (ok, out, err) = weir(&s, &["test", "wal_plugin", "-d", "tdb", "--lp", "cpu usage=1 1", "--input-arguments", "measurement=m", "count_rows.py"]);
    assert!(ok, "{err}");
    assert!(out.contains("m,table=cpu rows=1i"), "{out}");

    s.add_example("heartbeat.py");
    let (ok, out, err) = weir(&s, &["test", "schedule_plugin", "-d", "tdb", "--schedule", "every:10s", "heartbeat.py"]);
    assert!(ok, "{err}");
    assert!(out.contains("trigger_time") && out.contains("heartbeat,source=weir"), "{out}");

    let (ok, _, err) = weir(&s, &["delete", "trigger", "-d", "tdb", "cli_counter"]);
    assert!(!ok, "an enabled trigger needs --force");
    assert!(err.contains("409"), "{err}");
    let (ok, _, err) = weir(&s, &["disable", "trigger", "-d", "tdb", "cli_counter"]);
    assert!(ok, "{err}");
    let t = s.query("tdb", "SELECT disabled FROM system.processing_engine_triggers");
    assert_eq!(t, vec![serde_json::json!({"disabled": true})]);
    let (ok, _, err) = weir(&s, &["enable", "trigger", "-d", "tdb", "cli_counter"]);
    assert!(ok, "{err}");
    let (ok, _, err) = weir(&s, &["delete", "trigger", "-d", "tdb", "--force", "cli_counter"]);
    assert!(ok, "{err}");
    assert!(s.query("tdb", "SELECT * FROM system.processing_engine_triggers").is_empty());

    let (ok, _, err) = weir(&s, &["install", "package", "not$a$package"]);
    assert!(!ok);
    assert!(err.contains("400"), "{err}");
}
