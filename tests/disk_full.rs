//! A full disk: the data directory on a small tmpfs (mounted in the server's own user and mount
//! namespace, so the test needs no privilege and leaves nothing mounted). Writes past the room
//! get 507 with Retry-After, nothing acked is lost, and writes go on once there is room again.

mod common;

use std::ffi::CString;
use std::os::unix::process::CommandExt;

use common::Server;

/// Puts the server in its own user and mount namespace with a tmpfs of `size` on `data`.
/// Everything it needs is made before the fork: between fork and exec only syscalls run.
fn on_tmpfs(cmd: &mut std::process::Command, data: &std::path::Path, size: &str) {
    let (uid, gid) = (unsafe { libc::getuid() }, unsafe { libc::getgid() });
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    let target = CString::new(data.as_os_str().as_encoded_bytes()).expect("path");
    let opts = CString::new(format!("size={size}")).expect("opts");
    // SAFETY: only async-signal-safe calls (unshare, open, write, close, mount) on data made
    // before the fork; the child is single-threaded until exec.
    unsafe {
        cmd.pre_exec(move || {
            let write = |path: &std::ffi::CStr, text: &str| -> std::io::Result<()> {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, text.as_ptr().cast(), text.len());
                libc::close(fd);
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            write(c"/proc/self/setgroups", "deny")?;
            write(c"/proc/self/uid_map", &uid_map)?;
            write(c"/proc/self/gid_map", &gid_map)?;
            if libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, opts.as_ptr().cast()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Free bytes of the file system `path` (seen by the server) is on.
fn free_bytes(path: &std::path::Path) -> u64 {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes only into `st`.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs {}", path.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

#[test]
fn a_full_disk_gets_507_loses_nothing_acked_and_writes_resume_when_there_is_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // One shard, and no persisting during the test: the WAL is what fills the disk.
    let flags = ["--shards", "1", "--gen1-duration", "1d", "--persist-threshold-bytes", "1000000000"];
    let s = Server::start_in_with(dir.path(), &flags, |cmd| on_tmpfs(cmd, &data, "48m"));
    // The server's view of its data directory, through its own mount namespace.
    let seen = std::path::PathBuf::from(format!("/proc/{}/root{}", s.pid(), data.display()));
    let free = free_bytes(&seen);
    assert!(free < 64 << 20, "the data directory is on the small tmpfs ({free} bytes free)");
    // Leave about 6 MiB.
    let filler = seen.join("filler");
    std::fs::write(&filler, vec![0u8; (free as usize).saturating_sub(6 << 20)]).expect("filler");

    let body = |req: usize| -> String {
        (0..2_000).map(|i| format!("m,req=r{req} v={i}i,pad=\"{}\" {}\n", "x".repeat(200), req * 10_000 + i)).collect()
    };
    let mut acked = 0i64;
    let mut full = None;
    let mut req = 0;
    while full.is_none() && req < 200 {
        let (status, text) = s.write("full", &body(req));
        match status {
            204 => acked += 1,
            _ => full = Some((status, text)),
        }
        req += 1;
    }
    let (status, text) = full.expect("the disk never filled");
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("disk is full"), "{text}");
    assert!(acked > 0, "something was acked before the disk filled");
    // Still full: refused again, and nothing refused was kept.
    assert_eq!(s.write("full", &body(req)).0, 507);
    assert_eq!(s.count("full", "m"), acked * 2_000, "every acked row, and no refused one");

    // Room again: writes go on, on the same shard, without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let (status, text) = s.write("full", &body(req + 1));
    assert_eq!(status, 204, "{text}");
    assert_eq!(s.count("full", "m"), (acked + 1) * 2_000);
    // The WAL holds whole records only: read back (a copy, as replay at start would), it has
    // no torn tail and one entry for each acked write.
    let wal_copy = tempfile::tempdir().expect("tempdir");
    let shard = wal_copy.path().join("shard-000");
    std::fs::create_dir_all(&shard).expect("copy dir");
    for e in std::fs::read_dir(seen.join("weir/wal/shard-000")).expect("the server's WAL").flatten() {
        std::fs::copy(e.path(), shard.join(e.file_name())).expect("copy segment");
    }
    let mut entries = 0;
    let stats = pipeline::wal_replay::replay(wal_copy.path(), Default::default(), |_, _, _| entries += 1).expect("replay");
    assert!(stats.truncated.is_empty(), "a torn record was left in the WAL: {:?}", stats.truncated);
    assert_eq!(entries as i64, acked + 1, "one WAL entry per acked write, none for a refused one");
    assert!(s.log().contains("the disk is full"), "the log says why writes were refused");
}
