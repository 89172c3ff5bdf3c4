//! Test-only: a global allocator that records, per thread, the live heap and its peak, so
//! tests can check the workspace bounds of [`crate::morph::plan::MorphOp::cost`] against what a
//! morph really allocates.
//!
//! While [`peak_of`] measures, [`crate::alloc_try::probe`] asks for nothing: a morph's probe
//! requests its whole bound at once and gives it back untouched, and counting it would make
//! every bound look exact.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use std::alloc::System;

struct Meter;

std::thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let v = live.get().wrapping_add(bytes);
        live.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(bytes)));
}

/// Whether [`peak_of`] is measuring on this thread.
pub(crate) fn measuring() -> bool {
    MEASURING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call forwards to `System` unchanged; the bookkeeping only touches
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as a copy: both blocks live at once.
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result and the peak of the heap it held at once on this thread
/// beyond what was live when it started.
pub(crate) fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    MEASURING.with(|m| m.set(true));
    let r = f();
    MEASURING.with(|m| m.set(false));
    (r, PEAK.with(Cell::get).saturating_sub(base))
}

/// Runs matrix products of a few shapes, so that the packing buffers faer keeps per thread
/// (sized by the caches, not by the problem) exist before a measurement starts.
pub(crate) fn warm_up() {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, Mat, Par};
    for (m, k, n) in [(8, 8, 8), (300, 300, 300), (64, 5000, 64), (2000, 200, 50)] {
        let mut c = Mat::<f64>::zeros(m, n);
        let (a, b) = (Mat::<f64>::zeros(m, k), Mat::<f64>::zeros(k, n));
        matmul(c.as_mut(), Accum::Replace, &a, &b, 1.0, Par::Seq);
        let mut c = Mat::<f32>::zeros(m, n);
        let (a, b) = (Mat::<f32>::zeros(m, k), Mat::<f32>::zeros(k, n));
        matmul(c.as_mut(), Accum::Replace, &a, &b, 1.0, Par::Seq);
    }
}
