//! Reading the WAL back while the server runs: how a WAL trigger behind the in-memory
//! [`crate::commit_log::CommitLog`] (after a restart, or after falling far behind) gets the rows
//! after its cursor.
//!
//! A [`WalReader`] keeps one read position per shard and hands records over in commit order
//! across shards (each shard's records are in commit order already), from its cursor up to a
//! settled frontier: every commit below the frontier is fully written, so a shard with nothing
//! more to read below it has nothing more to give. It reads one record at a time (`pread`),
//! never a whole segment, and keeps its positions between calls, so a trigger that catches up
//! over many calls reads each record once.
//!
//! Read-only: it never cuts, moves or removes a segment (replay at start-up repairs; retention
//! removes only what every enabled WAL trigger has completed). A record it cannot decode at the
//! end of the newest segment is one still being written, or a torn tail: it waits there. Any
//! other bad record makes it go on with the next segment, with a log line.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::TableBuilder;
use crate::catalog::Catalog;
use crate::commit_log::{Read, TableBatch};
use crate::replay::Rebuilder;
use crate::wal::{decode_record, segment_path, segments, WalEntry, HEADER_BYTES, MAX_RECORD_BYTES};

/// A decoded record waiting its turn, its lines owned.
struct Head {
    commit: u64,
    entries: Vec<WalEntry<'static>>,
}

/// One shard's read position.
struct ShardPos {
    dir: PathBuf,
    /// The segment being read (0: not opened yet), its file, and the offset of the next record.
    seq: u64,
    file: Option<File>,
    off: u64,
    head: Option<Head>,
}

pub struct WalReader {
    root: PathBuf,
    /// The next commit to hand over; records below it are passed over.
    next: u64,
    shards: BTreeMap<PathBuf, ShardPos>,
}

impl WalReader {
    /// A reader of the WAL under `root` (the shard directories), starting at commit `from`.
    pub fn new(root: &Path, from: u64) -> WalReader {
        WalReader { root: root.to_path_buf(), next: from, shards: BTreeMap::new() }
    }

    /// The next commit this reader hands over.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The rows `wants(db, table)` picks from the commits in `[position, to)`, one batch per
    /// table, in commit order, checked against `catalog` as it is now (lines of deleted tables
    /// are dropped). Stops at the first record once `max_rows` are taken (so it can pass it by
    /// one record); `through` says where.
    pub fn read(&mut self, catalog: &Catalog, to: u64, max_rows: usize, wants: impl Fn(&str, &str) -> bool) -> std::io::Result<Read> {
        self.find_shards()?;
        let mut rebuild = Rebuilder::new(catalog);
        let mut builders: HashMap<(u32, u32), TableBuilder> = HashMap::new();
        // First-seen order of tables, so parts come out as they were written.
        let mut order: Vec<(u32, u32)> = Vec::new();
        let mut rows = 0usize;
        loop {
            for pos in self.shards.values_mut() {
                if pos.head.is_none() {
                    fill(pos, self.next)?;
                }
            }
            let lowest = self.shards.values_mut().filter(|p| p.head.as_ref().is_some_and(|h| h.commit < to)).min_by_key(|p| p.head.as_ref().map(|h| h.commit));
            let Some(pos) = lowest else {
                self.next = self.next.max(to);
                break;
            };
            if rows >= max_rows {
                break;
            }
            let Some(head) = pos.head.take() else { break };
            for e in &head.entries {
                rebuild.lines(head.commit, e, |d, g| {
                    if !wants(d.db_name, &d.table.name) {
                        return;
                    }
                    let key = (d.db_id, d.table.id);
                    let b = builders.entry(key).or_insert_with(|| {
                        order.push(key);
                        TableBuilder::new(d.db_id, d.db_name.clone(), d.table.clone())
                    });
                    b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
                    rows += 1;
                });
            }
            self.next = head.commit + 1;
        }
        let last = self.next.saturating_sub(1);
        let mut tables = Vec::with_capacity(order.len());
        for key in order {
            let Some(b) = builders.remove(&key) else { continue };
            let (db_name, table_name) = (b.db_name.clone(), std::sync::Arc::<str>::from(b.table.name.as_str()));
            match b.finish() {
                Ok(batch) => tables.push(TableBatch { db_id: key.0, db_name, table_name, batch, commit: last }),
                Err(e) => tracing::error!(error = %e, "could not rebuild a batch from the WAL for a trigger"),
            }
        }
        Ok(Read { tables, through: self.next })
    }

    fn find_shards(&mut self) -> std::io::Result<()> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for ent in rd {
            let ent = ent?;
            if ent.file_type()?.is_dir() && ent.file_name().to_string_lossy().starts_with("shard-") {
                let dir = ent.path();
                self.shards.entry(dir.clone()).or_insert_with(|| ShardPos { dir, seq: 0, file: None, off: 0, head: None });
            }
        }
        Ok(())
    }
}

/// Reads `pos`'s next record at or above `from` into its head, if one is complete now.
fn fill(pos: &mut ShardPos, from: u64) -> std::io::Result<()> {
    while pos.head.is_none() {
        if pos.file.is_none() {
            let Some(seq) = later_segment(&pos.dir, pos.seq)? else { return Ok(()) };
            match File::open(segment_path(&pos.dir, seq)) {
                Ok(f) => pos.file = Some(f),
                // Removed since the listing: every record in it was completed by everyone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            pos.seq = seq;
            pos.off = 0;
            continue;
        }
        let Some(file) = pos.file.as_ref() else { return Ok(()) };
        match read_record(file, pos.off)? {
            Some(Ok((head, size))) => {
                pos.off += size as u64;
                if head.commit >= from {
                    pos.head = Some(head);
                }
            }
            bad => {
                // Nothing complete here: the end of the segment, a record still being written,
                // or damage. Only a later segment makes it final.
                if later_segment(&pos.dir, pos.seq)?.is_none() {
                    return Ok(());
                }
                if let Some(Err(reason)) = bad {
                    tracing::warn!(segment = %segment_path(&pos.dir, pos.seq).display(), offset = pos.off, %reason,
                        "a WAL record a trigger needs cannot be read; going on with the next segment");
                }
                pos.file = None;
            }
        }
    }
    Ok(())
}

/// Reads the record at `off` of `file`: `None` when no whole record is there (yet), else the
/// record and its size, or why it is bad.
fn read_record(file: &File, off: u64) -> std::io::Result<Option<Result<(Head, usize), String>>> {
    let mut header = [0u8; HEADER_BYTES];
    if !read_full(file, &mut header, off)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > MAX_RECORD_BYTES {
        return Ok(Some(Err(format!("record length {len} is impossible"))));
    }
    let mut bytes = vec![0u8; HEADER_BYTES + len];
    if !read_full(file, &mut bytes, off)? {
        return Ok(None);
    }
    Ok(Some(match decode_record(&bytes) {
        Ok(rec) => {
            let size = rec.size;
            let entries = rec.entries.into_iter().map(WalEntry::into_owned).collect();
            Ok((Head { commit: rec.commit, entries }, size))
        }
        Err(e) => Err(e.to_string()),
    }))
}

/// Fills `buf` from `off`; `false` if the file ends first.
fn read_full(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The first segment of `dir` numbered above `after`.
fn later_segment(dir: &Path, after: u64) -> std::io::Result<Option<u64>> {
    Ok(segments(dir)?.into_iter().find(|&s| s > after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{shard_dir, RecordBuf};
    use crate::write::Precision;
    use arrow::array::{Array, Float64Array};

    fn record(db: u32, commit: u64, lines: &str) -> Vec<u8> {
        let mut r = RecordBuf::new();
        let at = r.begin_entry(db, Precision::Nanosecond, 7);
        for l in lines.lines() {
            r.push_line(l.as_bytes());
        }
        r.end_entry(at);
        r.seal(0, commit)
    }

    fn segment(root: &Path, shard: usize, seq: u64, records: &[Vec<u8>]) -> PathBuf {
        let dir = shard_dir(root, shard);
        std::fs::create_dir_all(&dir).unwrap();
        let p = segment_path(&dir, seq);
        std::fs::write(&p, records.concat()).unwrap();
        p
    }

    /// A catalog with database `db` (id 0) and tables `a` and `b` with a float field `v`.
    fn catalog(dir: &Path) -> Catalog {
        let c = Catalog::open(dir).unwrap();
        crate::write::prepare(&c, "db", b"a v=0 1\nb v=0 1", Precision::Nanosecond, 0, true).unwrap();
        c
    }

    fn values(r: &Read, table: &str) -> Vec<f64> {
        r.tables
            .iter()
            .filter(|t| &*t.table_name == table)
            .flat_map(|t| {
                let c = t.batch.column_by_name("v").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
                (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn records_come_back_in_commit_order_across_shards_from_the_cursor_on() {
        let tmp = tempfile::tempdir().unwrap();
        let cat = catalog(&tmp.path().join("catalog"));
        let root = tmp.path().join("wal");
        // Shard 0 took commits 0, 3, 4; shard 1 took 1, 2 and (a later segment) 5.
        segment(&root, 0, 1, &[record(0, 0, "a v=0 10"), record(0, 3, "a v=3 13"), record(0, 4, "b v=4 14")]);
        segment(&root, 1, 1, &[record(0, 1, "a v=1 11"), record(0, 2, "a v=2 12")]);
        segment(&root, 1, 2, &[record(0, 5, "a v=5 15")]);
        let all = |_: &str, _: &str| true;
        let mut r = WalReader::new(&root, 1);
        // Up to 2 rows: commits 1 and 2, then it stops before 3.
        let first = r.read(&cat, 6, 2, all).unwrap();
        assert_eq!(values(&first, "a"), vec![1.0, 2.0]);
        assert_eq!(first.through, 3);
        // Only up to `to` = 5 (5 is not settled for this reader), only table a.
        let second = r.read(&cat, 5, 100, |_, t| t == "a").unwrap();
        assert_eq!((values(&second, "a"), values(&second, "b")), (vec![3.0], vec![]));
        assert_eq!(second.through, 5, "commit 4 was passed over (not wanted), 5 not reached");
        let third = r.read(&cat, 6, 100, all).unwrap();
        assert_eq!((values(&third, "a"), third.through), (vec![5.0], 6));
        assert_eq!(r.position(), 6);
    }

    #[test]
    fn an_incomplete_record_at_the_end_is_waited_for_and_read_once_it_is_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let cat = catalog(&tmp.path().join("catalog"));
        let root = tmp.path().join("wal");
        let whole = record(0, 1, "a v=1 11");
        let seg = segment(&root, 0, 1, &[record(0, 0, "a v=0 10"), whole[..whole.len() - 3].to_vec()]);
        let mut r = WalReader::new(&root, 0);
        let got = r.read(&cat, 1, 100, |_, _| true).unwrap();
        assert_eq!((values(&got, "a"), got.through), (vec![0.0], 1));
        // Commit 1 is settled now: its bytes are all there.
        std::fs::write(&seg, [record(0, 0, "a v=0 10"), whole].concat()).unwrap();
        let got = r.read(&cat, 2, 100, |_, _| true).unwrap();
        assert_eq!((values(&got, "a"), got.through), (vec![1.0], 2));
    }

    #[test]
    fn damage_followed_by_a_later_segment_is_passed_over() {
        let tmp = tempfile::tempdir().unwrap();
        let cat = catalog(&tmp.path().join("catalog"));
        let root = tmp.path().join("wal");
        let mut bad = record(0, 1, "a v=1 11");
        let n = bad.len();
        bad[n - 2] ^= 0xff;
        segment(&root, 0, 1, &[record(0, 0, "a v=0 10"), bad]);
        segment(&root, 0, 2, &[record(0, 2, "a v=2 12")]);
        let mut r = WalReader::new(&root, 0);
        let got = r.read(&cat, 3, 100, |_, _| true).unwrap();
        assert_eq!((values(&got, "a"), got.through), (vec![0.0, 2.0], 3));
    }

    #[test]
    fn lines_of_a_deleted_table_are_not_handed_over() {
        let tmp = tempfile::tempdir().unwrap();
        let cat = catalog(&tmp.path().join("catalog"));
        let root = tmp.path().join("wal");
        segment(&root, 0, 1, &[record(0, 0, "a v=0 10\nb v=0 10")]);
        cat.update(&[crate::catalog::CatalogOp::DeleteTable { db: "db".into(), table: "b".into() }]).unwrap();
        let got = WalReader::new(&root, 0).read(&cat, 1, 100, |_, _| true).unwrap();
        assert_eq!((values(&got, "a"), values(&got, "b")), (vec![0.0], vec![]));
    }
}
