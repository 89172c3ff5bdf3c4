//! Proves that `netmorph-core` links without `std`: a `#![no_std]`, `#![no_main]` binary
//! with its own panic handler and a global allocator over libc's `posix_memalign`/`free`,
//! which deepens a convolution and checks the child's outputs equal the parent's.
//!
//! Build and run (see `.ci/run`):
//! `cargo rustc --release --manifest-path nostd-check/Cargo.toml --bin netmorph-nostd-check -- -C link-arg=-lc`
//! then `nostd-check/target/release/netmorph-nostd-check`; exit status 0 means the morph was exact.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape, Tensor,
};

extern "C" {
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    fn free(p: *mut c_void);
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn abort() -> !;
}

struct LibcAlloc;

unsafe impl GlobalAlloc for LibcAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut p: *mut c_void = core::ptr::null_mut();
        let align = layout.align().max(core::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two multiple of the pointer size, as posix_memalign needs.
        if unsafe { posix_memalign(&mut p, align, layout.size().max(1)) } == 0 {
            p.cast()
        } else {
            core::ptr::null_mut()
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { free(ptr.cast()) }
    }
}

#[global_allocator]
static ALLOC: LibcAlloc = LibcAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    say(b"netmorph-nostd-check: panic\n");
    // SAFETY: abort never returns and has no preconditions.
    unsafe { abort() }
}

/// The prebuilt `liballoc` references this symbol even with `panic = "abort"`.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

fn say(msg: &[u8]) {
    // SAFETY: writes `msg.len()` bytes from a live slice to stdout.
    unsafe {
        write(1, msg.as_ptr(), msg.len());
    }
}

#[no_mangle]
extern "C" fn main() -> i32 {
    let mut rng = Rng::seed(42);
    let mut k = Kernel::<f32>::zeros(4, 3, 3);
    k.weight = rng
        .normals(4 * 3 * 9, 0.3)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    k.bias = vec![0.1, -0.2, 0.3, 0.05];
    let layers = vec![
        Layer::Conv2d(Conv2d {
            kernel: k,
            stride: 1,
            pad: 1,
        }),
        Layer::Activation(PActivation::plain(ActKind::Tanh, 4)),
    ];
    let Ok(net) = Network::new(Shape::image(3, 8, 8), layers) else {
        say(b"netmorph-nostd-check: invalid network\n");
        return 2;
    };
    let Ok((child, _)) = deepen(
        &net,
        &LayerPath::top(0),
        &DepthParams::new(12, 3, 3),
        &mut rng,
    ) else {
        say(b"netmorph-nostd-check: depth morph failed\n");
        return 3;
    };
    let x = Tensor::random(2, net.input_shape(), &mut rng);
    let (Ok(y0), Ok(y1)) = (net.forward(&x), child.forward(&x)) else {
        say(b"netmorph-nostd-check: forward failed\n");
        return 4;
    };
    let (diff, scale) = y1.max_abs_diff(&y0);
    if diff <= 1e-4 * scale {
        say(b"netmorph-nostd-check: no_std depth morph preserved the function\n");
        0
    } else {
        say(b"netmorph-nostd-check: outputs differ\n");
        1
    }
}
