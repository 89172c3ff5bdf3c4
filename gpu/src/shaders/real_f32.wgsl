// The kernels' scalar type for f32 networks, prepended to every module (see real.rs):
// `real` and the functions the kernels take from it.

alias real = f32;

fn exp_r(v: real) -> real {
    return exp(v);
}

fn log_r(v: real) -> real {
    return log(v);
}

// tanh without overflow: its odd Taylor series through x^13 below |x| = 1/4 (truncation
// under 1e-9 relative there), (1 - e^-2|x|) / (1 + e^-2|x|) above, where 1 - e^-2|x| > 0.39
// loses no more than a bit and a half to cancellation.
fn tanh_r(v: real) -> real {
    let m = abs(v);
    if (m < 0.25) {
        let v2 = v * v;
        var p: real = 21844.0 / 6081075.0;
        p = p * v2 - 1382.0 / 155925.0;
        p = p * v2 + 62.0 / 2835.0;
        p = p * v2 - 17.0 / 315.0;
        p = p * v2 + 2.0 / 15.0;
        p = p * v2 - 1.0 / 3.0;
        return v + v * v2 * p;
    }
    let t = exp(-2.0 * min(m, 20.0));
    let r = (1.0 - t) / (1.0 + t);
    return select(r, -r, v < 0.0);
}
