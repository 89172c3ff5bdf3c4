#!/usr/bin/env python3
"""Side by side: netmorph's depth solve against a straightforward dense SciPy formulation.

SciPy side: fix a random F_{l+1}, build the dense matrix A of the deconvolution for F_l
(C_{l+1} K~^2 rows, C_l K_1^2 columns, shared by every input channel: the per-channel split is
kept, the Kronecker/Gram structure is not) and call scipy.linalg.lstsq on all C_{l-1}
right-hand sides at once. netmorph side: `deepen` end to end (init, solve, residual check,
rescaling), from the `depth_solve` example. Both run here, now; the script prints the ratio.

    pip install numpy scipy
    python3 bench/scripts/depth_solve_vs_scipy.py [repeats]
"""
import subprocess
import sys
import time

import numpy as np
import scipy.linalg

CASES = {
    # name: (channels, C_l, K_1, K_2)
    "alg1_64x64x3x3_to_256_k3k3": (64, 256, 3, 3),
    "alg2_256x256x3x3_to_1024_k3k1": (256, 1024, 3, 1),
}


def dense_system(c, cl, k1, k2, rng):
    """A[(o, t), (m, q)] = F2[o, m, t - q]; B[(o, t), i] = G~[o, i, t]."""
    kt = k1 + k2 - 1
    f2 = rng.standard_normal((c, cl, k2, k2))
    g = rng.standard_normal((c, c, 3, 3))
    off = (kt - 3) // 2
    gt = np.zeros((c, c, kt, kt))
    gt[:, :, off:off + 3, off:off + 3] = g
    a = np.zeros((c, kt, kt, cl, k1, k1))
    for qy in range(k1):
        for qx in range(k1):
            for py in range(k2):
                for px in range(k2):
                    a[:, qy + py, qx + px, :, qy, qx] = f2[:, :, py, px]
    a = a.reshape(c * kt * kt, cl * k1 * k1)
    b = gt.transpose(0, 2, 3, 1).reshape(c * kt * kt, c)
    return a, b


def scipy_time(case, repeats):
    c, cl, k1, k2 = CASES[case]
    rng = np.random.default_rng(0)
    a, b = dense_system(c, cl, k1, k2, rng)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        x, *_ = scipy.linalg.lstsq(a, b)
        times.append(time.perf_counter() - t)
    rel = np.abs(a @ x - b).max() / np.abs(b).max()
    return sorted(times)[len(times) // 2], a.shape, rel


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    out = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "-p", "netmorph-bench", "--example", "depth_solve", str(repeats)],
        check=True, capture_output=True, text=True,
    ).stdout
    ours = {}
    for line in out.split("\n"):
        if line.strip():
            name, scalar, secs = line.split()
            ours[(name, scalar)] = float(secs)
    print(f"{'case':<32} {'A':>12} {'scipy lstsq':>12} {'netmorph f32':>13} {'netmorph f64':>13} {'ratio f64':>10}")
    for case in CASES:
        t_scipy, shape, rel = scipy_time(case, repeats)
        f32, f64 = ours[(case, "f32")], ours[(case, "f64")]
        print(f"{case:<32} {shape[0]:>5}x{shape[1]:<6} {t_scipy:>11.3f}s {f32:>12.3f}s {f64:>12.3f}s {t_scipy / f64:>9.1f}x"
              f"   (scipy residual {rel:.1e})")


if __name__ == "__main__":
    main()
