// Layout changes and sums of activations (phi.wgsl prepended).
// Parameters: 0 C, 1 N, 2 plane (H W), 3 values; sum_splits: 4 parts, 5 activation (0 none,
// else 1 + phi's kind), 6 columns of the product.

@group(0) @binding(1) var<storage, read_write> src: array<real>;
@group(0) @binding(2) var<storage, read_write> dst: array<real>;
// The second summand (add); `a` per row (sum_splits with an activation).
@group(0) @binding(3) var<storage, read_write> other: array<real>;
// The activation's output (sum_splits with an activation).
@group(0) @binding(4) var<storage, read_write> act_y: array<real>;

// Flatten: (c, s, p) at (c N + s) plane + p becomes feature c plane + p of sample s, at
// (c plane + p) N + s.
@compute @workgroup_size(256)
fn flatten(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(3u)) {
        return;
    }
    let n = param(1u);
    let plane = param(2u);
    let s = i % n;
    let f = i / n;
    dst[i] = src[((f / plane) * n + s) * plane + f % plane];
}

// The inverse of flatten (its backward pass).
@compute @workgroup_size(256)
fn unflatten(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(3u)) {
        return;
    }
    let n = param(1u);
    let plane = param(2u);
    let p = i % plane;
    let s = (i / plane) % n;
    let c = i / (plane * n);
    dst[i] = src[(c * plane + p) * n + s];
}

// dst = src + other (a ParallelSum's first two branches, forward and backward).
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(3u)) {
        return;
    }
    dst[i] = src[i] + other[i];
}

// dst += src (a ParallelSum's further branches).
@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
              @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(3u)) {
        return;
    }
    dst[i] += src[i];
}

// dst = the sum of the `parts` blocks of `values` values in src, in block order (the partial
// products of a product split along k); with an activation, also act_y = the P-activation
// of dst with `a` per row (the product's epilogue, as in matmul.wgsl).
@compute @workgroup_size(256)
fn sum_splits(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
              @builtin(local_invocation_index) local: u32) {
    let len = param(3u);
    let i = flat_index(wg, groups, local);
    if (i >= len) {
        return;
    }
    var acc: real = 0.0;
    for (var part = 0u; part < param(4u); part++) {
        acc += src[part * len + i];
    }
    dst[i] = acc;
    if (param(5u) != 0u) {
        act_y[i] = p_act(param(5u) - 1u, other[i / param(6u)], acc);
    }
}
