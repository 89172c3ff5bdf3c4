//! An independent, deliberately naive oracle: direct loops over every output value, in f64,
//! sharing no code with the core's im2col + matmul forward pass or its deconvolution solver.

use netmorph_core::{Conv2d, Kernel, Layer, Network, PActivation, Pool, Scalar, Shape, Tensor};

/// A batch as f64 values with its sample shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    /// Batch size.
    pub n: usize,
    /// Sample shape.
    pub shape: Shape,
    /// Values, NCHW.
    pub data: Vec<f64>,
}

/// Runs `net` on `x` by direct loops in f64 (the network's weights widened to f64).
pub fn forward<T: Scalar>(net: &Network<T>, x: &Tensor<T>) -> Blob {
    let blob = Blob {
        n: x.n,
        shape: x.shape,
        data: x.data.iter().map(|v| v.as_f64()).collect(),
    };
    seq(net.layers(), blob)
}

fn seq<T: Scalar>(layers: &[Layer<T>], mut b: Blob) -> Blob {
    for l in layers {
        b = layer(l, b);
    }
    b
}

fn layer<T: Scalar>(l: &Layer<T>, b: Blob) -> Blob {
    match l {
        Layer::Dense(k) => conv(k, 1, 0, &b),
        Layer::Conv2d(Conv2d {
            kernel,
            stride,
            pad,
        }) => conv(kernel, *stride, *pad, &b),
        Layer::MaxPool2d(p) => pool(p, &b, true),
        Layer::AvgPool2d(p) => pool(p, &b, false),
        Layer::Flatten => Blob {
            n: b.n,
            shape: Shape::flat(b.shape.len()),
            data: b.data,
        },
        Layer::Activation(p) => act(p, b),
        Layer::ParallelSum(branches) => {
            let outs: Vec<Blob> = branches.iter().map(|br| seq(br, b.clone())).collect();
            let mut sum = outs[0].clone();
            for o in &outs[1..] {
                for (s, v) in sum.data.iter_mut().zip(&o.data) {
                    *s += v;
                }
            }
            sum
        }
    }
}

/// `y[n, o, oy, ox] = b[o] + sum_{i, ky, kx} w[o, i, ky, kx] x[n, i, oy s + ky - p, ox s + kx - p]`
/// with zeros outside the input; a dense layer is the `1 x 1` case on a flat blob.
fn conv<T: Scalar>(k: &Kernel<T>, s: usize, p: usize, b: &Blob) -> Blob {
    let (h, w) = (b.shape.h as isize, b.shape.w as isize);
    let ho = (b.shape.h + 2 * p - k.k) / s + 1;
    let wo = (b.shape.w + 2 * p - k.k) / s + 1;
    let shape = Shape::image(k.out, ho, wo);
    let mut data = vec![0.0; b.n * shape.len()];
    for n in 0..b.n {
        for o in 0..k.out {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = k.bias[o].as_f64();
                    for i in 0..k.inp {
                        for ky in 0..k.k {
                            for kx in 0..k.k {
                                let iy = (oy * s + ky) as isize - p as isize;
                                let ix = (ox * s + kx) as isize - p as isize;
                                if iy < 0 || ix < 0 || iy >= h || ix >= w {
                                    continue;
                                }
                                let xv = b.data[((n * k.inp + i) * b.shape.h + iy as usize)
                                    * b.shape.w
                                    + ix as usize];
                                acc +=
                                    k.weight[((o * k.inp + i) * k.k + ky) * k.k + kx].as_f64() * xv;
                            }
                        }
                    }
                    data[((n * k.out + o) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    Blob {
        n: b.n,
        shape,
        data,
    }
}

fn pool(p: &Pool, b: &Blob, max: bool) -> Blob {
    let out = |len: usize| {
        let span = len - p.k;
        let mut o = if p.ceil {
            span.div_ceil(p.stride) + 1
        } else {
            span / p.stride + 1
        };
        if (o - 1) * p.stride >= len {
            o -= 1;
        }
        o
    };
    let (h, w) = (b.shape.h, b.shape.w);
    let (ho, wo) = (out(h), out(w));
    let shape = Shape::image(b.shape.c, ho, wo);
    let mut data = Vec::with_capacity(b.n * shape.len());
    for plane in 0..b.n * b.shape.c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut vals = Vec::new();
                for y in oy * p.stride..(oy * p.stride + p.k).min(h) {
                    for x in ox * p.stride..(ox * p.stride + p.k).min(w) {
                        vals.push(b.data[(plane * h + y) * w + x]);
                    }
                }
                data.push(if max {
                    vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                });
            }
        }
    }
    Blob {
        n: b.n,
        shape,
        data,
    }
}

fn act<T: Scalar>(p: &PActivation<T>, mut b: Blob) -> Blob {
    let plane = b.shape.h * b.shape.w;
    for (idx, v) in b.data.iter_mut().enumerate() {
        let a = p.a[(idx / plane) % b.shape.c].as_f64();
        let phi = match p.kind {
            netmorph_core::ActKind::Relu => v.max(0.0),
            netmorph_core::ActKind::Tanh => v.tanh(),
            netmorph_core::ActKind::Sigmoid => 1.0 / (1.0 + (-*v).exp()),
            netmorph_core::ActKind::Identity => *v,
        };
        *v = (1.0 - a) * phi + a * *v;
    }
    b
}

/// Direct full 2-D convolution of the spatial kernels summed over the middle channel:
/// `C[o, i, t] = sum_m sum_p F2[o, m, p] F1[m, i, t - p]`, looping over each output tap `t`.
pub fn compose<T: Scalar>(f2: &Kernel<T>, f1: &Kernel<T>) -> Vec<f64> {
    let kt = f1.k + f2.k - 1;
    let mut out = vec![0.0; f2.out * f1.inp * kt * kt];
    for o in 0..f2.out {
        for i in 0..f1.inp {
            for ty in 0..kt {
                for tx in 0..kt {
                    let mut acc = 0.0;
                    for m in 0..f2.inp {
                        for py in 0..f2.k {
                            for px in 0..f2.k {
                                let (Some(qy), Some(qx)) = (ty.checked_sub(py), tx.checked_sub(px))
                                else {
                                    continue;
                                };
                                if qy >= f1.k || qx >= f1.k {
                                    continue;
                                }
                                acc += f2.weight[((o * f2.inp + m) * f2.k + py) * f2.k + px]
                                    .as_f64()
                                    * f1.weight[((m * f1.inp + i) * f1.k + qy) * f1.k + qx]
                                        .as_f64();
                            }
                        }
                    }
                    out[((o * f1.inp + i) * kt + ty) * kt + tx] = acc;
                }
            }
        }
    }
    out
}

/// `G` zero-padded (centred) to `k x k`, as f64.
pub fn pad<T: Scalar>(g: &Kernel<T>, k: usize) -> Vec<f64> {
    let off = (k - g.k) / 2;
    let mut out = vec![0.0; g.out * g.inp * k * k];
    for o in 0..g.out {
        for i in 0..g.inp {
            for y in 0..g.k {
                for x in 0..g.k {
                    out[((o * g.inp + i) * k + y + off) * k + x + off] =
                        g.weight[((o * g.inp + i) * g.k + y) * g.k + x].as_f64();
                }
            }
        }
    }
    out
}

/// `max |a - b|` and `max |b|`.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0f64, 0.0f64), |(d, m), (x, y)| {
        (d.max((x - y).abs()), m.max(y.abs()))
    })
}

/// `max |a - b| / max |b|` (absolute when `b` is all zero).
pub fn relative(a: &[f64], b: &[f64]) -> f64 {
    let (d, m) = max_abs_diff(a, b);
    if m > 0.0 {
        d / m
    } else {
        d
    }
}
