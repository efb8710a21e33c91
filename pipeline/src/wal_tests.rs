use super::*;

fn record(epoch: u64, entries: &[(u32, &str)]) -> Vec<u8> {
    let mut r = RecordBuf::new();
    for (db, lines) in entries {
        let at = r.begin_entry(*db, Precision::Nanosecond, 7);
        for l in lines.lines() {
            r.push_line(l.as_bytes());
        }
        r.end_entry(at);
    }
    // The commit number is the epoch here: both grow record by record.
    r.seal(epoch, epoch)
}

fn collect(root: &Path) -> (Replayed, ReplayStats) {
    collect_from(root, ReplayOptions::default()).unwrap()
}

/// Replayed entries as (epoch, database id, lines).
type Replayed = Vec<(u64, u32, String)>;

fn collect_from(root: &Path, opts: ReplayOptions) -> Result<(Replayed, ReplayStats), ReplayError> {
    let mut got = Vec::new();
    let stats = replay(root, opts, |epoch, _commit, e| {
        got.push((epoch, e.db_id, String::from_utf8(e.lines.to_vec()).unwrap()));
    })?;
    Ok((got, stats))
}

/// Writes records through the glommio writer on one executor; replay runs on this thread
/// afterwards, the way the server replays before any shard starts.
fn write_with_glommio(root: &Path, records: Vec<Vec<u8>>) {
    write_shard_with_glommio(root, 0, records)
}

fn write_shard_with_glommio(root: &Path, shard: usize, records: Vec<Vec<u8>>) {
    let root = root.to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(move || async move {
            let mut w = SegmentWriter::open(&root, shard, Arc::new(WalRetention::new())).await.unwrap();
            for r in records {
                let commit = decode_record(&r).unwrap().commit;
                w.append(r, commit).await.unwrap();
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn record_round_trip() {
    let r = record(9, &[(1, "a f=1\nb f=2"), (2, "c f=3")]);
    let d = decode_record(&r).unwrap();
    assert_eq!(d.epoch, 9);
    assert_eq!(d.size, r.len());
    assert_eq!(d.entries.len(), 2);
    assert_eq!(&*d.entries[0].lines, b"a f=1\nb f=2\n");
    assert_eq!(d.entries[1].db_id, 2);
    assert_eq!(d.entries[1].default_time_ns, 7);
}

/// A record of entries whose lines are logged as the shard logs them: each through the
/// parser, so that a series repeated in an entry is logged once.
fn series_record(epoch: u64, entries: &[&str]) -> Vec<u8> {
    let mut r = RecordBuf::new();
    for body in entries {
        let at = r.begin_entry(0, Precision::Nanosecond, 7);
        for item in crate::lp::parse_lines(body.as_bytes()) {
            match &item.parsed {
                Ok(line) => r.push_series_line(item.series_id, line.series, item.text),
                Err(_) => r.push_line(item.text),
            }
        }
        r.end_entry(at);
    }
    r.seal(epoch, epoch)
}

fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn repeated_series_are_logged_once_an_entry() {
    let series = "cpu,host=a,region=eu-west-1,datacenter=eu-west-1a";
    let body = format!("{series} u=1 1\n{series} u=2 2\ncpu,host=b u=3 3\n{series} u=4 4\n");
    let r = series_record(5, &[&body, &body]);
    assert_eq!(occurrences(&r, series.as_bytes()), 2, "once in each of the two entries");
    let d = decode_record(&r).unwrap();
    assert_eq!(d.entries.len(), 2);
    for e in &d.entries {
        assert_eq!(String::from_utf8(e.lines.to_vec()).unwrap(), body);
    }
    assert!(r.len() < body.len() * 2 - 2 * series.len(), "{} bytes for {} of text", r.len(), 2 * body.len());
}

#[test]
fn lines_are_logged_whole_unless_they_start_with_their_series_of_this_body() {
    let mut r = RecordBuf::new();
    let at = r.begin_entry(0, Precision::Nanosecond, 0);
    let a = Some(SeriesId { body: 1, id: 0 });
    r.push_series_line(a, b"m,t=a", b"m,t=a f=1");
    r.push_series_line(a, b"m,t=a", b"other f=2");
    r.push_series_line(None, b"m,t=b", b"m,t=b f=3");
    r.push_series_line(a, b"m,t=a", b"m,t=a f=4");
    // The same number from another body is another series.
    r.push_series_line(Some(SeriesId { body: 2, id: 0 }), b"m,t=c", b"m,t=c f=5");
    r.push_series_line(a, b"m,t=a", b"m,t=a f=6");
    r.end_entry(at);
    let sealed = r.seal(1, 1);
    let d = decode_record(&sealed).unwrap();
    assert_eq!(&*d.entries[0].lines, b"m,t=a f=1\nother f=2\nm,t=b f=3\nm,t=a f=4\nm,t=c f=5\nm,t=a f=6\n");
}

/// A record around `entries` (raw `lines` bytes), sealed by hand with `magic`.
fn raw_record(magic: u32, entries: &[&[u8]]) -> Vec<u8> {
    let mut payload = 1u64.to_le_bytes().to_vec();
    payload.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for lines in entries {
        payload.extend_from_slice(&4u32.to_le_bytes());
        payload.push(Precision::Second.code());
        payload.extend_from_slice(&9i64.to_le_bytes());
        payload.extend_from_slice(&(lines.len() as u32).to_le_bytes());
        payload.extend_from_slice(lines);
    }
    let mut r = magic.to_le_bytes().to_vec();
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    r.extend_from_slice(&payload);
    r
}

#[test]
fn first_format_records_still_replay() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segment_path(&shard_dir(dir.path(), 0), 1);
    std::fs::create_dir_all(seg.parent().unwrap()).unwrap();
    let mut bytes = raw_record(MAGIC_V1, &[b"m f=1 1\nm f=2 2\n"]);
    bytes.extend(series_record(2, &["m f=3 3"]));
    std::fs::write(&seg, bytes).unwrap();
    let (got, stats) = collect(dir.path());
    assert!(stats.truncated.is_empty(), "{:?}", stats.truncated);
    assert_eq!(got, vec![(1, 4, "m f=1 1\nm f=2 2\n".into()), (2, 0, "m f=3 3\n".into())]);
}

#[test]
fn malformed_series_lines_are_errors() {
    for lines in [
        &[5u8, 1, b'x'][..],            // a reference to a series never logged
        &[1, 3, b'a', b'b'][..],        // a series running past the entry
        &[1, 1, b'm', 3, b' ', b'f'][..], // a rest running past the entry
        &[0x80; 11][..],                // a varint that never ends
        &[9][..],                       // a reference with no rest
    ] {
        let r = raw_record(MAGIC_V2, &[lines]);
        assert!(matches!(decode_record(&r), Err(RecordError::Malformed(_))), "{lines:?}");
    }
    let ok = raw_record(MAGIC_V2, &[&[1, 1, b'm', 4, b' ', b'f', b'=', b'1', 2, 4, b' ', b'f', b'=', b'2']]);
    assert_eq!(&*decode_record(&ok).unwrap().entries[0].lines, b"m f=1\nm f=2\n");
}

proptest::proptest! {
    /// Whatever mix of repeated series, escapes and bad lines a body holds, its entry replays
    /// as the text of the lines the parser yielded.
    #[test]
    fn series_coded_entries_replay_as_their_text(
        series in proptest::collection::vec("[a-c,=\\\\ ]{1,8}", 1..4),
        lines in proptest::collection::vec((0usize..4, "[a-c0-9=.,i\"\\\\ ]{0,10}"), 1..16),
    ) {
        let body = lines.iter().map(|(i, rest)| format!("{} {rest}", series[i % series.len()])).collect::<Vec<_>>().join("\n");
        let want: Vec<u8> = crate::lp::parse_lines(body.as_bytes()).flat_map(|i| [i.text, b"\n"].concat()).collect();
        let r = series_record(3, &[&body]);
        let d = decode_record(&r).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        proptest::prop_assert_eq!(&*d.entries[0].lines, &want[..]);
    }
}

#[test]
fn append_then_replay() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")]), record(2, &[(0, "m f=2"), (3, "n g=1i")])]);
    let (got, stats) = collect(dir.path());
    assert_eq!(stats.records, 2);
    assert!(stats.truncated.is_empty());
    assert_eq!(got, vec![(1, 0, "m f=1\n".into()), (2, 0, "m f=2\n".into()), (2, 3, "n g=1i\n".into())]);
    // A second writer opens a new segment after the first, and replay reads both in order.
    write_with_glommio(dir.path(), vec![record(3, &[(0, "m f=3")])]);
    assert_eq!(segments(&shard_dir(dir.path(), 0)).unwrap(), vec![1, 2]);
    let (got, _) = collect(dir.path());
    assert_eq!(got.len(), 4);
    assert_eq!(got[3], (3, 0, "m f=3\n".into()));
}

#[test]
fn torn_tail_is_cut_at_last_good_record() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")]), record(2, &[(0, "m f=2")])]);
    let seg = segment_path(&shard_dir(dir.path(), 0), 1);
    let full = std::fs::metadata(&seg).unwrap().len();
    let first = record(1, &[(0, "m f=1")]).len() as u64;
    // Tear the second record in half, as a crash mid-write would.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(full - 5).unwrap();
    let (got, stats) = collect(dir.path());
    assert_eq!(got, vec![(1, 0, "m f=1\n".into())]);
    assert_eq!(stats.truncated.len(), 1);
    assert_eq!(stats.truncated[0].1, first);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), first, "the tail is cut on disk");
    // Replaying again finds a clean log.
    let (again, stats) = collect(dir.path());
    assert_eq!(again.len(), 1);
    assert!(stats.truncated.is_empty());
}

#[test]
fn flipped_byte_is_detected_by_checksum() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")]), record(2, &[(0, "m f=2")])]);
    let seg = segment_path(&shard_dir(dir.path(), 0), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let (got, stats) = collect(dir.path());
    assert_eq!(got.len(), 1);
    assert_eq!(stats.truncated[0].2, RecordError::BadChecksum.to_string());
}

#[test]
fn garbage_and_zeroes_never_panic() {
    for junk in [vec![0u8; 64], vec![0xff; 64], b"WRC1xxxxxxxxxxxxxxx".to_vec(), MAGIC.to_le_bytes().to_vec()] {
        assert!(decode_record(&junk).is_err());
    }
    // A header claiming a huge length.
    let mut r = record(1, &[(0, "m f=1")]);
    r[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode_record(&r), Err(RecordError::BadLength(_))));
}

#[test]
fn empty_segments_from_idle_runs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")])]);
    write_with_glommio(dir.path(), vec![]);
    assert_eq!(segments(&shard_dir(dir.path(), 0)).unwrap(), vec![1, 2]);
    let (got, stats) = collect(dir.path());
    assert_eq!(got.len(), 1);
    assert_eq!(stats.segments, 1);
    assert_eq!(segments(&shard_dir(dir.path(), 0)).unwrap(), vec![1]);
}

/// Pages of `path` that are in the page cache, by `mincore` over a mapping of the file.
fn resident_pages(path: &Path) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(PAGE_BYTES as usize);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of a file nobody writes meanwhile; mincore reads no
    // page, it only reports residency into `vec`, which holds one byte per page.
    unsafe {
        let addr = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
        assert_ne!(addr, libc::MAP_FAILED);
        assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
        libc::munmap(addr, len);
    }
    vec.into_iter().map(|b| b & 1 == 1).collect()
}

/// The open flags of this process's descriptor `fd`, from `/proc/self/fdinfo` (octal there).
fn open_flags(fd: i32) -> i32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap();
    i32::from_str_radix(flags.trim(), 8).unwrap()
}

#[test]
fn a_wal_write_is_durable_when_it_completes() {
    // Each record is acked once its write completes, with no separate sync: that is only
    // sound if every segment the writer opens, the first and the rotated ones, is `O_DSYNC`.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let flags = glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(move || async move {
            use std::os::fd::AsRawFd;
            let mut w = SegmentWriter::open(&root, 0, Arc::new(WalRetention::new())).await.unwrap();
            let mut flags = vec![open_flags(w.file.as_raw_fd())];
            w.pos = SEGMENT_BYTES; // the next append rotates
            w.append(record(1, &[(0, "m f=1 1\n")]), 1).await.unwrap();
            assert_eq!(w.seq, 2);
            flags.push(open_flags(w.file.as_raw_fd()));
            flags
        })
        .unwrap()
        .join()
        .unwrap();
    for f in flags {
        assert_eq!(f & libc::O_DSYNC, libc::O_DSYNC, "segment opened with flags {f:o}");
    }
}

#[test]
fn synced_wal_pages_leave_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "m,host=h f=1.5 1\n".repeat(600); // ~10 KB a record
    write_with_glommio(dir.path(), vec![record(1, &[(0, &lines)]), record(2, &[(0, &lines)])]);
    let path = segment_path(&shard_dir(dir.path(), 0), 1);
    let resident = resident_pages(&path);
    assert_eq!(resident.len(), 6, "two ~10 KB records span six pages");
    // Every whole page is synced and dropped; the last, partly written one is kept so the next
    // record's write need not read it back.
    assert_eq!(resident[..5], [false; 5], "{resident:?}");
    assert!(resident[5], "{resident:?}");
}

#[test]
fn records_carry_their_commit_number() {
    let r = record(5, &[(0, "m f=1")]);
    assert_eq!(decode_record(&r).unwrap().commit, 5);
    // The second format has none: it reads as commit 0.
    let old = raw_record(MAGIC_V1, &[b"m f=1 1\n"]);
    assert_eq!(decode_record(&old).unwrap().commit, 0);
}

#[test]
fn records_below_the_persisted_commit_are_skipped_and_whole_segments_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")]), record(2, &[(0, "m f=2")])]);
    write_with_glommio(dir.path(), vec![record(3, &[(0, "m f=3")]), record(4, &[(0, "m f=4")])]);
    let (got, stats) = collect_from(dir.path(), ReplayOptions { from_commit: 4, skip_corrupt: false, keep_from: None }).unwrap();
    assert_eq!(got, vec![(4, 0, "m f=4\n".into())]);
    assert_eq!(stats.skipped_records, 3);
    assert_eq!(stats.max_commit, Some(4));
    assert_eq!(stats.removed_segments, 1, "segment 1 holds only persisted commits");
    assert_eq!(segments(&shard_dir(dir.path(), 0)).unwrap(), vec![2]);
    assert_eq!(stats.kept, vec![(segment_path(&shard_dir(dir.path(), 0), 2), Some(4))]);
}

#[test]
fn invariant_9_persisted_segments_a_wal_trigger_still_needs_survive_replay() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")]), record(2, &[(0, "m f=2")])]);
    write_with_glommio(dir.path(), vec![record(3, &[(0, "m f=3")]), record(4, &[(0, "m f=4")])]);
    // Persisted through 4, but a trigger's cursor is at 2: segment 1 holds commit 2.
    let opts = ReplayOptions { from_commit: 4, skip_corrupt: false, keep_from: Some(2) };
    let (got, stats) = collect_from(dir.path(), opts).unwrap();
    assert_eq!(got, vec![(4, 0, "m f=4\n".into())], "the buffer still gets only what is not persisted");
    assert_eq!(stats.removed_segments, 0);
    assert_eq!(segments(&shard_dir(dir.path(), 0)).unwrap(), vec![1, 2]);
}

/// Flips a byte inside the first record of `seg`.
fn damage_first_record(seg: &Path) {
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[HEADER_BYTES + 3] ^= 0x40;
    std::fs::write(seg, &bytes).unwrap();
}

#[test]
fn a_bad_record_in_an_older_segment_is_quarantined_and_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")])]);
    write_with_glommio(dir.path(), vec![record(2, &[(0, "m f=2")])]);
    let older = segment_path(&shard_dir(dir.path(), 0), 1);
    damage_first_record(&older);
    let before = std::fs::read(&older).unwrap();
    let err = collect_from(dir.path(), ReplayOptions::default()).unwrap_err();
    let ReplayError::Corrupt { moved_to, offset, .. } = err else { panic!("{err}") };
    assert_eq!(offset, 0);
    assert!(!older.exists());
    assert_eq!(std::fs::read(&moved_to).unwrap(), before, "the evidence is kept whole");
    // The next start, asked to skip it, goes on with what is left.
    let (got, _) = collect_from(dir.path(), ReplayOptions { from_commit: 0, skip_corrupt: true, keep_from: None }).unwrap();
    assert_eq!(got, vec![(2, 0, "m f=2\n".into())]);
}

#[test]
fn damage_with_good_records_after_it_is_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<_> = (1..=5).map(|i| record(i, &[(0, &format!("m f={i}"))])).collect();
    write_with_glommio(dir.path(), recs);
    let seg = segment_path(&shard_dir(dir.path(), 0), 1);
    damage_first_record(&seg);
    let len = std::fs::metadata(&seg).unwrap().len();
    let err = collect_from(dir.path(), ReplayOptions::default()).unwrap_err();
    let ReplayError::Corrupt { moved_to, .. } = err else { panic!("{err}") };
    assert_eq!(std::fs::metadata(&moved_to).unwrap().len(), len, "nothing was cut");
    let with_skip = ReplayOptions { from_commit: 0, skip_corrupt: true, keep_from: None };
    let (got, stats) = collect_from(dir.path(), with_skip).unwrap();
    assert!(got.is_empty());
    assert!(stats.quarantined.is_empty(), "already moved aside on the first start");
}

#[test]
fn a_rotation_request_closes_the_segment_for_removal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let retention = Arc::new(WalRetention::new());
    let r2 = retention.clone();
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(move || async move {
            let mut w = SegmentWriter::open(&root, 0, r2.clone()).await.unwrap();
            w.append(record(1, &[(0, "m f=1")]), 1).await.unwrap();
            r2.request_rotation();
            w.append(record(2, &[(0, "m f=2")]), 2).await.unwrap();
            assert_eq!(w.seq, 2);
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(retention.closed_count(), 1);
    assert_eq!(retention.persisted_below(2), 1);
    assert_eq!(segments(&shard_dir(dir.path(), 0)).unwrap(), vec![2]);
    let (got, _) = collect(dir.path());
    assert_eq!(got, vec![(2, 0, "m f=2\n".into())]);
}

#[test]
fn a_torn_tail_before_an_empty_segment_of_a_later_run_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    write_with_glommio(dir.path(), vec![record(1, &[(0, "m f=1")]), record(2, &[(0, "m f=2")])]);
    write_with_glommio(dir.path(), vec![]); // a run that wrote nothing to its segment
    let seg = segment_path(&shard_dir(dir.path(), 0), 1);
    let full = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(full - 5).unwrap();
    let (got, stats) = collect(dir.path());
    assert_eq!(got.len(), 1);
    assert_eq!(stats.truncated.len(), 1);
}

#[test]
fn invariant_7_replay_hands_over_records_in_commit_order_across_shards() {
    // One commit sequence spans the shards: a point rewritten on shard 0 after shard 1 logged
    // it must come back after it, or the older value would win after a restart.
    let dir = tempfile::tempdir().unwrap();
    write_shard_with_glommio(dir.path(), 0, vec![record(2, &[(0, "m f=2")]), record(3, &[(0, "m f=3")])]);
    write_shard_with_glommio(dir.path(), 1, vec![record(1, &[(0, "m f=1")]), record(4, &[(0, "m f=4")])]);
    write_shard_with_glommio(dir.path(), 2, vec![record(5, &[(0, "m f=5")])]);
    let (got, stats) = collect(dir.path());
    let epochs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(epochs, vec![1, 2, 3, 4, 5]);
    assert_eq!(stats.max_commit, Some(5));
    assert_eq!(stats.kept.len(), 3);
    // Records below the persisted commit are skipped in every shard alike.
    let (got, stats) = collect_from(dir.path(), ReplayOptions { from_commit: 3, skip_corrupt: false, keep_from: None }).unwrap();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(stats.skipped_records, 2);
}

#[test]
fn a_torn_tail_on_one_shard_leaves_the_other_shards_whole() {
    let dir = tempfile::tempdir().unwrap();
    write_shard_with_glommio(dir.path(), 0, vec![record(1, &[(0, "m f=1")]), record(3, &[(0, "m f=3")])]);
    write_shard_with_glommio(dir.path(), 1, vec![record(2, &[(0, "m f=2")]), record(4, &[(0, "m f=4")])]);
    let seg = segment_path(&shard_dir(dir.path(), 0), 1);
    let full = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(full - 5).unwrap();
    let (got, stats) = collect(dir.path());
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2, 4]);
    assert_eq!(stats.truncated.len(), 1);
    assert_eq!(stats.max_commit, Some(4));
}
