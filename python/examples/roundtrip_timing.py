"""Times from_torch -> morph -> to_torch on Caffe's cifar10_quick and prints the deviation.

    python3 python/examples/roundtrip_timing.py [--op "depth@3,cl=64,k1=5,k2=3"] [--repeat 5]

Each stage is timed separately (best of --repeat runs); the morph's time includes measuring
the child on 256 random probes, as every morph does.
"""

import argparse
import time

import torch
from torch import nn

import netmorph


def cifar10_quick() -> nn.Sequential:
    """Caffe's cifar10_quick: (5:32)(5:32)(5:64) with pooling, then 64 and 10 units."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 64),
        nn.Linear(64, 10),
    )


def best(f, repeat):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", default="depth@3,cl=64,k1=5,k2=3,act=relu")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    parent = cifar10_quick().eval()
    t_from, model = best(lambda: netmorph.from_torch(parent, (3, 32, 32)), args.repeat)
    t_morph, (child, report) = best(lambda: model.morph(args.op, seed=0), args.repeat)
    t_to, net = best(child.to_torch, args.repeat)
    x = torch.randn(64, 3, 32, 32)
    with torch.no_grad():
        y, z = parent(x), net(x)
    dev = ((z - y).abs().max() / y.abs().max()).item()
    print(f"cifar10_quick, op {args.op}: {report['params_before']} -> {report['params_after']} parameters")
    print(f"from_torch {t_from * 1e3:.1f} ms, morph {t_morph * 1e3:.1f} ms, to_torch {t_to * 1e3:.1f} ms, "
          f"total {(t_from + t_morph + t_to) * 1e3:.1f} ms (best of {args.repeat})")
    print(f"algorithm {report['algorithm']}, residual {report['residual']:.2e}, "
          f"probe deviation {report['max_rel_deviation']:.2e}, torch deviation {dev:.2e}")


if __name__ == "__main__":
    main()
