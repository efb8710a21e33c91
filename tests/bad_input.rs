//! DESIGN.md invariant 3: no input crashes the server or corrupts stored data.

mod common;

use common::{send, Rng, Server};


#[test]
fn invariant_3_bad_input_never_crashes_or_corrupts() {
    let mut s = Server::start(&["--shards", "2"]);
    assert_eq!(s.write("keep", "m,t=a v=1i 1\nm,t=b v=2i 2").0, 204);
    let before = s.query("keep", "SELECT * FROM m ORDER BY time");

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let lp_alphabet = b"m,=\\ \"\n0123456789.eEiutf-#\r\tab";
    let all: Vec<u8> = (0..=255u8).collect();
    for round in 0..300 {
        let n = (rng.next() % 300) as usize;
        let body = if round % 3 == 0 { rng.bytes(n, &all) } else { rng.bytes(n, lp_alphabet) };
        let path = match round % 4 {
            0 => "/api/v3/write_lp?db=fuzz",
            1 => "/api/v2/write?bucket=fuzz&precision=s",
            2 => "/write?db=fuzz&precision=ms",
            _ => "/api/v3/write_lp?db=keep&accept_partial=false",
        };
        let (status, text) = s.post(path, &body);
        assert!(status == 204 || status == 400, "round {round}: status {status} {text}");
        if status == 400 {
            let v: serde_json::Value = serde_json::from_str(&text).expect("error bodies are JSON");
            assert!(v["error"].is_string());
        }
    }
    // Lines that do parse but fight the schema of `keep.m`.
    for bad in ["m v=1.5 3", "m v=\"s\" 3", "m,v=tag x=1 3", "m v=true 3", "m v=1u 3"] {
        assert_eq!(s.write("keep", bad).0, 400, "{bad}");
    }
    for sql in ["", ";", "SELECT", "DROP TABLE m", "SELECT * FROM m WHERE", "SELECT 1/0", "SELECT ''''", "\u{0}"] {
        let body = serde_json::json!({"db": "keep", "q": sql}).to_string();
        let (status, _) = send(ureq::post(&s.url("/api/v3/query_sql")), Some(body.as_bytes()));
        assert!((400..500).contains(&status) || status == 200, "{sql:?}: {status}");
    }
    for (method, path, body) in [
        ("POST", "/api/v3/configure/database", &b"{"[..]),
        ("POST", "/api/v3/configure/database", b"[]"),
        ("POST", "/api/v3/configure/database", br#"{"db": 5}"#),
        ("POST", "/api/v3/configure/table", br#"{"db":"keep"}"#),
        ("DELETE", "/api/v3/configure/table", b""),
        ("POST", "/api/v3/query_sql", b"\xff\xfe"),
    ] {
        let (status, text) = send(ureq::request(method, &s.url(path)), Some(body));
        assert!((400..500).contains(&status), "{method} {path} {body:?}: {status} {text}");
    }
    let (status, _) = s.get("/api/v3/query_sql?db=%ff%fe&q=%ff");
    assert!((400..500).contains(&status));

    assert!(s.is_running(), "the server survived");
    assert_eq!(s.get("/health").0, 200);
    assert_eq!(s.query("keep", "SELECT * FROM m ORDER BY time"), before, "stored data is unchanged");
}
