//! Arenas for CPython's small-object allocator, kept for reuse instead of handed back to the OS.
//!
//! Every flush turns into Python objects (a 10 k-row TSBS flush is ~8 MiB of floats and dicts)
//! that die when the plugin returns. CPython 3.11 unmaps an arena as soon as it is empty, so the
//! next flush maps fresh memory and page-faults on every page of it: measured at a quarter of the
//! time spent building `rows`. This allocator keeps up to [`KEEP_BYTES`] of freed arenas, already
//! resident, and hands them out again first.
//!
//! It must be installed before CPython allocates its first arena ([`install`] says when), and
//! it never calls into Python: CPython calls it while holding its allocator state.

use std::alloc::Layout;
use std::ffi::c_void;

use parking_lot::Mutex;
use pyo3::ffi;

/// Freed arenas kept resident, at most. Enough for a few large flushes' worth of objects; past it
/// arenas go back to the allocator, so an idle server's Python heap does not stay at its peak.
pub const KEEP_BYTES: usize = 64 << 20;

/// Arenas are page aligned, as CPython's own mmap arenas are.
const ALIGN: usize = 4096;

struct Cache {
    /// Addresses of free arenas, all of `size` bytes.
    free: Vec<usize>,
    /// The arena size CPython asks for (256 KiB in 3.11; one size per interpreter build).
    size: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache { free: Vec::new(), size: 0 });

/// Makes CPython take its arenas from this cache.
///
/// # Safety
/// Call it once, after `PyConfig_InitPythonConfig` (which sets up the runtime's allocator
/// defaults) and before `Py_InitializeFromConfig` (which allocates the first arena): an arena
/// CPython mapped itself must never reach [`free_arena`].
pub unsafe fn install() {
    let mut allocator = ffi::PyObjectArenaAllocator { ctx: std::ptr::null_mut(), alloc: Some(alloc_arena), free: Some(free_arena) };
    // SAFETY: CPython copies the struct; the caller guarantees no arena exists yet.
    unsafe { ffi::PyObject_SetArenaAllocator(&mut allocator) };
}

/// Arenas held for reuse right now, in bytes (for tests and metrics).
pub fn cached_bytes() -> usize {
    let cache = CACHE.lock();
    cache.free.len() * cache.size
}

extern "C" fn alloc_arena(_ctx: *mut c_void, size: usize) -> *mut c_void {
    // A plugin call past its memory limit gets no new arena (CPython raises MemoryError).
    if !super::memory::charge(size) {
        return std::ptr::null_mut();
    }
    {
        let mut cache = CACHE.lock();
        if cache.size == size {
            if let Some(p) = cache.free.pop() {
                return p as *mut c_void;
            }
        }
    }
    let p = match Layout::from_size_align(size, ALIGN) {
        // SAFETY: the layout has a non-zero size (CPython never asks for an empty arena).
        Ok(layout) if size > 0 => unsafe { std::alloc::alloc(layout) as *mut c_void },
        // CPython treats null as out of memory and raises MemoryError.
        _ => std::ptr::null_mut(),
    };
    if p.is_null() {
        super::memory::credit(size);
    }
    p
}

extern "C" fn free_arena(_ctx: *mut c_void, ptr: *mut c_void, size: usize) {
    if ptr.is_null() {
        return;
    }
    super::memory::credit(size);
    {
        let mut cache = CACHE.lock();
        if cache.size == 0 {
            cache.size = size;
        }
        if cache.size == size && (cache.free.len() + 1) * size <= KEEP_BYTES {
            cache.free.push(ptr as usize);
            return;
        }
    }
    if let Ok(layout) = Layout::from_size_align(size, ALIGN) {
        // SAFETY: every arena CPython frees came from alloc_arena with this size and alignment
        // (install's contract), and CPython frees each arena once.
        unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
    }
}

#[cfg(test)]
mod tests {
    use pyo3::types::PyListMethods;

    use super::*;

    /// Python objects that die are followed by arenas that stay: building and dropping a big
    /// list of floats leaves freed arenas in the cache, and a second round reuses them rather
    /// than growing it.
    #[test]
    fn freed_arenas_are_kept_and_reused() {
        crate::py_api::python::start().expect("python");
        let round = || {
            pyo3::Python::attach(|py| {
                let list = pyo3::types::PyList::empty(py);
                for i in 0..200_000 {
                    list.append(i as f64 + 0.5).expect("append");
                }
                drop(list);
            });
            cached_bytes()
        };
        let first = round();
        assert!(first > 0, "200k floats (6 MiB) freed should leave arenas cached");
        assert!(first <= KEEP_BYTES);
        let second = round();
        assert!(second <= first + 2 * 256 * 1024, "the second round reuses arenas: {first} then {second}");
    }
}
