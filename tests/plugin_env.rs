//! The plugin's Python environment (issue 17, point 1): the plugin venv comes first on
//! `sys.path`, and the system Python's site-packages are out of it unless
//! `--plugin-system-packages` asks for them.

mod common;

use common::{send, Server};
use serde_json::json;

/// The system Python's site-packages directories, as it reports them.
fn system_site_dirs() -> Vec<String> {
    let out = std::process::Command::new("/usr/bin/python3.11")
        .args(["-c", "import json, site; print(json.dumps(site.getsitepackages() + [site.getusersitepackages()]))"])
        .output()
        .expect("run the system python");
    serde_json::from_slice(&out.stdout).expect("site dirs as JSON")
}

const WHERE: &str = "import importlib, sys

def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    name = query_parameters.get('module')
    try:
        m = importlib.import_module(name)
        found = {'file': m.__file__, 'version': getattr(m, '__version__', '')}
    except ImportError:
        found = {'file': None, 'version': None}
    found['path'] = sys.path
    return found
";

fn ask(s: &Server, module: &str) -> serde_json::Value {
    let (status, body) = send(ureq::get(&s.url(&format!("/api/v3/engine/where?module={module}"))), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON answer")
}

/// Installs `six==1.17.0` (newer than Debian's 1.16) into the plugin venv: plugins import the
/// venv's copy, and no system site-packages directory is on their path; with
/// `--plugin-system-packages` the system's come back, after the venv's.
#[test]
fn the_plugin_venv_comes_first_and_the_systems_packages_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let system = system_site_dirs();
    let mut s = Server::start_in(dir.path(), &[]);
    s.add_plugin("where.py", WHERE);
    assert_eq!(s.write("db", "m v=1 1").0, 204);
    s.create_trigger("db", "where", "where.py", "request:where", None, json!({}));
    let before = ask(&s, "six");
    let path: Vec<String> = serde_json::from_value(before["path"].clone()).unwrap();
    assert!(!path.iter().any(|p| system.contains(p)), "system site-packages on the plugin path: {path:?}");
    assert!(before["file"].is_null(), "six imported from outside the venv: {before}");

    let (status, body) = s.post_json("/api/v3/configure/plugin_environment/install_packages", &json!({"packages": ["six==1.17.0"]}));
    assert_eq!(status, 200, "installing six: {body}");
    let after = ask(&s, "six");
    assert_eq!(after["version"], "1.17.0", "{after}");
    let venv = s.plugin_dir().join(".venv");
    assert!(after["file"].as_str().unwrap_or_default().starts_with(venv.to_str().unwrap()), "{after}");
    assert!(s.log().contains("pip: "), "pip's output was not logged as it ran");
    s.stop();

    let s = Server::start_in(dir.path(), &["--plugin-system-packages"]);
    let answer = ask(&s, "six");
    assert_eq!(answer["version"], "1.17.0", "the venv's copy must still win: {answer}");
    let path: Vec<String> = serde_json::from_value(answer["path"].clone()).unwrap();
    let venv_at = path.iter().position(|p| p.starts_with(venv.to_str().unwrap())).expect("the venv on the path");
    let system_at = path.iter().position(|p| system.contains(p));
    if let Some(at) = system_at {
        assert!(at > venv_at, "a system directory before the venv: {path:?}");
    }
    assert!(system_at.is_some() || system.iter().all(|d| !std::path::Path::new(d).is_dir()), "--plugin-system-packages left them out: {path:?}");
}
