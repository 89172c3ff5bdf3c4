// Convolution as a product: im2col lays each receptive field out as a column, so that
// Y (C_out x N oh ow) = W (C_out x C k k) col (C k k x N oh ow); col2im gathers the
// gradient of the columns back onto the input. Activations are channel-major over the
// batch: value (c, s, y, x) at ((c N + s) H + y) W + x.
// Parameters: 0 C, 1 N, 2 H, 3 W, 4 k, 5 stride, 6 pad, 7 oh, 8 ow, 9 values written.

@group(0) @binding(1) var<storage, read_write> src: array<real>;
@group(0) @binding(2) var<storage, read_write> dst: array<real>;

struct Conv {
    n: u32,
    h: u32,
    w: u32,
    k: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
}

fn conv() -> Conv {
    return Conv(param(1u), param(2u), param(3u), param(4u), param(5u), param(6u), param(7u),
                param(8u));
}

// dst = col(src): row (c, ky, kx), column (s, oy, ox); zero where the window overhangs.
@compute @workgroup_size(256)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(9u)) {
        return;
    }
    let p = conv();
    let plane = p.oh * p.ow;
    let q = i / (p.n * plane);
    let r = i % (p.n * plane);
    let s = r / plane;
    let oy = (r % plane) / p.ow;
    let ox = r % p.ow;
    let c = q / (p.k * p.k);
    let iy = i32(oy * p.stride + (q / p.k) % p.k) - i32(p.pad);
    let ix = i32(ox * p.stride + q % p.k) - i32(p.pad);
    var v: real = 0.0;
    if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
        v = src[((c * p.n + s) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    dst[i] = v;
}

// dst (the input's gradient) = the sum, over the windows that cover each input value, of
// src (the columns' gradient) at that value's place in the window.
@compute @workgroup_size(256)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(9u)) {
        return;
    }
    let p = conv();
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let s = (i / (p.w * p.h)) % p.n;
    let c = i / (p.w * p.h * p.n);
    let cols = p.n * p.oh * p.ow;
    var acc: real = 0.0;
    for (var ky = 0u; ky < p.k; ky++) {
        let ty = i32(iy + p.pad) - i32(ky);
        if (ty < 0 || u32(ty) % p.stride != 0u || u32(ty) / p.stride >= p.oh) {
            continue;
        }
        let oy = u32(ty) / p.stride;
        for (var kx = 0u; kx < p.k; kx++) {
            let tx = i32(ix + p.pad) - i32(kx);
            if (tx < 0 || u32(tx) % p.stride != 0u || u32(tx) / p.stride >= p.ow) {
                continue;
            }
            let ox = u32(tx) / p.stride;
            acc += src[((c * p.k + ky) * p.k + kx) * cols + (s * p.oh + oy) * p.ow + ox];
        }
    }
    dst[i] = acc;
}
