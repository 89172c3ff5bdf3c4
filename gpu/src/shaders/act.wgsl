// P-activations (eq. 9): y = (1 - a) phi(x) + a x with one `a` per channel, their backward
// pass and the gradient of `a`. Activations are channel-major over the batch, so channel c
// owns the `plane` values from c * plane on.
// Parameters: 0 phi (phi.wgsl), 1 values, 2 plane (N H W).

@group(0) @binding(1) var<storage, read_write> x: array<real>;
@group(0) @binding(2) var<storage, read_write> a: array<real>;
// The output (forward) or its gradient (backward, da).
@group(0) @binding(3) var<storage, read_write> y: array<real>;
// The input's gradient (backward) or a's (da).
@group(0) @binding(4) var<storage, read_write> out: array<real>;

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(1u)) {
        return;
    }
    y[i] = p_act(param(0u), a[i / param(2u)], x[i]);
}

// out = dy ((1 - a) phi'(x) + a).
@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(1u)) {
        return;
    }
    let ac = a[i / param(2u)];
    out[i] = y[i] * ((1.0 - ac) * phi(param(0u), x[i]).y + ac);
}

var<workgroup> partial: array<real, 256>;

// out[c] = sum over channel c's values of dy (x - phi(x)): one workgroup per channel.
@compute @workgroup_size(256)
fn da(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
      @builtin(local_invocation_index) local: u32) {
    let c = group_index(wg, groups);
    let plane = param(2u);
    let channels = param(1u) / plane;
    var acc: real = 0.0;
    if (c < channels) {
        for (var j = local; j < plane; j += WG) {
            let v = x[c * plane + j];
            acc += y[c * plane + j] * (v - phi(param(0u), v).x);
        }
    }
    partial[local] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (local < half) {
            partial[local] += partial[local + half];
        }
        workgroupBarrier();
    }
    if (local == 0u && c < channels) {
        out[c] = partial[0];
    }
}
