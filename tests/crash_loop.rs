//! The crash loop (issue 15's evidence; DESIGN.md invariant 1 under fire): writers on several
//! connections, `kill -9` at a random moment (mid-write, mid-flush, mid-persist: the buffer is
//! persisted every few hundred kilobytes), restart, and check that every write ever acked is
//! there exactly once. `WEIR_CRASH_CYCLES` sets the cycles (3 by default, as CI runs it);
//! `scripts/crash-loop.sh N` runs N and prints the tally docs/RELIABILITY.md records.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Rng, Server};

const WRITERS: u64 = 4;
const BATCH: u64 = 200;


/// Writes batches of fresh points until the server stops answering; returns the ids acked.
fn writer(s_url: String, cycle: u64, w: u64, base_ns: u64, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut batch_no = 0u64;
    while !stop.load(Ordering::Acquire) {
        let first = cycle * 1_000_000_000 + w * 10_000_000 + batch_no * BATCH;
        let body: String = (first..first + BATCH).map(|id| format!("crash,writer=w{w} id={id}i {}\n", base_ns + id)).collect();
        let r = ureq::post(&format!("{s_url}/api/v3/write_lp?db=loop"))
            .set("Authorization", &common::bearer())
            .timeout(Duration::from_secs(10))
            .send_string(&body);
        match r {
            Ok(resp) if resp.status() == 204 => acked.extend(first..first + BATCH),
            // Refused (the buffer cap, say): not acked, try the next batch.
            Err(ureq::Error::Status(_, _)) => {}
            // The server is gone: this cycle's writing is over.
            _ => break,
        }
        batch_no += 1;
        // Fresh points at a steady pace rather than flat out: the loop is about crashes, and a
        // debug build's JSON answers for the check grow with every row.
        std::thread::sleep(Duration::from_millis(10));
    }
    acked
}

#[test]
fn crash_loop_every_acked_write_survives_kill_9_exactly_once() {
    let cycles: u64 = std::env::var("WEIR_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64 | 1;
    eprintln!("crash loop: {cycles} cycles, seed {seed}");
    let mut rng = Rng(seed);
    // Recent times, so persisted files fall in open windows and the retention keeps them.
    let base_ns = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64 - 3_600_000_000_000;
    // Kept if the test fails, for a look at what the server left; removed when it passes.
    let dir = tempfile::Builder::new().prefix("weir-crash-loop-").tempdir().expect("tempdir").keep();
    eprintln!("crash loop: data in {}", dir.display());
    let flags = ["--persist-threshold-bytes", "400000", "--gen1-duration", "1m"];
    // Ids acked per cycle, and the rows each cycle had once checked.
    let mut acked: Vec<HashSet<u64>> = Vec::new();
    let mut stored: Vec<u64> = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut s = Server::start_in(&dir, &flags);
        check(&s, &acked, &mut stored);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (url, stop) = (s.base.clone(), stop.clone());
                std::thread::spawn(move || writer(url, cycle, w, base_ns, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200 + rng.next() % 1800));
        s.kill9();
        stop.store(true, Ordering::Release);
        let mut this = HashSet::new();
        for w in writers {
            this.extend(w.join().expect("writer"));
        }
        acked.push(this);
    }
    let s = Server::start_in(&dir, &flags);
    check(&s, &acked, &mut stored);
    eprintln!(
        "crash loop: {cycles} cycles of kill -9 in {:?}: {} rows acked, {} stored, 0 lost, 0 duplicated",
        started.elapsed(),
        acked.iter().map(|a| a.len()).sum::<usize>(),
        stored.iter().sum::<u64>()
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a restart: no point is stored twice; every id the last cycle acked is stored; and
/// each earlier cycle still has the rows it had when it was checked (nothing writes old ids, so
/// the same count is the same rows).
fn check(s: &Server, acked: &[HashSet<u64>], stored: &mut Vec<u64>) {
    let Some(last) = acked.last() else { return };
    let cycle = acked.len() as u64 - 1;
    let rows = s.query("loop", "SELECT count(*) AS n, count(DISTINCT id) AS d FROM crash");
    let (n, d) = (rows[0]["n"].as_u64().unwrap_or(0), rows[0]["d"].as_u64().unwrap_or(0));
    assert_eq!(n, d, "after cycle {cycle}: {} rows are duplicates", n - d);
    let sql = format!("SELECT id FROM crash WHERE id >= {} AND id < {}", cycle * 1_000_000_000, (cycle + 1) * 1_000_000_000);
    let ids: HashSet<u64> = s.query("loop", &sql).iter().map(|r| r["id"].as_u64().expect("id")).collect();
    let lost = last.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(lost, 0, "cycle {cycle}: {lost} acked rows lost (of {})", last.len());
    stored.push(ids.len() as u64);
    let per_cycle = s.query("loop", "SELECT id / 1000000000 AS c, count(*) AS n FROM crash GROUP BY c ORDER BY c");
    for r in per_cycle {
        let (c, n) = (r["c"].as_u64().expect("c") as usize, r["n"].as_u64().expect("n"));
        if let Some(&had) = stored.get(c) {
            assert_eq!(n, had, "cycle {c} had {had} rows when checked, {n} now");
        }
    }
}
