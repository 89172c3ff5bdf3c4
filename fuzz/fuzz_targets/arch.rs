//! Architecture specs: parsing and counting parameters never panic; small networks build.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmorph::{Rng, Shape};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(arch) = netmorph::arch::parse(spec) {
        let input = Shape::image(3, 12, 12);
        if arch.param_count(input, 10).is_some_and(|p| p < 1 << 16) {
            let _ = arch.build::<f32>(input, 10, &mut Rng::seed(0));
        }
    }
});
