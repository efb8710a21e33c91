//! Arrow Flight on the HTTP port (issue 16, point 1), through the official clients installed
//! by `scripts/test.sh`: `influxdb3-python` (SQL with parameters, pandas, InfluxQL, writes)
//! and `@influxdata/influxdb3-client` for JavaScript; the ADBC Flight SQL driver (what Grafana's
//! FlightSQL data source and JDBC/ODBC bridges speak); plus pyarrow's own Flight client for the
//! token checks and the streaming of large answers.

mod common;

use std::process::Command;

use common::{run_python, Server};

#[test]
fn influxdb3_python_writes_and_queries_over_flight() {
    let s = Server::start(&[]);
    let script = format!(
        r#"
from influxdb_client_3 import InfluxDBClient3
c = InfluxDBClient3(host="http://127.0.0.1:{port}", token="{token}", database="fl")
c.write(record="cpu,host=a usage=1.5 1700000000000000000\ncpu,host=b usage=2.5 1700000000000000001\ncpu,host=a usage=4.0 1700000000000000002")
t = c.query("SELECT host, usage FROM cpu WHERE host = $h ORDER BY time", language="sql", query_parameters={{"h": "a"}})
assert t.to_pydict() == {{"host": ["a", "a"], "usage": [1.5, 4.0]}}, t.to_pydict()
df = c.query("SELECT host, sum(usage) AS total FROM cpu GROUP BY host ORDER BY host", mode="pandas")
assert list(df["total"]) == [5.5, 2.5], df
t = c.query("SELECT max(usage) FROM cpu GROUP BY host", language="influxql")
assert t.to_pydict()["max"] == [4.0, 2.5], t.to_pydict()
assert t.to_pydict()["iox::measurement"] == ["cpu", "cpu"]
print("ok")
"#,
        port = s.port(),
        token = common::TOKEN
    );
    s.python_prints_ok(&script);
}

/// The token is checked as on HTTP (none, a wrong one, one for another database); errors carry
/// gRPC codes and the reason; a large answer arrives in many batches, not one collected.
#[test]
fn flight_checks_tokens_names_errors_and_streams() {
    let s = Server::start(&[]);
    assert_eq!(s.write("db", "cpu,host=a usage=1 1").0, 204);
    let script = format!(
        r#"
import json, pyarrow.flight as fl
c = fl.FlightClient("grpc+tcp://127.0.0.1:{port}")
def get(sql, token="{token}", db="db", kind="sql"):
    opts = fl.FlightCallOptions(headers=[(b"authorization", ("Bearer " + token).encode())] if token else [])
    return c.do_get(fl.Ticket(json.dumps({{"database": db, "sql_query": sql, "query_type": kind}}).encode()), opts)
assert get("SELECT usage FROM cpu").read_all().to_pydict() == {{"usage": [1.0]}}
def code(f):
    try:
        f()
    except Exception as e:
        return type(e).__name__ + ": " + str(e).split(". gRPC")[0]
    return "no error"
print(code(lambda: get("SELECT 1", token=None).read_all()))
print(code(lambda: get("SELECT 1", token="wrong").read_all()))
print(code(lambda: get("SELEKT").read_all()))
print(code(lambda: get("SELECT 1", db="nosuch").read_all()))
print(code(lambda: get("DROP TABLE cpu").read_all()))
print(code(lambda: c.do_get(fl.Ticket(b"not json"), fl.FlightCallOptions(headers=[(b"authorization", b"Bearer {token}")])).read_all()))
chunks = rows = 0
for chunk in get("SELECT unnest(range(0, 300000)) AS v"):
    chunks += 1
    rows += chunk.data.num_rows
print("streamed", rows, chunks > 10)
"#,
        port = s.port(),
        token = common::TOKEN
    );
    let (ok, out, err) = run_python(&script);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("FlightUnauthenticatedError") && lines[0].contains("needs a token"), "{out}");
    assert!(lines[1].starts_with("FlightUnauthenticatedError") && lines[1].contains("not valid"), "{out}");
    assert!(lines[2].contains("SELEKT"), "{out}");
    assert!(lines[3].contains("nosuch"), "{out}");
    assert!(lines[4].contains("read-only"), "{out}");
    assert!(lines[5].contains("invalid ticket"), "{out}");
    assert_eq!(lines[6], "streamed 300000 True", "{out}");

    // system.queries lists them: the streamed one a success, the refused ones failures with
    // their reason (queries refused before a database was named, or not allowed on it, are not
    // the database's to list).
    let rows = s.query(
        "db",
        "SELECT query_text, success, running, error FROM system.queries WHERE protocol = 'flight' AND query_type = 'sql' ORDER BY id",
    );
    let texts: Vec<(&str, bool)> = rows.iter().map(|r| (r["query_text"].as_str().unwrap_or_default(), r["success"].as_bool().unwrap_or(true))).collect();
    assert_eq!(
        texts,
        vec![("SELECT usage FROM cpu", true), ("SELEKT", false), ("DROP TABLE cpu", false), ("SELECT unnest(range(0, 300000)) AS v", true)],
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["running"] == false));
    assert!(rows[1]["error"].as_str().unwrap_or_default().contains("SELEKT"), "{rows:?}");
    let everywhere = s.query("_internal", "SELECT count(*) AS n FROM system.queries WHERE database = 'nosuch'");
    assert_eq!(everywhere, vec![serde_json::json!({"n": 1})]);
}

#[test]
fn the_javascript_client_writes_and_queries_over_flight() {
    let s = Server::start(&[]);
    let modules = std::env::var("WEIR_TEST_NODE_MODULES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-node/node_modules").to_string());
    assert!(std::path::Path::new(&modules).join("@influxdata/influxdb3-client").is_dir(), "{modules}: run scripts/test.sh, which installs the client");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).unwrap();
    let script = format!(
        r#"
import {{ InfluxDBClient }} from '@influxdata/influxdb3-client'
const client = new InfluxDBClient({{ host: 'http://127.0.0.1:{port}', token: '{token}', database: 'js' }})
await client.write('cpu,host=a usage=1.5 1700000000000000000\ncpu,host=b usage=2 1700000000000000001')
const rows = []
for await (const row of client.query('SELECT host, usage FROM cpu ORDER BY host')) rows.push(row)
const iq = []
for await (const row of client.query('SELECT count(usage) FROM cpu', 'js', {{ type: 'influxql' }})) iq.push(Number(row.count))
console.log(JSON.stringify({{ rows, iq }}))
await client.close()
"#,
        port = s.port(),
        token = common::TOKEN
    );
    std::fs::write(dir.path().join("q.mjs"), script).unwrap();
    let out = Command::new("node").arg("q.mjs").current_dir(dir.path()).output().expect("run node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v, serde_json::json!({"rows": [{"host": "a", "usage": 1.5}, {"host": "b", "usage": 2}], "iq": [2]}));
}

/// Flight SQL through the ADBC driver from PyPI: a query (GetFlightInfo, then DoGet), the
/// server's info, the catalog/schema/table tree and a table's schema; the token and the
/// database travel as call headers.
#[test]
fn flight_sql_through_the_adbc_driver() {
    let s = Server::start(&[]);
    assert_eq!(s.write("db", "cpu,host=a usage=1.5 1\ncpu,host=b usage=2.5 2\nmem,host=a used=3i 1").0, 204);
    let script = format!(
        r#"
import warnings
warnings.simplefilter("ignore")
import adbc_driver_flightsql.dbapi as fs
def connect(token, db="db"):
    return fs.connect("grpc://127.0.0.1:{port}", db_kwargs={{"adbc.flight.sql.rpc.call_header.database": db, "adbc.flight.sql.authorization_header": "Bearer " + token}})
conn = connect("{token}")
cur = conn.cursor()
cur.execute("SELECT host, usage FROM cpu ORDER BY time")
assert cur.fetchall() == [("a", 1.5), ("b", 2.5)], "query"
info = conn.adbc_get_info()
assert info["vendor_name"] == "Weir", info
objs = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
tree = {{s["db_schema_name"]: sorted(t["table_name"] for t in (s["db_schema_tables"] or [])) for c in objs for s in c["catalog_db_schemas"]}}
assert tree["iox"] == ["cpu", "mem"], tree
assert conn.adbc_get_table_schema("cpu", db_schema_filter="iox").names == ["host", "time", "usage"]
for bad in ("wrong", None):
    try:
        c = connect(bad or "", "db") if bad else fs.connect("grpc://127.0.0.1:{port}", db_kwargs={{"adbc.flight.sql.rpc.call_header.database": "db"}})
        c.cursor().execute("SELECT 1")
        raise SystemExit("a query without a valid token was answered")
    except SystemExit:
        raise
    except Exception as e:
        assert "token" in str(e), e
print("ok")
"#,
        port = s.port(),
        token = common::TOKEN
    );
    s.python_prints_ok(&script);
}
