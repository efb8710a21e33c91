//! The write endpoints, end to end through the binary.

mod common;

use common::Server;
use std::io::Write;

#[test]
fn each_write_endpoint_and_precision_lands_in_the_same_table() {
    let s = Server::start(&[]);
    assert_eq!(s.post("/api/v3/write_lp?db=w&precision=s", b"m,src=v3 f=1 1700000000").0, 204);
    assert_eq!(s.post("/api/v3/write_lp?db=w", b"m,src=v3auto f=2 1700000001000").0, 204);
    assert_eq!(s.post("/api/v2/write?bucket=w&org=ignored&precision=ms", b"m,src=v2 f=3 1700000002000").0, 204);
    assert_eq!(s.post("/write?db=w&precision=u", b"m,src=v1 f=4 1700000003000000").0, 204);
    assert_eq!(s.post("/write?db=w", b"m,src=v1ns f=5 1700000004000000000").0, 204);
    let rows = s.query("w", "SELECT src, f, time FROM m ORDER BY time");
    let got: Vec<(String, f64, String)> = rows
        .iter()
        .map(|r| (r["src"].as_str().unwrap().to_string(), r["f"].as_f64().unwrap(), r["time"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("v3".into(), 1.0, "2023-11-14T22:13:20Z".into()),
            ("v3auto".into(), 2.0, "2023-11-14T22:13:21Z".into()),
            ("v2".into(), 3.0, "2023-11-14T22:13:22Z".into()),
            ("v1".into(), 4.0, "2023-11-14T22:13:23Z".into()),
            ("v1ns".into(), 5.0, "2023-11-14T22:13:24Z".into()),
        ]
    );
}

#[test]
fn five_field_types_escapes_comments_and_server_time() {
    let s = Server::start(&[]);
    let body = "# a comment\n\n\
        my\\ table,tag\\,key=va\\ lue f=1.5,i=-2i,u=3u,s=\"say \\\"hi\\\"\\\\\",b=true 1700000000000000000\n\
        my\\ table,tag\\,key=x f=2\n";
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let (status, text) = s.write("types", body);
    assert_eq!(status, 204, "{text}");
    let rows = s.query("types", "SELECT *, CAST(time AS BIGINT) AS t FROM \"my table\" ORDER BY time");
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r["tag,key"], "va lue");
    assert_eq!(r["f"], 1.5);
    assert_eq!(r["i"], -2);
    assert_eq!(r["u"], 3);
    assert_eq!(r["s"], "say \"hi\"\\");
    assert_eq!(r["b"], true);
    // The line without a timestamp got the server's time.
    let t = rows[1]["t"].as_i64().unwrap();
    assert!(t >= before - 1_000_000_000 && t < before + 60_000_000_000, "server time {t} vs {before}");
    assert!(rows[1].get("i").is_none(), "absent column is null");
}

#[test]
fn gzip_body_is_inflated() {
    let s = Server::start(&[]);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"g f=1 1\ng f=2 2\n").unwrap();
    let gz = e.finish().unwrap();
    let (status, text) = common::send(
        ureq::post(&s.url("/api/v3/write_lp?db=gz")).set("Content-Encoding", "gzip"),
        Some(&gz),
    );
    assert_eq!(status, 204, "{text}");
    assert_eq!(s.count("gz", "g"), 2);
    let (status, text) = common::send(
        ureq::post(&s.url("/api/v3/write_lp?db=gz")).set("Content-Encoding", "gzip"),
        Some(b"not gzip at all"),
    );
    assert_eq!(status, 400);
    assert!(text.contains("gzip"), "{text}");
}

#[test]
fn partial_write_keeps_good_lines_and_names_bad_ones() {
    let s = Server::start(&[]);
    let body = "cpu,host=a usage=1 1\ncpu,host=b usage=oops 2\n\ncpu,host=c usage=3 3\ncpu,host=d usage=4i 4\n";
    let (status, text) = s.write("p", body);
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"], "partial write of line protocol occurred");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["line_number"], 2);
    assert_eq!(data[0]["original_line"], "cpu,host=b usage=oops 2");
    assert!(data[0]["error_message"].as_str().unwrap().contains("usage"));
    assert_eq!(data[1]["line_number"], 5);
    assert!(data[1]["error_message"].as_str().unwrap().contains("float"), "{}", data[1]);
    let hosts: Vec<String> =
        s.query("p", "SELECT host FROM cpu ORDER BY host").iter().map(|r| r["host"].as_str().unwrap().to_string()).collect();
    assert_eq!(hosts, vec!["a", "c"]);
}

#[test]
fn accept_partial_false_writes_nothing() {
    let s = Server::start(&[]);
    assert_eq!(s.write("ap", "t f=1 1").0, 204);
    let (status, text) = s.post("/api/v3/write_lp?db=ap&accept_partial=false", b"t f=2 2\nt f=\n");
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["line_number"], 2);
    assert_eq!(s.count("ap", "t"), 1);
    // Nor does it create a database.
    assert_eq!(s.post("/api/v3/write_lp?db=never&accept_partial=false", b"bad").0, 400);
    assert_eq!(s.get("/api/v3/query_sql?db=never&q=select%201").0, 404);
}

#[test]
fn body_over_the_limit_gets_413() {
    let s = Server::start(&["--max-http-request-size", "1000"]);
    let big = "m f=1 1\n".repeat(200);
    let (status, text) = s.write("lim", &big);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("1000"), "{text}");
    // A gzip body that inflates past the limit too.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(big.as_bytes()).unwrap();
    let gz = e.finish().unwrap();
    assert!(gz.len() < 1000);
    let (status, _) =
        common::send(ureq::post(&s.url("/api/v3/write_lp?db=lim")).set("Content-Encoding", "gzip"), Some(&gz));
    assert_eq!(status, 413);
    assert_eq!(s.write("lim", "m f=1 1").0, 204);
}

#[test]
fn bad_parameters_are_clear_400s() {
    let s = Server::start(&[]);
    let (status, text) = s.post("/api/v3/write_lp", b"m f=1");
    assert_eq!(status, 400);
    assert!(text.contains("db"), "{text}");
    let (status, text) = s.post("/api/v3/write_lp?db=x&precision=fortnight", b"m f=1");
    assert_eq!(status, 400);
    assert!(text.contains("precision"), "{text}");
    let (status, text) = s.post("/api/v3/write_lp?db=bad%20name", b"m f=1");
    assert_eq!(status, 400);
    assert!(text.contains("database name"), "{text}");
    let (status, _) = s.post("/api/v3/write_lp?db=x&accept_partial=maybe", b"m f=1");
    assert_eq!(status, 400);
}

#[test]
fn no_sync_write_is_answered_and_lands() {
    let s = Server::start(&[]);
    assert_eq!(s.post("/api/v3/write_lp?db=ns&no_sync=true", b"m f=1 1").0, 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, text) = s.get("/api/v3/query_sql?db=ns&q=select%20count(*)%20as%20n%20from%20m");
        if status == 200 && text.contains("\"n\":1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no_sync write never became visible: {status} {text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn several_shards_share_one_port_and_one_table() {
    let s = Server::start(&["--shards", "2"]);
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let url = s.url("/api/v3/write_lp?db=sh");
            std::thread::spawn(move || {
                for i in 0..50 {
                    let body = format!("m,w={w} v={i}i {}", w * 1000 + i + 1);
                    let (status, text) = common::send(ureq::post(&url), Some(body.as_bytes()));
                    assert_eq!(status, 204, "{text}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.count("sh", "m"), 200);
}
