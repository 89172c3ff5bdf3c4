// Softmax cross-entropy on logits laid out class-major over the batch (class j of sample s
// at j N + s), its gradient (softmax - onehot) / N, and each sample's loss and hit.
// Parameters: 0 classes, 1 N.

@group(0) @binding(1) var<storage, read_write> logits: array<real>;
@group(0) @binding(2) var<storage, read_write> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<real>;
// Per sample: (loss, 1 if the first largest logit is the label's else 0).
@group(0) @binding(4) var<storage, read_write> per_sample: array<vec2<real>>;

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) local: u32) {
    let classes = param(0u);
    let n = param(1u);
    let s = flat_index(wg, groups, local);
    if (s >= n) {
        return;
    }
    var top = logits[s];
    var best = 0u;
    for (var j = 1u; j < classes; j++) {
        let v = logits[j * n + s];
        if (v > top) {
            top = v;
            best = j;
        }
    }
    var sum: real = 0.0;
    for (var j = 0u; j < classes; j++) {
        sum += exp_r(logits[j * n + s] - top);
    }
    let label = labels[s];
    let inv_n = 1.0 / real(n);
    for (var j = 0u; j < classes; j++) {
        let p = exp_r(logits[j * n + s] - top) / sum;
        grad[j * n + s] = (p - select(real(0.0), real(1.0), j == label)) * inv_n;
    }
    let loss = top + log_r(sum) - logits[label * n + s];
    per_sample[s] = vec2<real>(loss, select(real(0.0), real(1.0), best == label));
}
