//! ONNX files: any bytes import to `Ok` or `Err` (never a panic, a hang or an allocation the
//! bytes do not bound), and what imports and exports (export refuses a few pooling geometries
//! ONNX cannot state) imports again with the same parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmorph::onnx::{export, import};
use netmorph::Network;

fuzz_target!(|data: &[u8]| {
    if let Ok(net) = import::<f32>(data) {
        if let Ok(bytes) = export(&net) {
            let again: Network<f32> = import(&bytes).expect("exported networks import");
            assert_eq!(again.param_count(), net.param_count());
        }
    }
});
