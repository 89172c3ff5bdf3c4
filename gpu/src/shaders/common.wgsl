// Shared by every kernel but the matrix product (prepended to each module by kernels.rs,
// after the scalar type's prelude, real_f32.wgsl or real_f64.wgsl): binding 0 holds the
// dispatch's 16 integer parameters, binding 5 the values of the training step; bindings
// 1-4 are the module's storage buffers.

struct Step {
    // Learning rates of weights, biases and P-activations' `a` at this step.
    lr: real,
    lr_bias: real,
    lr_a: real,
    momentum: real,
    // Weight decay (weights only).
    decay: real,
    // Where the loss kernels write this step's (loss sum, hits).
    slot: u32,
}

@group(0) @binding(0) var<uniform> params: array<vec4<u32>, 4>;
@group(0) @binding(5) var<uniform> step: Step;

const WG: u32 = 256u;

fn param(i: u32) -> u32 {
    return params[i / 4u][i % 4u];
}

// The invocation's index in a 1-D range spread over a 2-D grid of 256-wide workgroups.
fn flat_index(wg: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (wg.y * groups.x + wg.x) * WG + local;
}

// The workgroup's index in a 2-D grid of workgroups.
fn group_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.y * groups.x + wg.x;
}
