#!/usr/bin/env python3
"""Side by side in one run: training throughput (images/s, batch 100, float32) of netmorph on
a GPU (netmorph-gpu: wgpu compute, Vulkan/Metal/DX12), netmorph on the CPU, and PyTorch on the
same GPU through CUDA (or on the CPU where PyTorch sees no CUDA device, said in the output).

Models: Caffe's cifar10_quick and cifar_222 (its three 5x5 convolutions each 4x wider and
followed by a 1x1 convolution back to the original width: the paper's depth-morphed child).
PyTorch uses plain ReLUs where netmorph has P-activations (learnable a), which only favours
PyTorch. Every side runs SGD with momentum 0.9 and weight decay 0.004 on one generated batch
(no data loading, no evaluation) after three warm-up steps; GPU timings stop once the last
step has finished (torch.cuda.synchronize; netmorph reads the last loss back). Each side runs
`rounds` times, alternating; medians are compared.

    pip install torch
    cargo build --release -p netmorph-bench --example train_throughput
    python3 bench/scripts/gpu_vs_torch.py [adapter (index or name part, default: the first
        discrete GPU)] [rounds, default 3] [GPU steps, default 100] [CPU threads, default all]
"""
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_vs_torch import BATCH, netmorph_run, torch_images_per_second  # noqa: E402

CPU_STEPS = 10


def main():
    adapter = sys.argv[1] if len(sys.argv) > 1 else ""
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    gpu_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count()
    gpu = "gpu:" + adapter if adapter else "gpu"
    torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(threads)
    card = torch.cuda.get_device_name(0) if torch_device == "cuda" else "no CUDA device: CPU"
    print(f"torch {torch.__version__} on {card}; netmorph CPU with {threads} threads; "
          f"batch {BATCH}, float32, median of {rounds} alternating rounds")
    for name in ["cifar10_quick", "cifar_222"]:
        ours, cpu, theirs = [], [], []
        for _ in range(rounds):
            fields = netmorph_run(name, gpu_steps, threads, gpu)
            used, kernels = fields["adapter"], fields["kernels_per_step"]
            ours.append(float(fields["images_per_second"]))
            cpu.append(float(netmorph_run(name, CPU_STEPS, threads)["images_per_second"]))
            theirs.append(torch_images_per_second(
                name, gpu_steps if torch_device == "cuda" else CPU_STEPS, torch_device))
        a, c, t = statistics.median(ours), statistics.median(cpu), statistics.median(theirs)
        print(f"{name:14} netmorph GPU ({used}, {kernels} kernels per step) {a:9.0f} img/s   netmorph CPU {c:8.0f} img/s   "
              f"torch {torch_device} {t:9.0f} img/s   GPU/torch {a / t:5.2f}x   GPU/CPU {a / c:6.2f}x")


if __name__ == "__main__":
    main()
