//! InfluxQL through the real binary (issue 16, point 2): the golden file
//! `tests/influxql/golden.txt` holds queries (`> ...`) each followed by the exact answer of
//! `/query?epoch=s` over `tests/influxql/data.lp`; and the v1 `influxdb` client from PyPI reads
//! back what it wrote, as an application would.

mod common;

use common::{send, Server};

fn v1_query(s: &Server, q: &str, epoch: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(&s.url("/query")).query("db", "db").query("q", q);
    if let Some(e) = epoch {
        req = req.query("epoch", e);
    }
    send(req, None)
}

fn load(s: &Server) {
    let data = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/influxql/data.lp")).expect("the InfluxQL data file");
    let req = ureq::post(&s.url("/api/v3/write_lp?db=db&precision=s"));
    assert_eq!(send(req, Some(data.as_bytes())).0, 204);
}

/// Every query of the golden file answers exactly as recorded there. To add a case, add the
/// query and the answer you expect; the failure message prints what the server answered.
#[test]
fn golden_queries_answer_as_recorded() {
    let s = Server::start(&[]);
    load(&s);
    let golden = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/influxql/golden.txt")).unwrap();
    let mut lines = golden.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let mut cases = 0;
    let mut failures = Vec::new();
    while let Some(q) = lines.next() {
        let q = q.strip_prefix("> ").unwrap_or_else(|| panic!("expected '> QUERY', found {q}"));
        let want: serde_json::Value = serde_json::from_str(lines.next().expect("an answer after each query")).expect("the answer is JSON");
        let (status, body) = v1_query(&s, q, Some("s"));
        let got: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        if status != 200 || got != want {
            failures.push(format!("> {q}\nwant {want}\ngot  {status} {body}"));
        }
        cases += 1;
    }
    assert!(cases >= 30, "the golden file lost its cases");
    assert!(failures.is_empty(), "{} of {cases} cases differ:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// The rest of the HTTP surface: RFC 3339 times by default, a parse error as 400, CSV, the v3
/// endpoint's rows, v1 credentials, and CREATE/DROP DATABASE needing an admin.
#[test]
fn query_endpoints_formats_errors_and_credentials() {
    let s = Server::start(&[]);
    load(&s);
    let (status, body) = v1_query(&s, "SELECT usage FROM cpu WHERE host = 'a'", None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["results"][0]["series"][0]["values"][0], serde_json::json!(["1970-01-01T00:01:40Z", 1.0]));

    let (status, body) = v1_query(&s, "SELEKT usage FROM cpu", None);
    assert_eq!(status, 400);
    assert!(body.contains("error parsing query") && body.contains("position 0"), "{body}");

    let req = ureq::get(&s.url("/query")).query("db", "db").query("q", "SELECT usage FROM cpu WHERE host = 'b'").set("Accept", "application/csv");
    let (status, body) = send(req, None);
    assert_eq!(status, 200);
    assert_eq!(body, "name,tags,time,usage\ncpu,,100000000000,10.0\ncpu,,130000000000,20.0\n");

    // A form body, as the v1 clients POST.
    let req = ureq::post(&s.url("/query?db=db")).set("Content-Type", "application/x-www-form-urlencoded");
    let (status, body) = send(req, Some(b"q=SHOW+MEASUREMENTS"));
    assert_eq!(status, 200);
    assert!(body.contains(r#""values":[["cpu"],["mem"]]"#), "{body}");

    let req = ureq::get(&s.url("/api/v3/query_influxql")).query("db", "db").query("q", "SELECT max(usage) FROM cpu GROUP BY host").query("format", "jsonl");
    let (status, body) = send(req, None);
    assert_eq!(status, 200);
    let rows: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "{body}");
    assert_eq!(rows[1], serde_json::json!({"iox::measurement": "cpu", "time": "1970-01-01T00:00:00Z", "host": "b", "max": 20.0}));

    // v1 credentials: the token as `p` (or basic auth's password); a wrong one is refused.
    let bare = |q: &str, p: &str| ureq::get(&s.url("/query")).query("db", "db").query("q", q).query("u", "any").query("p", p);
    assert_eq!(common::send_as_is(bare("SHOW MEASUREMENTS", common::TOKEN), None).0, 200);
    assert_eq!(common::send_as_is(bare("SHOW MEASUREMENTS", "wrong"), None).0, 401);

    // CREATE and DROP DATABASE need an admin token; a token that may only read `db` is refused.
    let (status, body) = s.post_json(
        "/api/v3/enterprise/configure/token",
        &serde_json::json!({"token_name": "reader", "permissions": [{"resource_type": "db", "resource_identifier": ["db"], "actions": ["read"]}]}),
    );
    assert_eq!(status, 201, "{body}");
    let reader = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"].as_str().unwrap().to_string();
    let as_reader = |q: &str| common::send_as_is(ureq::get(&s.url("/query")).query("db", "db").query("q", q).set("Authorization", &format!("Bearer {reader}")), None);
    let (status, body) = as_reader("SELECT count(usage) FROM cpu; CREATE DATABASE other");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["results"][0]["series"][0]["values"][0][1], 5);
    assert!(v["results"][1]["error"].as_str().unwrap_or_default().contains("admin"), "{body}");
    let (status, _) = v1_query(&s, "CREATE DATABASE other", None);
    assert_eq!(status, 200);
    assert!(s.query("other", "SHOW TABLES").iter().all(|r| r["table_schema"] != "iox"));
    let (_, body) = v1_query(&s, "DROP DATABASE other; SHOW DATABASES", None);
    assert!(body.contains(r#""values":[["db"]]"#), "{body}");
}

/// The v1 `influxdb` client from PyPI (installed by `scripts/test.sh`): create a database,
/// write points, query them back, list databases, as its README does.
#[test]
fn the_v1_influxdb_python_client_writes_and_reads_back() {
    let s = Server::start(&[]);
    let port = s.port();
    let script = format!(
        r#"
from influxdb import InfluxDBClient
c = InfluxDBClient(host="127.0.0.1", port={port}, username="weir", password="{token}", database="clientdb")
c.create_database("clientdb")
points = [{{"measurement": "cpu", "tags": {{"host": h}}, "time": 1700000000000000000 + i, "fields": {{"usage": float(i)}}}}
          for i, h in enumerate(["a", "b", "a"])]
assert c.write_points(points, time_precision="n")
rs = c.query("SELECT mean(usage) FROM cpu GROUP BY host")
means = {{tags["host"]: list(rows)[0]["mean"] for (name, tags), rows in rs.items()}}
assert means == {{"a": 1.0, "b": 1.0}}, means
rows = list(c.query("SELECT usage FROM cpu WHERE host = 'a'", epoch="ns").get_points())
assert rows == [{{"time": 1700000000000000000, "usage": 0.0}}, {{"time": 1700000000000000002, "usage": 2.0}}], rows
assert {{"name": "clientdb"}} in c.get_list_database(), c.get_list_database()
assert [m["name"] for m in c.get_list_measurements()] == ["cpu"]
print("ok")
"#,
        token = common::TOKEN
    );
    s.python_prints_ok(&script);
}
