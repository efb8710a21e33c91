//! The request scenario: requests/s and latency of a request trigger under `wrk`, side by side
//! with a uvicorn hello-world app (from PyPI, in a venv this harness makes under
//! `target/loadtest/`) answering the same JSON. Both plugins build the JSON per request.
//!
//! uvicorn is installed as `uvicorn[standard]` (uvloop and httptools): the peer at its fastest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use crate::cpu::cpu_seconds;
use crate::report::{Latency, Row};
use crate::targets::{find_bin, free_port, Target};

const PLUGIN: &str = r#"def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"hello": "world"}
"#;

const ASGI_APP: &str = r#"import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"hello": "world"}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"#;

pub struct Wrk {
    pub connections: usize,
    pub threads: usize,
    pub seconds: u64,
}

/// Runs the request trigger on a started Weir.
pub fn weir(target: &Target, wrk: &Wrk) -> Result<Row> {
    target.create_trigger("lt_hello", PLUGIN, "request:lt_hello")?;
    let url = target.url("/api/v3/engine/lt_hello");
    check_answer(&url)?;
    run_wrk(&url, wrk, "weir", HELLO, target.pid())
}

/// The same load on Weir's `/health`, answered by the HTTP layer with no Python: the most a
/// request trigger could reach on this machine, for reading the figure above.
pub fn weir_ceiling(target: &Target, wrk: &Wrk) -> Result<Row> {
    run_wrk(&target.url("/health"), wrk, "weir", "static /health, no Python", target.pid())
}

/// Starts uvicorn with the same answer and runs the same load on it.
pub fn uvicorn(wrk: &Wrk) -> Result<Row> {
    let venv = uvicorn_venv()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hello_app.py"), ASGI_APP)?;
    let port = free_port()?;
    let mut child = Command::new(venv.join("bin/uvicorn"))
        .args(["hello_app:app", "--app-dir"])
        .arg(dir.path())
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "warning", "--no-access-log"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting uvicorn")?;
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if ureq::get(&url).call().is_ok() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let result = if ready { check_answer(&url).and_then(|()| run_wrk(&url, wrk, "uvicorn", HELLO, child.id())) } else { Err(anyhow!("uvicorn did not start")) };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn check_answer(url: &str) -> Result<()> {
    let v = ureq::get(url).call().map_err(|e| anyhow!("GET {url}: {e}"))?.into_string()?;
    let v: serde_json::Value = serde_json::from_str(&v)?;
    if v != json!({"hello": "world"}) {
        bail!("{url} answered {v}, not the hello-world JSON");
    }
    Ok(())
}

/// A venv holding uvicorn[standard], made once under `target/loadtest/`.
fn uvicorn_venv() -> Result<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/loadtest/uvicorn-venv");
    if venv.join("bin/uvicorn").is_file() {
        return Ok(venv);
    }
    let python = if Path::new("/usr/bin/python3.11").is_file() { PathBuf::from("/usr/bin/python3.11") } else { find_bin("python3")? };
    let status = Command::new(&python).args(["-m", "venv"]).arg(&venv).status()?;
    if !status.success() {
        bail!("{} -m venv {} failed", python.display(), venv.display());
    }
    let status = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "uvicorn[standard]"]).status()?;
    if !status.success() {
        bail!("pip install uvicorn[standard] failed");
    }
    Ok(venv)
}

/// What both servers answer, and the measure their rows share.
const HELLO: &str = "hello JSON";

/// Runs wrk on `url`; the row's note gives the server's (`pid`'s) CPU time per request.
fn run_wrk(url: &str, wrk: &Wrk, target: &str, measure: &str, pid: u32) -> Result<Row> {
    let cpu_before = cpu_seconds(pid);
    let out = Command::new(find_bin("wrk")?)
        .arg(format!("-t{}", wrk.threads))
        .arg(format!("-c{}", wrk.connections))
        .arg(format!("-d{}s", wrk.seconds))
        .arg("--latency")
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let parsed = parse_wrk(&text).ok_or_else(|| anyhow!("could not read wrk's output:\n{text}"))?;
    let cpu = match (cpu_before, cpu_seconds(pid)) {
        (Some(a), Some(b)) if parsed.requests > 0 => format!(
            "; server CPU {:.2} s, {:.1} µs a request",
            b - a,
            (b - a) * 1e6 / parsed.requests as f64
        ),
        _ => String::new(),
    };
    Ok(Row {
        scenario: "request".into(),
        target: target.into(),
        measure: measure.into(),
        rate: Some(parsed.rps),
        unit: "req".into(),
        latency: Latency { count: parsed.requests, p50_ms: parsed.p50_ms, p99_ms: parsed.p99_ms, max_ms: parsed.max_ms },
        errors: parsed.errors,
        note: format!("wrk -t{} -c{} -d{}s{cpu}", wrk.threads, wrk.connections, wrk.seconds),
    })
}

#[derive(Debug, PartialEq)]
struct WrkResult {
    rps: f64,
    requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
}

fn parse_wrk(text: &str) -> Option<WrkResult> {
    let ms = |v: &str| -> Option<f64> {
        let split = v.find(|c: char| c.is_ascii_alphabetic())?;
        let (n, unit) = v.split_at(split);
        let n: f64 = n.parse().ok()?;
        Some(match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 60e3,
            _ => return None,
        })
    };
    let mut r = WrkResult { rps: 0.0, requests: 0, p50_ms: 0.0, p99_ms: 0.0, max_ms: 0.0, errors: 0 };
    let mut saw_rps = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => {
                r.rps = v.parse().ok()?;
                saw_rps = true;
            }
            ["50%", v] => r.p50_ms = ms(v)?,
            ["99%", v] => r.p99_ms = ms(v)?,
            ["Latency", _avg, _stdev, max, ..] => r.max_ms = ms(max)?,
            [n, "requests", "in", ..] => r.requests = n.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                r.errors += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    saw_rps.then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:1/\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.10ms  300.00us   1.20s    90.00%\n    Req/Sec    14.00k     1.00k   16.00k    70.00%\n  Latency Distribution\n     50%  850.00us\n     75%    1.00ms\n     90%    1.50ms\n     99%    3.25ms\n  280000 requests in 10.00s, 40.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  27999.50\nTransfer/sec:      4.00MB\n";
        let r = parse_wrk(text).expect("parsed");
        assert_eq!(r, WrkResult { rps: 27999.5, requests: 280000, p50_ms: 0.85, p99_ms: 3.25, max_ms: 1200.0, errors: 7 });
        assert!(parse_wrk("wrk: connection refused").is_none());
    }
}
