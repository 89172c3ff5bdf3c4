//! Every GPU kernel against the core's CPU implementation, on random inputs (never zeros),
//! with output buffers poisoned (NaN) so an element a kernel fails to write fails the test.
//!
//! Under `CI=true` a missing adapter fails the tests (CI installs Mesa's software Vulkan);
//! elsewhere they print that they skipped.

use netmorph_core::{Rng, Scalar};
use netmorph_gpu::testing::supports_or_skip;
use netmorph_gpu::{AdapterChoice, Gpu, GpuError, Product, Real};

mod common;
use common::{gpu, relative_error, values};

/// A row-major product on the CPU in f64, rounded once.
fn reference<T: Scalar>(p: &Product, a: &[T], b: &[T]) -> Vec<T> {
    let mut c = Vec::with_capacity(p.m * p.n);
    for i in 0..p.m {
        for j in 0..p.n {
            let s: f64 = (0..p.k)
                .map(|q| {
                    a[i * p.a_row + q * p.a_col].as_f64() * b[q * p.b_row + j * p.b_col].as_f64()
                })
                .sum();
            c.push(T::of_f64(s));
        }
    }
    c
}

#[test]
fn adapters_are_listed_and_a_missing_one_is_named_with_the_choices() {
    let Some(gpu) = gpu("adapters") else { return };
    let list = Gpu::adapters();
    assert!(!list.is_empty());
    println!("adapter in use: {}", gpu.name());
    let Err(e) = Gpu::open(&AdapterChoice::Index(list.len())) else {
        panic!("an index past the list opened an adapter");
    };
    assert!(matches!(e, GpuError::AdapterNotFound { .. }));
    assert!(e.to_string().contains(&list[0].name), "{e}");
    assert!(Gpu::open(&AdapterChoice::Name("no such adapter, surely".into())).is_err());
    let by_name = Gpu::open(&AdapterChoice::Name(list[0].name.to_uppercase()));
    assert_eq!(
        by_name.map(|g| g.name().to_string()).ok(),
        Some(list[0].name.clone())
    );
}

/// The product in `T` against the reference within `tol`.
fn matmul_matches<T: Real>(gpu: &Gpu, tol: f64) {
    let mut rng = Rng::seed(7);
    // Sizes below, at and across the 16-wide slabs of k and the 64 x 64 output tiles.
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 2),
        (16, 16, 16),
        (17, 33, 15),
        (40, 7, 65),
        (64, 64, 64),
        (130, 47, 70),
    ] {
        for transposed in [false, true] {
            let a = values::<T>(&mut rng, m * k);
            let b = values::<T>(&mut rng, k * n);
            let p = if transposed {
                // A stored k x m and B stored n x k: both read transposed.
                Product {
                    a_row: 1,
                    a_col: m,
                    b_row: 1,
                    b_col: k,
                    ..Product::row_major(m, k, n)
                }
            } else {
                Product::row_major(m, k, n)
            };
            let bias = values(&mut rng, n);
            let got = gpu.matmul(&p, &a, &b, Some(&bias)).unwrap();
            let want: Vec<T> = reference(&p, &a, &b)
                .iter()
                .enumerate()
                .map(|(i, v)| *v + bias[i % n])
                .collect();
            let err = relative_error(&got, &want);
            assert!(
                err <= tol,
                "{m}x{k}x{n} transposed {transposed}: relative error {err:e}"
            );
        }
    }
}

#[test]
fn matmul_refuses_operands_too_short_for_their_strides() {
    let Some(gpu) = gpu("matmul errors") else {
        return;
    };
    let p = Product::row_major(4, 3, 2);
    let e = gpu.matmul(&p, &[1.0f32; 11], &[1.0; 6], None).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    let e = gpu
        .matmul(&p, &[1.0f32; 12], &[1.0; 6], Some(&[1.0; 3]))
        .unwrap_err();
    assert!(e.to_string().contains("bias"), "{e}");
    let huge = Product::row_major(usize::MAX, 2, 2);
    assert!(gpu.matmul(&huge, &[1.0f32; 4], &[1.0; 4], None).is_err());
    // Zero strides read one value however long k is; a k whose 16-wide slabs overflow the
    // shader's 32-bit count is refused instead of summing nothing.
    let wraps = Product {
        a_row: 0,
        a_col: 0,
        b_row: 0,
        b_col: 0,
        ..Product::row_major(1, u32::MAX as usize - 1, 1)
    };
    let e = gpu.matmul(&wraps, &[1.0f32], &[1.0], None).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
}

#[test]
fn matmul_matches_the_rounded_f64_product_across_ragged_sizes_and_strides() {
    let Some(gpu) = gpu("matmul") else { return };
    matmul_matches::<f32>(&gpu, 1e-5);
}

#[test]
fn matmul_in_f64_matches_to_f64_precision() {
    let Some(gpu) = gpu("matmul f64") else { return };
    if supports_or_skip::<f64>(&gpu, "matmul f64") {
        matmul_matches::<f64>(&gpu, 1e-14);
    }
}
