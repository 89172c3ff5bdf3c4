// The activation functions phi of P-activations (eq. 9), shared by act.wgsl and the
// matrix product's fused epilogue: kind 0 ReLU, 1 TanH, 2 sigmoid, 3 identity.

// (phi(v), phi'(v)); ReLU's derivative at 0 is 0, as on the CPU.
fn phi(kind: u32, v: real) -> vec2<real> {
    switch kind {
        case 0u: {
            return vec2<real>(max(v, 0.0), select(real(0.0), real(1.0), v > 0.0));
        }
        case 1u: {
            let t = tanh_r(v);
            return vec2<real>(t, 1.0 - t * t);
        }
        case 2u: {
            let s = 1.0 / (1.0 + exp_r(-v));
            return vec2<real>(s, s * (1.0 - s));
        }
        default: {
            return vec2<real>(v, 1.0);
        }
    }
}

// The P-activation y = (1 - a) phi(v) + a v; a = 1 is the identity exactly (a depth
// morph's new activation).
fn p_act(kind: u32, a: real, v: real) -> real {
    if (a == 1.0) {
        return v;
    }
    return (1.0 - a) * phi(kind, v).x + a * v;
}
