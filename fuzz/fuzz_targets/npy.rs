//! `.npy` files: any bytes parse to `Ok` or `Err`, and what parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmorph::npy::{parse, to_bytes, Values};

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = parse(data) {
        let bytes = match &array.values {
            Values::F32(v) => to_bytes(&array.shape, v),
            Values::F64(v) => to_bytes(&array.shape, v),
        };
        let again = parse(&bytes).expect("written arrays parse");
        assert_eq!(again.shape, array.shape);
    }
});
