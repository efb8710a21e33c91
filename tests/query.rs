//! `/api/v3/query_sql`, end to end: formats, parameters, errors.

mod common;

use common::{send, Server};

fn seeded() -> Server {
    let s = Server::start(&[]);
    let (status, text) = s.write(
        "q",
        "cpu,host=a,region=west usage=1.5,count=1i 1700000000000000000\n\
         cpu,host=b,region=east usage=2.5,count=2i 1700000060000000000\n\
         cpu,host=a,region=west usage=3.5,count=3i 1700000120000000000\n",
    );
    assert_eq!(status, 204, "{text}");
    s
}

fn get(s: &Server, q: &str, extra: &str) -> (u16, String) {
    let enc: String = url_encode(q);
    s.get(&format!("/api/v3/query_sql?db=q&q={enc}{extra}"))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn every_format() {
    let s = seeded();
    let q = "SELECT host, usage, time FROM cpu WHERE host = 'a' ORDER BY time";
    let (status, json) = get(&s, q, "&format=json");
    assert_eq!(status, 200);
    assert_eq!(
        json,
        r#"[{"host":"a","usage":1.5,"time":"2023-11-14T22:13:20Z"},{"host":"a","usage":3.5,"time":"2023-11-14T22:15:20Z"}]"#
    );
    let (_, jsonl) = get(&s, q, "&format=jsonl");
    assert_eq!(
        jsonl,
        "{\"host\":\"a\",\"usage\":1.5,\"time\":\"2023-11-14T22:13:20Z\"}\n{\"host\":\"a\",\"usage\":3.5,\"time\":\"2023-11-14T22:15:20Z\"}\n"
    );
    let (_, csv) = get(&s, q, "&format=csv");
    assert_eq!(csv, "host,usage,time\na,1.5,2023-11-14T22:13:20Z\na,3.5,2023-11-14T22:15:20Z\n");
    let (_, pretty) = get(&s, q, "&format=pretty");
    assert!(pretty.starts_with("+------+-------+"), "{pretty}");
    assert!(pretty.contains("| a    | 1.5   | 2023-11-14T22:13:20 |"), "{pretty}");
    let (status, parquet) = {
        let r = ureq::get(&s.url(&format!("/api/v3/query_sql?db=q&q={}&format=parquet", url_encode(q)))).set("Authorization", &common::bearer()).call().unwrap();
        let status = r.status();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut b).unwrap();
        (status, b)
    };
    assert_eq!(status, 200);
    assert_eq!(&parquet[..4], b"PAR1");
    assert_eq!(&parquet[parquet.len() - 4..], b"PAR1");
    let (status, text) = get(&s, q, "&format=xml");
    assert_eq!(status, 400);
    assert!(text.contains("format"));
}

#[test]
fn tags_are_strings_fields_by_type_time_rfc3339() {
    let s = seeded();
    let rows = s.query("q", "SELECT * FROM cpu ORDER BY time LIMIT 1");
    let r = &rows[0];
    assert!(r["host"].is_string());
    assert!(r["usage"].is_f64());
    assert!(r["count"].is_i64());
    assert_eq!(r["time"], "2023-11-14T22:13:20Z");
    // Columns come sorted by name, as InfluxDB 3 shows them.
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys.len(), 5);
}

#[test]
fn params_fill_placeholders_by_get_and_post() {
    let s = seeded();
    let (status, text) = get(&s, "SELECT count(*) AS n FROM cpu WHERE host = $h AND usage > $min", &format!("&params={}", url_encode(r#"{"h":"a","min":2}"#)));
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, r#"[{"n":1}]"#);
    let body = serde_json::json!({"db": "q", "q": "SELECT sum(count) AS s FROM cpu WHERE region = $r", "params": {"r": "west"}});
    let (status, text) = send(ureq::post(&s.url("/api/v3/query_sql")), Some(body.to_string().as_bytes()));
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, r#"[{"s":4}]"#);
    let (status, text) = get(&s, "SELECT * FROM cpu WHERE host = $missing", "");
    assert_eq!(status, 400, "{text}");
}

#[test]
fn errors_are_4xx_with_a_message() {
    let s = seeded();
    let (status, text) = get(&s, "SELEKT nonsense", "");
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["error"].as_str().unwrap().contains("SELEKT"), "{text}");
    let (status, text) = get(&s, "SELECT * FROM nope", "");
    assert_eq!(status, 400);
    assert!(text.contains("nope"), "{text}");
    let (status, text) = s.get("/api/v3/query_sql?db=nodb&q=select%201");
    assert_eq!(status, 404);
    assert!(text.contains("nodb"), "{text}");
    let (status, _) = s.get("/api/v3/query_sql?db=q");
    assert_eq!(status, 400);
    let (status, _) = send(ureq::post(&s.url("/api/v3/query_sql")), Some(b"{not json"));
    assert_eq!(status, 400);
}

#[test]
fn information_schema_and_system_tables() {
    let s = seeded();
    let rows = s.query("q", "SELECT column_name FROM information_schema.columns WHERE table_name = 'cpu' ORDER BY column_name");
    let cols: Vec<&str> = rows.iter().map(|r| r["column_name"].as_str().unwrap()).collect();
    assert_eq!(cols, vec!["count", "host", "region", "time", "usage"]);
    let rows = s.query("q", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox'");
    assert_eq!(rows.len(), 1);
    let rows = s.query("q", "SELECT database_name FROM system.databases");
    assert_eq!(rows[0]["database_name"], "q");
}

#[test]
fn a_column_added_later_reads_as_null_in_older_rows() {
    let s = seeded();
    assert_eq!(s.write("q", "cpu,host=z usage=9,extra=\"new\" 1700000180000000000").0, 204);
    let rows = s.query("q", "SELECT host, extra FROM cpu ORDER BY time");
    assert_eq!(rows.len(), 4);
    assert!(rows[0].get("extra").is_none());
    assert_eq!(rows[3]["extra"], "new");
}
