//! WAL replay: reads every shard's segments back in commit order.
//!
//! Each shard's records are in commit order, but one commit sequence spans all shards, so a
//! point rewritten on another shard can sit in an earlier-numbered shard directory. Replay
//! therefore holds one cursor per shard (one segment's bytes at a time) and always hands over
//! the record with the lowest commit next: a k-way merge, so the rebuilt buffer sees writes in
//! the order they were acknowledged and a later write of a point still wins after a restart.
//!
//! Per segment it keeps the repair rules of [`crate::wal`]: a torn tail on a shard's newest
//! segment is cut; any other damage moves the segment aside and fails (or, asked to, goes on).
//! It never writes records, and only removes segments that hold nothing left to replay.

use std::path::{Path, PathBuf};

use crate::wal::{decode_record, segment_path, segments, WalEntry, MAGIC, MAGIC_V1, MAGIC_V2, HEADER_BYTES};

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub segments: usize,
    pub records: usize,
    pub entries: usize,
    /// Records skipped because persistence already covers them (commit below `from_commit`).
    pub skipped_records: usize,
    /// Segments removed because every record in them was below `from_commit` (and `keep_from`).
    pub removed_segments: usize,
    /// Newest segments cut at a torn tail, with the offset and reason.
    pub truncated: Vec<(PathBuf, u64, String)>,
    /// Damaged segments moved aside (only when asked to skip them), with the offset and reason.
    pub quarantined: Vec<(PathBuf, u64, String)>,
    /// Highest commit number of any record read, skipped ones included.
    pub max_commit: Option<u64>,
    /// Every segment kept, with the highest commit in it (`None`: no valid record).
    pub kept: Vec<(PathBuf, Option<u64>)>,
}

/// How replay treats what it reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayOptions {
    /// Records with a lower commit number are already persisted: skipped, not handed over.
    pub from_commit: u64,
    /// WAL triggers still need the records at or above this: segments holding any are kept,
    /// even if persisted (`None`: no trigger holds anything).
    pub keep_from: Option<u64>,
    /// Move damaged segments aside and go on, instead of failing.
    pub skip_corrupt: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("WAL I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "WAL segment {} is damaged at byte {offset} ({reason}), and it is not a torn tail; it was \
         moved aside to {}. Start with --wal-skip-corrupt to go on without the records after the damage",
        path.display(), moved_to.display()
    )]
    Corrupt { path: PathBuf, moved_to: PathBuf, offset: u64, reason: String },
}

/// Replays every segment under `root` (all shard directories), calling `f(epoch, commit,
/// entry)` for each entry of a record at or above `opts.from_commit`, records in ascending
/// commit order across shards. Cuts a torn tail off a shard's newest segment; any other damage
/// is an error (or, with `skip_corrupt`, a quarantined segment).
pub fn replay(
    root: &Path,
    opts: ReplayOptions,
    mut f: impl FnMut(u64, u64, &WalEntry<'_>),
) -> Result<ReplayStats, ReplayError> {
    let mut stats = ReplayStats::default();
    let mut dirs = Vec::new();
    match std::fs::read_dir(root) {
        Ok(rd) => {
            for ent in rd {
                let ent = ent?;
                if ent.file_type()?.is_dir() && ent.file_name().to_string_lossy().starts_with("shard-") {
                    dirs.push(ent.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stats),
        Err(e) => return Err(e.into()),
    }
    dirs.sort();
    let mut cursors = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let mut c = ShardCursor::open(dir)?;
        c.advance(opts, &mut stats)?;
        cursors.push(c);
    }
    // Few shards (one per core): a linear scan for the lowest head beats a heap.
    while let Some(i) = cursors
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.head.as_ref().map(|h| (h.commit, i)))
        .min()
        .map(|(_, i)| i)
    {
        if let Some(head) = cursors[i].head.take() {
            for e in &head.entries {
                stats.entries += 1;
                f(head.epoch, head.commit, e);
            }
        }
        cursors[i].advance(opts, &mut stats)?;
    }
    Ok(stats)
}

/// A decoded record waiting its turn, its lines owned so the segment can move on.
struct Head {
    epoch: u64,
    commit: u64,
    entries: Vec<WalEntry<'static>>,
}

/// The segment a cursor is reading.
struct Segment {
    seq: u64,
    path: PathBuf,
    bytes: Vec<u8>,
    off: usize,
    max_commit: Option<u64>,
    handed: usize,
    /// A torn tail was cut off: the segment stays, whatever it holds.
    cut: bool,
}

/// One shard's read position: the segments left, the one open, and its next record.
struct ShardCursor {
    dir: PathBuf,
    seqs: std::vec::IntoIter<u64>,
    /// The newest segment that holds anything: a later run may have opened empty ones after
    /// it, and a torn tail can only be in the last one written to.
    newest: Option<u64>,
    seg: Option<Segment>,
    head: Option<Head>,
}

impl ShardCursor {
    fn open(dir: PathBuf) -> Result<ShardCursor, ReplayError> {
        let seqs = segments(&dir)?;
        let newest = seqs
            .iter()
            .rev()
            .find(|&&q| std::fs::metadata(segment_path(&dir, q)).is_ok_and(|m| m.len() > 0))
            .copied();
        Ok(ShardCursor { dir, seqs: seqs.into_iter(), newest, seg: None, head: None })
    }

    /// Moves to the next record at or above `from_commit` (left in `head`; `None` once the
    /// shard is done), finishing and repairing segments on the way.
    fn advance(&mut self, opts: ReplayOptions, stats: &mut ReplayStats) -> Result<(), ReplayError> {
        while self.head.is_none() {
            let Some(seg) = self.seg.as_mut() else {
                let Some(seq) = self.seqs.next() else { return Ok(()) };
                let path = segment_path(&self.dir, seq);
                let bytes = std::fs::read(&path)?;
                if bytes.is_empty() {
                    // A segment opened by a run that then wrote nothing: no reason to keep it.
                    std::fs::remove_file(&path)?;
                    continue;
                }
                stats.segments += 1;
                self.seg = Some(Segment { seq, path, bytes, off: 0, max_commit: None, handed: 0, cut: false });
                continue;
            };
            if seg.off >= seg.bytes.len() {
                finish(seg, opts, stats)?;
                self.seg = None;
                continue;
            }
            let decoded = decode_record(&seg.bytes[seg.off..]).map(|rec| {
                let entries: Vec<WalEntry<'static>> = rec.entries.into_iter().map(WalEntry::into_owned).collect();
                (Head { epoch: rec.epoch, commit: rec.commit, entries }, rec.size)
            });
            match decoded {
                Ok((head, size)) => {
                    stats.records += 1;
                    // `None` orders below every `Some`.
                    seg.max_commit = seg.max_commit.max(Some(head.commit));
                    seg.off += size;
                    if head.commit < opts.from_commit {
                        stats.skipped_records += 1;
                    } else {
                        seg.handed += 1;
                        self.head = Some(head);
                    }
                }
                Err(err) => {
                    let off = seg.off;
                    if Some(seg.seq) == self.newest && next_valid_record(&seg.bytes, off).is_none() {
                        tracing::warn!(
                            segment = %seg.path.display(),
                            offset = off,
                            error = %err,
                            "WAL segment ends in a torn record (a crash mid-write); cutting it"
                        );
                        let file = std::fs::OpenOptions::new().write(true).open(&seg.path)?;
                        file.set_len(off as u64)?;
                        file.sync_all()?;
                        stats.truncated.push((seg.path.clone(), off as u64, err.to_string()));
                        seg.bytes.truncate(off);
                        seg.cut = true;
                        continue;
                    }
                    let path = seg.path.clone();
                    let moved_to = path.with_extension("wal.corrupt");
                    std::fs::rename(&path, &moved_to)?;
                    std::fs::File::open(&self.dir)?.sync_all()?;
                    tracing::error!(
                        segment = %path.display(),
                        moved_to = %moved_to.display(),
                        offset = off,
                        error = %err,
                        "WAL SEGMENT IS DAMAGED (not a torn tail); moved aside for inspection"
                    );
                    stats.max_commit = stats.max_commit.max(seg.max_commit);
                    self.seg = None;
                    if !opts.skip_corrupt {
                        return Err(ReplayError::Corrupt { path, moved_to, offset: off as u64, reason: err.to_string() });
                    }
                    stats.quarantined.push((moved_to, off as u64, err.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Books a fully read segment: removed if everything in it is persisted already and no WAL
/// trigger needs it (the removal the server did not get to), otherwise kept, with its highest
/// commit.
fn finish(seg: &Segment, opts: ReplayOptions, stats: &mut ReplayStats) -> Result<(), ReplayError> {
    stats.max_commit = stats.max_commit.max(seg.max_commit);
    let needed = opts.keep_from.is_some_and(|k| seg.max_commit.is_some_and(|m| m >= k));
    if seg.handed == 0 && seg.max_commit.is_some() && !seg.cut && !needed {
        std::fs::remove_file(&seg.path)?;
        stats.removed_segments += 1;
    } else {
        stats.kept.push((seg.path.clone(), seg.max_commit));
    }
    Ok(())
}

/// The offset of the first decodable record after `off`, if any: a bad record with a good one
/// after it is damage, not a torn tail.
fn next_valid_record(bytes: &[u8], off: usize) -> Option<usize> {
    let magics = [MAGIC, MAGIC_V2, MAGIC_V1].map(u32::to_le_bytes);
    let mut at = off + 1;
    while at + HEADER_BYTES <= bytes.len() {
        let rel = memchr::memchr(b'W', &bytes[at..])?;
        at += rel;
        if bytes.len() >= at + 4 && magics.iter().any(|m| bytes[at..at + 4] == m[..]) && decode_record(&bytes[at..]).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

