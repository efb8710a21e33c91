//! Databases, tables, health and ping.

mod common;

use common::{send, Server};

#[test]
fn create_list_delete_database() {
    let s = Server::start(&[]);
    let (status, _) = send(ureq::post(&s.url("/api/v3/configure/database")), Some(br#"{"db":"alpha"}"#));
    assert_eq!(status, 200);
    let (status, text) = send(ureq::post(&s.url("/api/v3/configure/database")), Some(br#"{"db":"alpha"}"#));
    assert_eq!(status, 409, "{text}");
    let (status, text) = send(ureq::post(&s.url("/api/v3/configure/database")), Some(br#"{"db":"no spaces"}"#));
    assert_eq!(status, 400, "{text}");
    assert_eq!(s.write("beta", "m f=1").0, 204);
    let (status, text) = s.get("/api/v3/configure/database?format=json");
    assert_eq!(status, 200);
    assert_eq!(text, r#"[{"iox::database":"alpha"},{"iox::database":"beta"}]"#);
    let (status, _) = send(ureq::delete(&s.url("/api/v3/configure/database?db=beta")), None);
    assert_eq!(status, 200);
    let (status, _) = send(ureq::delete(&s.url("/api/v3/configure/database?db=beta")), None);
    assert_eq!(status, 404);
    let (_, text) = s.get("/api/v3/configure/database?format=csv");
    assert_eq!(text, "iox::database\nalpha\n");
    // A database recreated after delete starts empty.
    assert_eq!(s.write("beta", "n f=1").0, 204);
    assert_eq!(s.get("/api/v3/query_sql?db=beta&q=select%20*%20from%20m").0, 400);
}

#[test]
fn create_and_delete_table() {
    let s = Server::start(&[]);
    send(ureq::post(&s.url("/api/v3/configure/database")), Some(br#"{"db":"d"}"#));
    let body = br#"{"db":"d","table":"t","tags":["host"],"fields":[{"name":"v","type":"float"}]}"#;
    assert_eq!(send(ureq::post(&s.url("/api/v3/configure/table")), Some(body)).0, 200);
    assert_eq!(send(ureq::post(&s.url("/api/v3/configure/table")), Some(body)).0, 409);
    // The declared type is enforced.
    let (status, text) = s.write("d", "t,host=a v=1i");
    assert_eq!(status, 400, "{text}");
    assert_eq!(s.write("d", "t,host=a v=1").0, 204);
    let bad = br#"{"db":"d","table":"u","fields":[{"name":"v","type":"complex"}]}"#;
    let (status, text) = send(ureq::post(&s.url("/api/v3/configure/table")), Some(bad));
    assert_eq!(status, 400);
    assert!(text.contains("complex"));
    assert_eq!(send(ureq::delete(&s.url("/api/v3/configure/table?db=d&table=t")), None).0, 200);
    assert_eq!(send(ureq::delete(&s.url("/api/v3/configure/table?db=d&table=t")), None).0, 404);
}

#[test]
fn health_ping_and_unknown_routes() {
    let s = Server::start(&[]);
    assert_eq!(s.get("/health"), (200, "OK".to_string()));
    let r = ureq::get(&s.url("/ping")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.header("x-influxdb-version").is_some());
    let (status, text) = s.get("/api/v3/nothing");
    assert_eq!(status, 404);
    assert!(text.contains("error"));
    let (status, _) = send(ureq::put(&s.url("/api/v3/query_sql")), Some(b""));
    assert_eq!(status, 405);
    let (status, _) = s.get("/api/v3/write_lp?db=x");
    assert_eq!(status, 405);
}
