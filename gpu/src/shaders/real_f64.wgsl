// The kernels' scalar type for f64 networks (adapters with SHADER_F64), prepended to every
// module (see real.rs): `real` and the functions the kernels take from it. Vulkan's
// GLSL.std.450 exp and log take 16- and 32-bit floats only, so e^x, log and tanh are
// computed here from arithmetic, fma, round and ldexp, which take f64.

alias real = f64;

// Taylor series of e^r - 1 through r^15 for |r| <= ln 2 / 2: the first omitted term is
// below 2^-60 of the sum.
fn expm1_small(r: real) -> real {
    var p: real = 1.0 / 1307674368000.0;
    p = fma(p, r, 1.0 / 87178291200.0);
    p = fma(p, r, 1.0 / 6227020800.0);
    p = fma(p, r, 1.0 / 479001600.0);
    p = fma(p, r, 1.0 / 39916800.0);
    p = fma(p, r, 1.0 / 3628800.0);
    p = fma(p, r, 1.0 / 362880.0);
    p = fma(p, r, 1.0 / 40320.0);
    p = fma(p, r, 1.0 / 5040.0);
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    return r + r * r * p;
}

// e^v: v = k ln 2 + r with |r| <= ln 2 / 2 (Cody and Waite's two-part ln 2, whose high
// part times any k here is exact), e^r = 1 + expm1_small(r), scaled by 2^k. v is clamped
// to [-745, 709]: below, the result is about 2^-1074 (or 0 where subnormals flush); above,
// e^709 instead of infinity.
fn exp_r(v: real) -> real {
    let x = clamp(v, -745.0, 709.0);
    let k = round(x * 1.44269504088896338700);
    let r = fma(-k, 1.90821492927058770002e-10, fma(-k, 6.93147180369123816490e-01, x));
    return ldexp(1.0 + expm1_small(r), i32(k));
}

// e^v - 1 without cancellation near 0.
fn expm1_r(v: real) -> real {
    if (abs(v) <= 0.34657359027997264) {
        return expm1_small(v);
    }
    return exp_r(v) - 1.0;
}

// log v for v in f32's normal range (the softmax's sums lie in [1, classes]): f32's log,
// then two Newton steps on e^y = v, y <- y + v e^-y - 1, each doubling the correct digits.
fn log_r(v: real) -> real {
    var y = real(log(f32(v)));
    y = y + fma(v, exp_r(-y), -1.0);
    y = y + fma(v, exp_r(-y), -1.0);
    return y;
}

// tanh |v| = -e / (2 + e) with e = e^-2|v| - 1, without cancellation at any |v|; 1 from
// |v| = 20 on, as in f64.
fn tanh_r(v: real) -> real {
    let e = expm1_r(-2.0 * min(abs(v), 20.0));
    let t = -e / (2.0 + e);
    return select(t, -t, v < 0.0);
}
