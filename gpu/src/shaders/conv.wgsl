// Convolution as a product: im2col lays each receptive field out as a column, so that
// Y (C_out x N oh ow) = W (C_out x C k k) col (C k k x N oh ow); col2im gathers the
// gradient of the columns back onto the input. Activations are channel-major over the
// batch: value (c, s, y, x) at ((c N + s) H + y) W + x.
// Parameters: 0 C, 1 N, 2 H, 3 W, 4 k, 5 stride, 6 pad, 7 oh, 8 ow, 9 values written.

@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// dst = col(src): row (c, ky, kx), column (s, oy, ox); zero where the window overhangs.
@compute @workgroup_size(256)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(9u)) {
        return;
    }
    let n = param(1u);
    let h = param(2u);
    let w = param(3u);
    let k = param(4u);
    let stride = param(5u);
    let pad = param(6u);
    let oh = param(7u);
    let ow = param(8u);
    let plane = oh * ow;
    let q = i / (n * plane);
    let r = i % (n * plane);
    let s = r / plane;
    let oy = (r % plane) / ow;
    let ox = r % ow;
    let c = q / (k * k);
    let iy = i32(oy * stride + (q / k) % k) - i32(pad);
    let ix = i32(ox * stride + q % k) - i32(pad);
    var v = 0.0;
    if (iy >= 0 && iy < i32(h) && ix >= 0 && ix < i32(w)) {
        v = src[((c * n + s) * h + u32(iy)) * w + u32(ix)];
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
    let n = param(1u);
    let h = param(2u);
    let w = param(3u);
    let k = param(4u);
    let stride = param(5u);
    let pad = param(6u);
    let oh = param(7u);
    let ow = param(8u);
    let ix = i % w;
    let iy = (i / w) % h;
    let s = (i / (w * h)) % n;
    let c = i / (w * h * n);
    let cols = n * oh * ow;
    var acc = 0.0;
    for (var ky = 0u; ky < k; ky++) {
        let ty = i32(iy + pad) - i32(ky);
        if (ty < 0 || u32(ty) % stride != 0u || u32(ty) / stride >= oh) {
            continue;
        }
        let oy = u32(ty) / stride;
        for (var kx = 0u; kx < k; kx++) {
            let tx = i32(ix + pad) - i32(kx);
            if (tx < 0 || u32(tx) % stride != 0u || u32(tx) / stride >= ow) {
                continue;
            }
            let ox = u32(tx) / stride;
            acc += src[((c * k + ky) * k + kx) * cols + (s * oh + oy) * ow + ox];
        }
    }
    dst[i] = acc;
}
