// SGD with momentum and weight decay, Caffe's update as on the CPU:
// v = m v + lr (g + wd w), w -= v; P-activations' `a` is clamped to [0, 1] after.
// Parameters: 0 values, 1 rate (0 weights, which alone take weight decay, 1 biases, 2 a,
// clamped).

@group(0) @binding(1) var<storage, read_write> w: array<real>;
@group(0) @binding(2) var<storage, read_write> g: array<real>;
@group(0) @binding(3) var<storage, read_write> v: array<real>;

@compute @workgroup_size(256)
fn update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(0u)) {
        return;
    }
    let rate = param(1u);
    var lr = step.lr;
    var decay: real = 0.0;
    if (rate == 0u) {
        decay = step.decay;
    } else if (rate == 1u) {
        lr = step.lr_bias;
    } else {
        lr = step.lr_a;
    }
    let vel = step.momentum * v[i] + lr * (g[i] + decay * w[i]);
    v[i] = vel;
    var next = w[i] - vel;
    if (rate == 2u) {
        next = clamp(next, 0.0, 1.0);
    }
    w[i] = next;
}
