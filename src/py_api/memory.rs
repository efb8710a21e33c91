//! A memory limit for one plugin call (`--plugin-memory-limit`, a trigger's `memory_limit`).
//!
//! While a call runs, its executor thread carries a budget: what CPython allocates on that
//! thread (its object arenas, and every larger block, which goes through the raw allocator
//! wrapped here) is counted, what it frees is credited, and an allocation that would take the
//! call's net growth past its limit fails, which Python raises as `MemoryError` in the plugin.
//! Lines the call buffers to write count too ([`charge`]). So a plugin that allocates without
//! bound stops with an exception instead of growing the server until the kernel kills it.
//!
//! What it does not see: memory a C extension takes from `malloc` directly (NumPy's array data)
//! and objects that outlive the call (they were paid for by the call that made them). The hooks
//! run inside CPython's allocator, so they never allocate, lock or call into Python: the budget
//! is two thread-local integers.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::OnceLock;

use pyo3::ffi;

thread_local! {
    /// Bytes the running call may grow by; `i64::MAX` when no call with a limit runs here.
    static LIMIT: Cell<i64> = const { Cell::new(i64::MAX) };
    /// Net bytes the running call has allocated so far.
    static USED: Cell<i64> = const { Cell::new(0) };
    /// Whether the running call was refused an allocation.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a plugin call on this thread) with at most `limit` bytes of net growth; returns
/// its result and whether an allocation was refused for the limit.
pub fn within<T>(limit: Option<u64>, f: impl FnOnce() -> T) -> (T, bool) {
    let Some(limit) = limit else { return (f(), false) };
    let outer = (LIMIT.get(), USED.get(), REFUSED.get());
    LIMIT.set(i64::try_from(limit).unwrap_or(i64::MAX));
    USED.set(0);
    REFUSED.set(false);
    let out = f();
    let refused = REFUSED.get();
    LIMIT.set(outer.0);
    USED.set(outer.1);
    REFUSED.set(outer.2);
    (out, refused)
}

/// Whether `bytes` more fit the running call's limit (always, when none runs on this thread).
fn fits(bytes: usize) -> bool {
    let limit = LIMIT.get();
    let ok = limit == i64::MAX || USED.get().saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX)) <= limit;
    if !ok {
        REFUSED.set(true);
    }
    ok
}

/// Counts `bytes` against the running call's limit; false (nothing counted) if they would take
/// it past. Always true when no limited call runs on this thread.
pub fn charge(bytes: usize) -> bool {
    if !fits(bytes) {
        return false;
    }
    charge_anyway(bytes);
    true
}

/// Counts `bytes` whatever the limit (the allocation already happened).
fn charge_anyway(bytes: usize) {
    if LIMIT.get() != i64::MAX {
        USED.set(USED.get().saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX)));
    }
}

/// Credits `bytes` freed.
pub fn credit(bytes: usize) {
    if LIMIT.get() != i64::MAX {
        USED.set(USED.get().saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX)));
    }
}

/// The raw allocator CPython had before [`install`] wrapped it (libc `malloc` in a release
/// build: [`usable`] relies on that).
static RAW: OnceLock<Wrapped> = OnceLock::new();

struct Wrapped(ffi::PyMemAllocatorEx);

// SAFETY: CPython's raw allocator may be called from any thread without the GIL; its context
// pointer is never dereferenced here, only handed back to it.
unsafe impl Send for Wrapped {}
// SAFETY: as above; the struct is never written after `install`.
unsafe impl Sync for Wrapped {}

/// Wraps CPython's raw allocator with the budget. Skipped (the limit then covers arenas only)
/// when `PYTHONMALLOC` picks another allocator, whose blocks `malloc_usable_size` cannot size.
///
/// # Safety
/// Call once, before any other thread uses Python and before `Py_InitializeFromConfig`.
pub unsafe fn install() {
    if std::env::var_os("PYTHONMALLOC").is_some() {
        return;
    }
    let mut raw = ffi::PyMemAllocatorEx { ctx: std::ptr::null_mut(), malloc: None, calloc: None, realloc: None, free: None };
    // SAFETY: single-threaded start-up (the caller's contract); CPython copies the struct.
    unsafe {
        ffi::PyMem_GetAllocator(ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut raw);
        if RAW.set(Wrapped(raw)).is_err() {
            return;
        }
        let mut ours = ffi::PyMemAllocatorEx {
            ctx: std::ptr::null_mut(),
            malloc: Some(raw_malloc),
            calloc: Some(raw_calloc),
            realloc: Some(raw_realloc),
            free: Some(raw_free),
        };
        ffi::PyMem_SetAllocator(ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut ours);
    }
}

fn raw() -> &'static ffi::PyMemAllocatorEx {
    static NONE: Wrapped =
        Wrapped(ffi::PyMemAllocatorEx { ctx: std::ptr::null_mut(), malloc: None, calloc: None, realloc: None, free: None });
    // Set by `install` before CPython can call a hook.
    &RAW.get().unwrap_or(&NONE).0
}

/// The size of a block the raw allocator returned.
fn usable(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` came from libc's malloc family (the wrapped allocator) and is live.
    unsafe { libc::malloc_usable_size(p) }
}

extern "C" fn raw_malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    if !fits(size) {
        return std::ptr::null_mut();
    }
    let a = raw();
    // The wrapped allocator, called with its own context as CPython would.
    let p = match a.malloc {
        Some(f) => f(a.ctx, size),
        None => std::ptr::null_mut(),
    };
    charge_anyway(usable(p));
    p
}

extern "C" fn raw_calloc(_ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let Some(size) = nelem.checked_mul(elsize) else { return std::ptr::null_mut() };
    if !fits(size) {
        return std::ptr::null_mut();
    }
    let a = raw();
    let p = match a.calloc {
        Some(f) => f(a.ctx, nelem, elsize),
        None => std::ptr::null_mut(),
    };
    charge_anyway(usable(p));
    p
}

extern "C" fn raw_realloc(_ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    let before = usable(ptr);
    if size > before && !fits(size - before) {
        return std::ptr::null_mut();
    }
    let a = raw();
    let p = match a.realloc {
        Some(f) => f(a.ctx, ptr, size),
        None => std::ptr::null_mut(),
    };
    if !p.is_null() {
        credit(before);
        charge_anyway(usable(p));
    }
    p
}

extern "C" fn raw_free(_ctx: *mut c_void, ptr: *mut c_void) {
    credit(usable(ptr));
    let a = raw();
    if let Some(f) = a.free {
        f(a.ctx, ptr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_may_grow_by_its_limit_and_no_more() {
        let (used, refused) = within(Some(1000), || {
            assert!(charge(600));
            assert!(!charge(600), "past the limit");
            credit(500);
            assert!(charge(600), "freed bytes make room again");
            USED.get()
        });
        assert_eq!(used, 700);
        assert!(refused);
        assert!(charge(usize::MAX), "no limit outside a call");
        let (v, refused) = within(None, || charge(usize::MAX));
        assert!(v && !refused);
        let ((), refused) = within(Some(10), || assert!(charge(10)));
        assert!(!refused, "reaching the limit exactly is allowed");
    }

    #[test]
    fn python_raises_memory_error_past_the_limit_and_the_thread_is_free_after() {
        crate::py_api::python::start().expect("python");
        pyo3::Python::attach(|py| {
            let code = c"b = bytearray(64 * 1024 * 1024)";
            let (r, _) = within(Some(16 << 20), || py.run(code, None, None));
            let err = r.expect_err("64 MiB past a 16 MiB limit");
            assert!(err.is_instance_of::<pyo3::exceptions::PyMemoryError>(py), "{err}");
            let (r, _) = within(Some(16 << 20), || py.run(c"b = bytearray(1024 * 1024)", None, None));
            r.expect("1 MiB fits");
            py.run(code, None, None).expect("no limit outside a call");
        });
    }
}
