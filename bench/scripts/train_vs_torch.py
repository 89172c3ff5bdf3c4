#!/usr/bin/env python3
"""Side by side: training throughput of netmorph and PyTorch (CPU, float32) in one run.

Models: Caffe's cifar10_quick (3x32x32 inputs, batch 100) and the 784-50-10 MLP with ReLU
(Fashion-MNIST-sized inputs, batch 100). Both sides run SGD with momentum 0.9 and weight decay
0.004 on the same generated batch (no data loading, no evaluation), after warm-up steps, with
the same number of threads. netmorph: the `train_throughput` example; PyTorch:
torch.set_num_threads(threads). Each side is measured `rounds` times, alternating, and the
median of each side's rounds is compared; the rounds' range is printed beside it.

    pip install torch   # CPU is enough; PyPI's wheel also brings CUDA libraries
    python3 bench/scripts/train_vs_torch.py [threads] [rounds]
"""
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn

STEPS = {"cifar10_quick": 30, "mlp": 3000}
BATCH = 100


def cifar(widen=False):
    """cifar10_quick, or cifar_222 (widen: each 5x5 convolution 4x wider and followed by a
    1x1 convolution back to the original width), as netmorph's arch builds them."""
    def conv(inp, out):
        if widen:
            return [nn.Conv2d(inp, 4 * out, 5, padding=2), nn.ReLU(), nn.Conv2d(4 * out, out, 1)]
        return [nn.Conv2d(inp, out, 5, padding=2)]
    return nn.Sequential(
        *conv(3, 32), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        *conv(32, 32), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        *conv(32, 64), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))


MODELS = {"cifar10_quick": (cifar, (3, 32, 32)), "mlp": (mlp, (1, 28, 28)),
          "cifar_222": (lambda: cifar(widen=True), (3, 32, 32))}


def torch_images_per_second(name, steps, device="cpu"):
    """PyTorch's training throughput on one generated batch after three warm-up steps; on a
    CUDA device the clock stops once the last step has finished."""
    torch.manual_seed(0)
    make, shape = MODELS[name]
    net = make().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=0.004)
    x = torch.randn(BATCH, *shape, device=device)
    y = (torch.arange(BATCH) % 10).to(device)
    loss = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return BATCH * steps / (time.perf_counter() - start)


def netmorph_run(name, steps, threads, device="cpu"):
    """The `train_throughput` example's fields (images_per_second, adapter on a GPU, ...)."""
    out = subprocess.run(
        ["target/release/examples/train_throughput", name, str(BATCH), str(threads), str(steps),
         device], check=True, capture_output=True, text=True).stdout
    return dict(f.split("=", 1) for f in out.split())


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(threads)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "netmorph-bench",
                    "--example", "train_throughput"], check=True)
    print(f"torch {torch.__version__}, {threads} threads, batch {BATCH}, float32, "
          f"median of {rounds} alternating rounds")
    for name, steps in STEPS.items():
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(float(netmorph_run(name, steps, threads)["images_per_second"]))
            theirs.append(torch_images_per_second(name, steps))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{name:14} netmorph {a:10.0f} img/s   torch {b:10.0f} img/s   ratio {a / b:5.2f}x"
              f"   (rounds: netmorph {min(ours):.0f}-{max(ours):.0f}, "
              f"torch {min(theirs):.0f}-{max(theirs):.0f})")


if __name__ == "__main__":
    main()
