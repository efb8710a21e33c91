//! The write-ahead log: record format and segment files, and the rules replay follows
//! ([`crate::wal_replay`] reads the shards back, in commit order, and repairs torn tails).
//!
//! What it keeps durable: every acknowledged write, as the line-protocol text of its accepted
//! lines plus what is needed to read them back the same way (database id, precision, the server
//! time given to lines without a timestamp). One record per shard per flush (group commit), each
//! durable when its write returns: segments are opened `O_DSYNC`, so one io_uring operation
//! does what `write` + `fdatasync` did in two. Replaying a record re-parses its lines, which
//! is cheap (the parser runs at hundreds of MB/s) and keeps the record format close to the
//! wire format.
//!
//! A write usually repeats a few series many times (every host, every interval), and a series
//! (measurement and tags) is half of a typical line. So an entry logs each series the parser
//! recognised once, and its later lines refer to it by number: the text of a line is its
//! series' bytes followed by its own.
//!
//! Layout: `ROOT/shard-NNN/SSSSSSSSSSSSSSSSSSSS.wal`, segments numbered from 1 and rotated at
//! [`SEGMENT_BYTES`]. A record is
//!
//! ```text
//! magic u32 | payload_len u32 | crc32c(payload) u32 | payload
//! payload = epoch u64 | commit u64 | entry_count u32 | entries
//! entry   = db_id u32 | precision u8 | default_time_ns i64 | lines_len u32 | lines
//! lines   = line*, each one of
//!           0 | len | text                          a whole line
//!           1 | len | series | len | rest           a series, numbered next (from 0), and a line of it
//!           k | len | rest                          a line of series number k - 2
//! ```
//! fixed-width integers little-endian, `len` and `k` LEB128 varints; a line's text is its series
//! bytes and its rest together. `commit` is the record's place in the order of all commits of
//! all shards ([`crate::buffer::WriteBuffer::begin_commit`]): the number persistence, WAL
//! removal and replay agree on. Records of the earlier formats (magic `WRC1`, plain-text
//! `lines`; `WRC2`, no `commit`) are still replayed, as commit 0.
//!
//! Replay tells a torn tail from corruption. A crash can leave only the newest segment of a
//! shard with a partial last record, and nothing valid after it: that tail is cut, with a log
//! line. A bad record anywhere else (an older segment, or one followed by valid records) is
//! damage: the segment is moved aside (`.wal.corrupt`), the log says so, and replay fails
//! unless it was asked to skip corrupt segments. Records below the persisted commit are
//! skipped, and segments wholly below it removed ([`crate::wal_retention`] removes them while
//! the server runs).

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lp::SeriesId;
use crate::wal_retention::WalRetention;
use crate::write::Precision;

pub use crate::wal_replay::{replay, ReplayError, ReplayOptions, ReplayStats};

pub const MAGIC: u32 = 0x3343_5257; // "WRC3"
/// The second format: numbered series, no commit number.
pub const MAGIC_V2: u32 = 0x3243_5257; // "WRC2"
/// The first format, whose entries hold plain line-protocol text.
pub const MAGIC_V1: u32 = 0x3143_5257; // "WRC1"
pub const HEADER_BYTES: usize = 12;
const PAYLOAD_PREFIX_BYTES: usize = 20; // epoch + commit + entry count
/// The payload prefix of the first two formats: epoch + entry count.
const OLD_PAYLOAD_PREFIX_BYTES: usize = 12;
/// A record larger than this is corrupt by definition (bodies are limited far below it).
pub const MAX_RECORD_BYTES: usize = 1 << 30;
/// A segment is rotated once it grows past this.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// One write's accepted lines, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry<'a> {
    pub db_id: u32,
    pub precision: Precision,
    pub default_time_ns: i64,
    pub lines: Cow<'a, [u8]>,
}

impl WalEntry<'_> {
    /// The entry with its lines owned, so the segment bytes it was read from can go.
    pub fn into_owned(self) -> WalEntry<'static> {
        WalEntry { lines: Cow::Owned(self.lines.into_owned()), db_id: self.db_id, precision: self.precision, default_time_ns: self.default_time_ns }
    }
}

/// A record being filled: header space is reserved up front so the finished record goes to
/// disk from this one buffer, with no copy.
pub struct RecordBuf {
    buf: Vec<u8>,
    entries: u32,
    /// For the entry being filled, by the parser's series number in body `body`: 0 if the
    /// series is not logged yet, else its number in the entry plus one.
    logged: Vec<u32>,
    body: u64,
    /// Series logged in the entry being filled.
    series: u32,
}

/// Line tags in an entry's `lines` (see the module docs).
const WHOLE_LINE: u64 = 0;
const NEW_SERIES: u64 = 1;
const FIRST_SERIES_REF: u64 = 2;

impl Default for RecordBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBuf {
    pub fn new() -> RecordBuf {
        RecordBuf::with_capacity(0)
    }

    /// An empty record with room for `bytes` of entries: a commit's record is usually about as
    /// large as the last one, and growing a multi-megabyte buffer by doubling copies it and
    /// touches twice the memory.
    pub fn with_capacity(bytes: usize) -> RecordBuf {
        let mut buf = Vec::with_capacity(HEADER_BYTES + PAYLOAD_PREFIX_BYTES + bytes);
        buf.resize(HEADER_BYTES + PAYLOAD_PREFIX_BYTES, 0);
        RecordBuf { buf, entries: 0, logged: Vec::new(), body: 0, series: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Starts an entry (one write's lines); the caller then appends its lines with
    /// [`RecordBuf::push_line`] or [`RecordBuf::push_series_line`] and closes it with
    /// [`RecordBuf::end_entry`].
    pub fn begin_entry(&mut self, db_id: u32, precision: Precision, default_time_ns: i64) -> usize {
        self.logged.clear();
        self.series = 0;
        self.buf.extend_from_slice(&db_id.to_le_bytes());
        self.buf.push(precision.code());
        self.buf.extend_from_slice(&default_time_ns.to_le_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        len_at
    }

    /// Logs a line whole.
    pub fn push_line(&mut self, line: &[u8]) {
        put_varint(&mut self.buf, WHOLE_LINE);
        put_bytes(&mut self.buf, line);
    }

    /// Logs a line whose text begins with `series`, the bytes the parser numbered `series_id`:
    /// the series is logged the first time in the entry, and referred to after.
    pub fn push_series_line(&mut self, series_id: Option<SeriesId>, series: &[u8], text: &[u8]) {
        // The same bytes by position nearly always; compared only if not.
        let prefix = (text.as_ptr() == series.as_ptr() && series.len() <= text.len()) || text.starts_with(series);
        let Some(sid) = series_id.filter(|_| prefix) else {
            return self.push_line(text);
        };
        if sid.body != self.body {
            // Numbers of another body: its series are logged anew.
            self.logged.clear();
            self.body = sid.body;
        }
        let id = sid.id as usize;
        if self.logged.len() <= id {
            self.logged.resize(id + 1, 0);
        }
        let rest = &text[series.len()..];
        match self.logged[id] {
            0 => {
                self.series += 1;
                self.logged[id] = self.series;
                put_varint(&mut self.buf, NEW_SERIES);
                put_bytes(&mut self.buf, series);
            }
            n => put_varint(&mut self.buf, FIRST_SERIES_REF + u64::from(n - 1)),
        }
        put_bytes(&mut self.buf, rest);
    }

    pub fn end_entry(&mut self, len_at: usize) {
        let len = (self.buf.len() - len_at - 4) as u32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        self.entries += 1;
    }

    /// Seals the record as commit `commit` of flush epoch `epoch`: fills the header and checksum.
    pub fn seal(mut self, epoch: u64, commit: u64) -> Vec<u8> {
        let p = HEADER_BYTES;
        self.buf[p..p + 8].copy_from_slice(&epoch.to_le_bytes());
        self.buf[p + 8..p + 16].copy_from_slice(&commit.to_le_bytes());
        self.buf[p + 16..p + 20].copy_from_slice(&self.entries.to_le_bytes());
        let payload_len = (self.buf.len() - HEADER_BYTES) as u32;
        let crc = crc32c::crc32c(&self.buf[HEADER_BYTES..]);
        self.buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        self.buf[4..8].copy_from_slice(&payload_len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&crc.to_le_bytes());
        // Check the record right before it leaves, as replay checks it right after it is read.
        debug_assert!(decode_record(&self.buf).is_ok());
        self.buf
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn get_varint(b: &mut &[u8]) -> Result<u64, RecordError> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first().ok_or(RecordError::Malformed("varint runs past the entry"))?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(RecordError::Malformed("varint too long"))
}

fn get_bytes<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], RecordError> {
    let n = get_varint(b)?;
    let n = usize::try_from(n).map_err(|_| RecordError::Malformed("length too large"))?;
    take(b, n)
}

/// The line-protocol text of an entry's `lines`, one line per newline.
fn decode_lines(mut b: &[u8]) -> Result<Vec<u8>, RecordError> {
    // Lines rebuilt from numbered series are longer than their encoding; twice is usually enough.
    let mut text = Vec::with_capacity(b.len() * 2);
    let mut series: Vec<&[u8]> = Vec::new();
    while !b.is_empty() {
        // Each line is its series' bytes (none for a whole line), then its own.
        let prefix: &[u8] = match get_varint(&mut b)? {
            WHOLE_LINE => &[],
            NEW_SERIES => {
                let s = get_bytes(&mut b)?;
                series.push(s);
                s
            }
            k => usize::try_from(k - FIRST_SERIES_REF)
                .ok()
                .and_then(|i| series.get(i).copied())
                .ok_or(RecordError::Malformed("line refers to a series not logged before it"))?,
        };
        text.extend_from_slice(prefix);
        text.extend_from_slice(get_bytes(&mut b)?);
        text.push(b'\n');
    }
    Ok(text)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is truncated")]
    Truncated,
    #[error("bad magic number")]
    BadMagic,
    #[error("record length {0} is impossible")]
    BadLength(usize),
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
}

/// A decoded record, with each entry's lines as line-protocol text (borrowed from the segment
/// bytes in a first-format record).
#[derive(Debug)]
pub struct Record<'a> {
    pub epoch: u64,
    /// 0 in records of the formats before commit numbers.
    pub commit: u64,
    pub entries: Vec<WalEntry<'a>>,
    /// Bytes the record occupies, header included.
    pub size: usize,
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], RecordError> {
    if b.len() < n {
        return Err(RecordError::Malformed("entry runs past the payload"));
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Ok(h)
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn u64_at(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Decodes the record at the start of `bytes`.
pub fn decode_record(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    if bytes.len() < HEADER_BYTES {
        return Err(RecordError::Truncated);
    }
    let (v1, prefix) = match u32_at(&bytes[0..4]) {
        MAGIC => (false, PAYLOAD_PREFIX_BYTES),
        MAGIC_V2 => (false, OLD_PAYLOAD_PREFIX_BYTES),
        MAGIC_V1 => (true, OLD_PAYLOAD_PREFIX_BYTES),
        _ => return Err(RecordError::BadMagic),
    };
    let len = u32_at(&bytes[4..8]) as usize;
    if !(prefix..=MAX_RECORD_BYTES).contains(&len) {
        return Err(RecordError::BadLength(len));
    }
    if bytes.len() < HEADER_BYTES + len {
        return Err(RecordError::Truncated);
    }
    let payload = &bytes[HEADER_BYTES..HEADER_BYTES + len];
    if crc32c::crc32c(payload) != u32_at(&bytes[8..12]) {
        return Err(RecordError::BadChecksum);
    }
    let mut p = payload;
    let epoch = u64_at(take(&mut p, 8)?);
    let commit = if prefix == PAYLOAD_PREFIX_BYTES { u64_at(take(&mut p, 8)?) } else { 0 };
    let count = u32_at(take(&mut p, 4)?);
    let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let db_id = u32_at(take(&mut p, 4)?);
        let precision = Precision::from_code(take(&mut p, 1)?[0]).ok_or(RecordError::Malformed("precision"))?;
        let default_time_ns =
            i64::from_le_bytes(take(&mut p, 8)?.try_into().map_err(|_| RecordError::Malformed("time"))?);
        let n = u32_at(take(&mut p, 4)?) as usize;
        let raw = take(&mut p, n)?;
        let lines = if v1 { Cow::Borrowed(raw) } else { Cow::Owned(decode_lines(raw)?) };
        entries.push(WalEntry { db_id, precision, default_time_ns, lines });
    }
    if !p.is_empty() {
        return Err(RecordError::Malformed("bytes after the last entry"));
    }
    Ok(Record { epoch, commit, entries, size: HEADER_BYTES + len })
}

pub fn shard_dir(root: &Path, shard: usize) -> PathBuf {
    root.join(format!("shard-{shard:03}"))
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// Segment numbers present in a shard directory, ascending.
pub fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(seqs),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let name = ent?.file_name();
        let name = name.to_string_lossy();
        if let Some(num) = name.strip_suffix(".wal") {
            if let Ok(seq) = num.parse::<u64>() {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Appends records to one shard's segments on a glommio executor, each durable once its write
/// completes (`O_DSYNC`). Must only be used on the executor that created it.
pub struct SegmentWriter {
    dir: PathBuf,
    seq: u64,
    file: glommio::io::BufferedFile,
    pos: u64,
    /// Bytes of the segment whose cached pages were already handed back to the kernel.
    uncached: u64,
    /// Highest commit written to the open segment.
    max_commit: Option<u64>,
    /// Where closed segments are registered for removal, and rotation is asked for.
    retention: Arc<WalRetention>,
    /// The rotation request this writer last acted on.
    rotation_seen: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("WAL I/O failed: {0}")]
    Glommio(String),
    #[error("a WAL record of {0} bytes is larger than replay accepts")]
    TooLarge(usize),
    /// No room for the record (the disk or a quota is full). Whatever part of it was written
    /// has been cut off again and the cut synced, so the segment ends at its last whole record
    /// and the next append may be tried once there is room.
    #[error("the disk is full: {0}")]
    Full(String),
}

/// Whether a file ending at `end` would pass the process's file-size limit (`ulimit -f`).
fn past_file_size_limit(end: u64) -> bool {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } == 0;
    ok && lim.rlim_cur != libc::RLIM_INFINITY && end > lim.rlim_cur
}

/// Whether a failed write ran out of room (the disk or a quota full) rather than failing: only
/// then is retrying safe. A file-size limit (EFBIG) is not room that comes back, so it is
/// treated as the failure it is.
fn out_of_room(e: &glommio::GlommioError<()>) -> bool {
    let io = match e {
        glommio::GlommioError::IoError(io) => io,
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        _ => return false,
    };
    matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl From<glommio::GlommioError<()>> for WalError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        WalError::Glommio(e.to_string())
    }
}

impl SegmentWriter {
    /// Opens a new segment after the shard's existing ones.
    pub async fn open(root: &Path, shard: usize, retention: Arc<WalRetention>) -> Result<SegmentWriter, WalError> {
        let dir = shard_dir(root, shard);
        std::fs::create_dir_all(&dir)?;
        let seq = segments(&dir)?.last().copied().unwrap_or(0) + 1;
        let file = Self::create(&dir, seq).await?;
        let rotation_seen = retention.rotation_requested();
        Ok(SegmentWriter { dir, seq, file, pos: 0, uncached: 0, max_commit: None, retention, rotation_seen })
    }

    async fn create(dir: &Path, seq: u64) -> Result<glommio::io::BufferedFile, WalError> {
        // Read+write, not `BufferedFile::create` (write-only), per the DESIGN notes on glommio.
        // `O_DSYNC`: a write completes only once its bytes (and the size that reaches them) are
        // on stable storage, as write + fdatasync. As two operations, the sync could only be
        // submitted once the shard's executor had seen the write complete, and a shard busy
        // validating a large body sees completions late: each commit waited for that twice.
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DSYNC)
            .buffered_open(segment_path(dir, seq))
            .await?;
        // The new name must be durable before any record in it is acked; synced through the
        // ring, so the shard keeps serving meanwhile.
        let d = glommio::io::Directory::open(dir).await?;
        d.sync().await?;
        d.close().await?;
        Ok(file)
    }

    /// Writes one sealed record, commit number `commit`; it is durable when this returns `Ok`.
    pub async fn append(&mut self, record: Vec<u8>, commit: u64) -> Result<(), WalError> {
        if record.len() > MAX_RECORD_BYTES + HEADER_BYTES {
            // Replay would refuse it: never write what cannot be read back.
            return Err(WalError::TooLarge(record.len()));
        }
        let asked = self.retention.rotation_requested();
        if self.pos >= SEGMENT_BYTES || (self.pos > 0 && asked != self.rotation_seen) {
            self.rotation_seen = asked;
            let next = Self::create(&self.dir, self.seq + 1).await?;
            let old = std::mem::replace(&mut self.file, next);
            let old_path = segment_path(&self.dir, self.seq);
            self.seq += 1;
            // Nothing to sync: every write to the old segment was durable when it completed.
            drop_cached(&old, self.uncached, self.pos);
            self.pos = 0;
            self.uncached = 0;
            old.close().await?;
            self.retention.closed(old_path, self.max_commit.take());
        }
        let len = record.len();
        let written = match self.file.write_at(record, self.pos).await {
            Ok(n) => n,
            Err(e) => {
                let room = out_of_room(&e);
                return Err(self.after_failed_write(e.to_string(), room).await);
            }
        };
        if written < len {
            // A short write stops at the end of the room on the disk, or at the file-size limit.
            let room = !past_file_size_limit(self.pos + len as u64);
            return Err(self.after_failed_write(format!("short write: {written} of {len} bytes"), room).await);
        }
        self.pos += len as u64;
        self.max_commit = self.max_commit.max(Some(commit));
        // Whole pages only: dropping the partly written last page would make the next record's
        // write read it back from disk first.
        let settled = self.pos & !(PAGE_BYTES - 1);
        if settled > self.uncached {
            drop_cached(&self.file, self.uncached, settled);
            self.uncached = settled;
        }
        Ok(())
    }
}

impl SegmentWriter {
    /// After a record's write failed: when it ran out of room, cuts any part of it written
    /// (synced, so a crash cannot bring the torn bytes back into a segment that later stops
    /// being the newest) and reports the disk full, which the caller may retry. Any other
    /// failure, or a cut that fails, is final: the kernel may have dropped pages it had
    /// accepted (PostgreSQL's "fsyncgate").
    async fn after_failed_write(&mut self, detail: String, out_of_room: bool) -> WalError {
        if !out_of_room {
            return WalError::Glommio(detail);
        }
        match self.file.truncate(self.pos).await {
            Ok(()) => match self.file.fdatasync().await {
                Ok(()) => WalError::Full(detail),
                Err(e) => WalError::Glommio(format!("{detail}; then syncing the cut failed: {e}")),
            },
            Err(e) => WalError::Glommio(format!("{detail}; then cutting the partial record failed: {e}")),
        }
    }
}

const PAGE_BYTES: u64 = 4096;

/// Hands the page-cache pages of `from..to`, synced and never read again but by replay, back
/// to the kernel (as PostgreSQL does with its WAL). Left cached they crowd out pages worth
/// keeping, and every record would take fresh pages instead of reusing the ones just freed,
/// which in a VM makes the kernel's copy into them several times slower. Advisory: a failure
/// costs only memory, so it is not an error.
fn drop_cached(file: &glommio::io::BufferedFile, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(from), libc::off_t::try_from(to.saturating_sub(from))) else {
        return;
    };
    // SAFETY: plain syscall on a descriptor the file owns for its whole lifetime.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        tracing::debug!(errno = rc, "posix_fadvise(DONTNEED) on a WAL segment failed");
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
#[path = "wal_tests.rs"]
mod tests;
