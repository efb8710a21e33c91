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

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> i64 {
        // SAFETY: reading an option is a plain load.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) as i64 }
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
