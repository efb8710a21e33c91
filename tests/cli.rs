//! The client commands of the `weir` binary against a running server.

mod common;

use std::process::Command;

use common::{Server, BIN};

fn weir(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).arg("--host").arg(&s.base).output().expect("run weir");
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"));
}
