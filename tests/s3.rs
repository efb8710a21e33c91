//! The `s3` object store, through the real binary, against a local S3-compatible server
//! (moto, installed into the test venv by scripts/test.sh and started here on loopback).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{start_fails, test_python, wait_for, Server};

/// A moto S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup").local_addr().expect("test setup").port();
        let child = Command::new(test_python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (scripts/test.sh installs moto[server] into the test venv)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Moto { child, endpoint };
        wait_for(60, "moto to answer", || ureq::get(&moto.endpoint).call().ok().map(|_| ()));
        assert!(moto.child.try_wait().expect("test setup").is_none(), "moto exited");
        moto
    }

    fn create_bucket(&self, name: &str) {
        let r = ureq::put(&format!("{}/{name}", self.endpoint)).call().expect("create bucket");
        assert_eq!(r.status(), 200);
    }

    /// The keys under `prefix` in `bucket`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let body = ureq::get(&format!("{}/{bucket}", self.endpoint))
            .query("list-type", "2")
            .query("prefix", prefix)
            .call()
            .expect("list bucket")
            .into_string()
            .expect("test setup");
        body.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_string).collect()
    }

    fn args<'a>(&'a self, bucket: &'a str) -> Vec<&'a str> {
        vec![
            "--object-store",
            "s3",
            "--bucket",
            bucket,
            "--aws-endpoint",
            &self.endpoint,
            "--aws-allow-http",
            "--aws-access-key-id",
            "test",
            "--aws-secret-access-key",
            "test",
            "--aws-default-region",
            "us-east-1",
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows(s: &Server) -> Vec<serde_json::Value> {
    s.query("s3db", "SELECT host, usage, CAST(time AS BIGINT) AS t FROM cpu ORDER BY t, host")
}

fn lines(from: i64, n: i64) -> String {
    (from..from + n).map(|i| format!("cpu,host=h{} usage={i}.5 {}\n", i % 3, 1_700_000_000 + i)).collect()
}

#[test]
fn s3_round_trip_starts_from_the_bucket_with_an_empty_local_disk() {
    let moto = Moto::start();
    moto.create_bucket("weir-test");
    let mut args = moto.args("weir-test");
    args.extend(["--gen1-duration", "1s"]);

    let first = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(first.path(), &args);
    let (status, body) = s.post_json("/api/v3/configure/database", &serde_json::json!({"db": "s3db"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.write("s3db", &lines(0, 300)).0, 204);
    assert_eq!(s.write("s3db", "mem,host=h0 used=1i 1700000000\n").0, 204);
    let persisted = wait_for(30, "both tables persisted to the bucket", || {
        let f = s.try_query("s3db", "SELECT table_name, path, row_count FROM system.parquet_files")?;
        let rows: i64 = f.iter().map(|r| r["row_count"].as_i64().unwrap_or(0)).sum();
        (rows == 301).then_some(f)
    });
    let before = rows(&s);
    assert_eq!(before.len(), 300);
    // Files, index and the catalog's copy are in the bucket, under the node's prefix.
    let keys = wait_for(10, "the catalog copy in the bucket", || {
        let k = moto.keys("weir-test", "weir/");
        k.iter().any(|k| k.starts_with("weir/catalogs/")).then_some(k)
    });
    for f in &persisted {
        let path = f["path"].as_str().unwrap();
        assert!(keys.iter().any(|k| k == path), "{path} not in the bucket: {keys:?}");
    }
    assert!(keys.iter().any(|k| k.starts_with("weir/index/")), "{keys:?}");
    assert!(!first.path().join("data").join("weir").join("dbs").exists(), "Parquet went to the local disk");
    s.kill9();

    // A new node on an empty disk: everything persisted comes back from the bucket.
    let second = tempfile::tempdir().unwrap();
    let mut t = Server::start_in(second.path(), &args);
    assert_eq!(rows(&t), before);
    assert_eq!(t.count("s3db", "mem"), 1);
    // Point semantics hold across the bucket's files: a repeated point replaces its fields.
    assert_eq!(t.write("s3db", "cpu,host=h0 usage=99.5 1700000000\n").0, 204);
    let after = rows(&t);
    assert_eq!(after.len(), 300);
    assert_eq!(after[0]["usage"], 99.5);
    // Rows written now continue the commit numbers the bucket's index covers, so a replay of
    // this node's WAL after a crash keeps them (a restart of commits at 0 would skip them).
    t.kill9();
    let quiet: Vec<&str> = moto.args("weir-test").into_iter().chain(["--gen1-duration", "1d"]).collect();
    let mut u = Server::start_in(second.path(), &quiet);
    assert_eq!(u.write("s3db", &lines(1000, 5)).0, 204);
    u.kill9();
    let u = Server::start_in(second.path(), &quiet);
    assert_eq!(u.count("s3db", "cpu"), 305);
    assert_eq!(rows(&u)[0]["usage"], 99.5);
}

#[test]
fn a_missing_bucket_or_flag_stops_the_start_with_a_clear_error() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let err = start_fails(dir.path(), &moto.args("no-such-bucket"));
    assert!(err.contains("no-such-bucket"), "{err}");
    let err = start_fails(dir.path(), &["--object-store", "s3"]);
    assert!(err.contains("--bucket"), "{err}");
    // The server gives up on an unreachable endpoint instead of hanging.
    let mut dead = moto.args("weir-test");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    dead[5] = &endpoint;
    let started = std::time::Instant::now();
    let err = start_fails(dir.path(), &dead);
    assert!(err.contains("weir-test"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}
