//! Counts live heap bytes and refuses (reporting the running input) any allocation that would
//! take the process past the limit, so a loader that trusts a size field cannot take the machine
//! down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Live-bytes limit (`usize::MAX` until `main` sets it).
pub static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TRIPPED: AtomicBool = AtomicBool::new(false);
/// Called once, with the refused size, when the limit is hit; it must not return.
pub static ON_TRIP: std::sync::OnceLock<fn(usize, usize) -> !> = std::sync::OnceLock::new();

/// Peak live heap bytes so far.
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

pub struct Guard;

fn admit(size: usize) -> bool {
    let live = LIVE.load(Ordering::Relaxed);
    if TRIPPED.load(Ordering::Relaxed) || live.saturating_add(size) <= LIMIT.load(Ordering::Relaxed) {
        return true;
    }
    if !TRIPPED.swap(true, Ordering::SeqCst)
        && let Some(f) = ON_TRIP.get()
    {
        f(size, live);
    }
    false
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to the system allocator with the caller's layout and
// pointer; the counters are plain atomics, and a refused request returns null, which the
// `GlobalAlloc` contract allows.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !admit(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}
