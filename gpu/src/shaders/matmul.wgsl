// Prepended: the scalar type's prelude (real_f32.wgsl or real_f64.wgsl) and phi.wgsl.
// C (m x n, row-major, dense) = A (m x k) B (k x n) [+ bias per column or per row], A and B
// read through arbitrary strides (so either may be a transposed view). 64 x 64 output tiles,
// each workgroup stepping through k in 16-wide slabs staged in workgroup memory. Split k:
// workgroup z takes `split_slabs` slabs from slab z * split_slabs on and writes its partial
// product to the z-th m x n block of C (only block 0 adds the bias); a second kernel sums
// the blocks. A product with few output tiles and a long k (a weight gradient summed over
// a whole batch of pixels) then still fills the GPU. Without split, the product can also
// apply a P-activation to its output: a layer and the activation after it in one pass.

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
    // 0: no activation; 1 + kind (phi.wgsl): also write act_y = P-activation(C) with
    // act_a[row] (only without split k).
    act: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<storage, read> a: array<real>;
@group(0) @binding(2) var<storage, read> b: array<real>;
@group(0) @binding(3) var<storage, read> bias: array<real>;
@group(0) @binding(4) var<storage, read_write> c: array<real>;
@group(0) @binding(5) var<storage, read> act_a: array<real>;
@group(0) @binding(6) var<storage, read_write> act_y: array<real>;

// 64 x 64 outputs per workgroup of 16 x 16 invocations, each accumulating a 4 x 4 block in
// registers: rows l.y + 16 i and columns l.x + 16 j, so that neighbouring invocations read
// neighbouring values of the staged B slab and write neighbouring values of C.
const TILE: u32 = 64u;
const SLAB: u32 = 16u;
var<workgroup> ta: array<array<real, 16>, 64>;
var<workgroup> tb: array<array<real, 64>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) g: vec3<u32>) {
    let row0 = g.y * TILE;
    let col0 = g.x * TILE;
    var acc: array<array<real, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    let first = g.z * d.split_slabs;
    let last = min((d.k + SLAB - 1u) / SLAB, first + d.split_slabs);
    for (var s = first; s < last; s++) {
        let k0 = s * SLAB;
        // Stage A's 64 x 16 and B's 16 x 64 values, four of each per invocation; zero
        // outside the matrices.
        for (var r = 0u; r < 4u; r++) {
            let e = li + 256u * r;
            let ar = e / SLAB;
            let ak = e % SLAB;
            var va: real = 0.0;
            if (row0 + ar < d.m && k0 + ak < d.k) {
                va = a[(row0 + ar) * d.a_row + (k0 + ak) * d.a_col];
            }
            ta[ar][ak] = va;
            let bk = e / TILE;
            let bc = e % TILE;
            var vb: real = 0.0;
            if (k0 + bk < d.k && col0 + bc < d.n) {
                vb = b[(k0 + bk) * d.b_row + (col0 + bc) * d.b_col];
            }
            tb[bk][bc] = vb;
        }
        workgroupBarrier();
        for (var q = 0u; q < SLAB; q++) {
            var av: array<real, 4>;
            var bv: array<real, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = ta[l.y + 16u * i][q];
                bv[i] = tb[q][l.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + l.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + l.x + 16u * j;
            if (row < d.m && col < d.n) {
                var v = acc[i][j];
                if (g.z == 0u && d.with_bias == 1u) {
                    v += bias[col];
                } else if (g.z == 0u && d.with_bias == 2u) {
                    v += bias[row];
                }
                c[(g.z * d.m + row) * d.n + col] = v;
                if (d.act != 0u) {
                    act_y[row * d.n + col] = p_act(d.act - 1u, act_a[row], v);
                }
            }
        }
    }
}
