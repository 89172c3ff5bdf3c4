// Sums the per-sample (loss, hit) pairs of a batch into the metrics slot of this step: one
// workgroup.
// Parameters: 0 N.

@group(0) @binding(1) var<storage, read_write> per_sample: array<vec2<real>>;
@group(0) @binding(2) var<storage, read_write> metrics: array<vec2<real>>;

var<workgroup> partial: array<vec2<real>, 256>;

@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_index) local: u32) {
    let n = param(0u);
    var acc = vec2<real>(0.0, 0.0);
    for (var s = local; s < n; s += WG) {
        acc += per_sample[s];
    }
    partial[local] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (local < half) {
            partial[local] += partial[local + half];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        metrics[step.slot] = partial[0];
    }
}
