// C (m x n, row-major, dense) = A (m x k) B (k x n) [+ bias per column or per row], A and B
// read through arbitrary strides (so either may be a transposed view). 16 x 16 output tiles,
// each workgroup stepping through k in 16-wide slabs staged in workgroup memory. Split k:
// workgroup z takes `split_slabs` slabs from slab z * split_slabs on and writes its partial
// product to the z-th m x n block of C (only block 0 adds the bias); a second kernel sums
// the blocks. A product with few output tiles and a long k (a weight gradient summed over a
// whole batch of pixels) then still fills the GPU.

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    a_row: u32,
    a_col: u32,
    b_row: u32,
    b_col: u32,
    // 1: add bias[col]; 2: add bias[row].
    with_bias: u32,
    split_slabs: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 16u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) g: vec3<u32>) {
    let row = g.y * TILE + l.y;
    let col = g.x * TILE + l.x;
    var acc = 0.0;
    let first = g.z * d.split_slabs;
    let last = min((d.k + TILE - 1u) / TILE, first + d.split_slabs);
    for (var s = first; s < last; s++) {
        let ka = s * TILE + l.x;
        var va = 0.0;
        if (row < d.m && ka < d.k) {
            va = a[row * d.a_row + ka * d.a_col];
        }
        ta[l.y][l.x] = va;
        let kb = s * TILE + l.y;
        var vb = 0.0;
        if (kb < d.k && col < d.n) {
            vb = b[kb * d.b_row + col * d.b_col];
        }
        tb[l.y][l.x] = vb;
        workgroupBarrier();
        for (var i = 0u; i < TILE; i++) {
            acc = fma(ta[l.y][i], tb[i][l.x], acc);
        }
        workgroupBarrier();
    }
    if (row < d.m && col < d.n) {
        if (g.z == 0u && d.with_bias == 1u) {
            acc += bias[col];
        } else if (g.z == 0u && d.with_bias == 2u) {
            acc += bias[row];
        }
        c[(g.z * d.m + row) * d.n + col] = acc;
    }
}
