//! What one request must not be able to do: change anything through SQL, read the server's
//! files, install from a URL or run pip with options, or load a plugin from outside the plugin
//! dir or the plugin repository.

mod common;

use common::Server;
use serde_json::json;

fn sql(s: &Server, q: &str) -> (u16, String) {
    s.post_json("/api/v3/query_sql", &json!({ "db": "d", "q": q }))
}

#[test]
fn invariant_11_sql_is_read_only_and_reads_no_server_files() {
    let s = Server::start(&[]);
    assert_eq!(s.write("d", "cpu,host=a v=1 1").0, 204);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("x.csv");
    let refused = [
        (format!("COPY (SELECT 1 AS x) TO '{}' STORED AS CSV", target.display()), "COPY"),
        ("CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".to_string(), "CreateExternalTable"),
        ("INSERT INTO cpu (host, v, time) VALUES ('b', 2, 2)".to_string(), "Insert"),
        ("CREATE VIEW v AS SELECT 1".to_string(), "CreateView"),
        ("DROP TABLE cpu".to_string(), "DropTable"),
        ("SET datafusion.execution.batch_size = 1".to_string(), "SetVariable"),
    ];
    for (q, names) in &refused {
        let (status, body) = sql(&s, q);
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains("read-only") && body.contains(names), "{q}: {body}");
    }
    assert!(!target.exists(), "COPY wrote nothing");
    let (status, body) = sql(&s, "SELECT * FROM '/etc/passwd'");
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("root:"), "{body}");
    // Reading still works, and the refused INSERT kept nothing.
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM cpu")[0]["n"], 1);
    assert_eq!(sql(&s, "EXPLAIN SELECT v FROM cpu").0, 200);
}

#[test]
fn invariant_11_package_management_takes_names_only_and_can_be_turned_off() {
    let s = Server::start(&[]);
    let install = |s: &Server, packages: serde_json::Value| {
        s.post_json("/api/v3/configure/plugin_environment/install_packages", &json!({ "packages": packages }))
    };
    for bad in ["x @ http://127.0.0.1:9/x.whl", "--index-url=http://127.0.0.1:9/", "./local_dir", "x; os_name=='posix'"] {
        let (status, body) = install(&s, json!([bad]));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("not a package name"), "{bad}: {body}");
    }
    let (status, body) =
        s.post_json("/api/v3/configure/plugin_environment/install_requirements", &json!({ "requirements_location": "/etc/passwd" }));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("inside the plugin directory") && !body.contains("root"), "{body}");
    std::fs::create_dir_all(s.plugin_dir()).unwrap();
    std::fs::write(s.plugin_dir().join("req.txt"), "requests\n-i http://127.0.0.1:9/simple\n").unwrap();
    let (status, body) =
        s.post_json("/api/v3/configure/plugin_environment/install_requirements", &json!({ "requirements_location": "req.txt" }));
    assert!(status == 400 && body.contains("line 2: pip options are not allowed"), "{status} {body}");
    assert!(!s.plugin_dir().join(".venv").exists(), "nothing was installed, not even the venv");

    let off = Server::start(&["--disable-package-management"]);
    let (status, body) = install(&off, json!(["requests"]));
    assert!(status == 403 && body.contains("--disable-package-management"), "{status} {body}");
}

#[test]
fn invariant_11_plugins_load_only_from_inside_the_plugin_dir_and_the_plugin_repository() {
    // A closed port as the repository: a name that got as far as a download would fail there,
    // with another message than the refusal asserted below.
    let s = Server::start(&["--plugin-repo", "http://127.0.0.1:9/repo/"]);
    assert_eq!(s.post_json("/api/v3/configure/database", &json!({"db": "d"})).0, 200);
    let create = |plugin: &str| {
        s.post_json(
            "/api/v3/configure/processing_engine_trigger",
            &json!({"db": "d", "trigger_name": "t", "plugin_filename": plugin, "trigger_specification": "every:1h", "trigger_settings": {}}),
        )
    };
    for name in ["gh:%2e%2e/%2e%2e/%2e%2e/attacker/evil/main/pwn.py", "gh:../../x.py", "../outside.py", "/etc/x.py"] {
        let (status, body) = create(name);
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains("invalid plugin filename"), "{name}: {body}");
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("evil.py"), "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    pass\n").unwrap();
    std::fs::create_dir_all(s.plugin_dir()).unwrap();
    std::os::unix::fs::symlink(outside.path().join("evil.py"), s.plugin_dir().join("linked.py")).unwrap();
    let (status, body) = create("linked.py");
    assert!(status == 400 && body.contains("outside the plugin directory"), "{status} {body}");
}
