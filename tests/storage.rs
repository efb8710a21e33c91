//! Persistence to Parquet, bounded memory and WAL safety, through the real binary
//! (DESIGN.md invariants 7, 8 and 10; issue "Storage").

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{send, start_fails, test_python, wait_for, Server};

/// Every file under `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The log without terminal colour codes.
fn strip_ansi(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parquet_files(s: &Server, db: &str) -> Vec<serde_json::Value> {
    s.try_query(db, "SELECT table_name, path, row_count, min_time, max_time FROM system.parquet_files").unwrap_or_default()
}

/// Waits until `db` has at least `n` Parquet files listed.
fn wait_files(s: &Server, db: &str, n: usize) -> Vec<serde_json::Value> {
    wait_for(30, "Parquet files to be persisted", || Some(parquet_files(s, db)).filter(|f| f.len() >= n))
}

fn lines(host: &str, from: i64, n: i64) -> String {
    (from..from + n).map(|i| format!("cpu,host={host} usage={i}.5,n={i}i {}\n", 1_700_000_000 + i)).collect()
}

#[test]
fn rows_are_persisted_to_parquet_and_queries_cover_files_and_buffer() {
    let s = Server::start(&["--gen1-duration", "1s"]);
    assert_eq!(s.write("p", &lines("a", 0, 500)).0, 204);
    assert_eq!(s.write("p", &lines("b", 0, 500)).0, 204);
    let listed = wait_files(&s, "p", 1);
    assert_eq!(listed.iter().map(|f| f["row_count"].as_i64().unwrap()).sum::<i64>(), 1000);
    assert_eq!(listed[0]["table_name"], "cpu");
    assert_eq!(listed[0]["min_time"].as_i64().unwrap(), 1_700_000_000 * 1_000_000_000);
    // The files are where the listing says, in InfluxDB 3's layout.
    let on_disk = files(&s.data_dir, ".parquet");
    assert!(!on_disk.is_empty());
    let rel = on_disk[0].strip_prefix(&s.data_dir).unwrap().to_string_lossy().to_string();
    assert!(rel.starts_with("weir/dbs/p-0/cpu-0/2023-11-14/"), "{rel}");
    // More rows, still buffered: a query sees both sides.
    assert_eq!(s.write("p", &lines("c", 0, 100)).0, 204);
    assert_eq!(s.count("p", "cpu"), 1100);
    let rows = s.query("p", "SELECT host, sum(n) AS n FROM cpu GROUP BY host ORDER BY host");
    let sums: Vec<i64> = rows.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    assert_eq!(sums, vec![124_750, 124_750, 4_950]);
    // A time predicate prunes, and still answers right over files and buffer.
    let rows = s.query("p", "SELECT count(*) AS n FROM cpu WHERE time >= '2023-11-14T22:13:20Z' AND time < '2023-11-14T22:13:30Z'");
    assert_eq!(rows[0]["n"], 30);
    // Every format answers over files too.
    let (status, csv) = s.get("/api/v3/query_sql?db=p&q=SELECT%20host,n%20FROM%20cpu%20WHERE%20n%3D499%20ORDER%20BY%20host&format=csv");
    assert_eq!(status, 200);
    assert_eq!(csv.trim(), "host,n\na,499\nb,499");
}

#[test]
fn restart_replays_only_the_wal_tail_not_yet_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--gen1-duration", "1s", "--shards", "2"]);
    for h in 0..10 {
        assert_eq!(s.write("r", &lines(&format!("h{h}"), 0, 1000)).0, 204);
    }
    wait_files(&s, "r", 1);
    wait_for(30, "the buffer to be released", || {
        let listed = parquet_files(&s, "r");
        (listed.iter().map(|f| f["row_count"].as_i64().unwrap()).sum::<i64>() == 10_000).then_some(())
    });
    s.kill9();
    let s = Server::start_in(dir.path(), &["--gen1-duration", "1h"]);
    let log = strip_ansi(&s.log());
    let replayed = log.lines().find(|l| l.contains("WAL replayed")).expect("a replay line");
    assert!(replayed.contains("entries=0"), "every record is persisted, none replayed: {replayed}");
    assert!(!replayed.contains("skipped_persisted=0"), "{replayed}");
    assert_eq!(s.count("r", "cpu"), 10_000);
    // The segments that held them are gone: what is left of the WAL holds no record.
    let wal: u64 = files(&s.data_dir.join("weir").join("wal"), ".wal").iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(wal, 0, "persisted WAL segments are removed");
}

#[test]
fn invariant_7_the_same_point_written_twice_is_one_row() {
    let s = Server::start(&["--gen1-duration", "1s"]);
    // One body, so both lines land in the same persist.
    let body = "m,h=a f=1,g=2 100\nm,h=b f=5 100\nm,h=a f=3 100\nm,h=a f=4 101";
    assert_eq!(s.write("d", body).0, 204);
    wait_files(&s, "d", 1);
    let rows = s.query("d", "SELECT h, f, g, time FROM m ORDER BY h, time");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0]["f"].as_f64(), rows[0]["g"].as_f64()), (Some(3.0), Some(2.0)), "fields merge, the last write winning");
    assert_eq!(rows[1]["f"].as_f64(), Some(4.0));
    assert_eq!(rows[2]["h"], "b");
}

#[test]
fn invariant_7_a_point_written_again_in_the_buffer_is_one_row() {
    // Persistence never runs: both writes stay buffered, in separate batches.
    let s = Server::start(&["--gen1-duration", "1d"]);
    assert_eq!(s.write("d", "m,h=a f=1,g=2 100\nm,h=a f=1 200").0, 204);
    assert_eq!(s.write("d", "m,h=a f=3 100\nm,h=b f=9 100").0, 204);
    let rows = s.query("d", "SELECT h, f, g, time FROM m ORDER BY h, time");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0]["f"].as_f64(), rows[0]["g"].as_f64()), (Some(3.0), Some(2.0)));
    assert_eq!(s.query("d", "SELECT count(*) AS n, sum(f) AS s FROM m")[0]["n"], 3);
    // A predicate on a field sees the merged value, not the one it replaced.
    assert_eq!(s.query("d", "SELECT count(*) AS n FROM m WHERE f = 1")[0]["n"], 1);
}

/// Rows of table `m` in `db`, as (h, f, time in seconds) sorted.
fn points(s: &Server, db: &str) -> Vec<(String, f64, i64)> {
    s.query(db, "SELECT h, f, CAST(time AS BIGINT) / 1000000000 AS t FROM m ORDER BY h, time")
        .iter()
        .map(|r| (r["h"].as_str().expect("test setup").to_string(), r["f"].as_f64().expect("test setup"), r["t"].as_i64().expect("test setup")))
        .collect()
}

#[test]
fn invariant_7_a_point_written_again_across_persists_and_restarts_is_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--gen1-duration", "1s", "--shards", "2"]);
    // A client retrying a whole batch, and a correction of one point, each after a persist.
    let batch: String = (0..100).map(|i| format!("m,h=h{} f={i} {}\n", i % 10, 1_000 + i)).collect();
    assert_eq!(s.write("x", &batch).0, 204);
    wait_files(&s, "x", 1);
    assert_eq!(s.write("x", &batch).0, 204);
    wait_files(&s, "x", 2);
    assert_eq!(s.write("x", "m,h=h3 f=-1 1003").0, 204);
    let want: Vec<(String, f64, i64)> = {
        let mut v: Vec<_> = (0..100).map(|i| (format!("h{}", i % 10), if i == 3 { -1.0 } else { i as f64 }, 1_000 + i)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
        v
    };
    // Once with the correction buffered, once with it persisted as a third file.
    assert_eq!(points(&s, "x"), want);
    wait_files(&s, "x", 3);
    assert_eq!(points(&s, "x"), want);
    assert_eq!(s.query("x", "SELECT count(*) AS n FROM m")[0]["n"], 100);
    // After a restart the overlap is still known (from the file index), and a write after it
    // that repeats a persisted point still merges.
    s.kill9();
    let s = Server::start_in(dir.path(), &["--gen1-duration", "1h", "--shards", "2"]);
    assert_eq!(points(&s, "x"), want);
    assert_eq!(s.write("x", "m,h=h0 f=5.5 1090").0, 204);
    let got = points(&s, "x");
    assert_eq!(got.len(), 100);
    assert!(got.contains(&("h0".into(), 5.5, 1090)), "{got:?}");
}

#[test]
fn invariant_7_the_last_write_of_a_point_wins_after_kill_9_whichever_shards_took_the_writes() {
    // Nothing is persisted: every write is in the WAL tail, spread over two shards by the
    // connections they came on (a new connection per write), and replay must put them back in
    // commit order.
    let dir = tempfile::tempdir().unwrap();
    let args = ["--shards", "2", "--gen1-duration", "1d", "--persist-threshold-bytes", "1000000000000"];
    let mut s = Server::start_in(dir.path(), &args);
    // Each point's last write lands on either shard by chance, so eight points make a replay
    // in shard order (not commit order) fail all but once in 2^8 runs.
    for p in 0..8 {
        for i in 1..=6 {
            assert_eq!(s.write("k", &format!("m,h=p{p} f={i} 1000")).0, 204);
        }
    }
    let before = points(&s, "k");
    assert_eq!(before, (0..8).map(|p| (format!("p{p}"), 6.0, 1000)).collect::<Vec<_>>());
    s.kill9();
    let s = Server::start_in(dir.path(), &args);
    assert_eq!(points(&s, "k"), before);
}

#[test]
fn invariant_10_writes_get_503_with_retry_after_at_the_buffer_cap() {
    // Persistence never runs here (huge threshold, day-long windows): the cap must hold alone.
    let s = Server::start(&["--max-buffer-bytes", "300000", "--persist-threshold-bytes", "1000000000000", "--gen1-duration", "1d"]);
    let mut acked = 0i64;
    let refused = (0..400).find_map(|i| {
        let body = lines(&format!("h{i}"), 0, 50);
        let r = ureq::post(&s.url("/api/v3/write_lp?db=cap")).set("Authorization", &common::bearer()).send_string(&body);
        match r {
            Ok(r) if r.status() == 204 => {
                acked += 50;
                None
            }
            Err(ureq::Error::Status(503, r)) => Some((r.header("retry-after").map(str::to_string), r.into_string().unwrap())),
            other => panic!("unexpected answer: {other:?}"),
        }
    });
    let (retry_after, body) = refused.expect("a write is refused once the buffer is at its cap");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(err["error"].as_str().unwrap().contains("--max-buffer-bytes"), "{body}");
    // Nothing acked was dropped, and queries still run.
    assert!(acked > 0);
    assert_eq!(s.count("cap", "cpu"), acked);
}

#[test]
fn invariant_10_writes_resume_once_persistence_catches_up() {
    let s = Server::start(&["--max-buffer-bytes", "2000000", "--persist-threshold-bytes", "500000", "--gen1-duration", "1d"]);
    let mut acked = 0i64;
    let mut refused = 0;
    let mut i = 0;
    // Write well past the cap: persistence by size keeps making room.
    while acked < 40_000 {
        let r = ureq::post(&s.url("/api/v3/write_lp?db=cu")).set("Authorization", &common::bearer()).send_string(&lines(&format!("h{i}"), 0, 500));
        match r {
            Ok(_) => acked += 500,
            Err(ureq::Error::Status(503, _)) => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => panic!("{e}"),
        }
        i += 1;
        assert!(refused < 2000, "persistence never caught up");
    }
    assert!(!parquet_files(&s, "cu").is_empty());
    assert_eq!(s.count("cu", "cpu"), acked);
}

#[test]
fn persisted_files_are_plain_parquet_that_pyarrow_reads_as_weir_answers() {
    let s = Server::start(&["--gen1-duration", "1s"]);
    let body = "cpu,host=a,region=eu usage=0.5,n=1i,ok=true,note=\"x y\",u=7u 1700000000000000000\n\
                cpu,host=b usage=1.5,n=2i 1700000000000000001\n";
    assert_eq!(s.write("pa", body).0, 204);
    let listed = wait_files(&s, "pa", 1);
    let path = s.data_dir.join(listed[0]["path"].as_str().unwrap());
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
types = {f.name: str(f.type) for f in t.schema}
times = [v.value for v in t.column("time")]
rows = t.drop_columns(["time"]).to_pylist()
assert times == sorted(times), times
print(json.dumps({"types": types, "rows": rows}, default=str))
"#;
    let out = std::process::Command::new(test_python()).arg("-c").arg(script).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["types"]["host"], "dictionary<values=string, indices=int32, ordered=0>");
    assert_eq!(got["types"]["time"], "timestamp[ns]");
    assert_eq!(got["types"]["usage"], "double");
    assert_eq!(got["types"]["n"], "int64");
    assert_eq!(got["types"]["u"], "uint64");
    assert_eq!(got["types"]["ok"], "bool");
    let ours = s.query("pa", "SELECT host, region, usage, n, ok, note, u FROM cpu ORDER BY host");
    let theirs = got["rows"].as_array().unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (a, b) in theirs.iter().zip(&ours) {
        for col in ["host", "region", "usage", "n", "ok", "note", "u"] {
            let b = if b.get(col).is_none() { &serde_json::Value::Null } else { &b[col] };
            assert_eq!(&a[col], b, "column {col}");
        }
    }
}

#[test]
fn a_damaged_older_wal_segment_stops_the_start_until_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--shards", "1", "--gen1-duration", "1d"]);
    assert_eq!(s.write("c", "m v=1 1\nm v=2 2").0, 204);
    s.kill9();
    let mut s = Server::start_in(dir.path(), &["--shards", "1", "--gen1-duration", "1d"]);
    assert_eq!(s.write("c", "m v=3 3").0, 204);
    s.kill9();
    let segs = files(&s.data_dir.join("weir").join("wal"), ".wal");
    assert_eq!(segs.len(), 2, "{segs:?}");
    // A flipped byte in the first record of the older segment: damage, not a torn tail.
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes[20] ^= 0x10;
    std::fs::write(&segs[0], &bytes).unwrap();
    let err = start_fails(dir.path(), &["--gen1-duration", "1d"]);
    assert!(err.contains("damaged") && err.contains("--wal-skip-corrupt"), "{err}");
    let moved = files(&s.data_dir.join("weir").join("wal"), ".wal.corrupt");
    assert_eq!(std::fs::read(&moved[0]).unwrap(), bytes, "the damaged segment is kept whole, aside");
    let s = Server::start_in(dir.path(), &["--wal-skip-corrupt", "--gen1-duration", "1d"]);
    assert_eq!(s.count("c", "m"), 1, "the undamaged segment's write is back");
}

#[test]
fn deleted_rows_stay_deleted_across_a_persist() {
    let s = Server::start(&["--gen1-duration", "1s"]);
    assert_eq!(s.write("g", "t f=1 1").0, 204);
    assert_eq!(send(ureq::delete(&s.url("/api/v3/configure/database?db=g")), None).0, 200);
    assert_eq!(s.write("g2", "t f=1 1").0, 204);
    wait_files(&s, "g2", 1);
    // The deleted database's rows were never written out.
    assert!(files(&s.data_dir, ".parquet").iter().all(|p| !p.to_string_lossy().contains("/g-")));
}

#[test]
fn invariant_8_a_deleted_table_stays_deleted_and_a_new_one_of_its_name_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &["--gen1-duration", "1d"]);
    assert_eq!(s.write("del", "old f=1 1\nold f=2 2\nkeep f=1 1").0, 204);
    let del = |s: &Server, t: &str| send(ureq::delete(&s.url(&format!("/api/v3/configure/table?db=del&table={t}"))), None).0;
    assert_eq!(del(&s, "old"), 200);
    s.kill9();
    // Its rows are still in the WAL; replay must not bring the table back.
    let mut s = Server::start_in(dir.path(), &["--gen1-duration", "1d"]);
    assert!(s.try_query("del", "SELECT * FROM old").is_none(), "the deleted table came back");
    assert_eq!(s.count("del", "keep"), 1);
    // Made again under the same name, it starts empty, and stays so across a restart.
    assert_eq!(s.write("del", "old f=9 9").0, 204);
    assert_eq!(s.count("del", "old"), 1);
    s.kill9();
    let s = Server::start_in(dir.path(), &["--gen1-duration", "1d"]);
    let rows = s.query("del", "SELECT f FROM old");
    assert_eq!(rows.len(), 1, "rows of the deleted table leaked into the new one: {rows:?}");
    assert_eq!(rows[0]["f"].as_f64(), Some(9.0));
}

#[test]
fn a_deleted_tables_and_databases_parquet_files_are_removed() {
    let s = Server::start(&["--gen1-duration", "1s"]);
    assert_eq!(s.write("fd", "gone f=1 1\nkept f=1 1").0, 204);
    assert_eq!(s.write("fd2", "t f=1 1").0, 204);
    wait_files(&s, "fd", 2);
    wait_files(&s, "fd2", 1);
    let on_disk = |part: &str| files(&s.data_dir, ".parquet").iter().filter(|p| p.to_string_lossy().contains(part)).count();
    assert_eq!(on_disk("/gone-"), 1);
    assert_eq!(send(ureq::delete(&s.url("/api/v3/configure/table?db=fd&table=gone")), None).0, 200);
    assert_eq!(send(ureq::delete(&s.url("/api/v3/configure/database?db=fd2")), None).0, 200);
    wait_for(10, "the deleted data's files to be removed", || (on_disk("/gone-") == 0 && on_disk("/fd2-") == 0).then_some(()));
    assert_eq!(on_disk("/kept-"), 1, "only the deleted table's files go");
    let listed: Vec<String> = parquet_files(&s, "fd").iter().map(|f| f["table_name"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, vec!["kept"]);
}

/// Parquet files the newest index version lists, and those on disk.
fn indexed_and_on_disk(data: &Path) -> (usize, usize) {
    let on_disk = files(data, ".parquet").len();
    let index = files(&data.join("weir").join("index"), ".json");
    let listed = index.last().map_or(0, |p| {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).expect("test setup")).expect("test setup");
        v["files"].as_array().map_or(0, Vec::len)
    });
    (listed, on_disk)
}

#[test]
fn kill_9_during_persists_loses_and_doubles_no_acked_row() {
    // A small threshold keeps the persister busy right after each burst of writes; the kills
    // land at growing delays after the last ack, so some fall inside a persist (files written,
    // index not yet; index saved, WAL not yet removed) on any machine speed.
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--gen1-duration", "1d", "--persist-threshold-bytes", "1048576", "--shards", "2"];
    let mut acked = 0i64;
    let mut interrupted = 0;
    for (cycle, delay_ms) in [0u64, 30, 100, 250, 600].into_iter().enumerate() {
        let mut s = Server::start_in(dir.path(), &flags);
        if acked > 0 {
            assert_eq!(s.count("kp", "cpu"), acked, "cycle {cycle}: rows after the restart");
        }
        for req in 0..6 {
            let from = acked + req * 5_000;
            assert_eq!(s.write("kp", &lines(&format!("h{cycle}"), from, 5_000)).0, 204);
        }
        acked += 30_000;
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.kill9();
        let (listed, on_disk) = indexed_and_on_disk(&s.data_dir);
        if on_disk > listed {
            interrupted += 1;
        }
    }
    // As a persist dying after its file and before its index would leave it (the same data
    // persisted again after a restart may land under another name).
    let stray = dir.path().join("data/weir/dbs/kp-0/cpu-0/2023-11-14/22-13/9999999999.parquet");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"PAR1 not really").unwrap();
    let s = Server::start_in(dir.path(), &flags);
    let rows = s.query("kp", "SELECT count(*) AS n, count(DISTINCT time) AS t, sum(n) AS total FROM cpu");
    assert_eq!(rows[0]["n"], acked);
    assert_eq!(rows[0]["t"], acked, "a point appears twice");
    assert_eq!(rows[0]["total"], acked * (acked - 1) / 2, "a value is wrong");
    eprintln!("kills that left files not yet indexed: {interrupted} of 5");
    // Files an interrupted persist left behind are swept at start.
    wait_for(30, "unlisted Parquet files to be removed", || {
        let (listed, on_disk) = indexed_and_on_disk(&s.data_dir);
        (listed == on_disk && !stray.exists()).then_some(())
    });
}
