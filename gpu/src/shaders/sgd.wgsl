// SGD with momentum and weight decay, Caffe's update as on the CPU:
// v = m v + lr (g + wd w), w -= v; P-activations' `a` is clamped to [0, 1] after.
// Parameters: 0 values, 1 rate (0 weights, 1 biases, 2 a), 2 momentum (f32 bits),
// 3 weight decay (f32 bits), 4 clamp (1 for a).

@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let i = flat_index(wg, groups, local);
    if (i >= param(0u)) {
        return;
    }
    var lr = step.lr;
    if (param(1u) == 1u) {
        lr = step.lr_bias;
    } else if (param(1u) == 2u) {
        lr = step.lr_a;
    }
    let vel = param_f32(2u) * v[i] + lr * (g[i] + param_f32(3u) * w[i]);
    v[i] = vel;
    var next = w[i] - vel;
    if (param(4u) == 1u) {
        next = clamp(next, 0.0, 1.0);
    }
    w[i] = next;
}
