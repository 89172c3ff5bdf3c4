//! The little runtime a `#![no_std]` program on a hosted target needs: a global allocator
//! over libc that counts the live heap and its peak, a monotonic clock, and printing without
//! allocating (a fixed-capacity `heapless::String`).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    fn free(p: *mut c_void);
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

/// Bytes the program asked for and has not freed (the allocator's own overhead not counted).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE` has been since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// libc's allocator, counted.
pub struct CountingAlloc;

// SAFETY: allocation is forwarded to libc; the counters are atomics that never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut p: *mut c_void = core::ptr::null_mut();
        let align = layout.align().max(core::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two multiple of the pointer size, as posix_memalign needs.
        if unsafe { posix_memalign(&mut p, align, layout.size().max(1)) } != 0 {
            return core::ptr::null_mut();
        }
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        p.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { free(ptr.cast()) }
    }
}

/// Bytes live now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The peak since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak measurement at the live heap.
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// Seconds on the monotonic clock.
pub fn now() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid timespec; CLOCK_MONOTONIC (1) exists on every Linux.
    unsafe { clock_gettime(1, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// Writes `msg` to standard output.
pub fn say(msg: &[u8]) {
    // SAFETY: writes `msg.len()` bytes from a live slice to stdout.
    unsafe {
        write(1, msg.as_ptr(), msg.len());
    }
}

/// Prints formatted text (at most 512 bytes a line; longer is cut) without allocating.
pub fn print(args: core::fmt::Arguments<'_>) {
    let mut line: heapless::String<512> = heapless::String::new();
    let _ = line.write_fmt(args);
    say(line.as_bytes());
}

/// `println!` without std or a heap.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        $crate::rt::print(format_args!("{}\n", format_args!($($t)*)))
    };
}
