//! Hostile plugins are contained (DESIGN.md invariant 4): a plugin that tries to end or fork the
//! server, recurses in C, allocates without bound, leaves threads running, spins, deadlocks the
//! cache from a `__del__`, or writes millions of lines in one call gets an exception or a log
//! line, and the server keeps taking writes and queries throughout.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::json;

const PLUGIN: &str = r#"
import os, signal, subprocess, sys, threading, time

def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    what = query_parameters.get("what")
    if what == "sys_exit":
        sys.exit(3)
    if what == "os_exit":
        os._exit(3)
    if what == "posix_exit":
        import posix
        posix._exit(3)
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "kill_group":
        os.kill(0, signal.SIGTERM)
    if what == "killpg":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if what == "abort":
        os.abort()
    if what == "alarm":
        signal.alarm(1)
    if what == "raise_signal":
        signal.raise_signal(signal.SIGTERM)
    if what == "chdir":
        os.chdir("/")
    if what == "fork":
        os.fork()
    if what == "multiprocessing":
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(2) as p:
            return {"n": sum(p.map(abs, [1, 2]))}
    if what == "child":
        # close_fds=False: the child still must not get the server's sockets (all close-on-exec).
        p = subprocess.Popen(["sleep", "30"], close_fds=False)
        return {"pid": p.pid}
    if what == "recursion_limit":
        sys.setrecursionlimit(10**6)
        return {"limit": sys.getrecursionlimit()}
    if what == "deep_c":
        sys.setrecursionlimit(10**6)
        x = []
        for _ in range(10**5):
            x = [x]
        return {"n": len(repr(x))}
    if what == "alloc":
        hoard = []
        while True:
            hoard.append(bytearray(10**6))
    if what == "alloc_small":
        hoard = []
        while True:
            hoard.append([0.5] * 10)
    if what == "thread":
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        return {"ok": 1}
    if what == "spin":
        x = 0
        while True:
            x += 1
    if what == "del_deadlock":
        cache = influxdb3_local.cache
        class Dropper:
            def __del__(self):
                cache.get("other")
                time.sleep(0.01)
        cache.put("k", Dropper())
        cache.put("k", 1)
        return {"ok": 1}
    if what == "segv":
        import ctypes
        ctypes.string_at(0)
    if what == "many_lines":
        n = int(query_parameters.get("n", "1000000"))
        influxdb3_local.write("\n".join(f"big,h=a v={i}i {i}" for i in range(n)))
        return {"ok": n}
    return {"ok": 0}
"#;

fn call(s: &Server, what: &str) -> (u16, String) {
    s.get(&format!("/api/v3/engine/h?what={what}"))
}

fn start() -> Server {
    let s = Server::start(&[]);
    s.add_plugin("h.py", PLUGIN);
    assert_eq!(s.write("d", "cpu v=1 1").0, 204);
    s.create_trigger("d", "h", "h.py", "request:h", None, json!({ "timeout": "5s", "memory_limit": "64MiB" }));
    s
}

/// The server is up and serving writes and queries.
fn still_serving(s: &mut Server, after: &str) {
    assert!(s.is_running(), "the server died after {after}:\n{}", s.log());
    assert_eq!(s.write("d", "cpu v=2 2").0, 204, "a write after {after}");
    assert!(s.count("d", "cpu") >= 1, "a query after {after}");
}

#[test]
fn invariant_4_a_plugin_cannot_end_signal_or_fork_the_server() {
    let mut s = start();
    let refused = [
        ("os_exit", "os._exit is not allowed"),
        ("posix_exit", "os._exit is not allowed"),
        ("kill", "would signal the Weir server itself"),
        ("kill_group", "would signal the Weir server itself"),
        ("killpg", "process group"),
        ("abort", "os.abort is not allowed"),
        ("alarm", "signal.alarm is not allowed"),
        ("raise_signal", "signal.raise_signal is not allowed"),
        ("chdir", "os.chdir is not allowed"),
        ("fork", "os.fork is not allowed"),
        ("multiprocessing", "os.fork is not allowed"),
    ];
    for (what, reason) in refused {
        let (status, body) = call(&s, what);
        assert_eq!(status, 500, "{what}: {body}");
        assert!(body.contains("ProtectedError"), "{what}: {body}");
        still_serving(&mut s, what);
        let logs = s.engine_logs("d");
        assert!(logs.iter().any(|(_, level, text)| level == "ERROR" && text.contains(reason)), "{what}: no log line saying '{reason}'");
    }
    // sys.exit is an exception like any other.
    let (status, body) = call(&s, "sys_exit");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("SystemExit"), "{body}");
    still_serving(&mut s, "sys_exit");
}

#[test]
fn invariant_4_a_child_process_holds_none_of_the_servers_sockets() {
    let mut s = start();
    let (status, body) = call(&s, "child");
    assert_eq!(status, 200, "{body}");
    let pid = serde_json::from_str::<serde_json::Value>(&body).expect("json")["pid"].as_i64().expect("pid");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the child's descriptors")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    // SAFETY: signals the child this test's plugin started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let kept: Vec<&String> = fds.iter().filter(|t| t.starts_with("socket:") || t.contains(".wal") || t.contains("io_uring")).collect();
    assert!(kept.is_empty(), "the child kept the server's sockets or files: {kept:?} (all: {fds:?})");
    still_serving(&mut s, "child");
}

#[test]
fn invariant_4_deep_recursion_and_unbounded_allocation_raise_in_the_plugin() {
    let mut s = start();
    let (status, body) = call(&s, "recursion_limit");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("20000"), "the recursion limit is capped: {body}");
    let (status, body) = call(&s, "deep_c");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("RecursionError"), "{body}");
    still_serving(&mut s, "deep_c");
    for what in ["alloc", "alloc_small"] {
        let (status, body) = call(&s, what);
        assert_eq!(status, 500, "{what}: {body}");
        assert!(body.contains("MemoryError"), "{what}: {body}");
        still_serving(&mut s, what);
        let logs = s.engine_logs("d");
        assert!(
            logs.iter().any(|(_, _, text)| text.contains("passed its memory limit of 67108864 bytes")),
            "{what}: the log says the memory limit stopped it"
        );
    }
    // The memory was given back: the trigger's next call runs normally.
    assert_eq!(call(&s, "none").0, 200);
}

#[test]
fn invariant_4_threads_left_running_spinning_and_cache_deadlocks_do_not_stop_the_server() {
    let mut s = start();
    assert_eq!(call(&s, "thread").0, 200);
    let logs = s.engine_logs("d");
    assert!(logs.iter().any(|(_, level, text)| level == "WARN" && text.contains("left 1 thread(s) running")), "{logs:?}");

    // A spinning call holds one executor until its time limit; writes and queries go on.
    let url = s.url("/api/v3/engine/h?what=spin");
    let spinner = std::thread::spawn(move || {
        let r = ureq::get(&url).set("Authorization", &common::bearer()).timeout(Duration::from_secs(60)).call();
        match r {
            Err(ureq::Error::Status(code, _)) => code,
            Ok(r) => r.status(),
            Err(_) => 0,
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    still_serving(&mut s, "spin (while it runs)");
    assert!(!spinner.is_finished(), "the spinning call was still running while the write and query were served");
    assert_eq!(spinner.join().expect("join"), 504, "stopped at its time limit");

    // A value whose __del__ uses the cache, replaced in the cache: no deadlock.
    let (status, body) = call(&s, "del_deadlock");
    assert_eq!(status, 200, "{body}");
    assert_eq!(call(&s, "none").0, 200);
    still_serving(&mut s, "del_deadlock");
}

#[test]
fn invariant_4_a_million_lines_from_one_call_are_written_in_pieces_beside_other_writes() {
    let mut s = start();
    s.create_trigger("d", "big", "h.py", "request:big", None, json!({ "memory_limit": "1GiB", "timeout": "120s" }));
    let url = s.url("/api/v3/engine/big?what=many_lines&n=1000000");
    let writer = std::thread::spawn(move || {
        ureq::get(&url).set("Authorization", &common::bearer()).timeout(Duration::from_secs(300)).call().map(|r| r.status()).ok()
    });
    // Other writes are served while the call's lines go in.
    for i in 0..20 {
        assert_eq!(s.write("d", &format!("cpu v={i} {}", 100 + i)).0, 204);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(writer.join().expect("join"), Some(200));
    let n = common::wait_for(120, "all million lines", || {
        let n = s.try_query("d", "SELECT count(*) AS n FROM big").and_then(|r| r[0]["n"].as_i64())?;
        (n == 1_000_000).then_some(n)
    });
    assert_eq!(n, 1_000_000);
    still_serving(&mut s, "many_lines");
}

#[test]
fn a_crash_in_c_code_is_logged_with_the_plugins_traceback_and_the_restart_keeps_every_acked_write() {
    let mut s = start();
    for i in 0..100 {
        assert_eq!(s.write("d", &format!("acked v={i} {}", 1000 + i)).0, 204);
    }
    // Not containable in-process (docs/RELIABILITY.md): the process ends, and says why.
    let r = ureq::get(&s.url("/api/v3/engine/h?what=segv")).set("Authorization", &common::bearer()).call();
    assert!(r.is_err(), "the connection ends with the process");
    common::wait_for(20, "the server to exit", || (!s.is_running()).then_some(()));
    let log = s.log();
    assert!(log.contains("Fatal Python error: Segmentation fault"), "{log}");
    assert!(log.contains("h.py"), "the traceback names the plugin: {log}");
    let dir = s.data_dir.parent().expect("parent").to_path_buf();
    let s = Server::start_in(&dir, &[]);
    assert_eq!(s.count("d", "acked"), 100, "every acked write is back after the restart");
}
