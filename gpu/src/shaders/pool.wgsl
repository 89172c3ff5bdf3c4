// Max and average pooling over unpadded windows, clipped at the border (ceil mode), one
// plane (channel, sample) after another.
// Parameters: 0 planes, 1 H, 2 W, 3 oh, 4 ow, 5 window k, 6 stride, 7 values written.

@group(0) @binding(1) var<storage, read_write> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// Max pooling: each output's winner, as an offset within its input plane.
@group(0) @binding(3) var<storage, read_write> winner: array<u32>;

struct Window {
    y0: u32,
    y1: u32,
    x0: u32,
    x1: u32,
}

// Output (oy, ox)'s input window, clipped at the border.
fn window(oy: u32, ox: u32) -> Window {
    let k = param(5u);
    let stride = param(6u);
    let y0 = oy * stride;
    let x0 = ox * stride;
    return Window(y0, min(y0 + k, param(1u)), x0, min(x0 + k, param(2u)));
}

// The outputs whose windows cover input index `at` along an axis with `outs` outputs:
// (first, one past the last).
fn covering(at: u32, outs: u32) -> vec2<u32> {
    let k = param(5u);
    let stride = param(6u);
    var first = 0u;
    if (at >= k) {
        first = (at - k) / stride + 1u;
    }
    return vec2<u32>(first, min(at / stride + 1u, outs));
}

// dst = the window's first maximum in row-major order; winner = where it is.
@compute @workgroup_size(256)
fn max_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(7u)) {
        return;
    }
    let w = param(2u);
    let oh = param(3u);
    let ow = param(4u);
    let plane = i / (oh * ow);
    let win = window((i / ow) % oh, i % ow);
    let base = plane * param(1u) * w;
    var best = bitcast<f32>(0xff800000u);
    var at = win.y0 * w + win.x0;
    for (var y = win.y0; y < win.y1; y++) {
        for (var x = win.x0; x < win.x1; x++) {
            let v = src[base + y * w + x];
            if (v > best) {
                best = v;
                at = y * w + x;
            }
        }
    }
    dst[i] = best;
    winner[i] = at;
}

// dst (the input's gradient) = the sum of src (the output's gradient) over the windows
// this input value won.
@compute @workgroup_size(256)
fn max_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let h = param(1u);
    let w = param(2u);
    let oh = param(3u);
    let ow = param(4u);
    let i = flat_index(wg, groups, local);
    if (i >= param(0u) * h * w) {
        return;
    }
    let plane = i / (h * w);
    let at = i % (h * w);
    let ys = covering(at / w, oh);
    let xs = covering(at % w, ow);
    var acc = 0.0;
    for (var oy = ys.x; oy < ys.y; oy++) {
        for (var ox = xs.x; ox < xs.y; ox++) {
            let o = (plane * oh + oy) * ow + ox;
            if (winner[o] == at) {
                acc += src[o];
            }
        }
    }
    dst[i] = acc;
}

// dst = the mean of the clipped window.
@compute @workgroup_size(256)
fn avg_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(7u)) {
        return;
    }
    let w = param(2u);
    let oh = param(3u);
    let ow = param(4u);
    let plane = i / (oh * ow);
    let win = window((i / ow) % oh, i % ow);
    let base = plane * param(1u) * w;
    var acc = 0.0;
    for (var y = win.y0; y < win.y1; y++) {
        for (var x = win.x0; x < win.x1; x++) {
            acc += src[base + y * w + x];
        }
    }
    dst[i] = acc / (f32(win.y1 - win.y0) * f32(win.x1 - win.x0));
}

// dst (the input's gradient) = the sum over covering windows of src / window size.
@compute @workgroup_size(256)
fn avg_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let h = param(1u);
    let w = param(2u);
    let oh = param(3u);
    let ow = param(4u);
    let i = flat_index(wg, groups, local);
    if (i >= param(0u) * h * w) {
        return;
    }
    let plane = i / (h * w);
    let at = i % (h * w);
    let ys = covering(at / w, oh);
    let xs = covering(at % w, ow);
    var acc = 0.0;
    for (var oy = ys.x; oy < ys.y; oy++) {
        for (var ox = xs.x; ox < xs.y; ox++) {
            let win = window(oy, ox);
            let size = f32(win.y1 - win.y0) * f32(win.x1 - win.x0);
            acc += src[(plane * oh + oy) * ow + ox] / size;
        }
    }
    dst[i] = acc;
}
