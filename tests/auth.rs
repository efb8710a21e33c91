//! Tokens end to end: every route refuses requests without a valid token, the operator token is
//! made once, admin and resource tokens do what they may and no more, tokens survive restarts
//! as hashes only, and `--without-auth` turns it all off.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{send, send_as_is, Server, BIN, TOKEN};
use serde_json::json;
use weir::http::paths::{Access, ENGINE_PREFIX, ROUTES};

fn call(s: &Server, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let url = s.url(&format!("{path}{}", if path.contains('?') { "" } else { "?db=d" }));
    let mut req = ureq::request(method, &url);
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    send_as_is(req, if method == "GET" || method == "HEAD" { None } else { Some(b"{}") })
}

fn weir(s: &Server, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--host").arg(&s.base).env_remove("WEIR_AUTH_TOKEN").env_remove("INFLUXDB3_AUTH_TOKEN");
    if let Some(t) = token {
        cmd.arg("--token").arg(t);
    }
    let out = cmd.output().expect("run weir");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn token_in(cli_out: &str) -> String {
    cli_out.lines().find_map(|l| l.strip_prefix("Token: ")).expect("a token in the output").trim().to_string()
}

#[test]
fn invariant_11_every_route_refuses_a_request_without_a_token_or_with_a_wrong_one() {
    let s = Server::start(&[]);
    let mut checked = 0;
    for route in ROUTES {
        let path = if route.path == ENGINE_PREFIX { format!("{ENGINE_PREFIX}hook") } else { route.path.to_string() };
        for method in route.methods {
            let (anon, body) = call(&s, method, &path, None);
            let (wrong, _) = call(&s, method, &path, Some("Bearer apiv3_not-a-token-of-this-server"));
            match route.access {
                Access::Public => assert!(anon < 400, "{method} {path} is public but answered {anon}: {body}"),
                // Anyone may ask for the operator token; it exists here (from the token file).
                Access::Bootstrap => assert_eq!(anon, 409, "{method} {path}: {body}"),
                _ => {
                    assert_eq!((anon, wrong), (401, 401), "{method} {path} without a token and with a wrong one");
                    if *method != "HEAD" {
                        let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON reason");
                        assert!(v["error"].as_str().unwrap_or_default().contains("token"), "{method} {path}: {body}");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 25, "only {checked} route methods were tried");
    // A path no route serves still asks for a token first: nothing is learnt without one.
    assert_eq!(call(&s, "GET", "/api/v3/not_a_route", None).0, 401);
    assert_eq!(call(&s, "GET", "/api/v3/not_a_route", Some(&common::bearer())).0, 404);
}

#[test]
fn the_operator_token_is_made_once_and_named_tokens_work_until_they_expire_or_are_deleted() {
    let s = Server::start_unprovisioned(&[]);
    common::wait_for(10, "the first-start hint", || s.log().contains("weir create token --admin").then_some(()));
    let (status, body) = send_as_is(ureq::post(&s.url("/api/v3/write_lp?db=a")), Some(b"cpu v=1 1"));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("weir create token --admin"), "the refusal says how to get a token: {body}");

    let (ok, out, err) = weir(&s, None, &["create", "token", "--admin"]);
    assert!(ok, "{err}");
    let operator = token_in(&out);
    assert!(operator.starts_with("apiv3_"), "{out}");
    let (ok, _, err) = weir(&s, None, &["create", "token", "--admin"]);
    assert!(!ok && err.contains("409"), "the operator token is made once: {err}");
    let op = format!("Bearer {operator}");
    let with = |auth: &str, path: &str, body: &[u8]| send(ureq::post(&s.url(path)).set("Authorization", auth), Some(body));
    assert_eq!(with(&op, "/api/v3/write_lp?db=a", b"cpu v=1 1").0, 204);
    // Every way clients send a token: Token (v2), Basic and ?p= (v1).
    assert_eq!(with(&format!("Token {operator}"), "/api/v2/write?bucket=a", b"cpu v=2 2").0, 204);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("me:{operator}")));
    assert_eq!(with(&basic, "/write?db=a", b"cpu v=3 3").0, 204);
    assert_eq!(send_as_is(ureq::post(&s.url(&format!("/write?db=a&u=me&p={operator}"))), Some(b"cpu v=4 4")).0, 204);
    assert_eq!(send_as_is(ureq::post(&s.url("/api/v3/write_lp?db=a&p=x")), Some(b"cpu v=4 4")).0, 401, "only v1 reads ?p=");

    // A named admin token, listed by name but never by text.
    let (ok, out, err) = weir(&s, Some(&operator), &["create", "token", "--admin", "--name", "ops", "--expiry", "1h"]);
    assert!(ok, "{err}");
    let ops = token_in(&out);
    let (ok, list, err) = weir(&s, Some(&ops), &["show", "tokens"]);
    assert!(ok, "{err}");
    assert!(list.contains("_admin") && list.contains("ops") && list.contains("*:*:*"), "{list}");
    assert!(!list.contains(&ops) && !list.contains(&operator), "no token text is listed: {list}");

    // Only the operator may regenerate itself; the old text stops working at once.
    let (ok, _, err) = weir(&s, Some(&ops), &["create", "token", "--admin", "--regenerate"]);
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, out, err) = weir(&s, Some(&operator), &["create", "token", "--admin", "--regenerate"]);
    assert!(ok, "{err}");
    let operator2 = token_in(&out);
    assert_eq!(with(&op, "/api/v3/write_lp?db=a", b"cpu v=5 5").0, 401);
    assert_eq!(with(&format!("Bearer {operator2}"), "/api/v3/write_lp?db=a", b"cpu v=5 5").0, 204);

    // A token that expires stops working, and says why.
    let (status, body) = with(&format!("Bearer {ops}"), "/api/v3/configure/token/named_admin", br#"{"token_name": "brief", "expiry_secs": 1}"#);
    assert_eq!(status, 201, "{body}");
    let brief: serde_json::Value = serde_json::from_str(&body).unwrap();
    let brief = format!("Bearer {}", brief["token"].as_str().unwrap());
    assert_eq!(with(&brief, "/api/v3/write_lp?db=a", b"cpu v=6 6").0, 204);
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = with(&brief, "/api/v3/write_lp?db=a", b"cpu v=7 7");
    assert!(status == 401 && body.contains("expired"), "{status} {body}");

    // Deleting: a named token goes; the operator token cannot.
    let (ok, _, err) = weir(&s, Some(&operator2), &["delete", "token", "--token-name", "ops"]);
    assert!(ok, "{err}");
    assert_eq!(with(&format!("Bearer {ops}"), "/api/v3/write_lp?db=a", b"cpu v=8 8").0, 401);
    let (ok, _, err) = weir(&s, Some(&operator2), &["delete", "token", "--token-name", "_admin"]);
    assert!(!ok && err.contains("400"), "{err}");

    // Tokens survive a restart, stored as hashes only. The restart brings a token file naming
    // `_admin` with other text: the stored operator token stays in force.
    let dir = s.data_dir.parent().unwrap().to_path_buf();
    let mut s = s;
    s.stop();
    let catalog = std::fs::read_to_string(s.data_dir.join("weir").join("catalog").join("catalog.json")).unwrap();
    assert!(catalog.contains("_admin") && !catalog.contains(&operator2) && !catalog.contains(&operator));
    let s = Server::start_in(&dir, &[]);
    assert_eq!(send(ureq::post(&s.url("/api/v3/write_lp?db=a")).set("Authorization", &format!("Bearer {operator2}")), Some(b"cpu v=9 9")).0, 204);
    assert_eq!(send(ureq::post(&s.url("/api/v3/write_lp?db=a")).set("Authorization", &format!("Bearer {TOKEN}")), Some(b"cpu v=9 9")).0, 401);
    assert!(s.log().contains("stored one stays in force"), "{}", s.log());
}

#[test]
fn resource_tokens_read_or_write_only_their_databases() {
    let s = Server::start(&[]);
    assert_eq!(s.write("a", "cpu v=1 1").0, 204);
    assert_eq!(s.write("b", "cpu v=1 1").0, 204);
    let (ok, out, err) = weir(&s, Some(TOKEN), &["create", "token", "--permission", "db:a:read", "--name", "reader"]);
    assert!(ok, "{err}");
    let reader = format!("Bearer {}", token_in(&out));
    let (status, body) = s.post_json("/api/v3/enterprise/configure/token", &json!({
        "token_name": "writer",
        "permissions": [{"resource_type": "db", "resource_identifier": ["*"], "actions": ["write"]}, {"resource_type": "system", "resource_identifier": ["*"], "actions": ["read"]}],
    }));
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let writer = format!("Bearer {}", v["token"].as_str().unwrap());
    let q = |auth: &str, db: &str| send(ureq::get(&s.url(&format!("/api/v3/query_sql?db={db}&q=SELECT%20v%20FROM%20cpu"))).set("Authorization", auth), None);
    let w = |auth: &str, db: &str| send(ureq::post(&s.url(&format!("/api/v3/write_lp?db={db}"))).set("Authorization", auth), Some(b"cpu v=2 2"));
    assert_eq!(q(&reader, "a").0, 200);
    let (status, body) = q(&reader, "b");
    assert!(status == 403 && body.contains("read database 'b'"), "{status} {body}");
    assert_eq!(w(&reader, "a").0, 403);
    assert_eq!(w(&writer, "b").0, 204);
    assert_eq!(w(&writer, "new_db").0, 204, "'*' covers databases made later");
    assert_eq!(q(&writer, "b").0, 403);
    assert_eq!(send(ureq::get(&s.url("/metrics")).set("Authorization", &writer), None).0, 200, "system:*:read reads /metrics");
    assert_eq!(send(ureq::get(&s.url("/metrics")).set("Authorization", &reader), None).0, 403);
    // Neither may configure anything.
    let (status, body) = send(ureq::post(&s.url("/api/v3/configure/database")).set("Authorization", &reader), Some(br#"{"db": "c"}"#));
    assert!(status == 403 && body.contains("admin"), "{status} {body}");
    // A bad permission is named.
    let (status, body) = s.post_json("/api/v3/enterprise/configure/token", &json!({"token_name": "x", "permissions": [{"resource_type": "db", "resource_identifier": ["a"], "actions": ["delete"]}]}));
    assert!(status == 400 && body.contains("delete"), "{status} {body}");
}

#[test]
fn auth_off_and_offline_token_files() {
    // --without-auth: no token needed anywhere.
    let open = Server::start(&["--without-auth"]);
    assert_eq!(send_as_is(ureq::post(&open.url("/api/v3/write_lp?db=a")), Some(b"cpu v=1 1")).0, 204);
    assert_eq!(send_as_is(ureq::get(&open.url("/metrics")), None).0, 200);
    drop(open);
    // An offline token file made by the CLI, given to serve; /metrics opened by --disable-authz.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.json");
    let out = Command::new(BIN).args(["create", "token", "--admin", "--offline", "--output-file"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = made["token"].as_str().unwrap().to_string();
    let s = Server::start_in(dir.path(), &["--admin-token-file", file.to_str().unwrap(), "--disable-authz", "metrics"]);
    assert_eq!(send(ureq::post(&s.url("/api/v3/write_lp?db=a")).set("Authorization", &format!("Bearer {token}")), Some(b"cpu v=1 1")).0, 204);
    assert_eq!(send_as_is(ureq::get(&s.url("/metrics")), None).0, 200);
    assert_eq!(send_as_is(ureq::get(&s.url("/api/v3/configure/database")), None).0, 401);
}
