// Max and average pooling over unpadded windows, clipped at the border (ceil mode), one
// plane (channel, sample) after another.
// Parameters: 0 planes, 1 H, 2 W, 3 oh, 4 ow, 5 window k, 6 stride, 7 values written.

@group(0) @binding(1) var<storage, read_write> src: array<real>;
@group(0) @binding(2) var<storage, read_write> dst: array<real>;
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

fn window_size(win: Window) -> real {
    return real(win.y1 - win.y0) * real(win.x1 - win.x0);
}

// Output i's window, and where its input plane starts in src.
struct Output {
    base: u32,
    win: Window,
}

fn output(i: u32) -> Output {
    let oh = param(3u);
    let ow = param(4u);
    let plane = i / (oh * ow);
    return Output(plane * param(1u) * param(2u), window((i / ow) % oh, i % ow));
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

// Input i's plane, and the outputs (rows ys, columns xs) whose windows cover it.
struct Covered {
    plane: u32,
    at: u32,
    ys: vec2<u32>,
    xs: vec2<u32>,
}

fn covered(i: u32) -> Covered {
    let hw = param(1u) * param(2u);
    let at = i % hw;
    let w = param(2u);
    return Covered(i / hw, at, covering(at / w, param(3u)), covering(at % w, param(4u)));
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
    let o = output(i);
    // Windows are never empty: the first value starts the search; a NaN there gives way to
    // the first number, as NaNs do on the CPU (f32::max).
    var at = o.win.y0 * w + o.win.x0;
    var best = src[o.base + at];
    for (var y = o.win.y0; y < o.win.y1; y++) {
        for (var x = o.win.x0; x < o.win.x1; x++) {
            let v = src[o.base + y * w + x];
            if (v > best || best != best) {
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
    let i = flat_index(wg, groups, local);
    if (i >= param(0u) * param(1u) * param(2u)) {
        return;
    }
    let c = covered(i);
    var acc: real = 0.0;
    for (var oy = c.ys.x; oy < c.ys.y; oy++) {
        for (var ox = c.xs.x; ox < c.xs.y; ox++) {
            let o = (c.plane * param(3u) + oy) * param(4u) + ox;
            if (winner[o] == c.at) {
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
    let o = output(i);
    var acc: real = 0.0;
    for (var y = o.win.y0; y < o.win.y1; y++) {
        for (var x = o.win.x0; x < o.win.x1; x++) {
            acc += src[o.base + y * w + x];
        }
    }
    dst[i] = acc / window_size(o.win);
}

// dst (the input's gradient) = the sum over covering windows of src / window size.
@compute @workgroup_size(256)
fn avg_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(0u) * param(1u) * param(2u)) {
        return;
    }
    let c = covered(i);
    var acc: real = 0.0;
    for (var oy = c.ys.x; oy < c.ys.y; oy++) {
        for (var ox = c.xs.x; ox < c.xs.y; ox++) {
            let o = (c.plane * param(3u) + oy) * param(4u) + ox;
            acc += src[o] / window_size(window(oy, ox));
        }
    }
    dst[i] = acc;
}
