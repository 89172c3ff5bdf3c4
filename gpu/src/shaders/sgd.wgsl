// SGD with momentum and weight decay, Caffe's update as on the CPU:
// v = m v + lr (g + wd w), w -= v; P-activations' `a` is clamped to [0, 1] after.
// Every parameter tensor in one dispatch: the values, gradients and velocities are three
// buffers laid out alike, weights first, then biases, then `a`.
// Parameters: 0 values, 1 where the weights (which alone take weight decay) end, 2 where the
// biases end.

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
    var lr = step.lr;
    var decay: real = 0.0;
    let is_a = i >= param(2u);
    if (i < param(1u)) {
        decay = step.decay;
    } else if (is_a) {
        lr = step.lr_a;
    } else {
        lr = step.lr_bias;
    }
    let vel = step.momentum * v[i] + lr * (g[i] + decay * w[i]);
    v[i] = vel;
    var next = w[i] - vel;
    if (is_a) {
        next = clamp(next, 0.0, 1.0);
    }
    w[i] = next;
}
