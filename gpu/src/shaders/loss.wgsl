// Softmax cross-entropy on logits laid out class-major over the batch (class j of sample s
// at j N + s), its gradient (softmax - onehot) / N, and each sample's loss and hit.
// Parameters: 0 classes, 1 N.

@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
// Per sample: (loss, 1 if the first largest logit is the label's else 0).
@group(0) @binding(4) var<storage, read_write> per_sample: array<vec2<f32>>;

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) local: u32) {
    let classes = param(0u);
    let n = param(1u);
    let s = flat_index(wg, groups, local);
    if (s >= n) {
        return;
    }
    var top = bitcast<f32>(0xff800000u);
    var best = 0u;
    for (var j = 0u; j < classes; j++) {
        let v = logits[j * n + s];
        if (v > top) {
            top = v;
            best = j;
        }
    }
    var sum = 0.0;
    for (var j = 0u; j < classes; j++) {
        sum += exp(logits[j * n + s] - top);
    }
    let label = labels[s];
    let inv_n = 1.0 / f32(n);
    for (var j = 0u; j < classes; j++) {
        let p = exp(logits[j * n + s] - top) / sum;
        grad[j * n + s] = (p - select(0.0, 1.0, j == label)) * inv_n;
    }
    let loss = top + log(sum) - logits[label * n + s];
    per_sample[s] = vec2<f32>(loss, select(0.0, 1.0, best == label));
}
