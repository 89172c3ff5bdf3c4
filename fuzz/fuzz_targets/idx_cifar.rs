//! IDX files (raw or gzip) and CIFAR-10 binary batches: any bytes parse to `Ok` or `Err`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netmorph::data::parse_idx(data);
    let _ = netmorph::data::parse_cifar10_binary(data);
});
