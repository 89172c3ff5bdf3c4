//! Model files: any bytes must load as `Ok` or `Err`; a network that loads must run a small
//! batch without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmorph::{Rng, Tensor};

fuzz_target!(|data: &[u8]| {
    if let Ok(net) = netmorph::model_file::from_bytes::<f32>(data) {
        let s = net.input_shape();
        if s.c.checked_mul(s.h).and_then(|n| n.checked_mul(s.w)).is_some_and(|n| n <= 1 << 14) {
            let _ = net.forward(&Tensor::random(2, s, &mut Rng::seed(0)));
        }
    }
    let _ = netmorph::model_file::from_bytes::<f64>(data);
});
