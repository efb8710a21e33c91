//! Options of the global allocator (mimalloc, which the `weir` binary installs).
//!
//! It owns only allocator settings applied at start-up; it never allocates or frees.

/// `mi_option_purge_delay`: its place in mimalloc's option enum, the same in the v2 and v3
/// headers; `libmimalloc-sys` has no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped for `ms` before it goes back to the OS (`-1`: never).
///
/// mimalloc's default (1 s in v3) hands the pages of large write buffers back to the OS between
/// bursts, and the kernel then zeroes fresh pages for them again: under the ingest load test
/// that was a sixth of the shard's time (`clear_page_erms`), and ingest ran at 0.7x of what it
/// does with a 10 s delay (docs/PERFORMANCE.md).
pub fn set_purge_delay(ms: i64) {
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms as std::os::raw::c_long) }
}

/// `mi_option_allow_thp`: its place in mimalloc v3's option enum (the version this build links).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Whether the process may use transparent huge pages.
///
/// Without them, each page the growing write buffer touches first costs a 4 KiB fault instead
/// of zeroing 2 MiB at once. Under the ingest load test that took CPU a line from 1.60 µs to
/// 1.37 µs on average over three back-to-back pairs (docs/PERFORMANCE.md); databases that grow
/// memory steadily (Redis, MongoDB) advise the same. Besides telling mimalloc not to ask for huge pages, this turns them off for the
/// whole process (`PR_SET_THP_DISABLE`), so memory mapped before this call and by the embedded
/// Python gets none either.
pub fn set_huge_pages(allow: bool) {
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, std::os::raw::c_long::from(allow)) }
    if !allow {
        // SAFETY: a flag on this process's memory map; no pointers are passed. On a kernel
        // without THP it fails harmlessly.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not turn transparent huge pages off");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> i64 {
        // SAFETY: reading an option is a plain load.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) as i64 }
    }

    #[test]
    fn allow_thp_option_is_the_one_mimalloc_documents() {
        // SAFETY: reading an option is a plain load.
        let read = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) as i64 };
        // Its default is 1; the options beside it (page_cross_thread_max_reclaim = 16 and
        // minimal_purge_size = 0) would read otherwise.
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            assert_eq!(read(), 1, "option {MI_OPTION_ALLOW_THP}");
        }
        set_huge_pages(false);
        assert_eq!(read(), 0);
        // SAFETY: reading the process's flag; no pointers are passed.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }

    #[test]
    fn purge_delay_option_is_the_one_mimalloc_documents() {
        // Its default is 1000 ms in mimalloc v3 and 10 ms in v2; the options beside it
        // default to 0 and 1, so a wrong index would read neither.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert!([1000, 10].contains(&get()), "option {MI_OPTION_PURGE_DELAY} reads {}", get());
        }
        set_purge_delay(10_000);
        assert_eq!(get(), 10_000);
    }
}
