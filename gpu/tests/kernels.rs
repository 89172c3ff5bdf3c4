//! Every GPU kernel against the core's CPU implementation, on random inputs (never zeros),
//! with output buffers poisoned (NaN) so an element a kernel fails to write fails the test.
//!
//! Under `CI=true` a missing adapter fails the tests (CI installs Mesa's software Vulkan);
//! elsewhere they print that they skipped.

use netmorph_core::{Kernel, Layer, Network, Rng, Shape, Tensor};
use netmorph_gpu::{dense, AdapterChoice, Gpu, GpuError, Product};

mod common;
use common::{gpu, relative_error, values};

/// A row-major product on the CPU in f64, rounded once.
fn reference(p: &Product, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut c = Vec::with_capacity(p.m * p.n);
    for i in 0..p.m {
        for j in 0..p.n {
            let s: f64 = (0..p.k)
                .map(|q| {
                    f64::from(a[i * p.a_row + q * p.a_col])
                        * f64::from(b[q * p.b_row + j * p.b_col])
                })
                .sum();
            c.push(s as f32);
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

#[test]
fn matmul_matches_the_rounded_f64_product_across_ragged_sizes_and_strides() {
    let Some(gpu) = gpu("matmul") else { return };
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
            let a = values(&mut rng, m * k);
            let b = values(&mut rng, k * n);
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
            let want: Vec<f32> = reference(&p, &a, &b)
                .iter()
                .enumerate()
                .map(|(i, v)| v + bias[i % n])
                .collect();
            let err = relative_error(&got, &want);
            assert!(
                err <= 1e-5,
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
    let e = gpu.matmul(&p, &[1.0; 11], &[1.0; 6], None).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    let e = gpu
        .matmul(&p, &[1.0; 12], &[1.0; 6], Some(&[1.0; 3]))
        .unwrap_err();
    assert!(e.to_string().contains("bias"), "{e}");
    let huge = Product::row_major(usize::MAX, 2, 2);
    assert!(gpu.matmul(&huge, &[1.0; 4], &[1.0; 4], None).is_err());
    // Zero strides read one value however long k is; a k whose 16-wide slabs overflow the
    // shader's 32-bit count is refused instead of summing nothing.
    let wraps = Product {
        a_row: 0,
        a_col: 0,
        b_row: 0,
        b_col: 0,
        ..Product::row_major(1, u32::MAX as usize - 1, 1)
    };
    let e = gpu.matmul(&wraps, &[1.0], &[1.0], None).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
}

/// A one-layer dense network, its CPU forward output and gradients, against the GPU's.
#[test]
fn dense_forward_and_backward_match_the_core() {
    let Some(gpu) = gpu("dense") else { return };
    let mut rng = Rng::seed(11);
    for (batch, inp, out) in [(1, 3, 2), (10, 50, 10), (33, 20, 17)] {
        let kernel = Kernel {
            out,
            inp,
            k: 1,
            weight: values(&mut rng, out * inp),
            bias: values(&mut rng, out),
        };
        let x = Tensor::new(batch, Shape::flat(inp), values(&mut rng, batch * inp)).unwrap();
        let net = Network::new(Shape::flat(inp), vec![Layer::Dense(kernel.clone())]).unwrap();
        let (y, trace) = net.forward_trace(&x).unwrap();
        let got = dense::forward(&gpu, &kernel, &x).unwrap();
        let err = relative_error(&got, &y.data);
        assert!(err <= 1e-5, "forward {batch}x{inp}x{out}: {err:e}");

        let dy = Tensor::new(batch, y.shape, values(&mut rng, y.data.len())).unwrap();
        let cpu = net.backward(&trace, &dy).unwrap();
        let Layer::Dense(dk) = &cpu.layers()[0] else {
            panic!("not a dense gradient")
        };
        let g = dense::backward(&gpu, &kernel, &x, &dy.data).unwrap();
        for (what, got, want) in [
            ("dX", &g.input, &cpu.input().unwrap().data),
            ("dW", &g.weight, &dk.weight),
            ("db", &g.bias, &dk.bias),
        ] {
            let err = relative_error(got, want);
            assert!(err <= 1e-5, "{what} {batch}x{inp}x{out}: {err:e}");
        }
    }
}

#[test]
fn dense_refuses_a_batch_of_the_wrong_width() {
    let Some(gpu) = gpu("dense errors") else {
        return;
    };
    let kernel = Kernel {
        out: 2,
        inp: 3,
        k: 1,
        weight: vec![0.5; 6],
        bias: vec![0.1; 2],
    };
    let x = Tensor::new(2, Shape::flat(4), vec![1.0; 8]).unwrap();
    let e = dense::forward(&gpu, &kernel, &x).unwrap_err();
    assert!(e.to_string().contains("3 inputs"), "{e}");
    let x = Tensor::new(2, Shape::flat(3), vec![1.0; 6]).unwrap();
    let e = dense::backward(&gpu, &kernel, &x, &[1.0; 3]).unwrap_err();
    assert!(e.to_string().contains("dY"), "{e}");
}
