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

/// Runs `weir` as a script written for `influxdb3` would: the server, token and database come
/// from `INFLUXDB3_*` variables only, and `stdin` is piped in.
fn weir_influxdb3_env(s: &Server, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("WEIR_HOST_URL")
        .env_remove("WEIR_AUTH_TOKEN")
        .env_remove("WEIR_DATABASE_NAME")
        .env("INFLUXDB3_HOST_URL", &s.base)
        .env("INFLUXDB3_AUTH_TOKEN", common::TOKEN)
        .env("INFLUXDB3_DATABASE_NAME", "envdb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run weir");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("weir output");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Issue 17, points 9 and 10: `INFLUXDB3_*` variables, `-H`, `write -p` with line protocol on
/// stdin, all-or-nothing writes unless `--accept-partial`, `update database`, `show retention`
/// and `show system`, and each subcommand's own help.
#[test]
fn influxdb3_variables_flags_and_admin_commands() {
    let s = Server::start(&[]);
    let (ok, _, err) = weir_influxdb3_env(&s, &["create", "database", "envdb"], "");
    assert!(ok, "{err}");
    let (ok, _, err) = weir_influxdb3_env(&s, &["write", "-p", "s"], "cpu v=1 1700000000\ncpu v=2 1700000001\n");
    assert!(ok, "{err}");
    let rows = s.query("envdb", "SELECT CAST(time AS BIGINT) AS t, v FROM cpu ORDER BY time");
    assert_eq!(rows, vec![serde_json::json!({"t": 1_700_000_000_000_000_000i64, "v": 1.0}), serde_json::json!({"t": 1_700_000_001_000_000_000i64, "v": 2.0})]);

    // As influxdb3's CLI: one bad line refuses the write unless --accept-partial.
    let (ok, _, err) = weir_influxdb3_env(&s, &["write"], "good v=1 1\nbad v=oops 2\n");
    assert!(!ok && err.contains("line_number") && err.contains("no lines were written"), "{err}");
    assert!(s.try_query("envdb", "SELECT * FROM good").is_none_or(|r| r.is_empty()), "a refused write kept a line");
    let (ok, _, err) = weir_influxdb3_env(&s, &["write", "--accept-partial", "good v=1 1", "bad v=oops 2"], "");
    assert!(!ok && err.contains("partial write"), "{err}");
    assert_eq!(s.count("envdb", "good"), 1);

    // -H, given over the variable, wins.
    let (ok, _, err) = weir_influxdb3_env(&s, &["query", "-H", "http://127.0.0.1:9", "SELECT 1"], "");
    assert!(!ok && err.contains("127.0.0.1:9"), "{err}");

    let (ok, out, err) = weir_influxdb3_env(&s, &["update", "database", "-r", "30d", "envdb"], "");
    assert!(ok && out.contains("updated"), "{err}");
    let (ok, out, err) = weir_influxdb3_env(&s, &["show", "retention", "--format", "json"], "");
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), serde_json::json!([{"database_name": "envdb", "retention_period": "30d"}]));
    let (ok, _, err) = weir_influxdb3_env(&s, &["update", "database", "--retention-period", "none", "--database", "envdb"], "");
    assert!(ok, "{err}");
    let rows = s.query("envdb", "SELECT retention_period FROM system.databases");
    assert_eq!(rows, vec![serde_json::json!({"retention_period": "none"})]);
    let (ok, _, err) = weir_influxdb3_env(&s, &["update", "database", "-r", "30d", "nosuchdb"], "");
    assert!(!ok && err.contains("404"), "{err}");

    let (ok, out, err) = weir_influxdb3_env(&s, &["show", "system", "table-list", "--format", "csv"], "");
    assert!(ok, "{err}");
    for t in ["databases", "parquet_files", "plugin_files", "processing_engine_logs", "processing_engine_triggers"] {
        assert!(out.lines().any(|l| l == t), "{t} missing from {out}");
    }
    let (ok, out, err) =
        weir_influxdb3_env(&s, &["show", "system", "table", "--select", "table_name,column_count", "--order-by", "table_name", "--format", "csv", "tables"], "");
    assert!(ok, "{err}");
    assert_eq!(out, "table_name,column_count\ncpu,2\ngood,2\n");
    let (ok, out, err) = weir_influxdb3_env(&s, &["show", "system", "summary", "--limit", "1", "--format", "csv"], "");
    assert!(ok, "{err}");
    assert!(out.contains("databases:\ndatabase_name,table_count,retention_period\nenvdb,2,none"), "{out}");

    let (ok, out, err) = weir_influxdb3_env(&s, &["query", "-l", "influxql", "--format", "csv", "SELECT max(v) FROM cpu"], "");
    assert!(ok, "{err}");
    assert_eq!(out, "iox::measurement,time,max\ncpu,1970-01-01T00:00:00Z,2.0\n");

    // Each subcommand says what it does, not what the shared flags are for.
    for cmd in [&["create", "database"][..], &["delete", "trigger"], &["show", "plugins"], &["enable", "trigger"], &["update", "trigger"]] {
        let out = Command::new(BIN).args(cmd).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(!help.lines().next().unwrap_or_default().contains("Where the server is"), "{cmd:?}: {help}");
    }
}
