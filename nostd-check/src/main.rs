//! Proves that `netmorph-core` links without `std`: a `#![no_std]`, `#![no_main]` binary
//! with its own panic handler and a counting global allocator over libc's
//! `posix_memalign`/`free`, which deepens a convolution and checks the child's outputs equal
//! the parent's; then grows two MLPs on the device's terms ([`grow`]): train, deepen, widen,
//! train again, with a heap budget (1 MiB for 784-50-10, 256 KiB for 784-32-10) that every
//! phase's estimate is checked against before it starts, that the core's calls are held to
//! while they run, and that every phase's measured peak is checked against.
//! Exit status 5 (estimate) or 6 (measured) means a budget was passed, 7 that a step or a
//! morph failed or moved the function.
//!
//! Build and run (see `.ci/run`):
//! `cargo rustc --release --manifest-path nostd-check/Cargo.toml --bin netmorph-nostd-check -- -C link-arg=-lc`
//! then `nostd-check/target/release/netmorph-nostd-check`; exit status 0 means the morph was exact.
#![no_std]
#![no_main]

extern crate alloc;

mod grow;
mod rt;

use alloc::vec;

use netmorph_core::morph::depth::{deepen, DepthParams};
use netmorph_core::{
    ActKind, Conv2d, Kernel, Layer, LayerPath, Network, PActivation, Rng, Shape, Tensor,
};

use grow::{Failure, Plan};
use rt::say;

extern "C" {
    fn abort() -> !;
}

#[global_allocator]
static ALLOC: rt::CountingAlloc = rt::CountingAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    say(b"netmorph-nostd-check: panic\n");
    // SAFETY: abort never returns and has no preconditions.
    unsafe { abort() }
}

/// The prebuilt `liballoc` references this symbol even with `panic = "abort"`.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// The two on-device growth runs and their heap budgets (issue 12's targets).
const PLANS: [Plan; 2] = [
    Plan {
        name: "784-50-10",
        hidden: 50,
        inserted: 50,
        widened: 64,
        budget: 1024 * 1024,
        batch: 16,
        momentum: 0.9,
        lr: 0.01,
        steps: 300,
    },
    Plan {
        name: "784-32-10",
        hidden: 32,
        inserted: 32,
        widened: 40,
        budget: 256 * 1024,
        batch: 4,
        momentum: 0.0,
        lr: 0.02,
        steps: 1200,
    },
];

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
    if diff > 1e-4 * scale {
        say(b"netmorph-nostd-check: outputs differ\n");
        return 1;
    }
    say(b"netmorph-nostd-check: no_std depth morph preserved the function\n");
    drop((net, child, x, y0, y1));
    for plan in &PLANS {
        match grow::run(plan) {
            Ok(_) => {}
            Err(Failure::OverBudget) => return 5,
            Err(Failure::PeakOverBudget) => return 6,
            Err(Failure::Broken) => return 7,
        }
    }
    0
}
