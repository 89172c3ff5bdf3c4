#!/usr/bin/env python3
"""Rebuild a netmorph model in PyTorch from its .safetensors file and compare its outputs
with `netmorph predict` on the same random batch.

    pip install torch safetensors numpy
    cargo build --release
    python3 examples/torch_compare.py model.safetensors [--netmorph target/release/netmorph]

The architecture JSON (docs/format.md) maps one to one onto torch.nn modules; tensors are
already in PyTorch's layout. Both sides run in the file's precision. `.ci/run` runs it on
trained and morphed models (parallel branches, P-activations, padding changes) in f32 and
f64; exit status 1 if netmorph's output is not in the file's precision or differs by more
than 1e-5 (f32) or 1e-9 (f64) relative.
"""
import argparse
import json
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open


class PActivation(torch.nn.Module):
    """(1 - a) phi(x) + a x, one a per channel."""

    def __init__(self, function, a):
        super().__init__()
        self.phi = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda x: x}[function]
        self.a = torch.nn.Parameter(a)

    def forward(self, x):
        a = self.a.view(1, -1, *([1] * (x.dim() - 2)))
        return (1 - a) * self.phi(x) + a * x


class ParallelSum(torch.nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.branches = torch.nn.ModuleList(branches)

    def forward(self, x):
        return sum(b(x) for b in self.branches)


def build(layers, tensors):
    mods = []
    for l in layers:
        t = l["type"]
        if t in ("dense", "conv2d"):
            if t == "dense":
                m = torch.nn.Linear(l["in"], l["out"])
            else:
                m = torch.nn.Conv2d(l["in"], l["out"], l["kernel"], stride=l["stride"], padding=l["padding"])
            m.weight.data = tensors[l["weight"]]
            m.bias.data = tensors[l["bias"]]
        elif t in ("maxpool2d", "avgpool2d"):
            cls = torch.nn.MaxPool2d if t == "maxpool2d" else torch.nn.AvgPool2d
            kw = {} if t == "maxpool2d" else {"count_include_pad": False}
            m = cls(l["kernel"], stride=l["stride"], ceil_mode=l["ceil_mode"], **kw)
        elif t == "flatten":
            m = torch.nn.Flatten()
        elif t == "activation":
            m = PActivation(l["function"], tensors[l["a"]])
        elif t == "parallel_sum":
            m = ParallelSum([build(b, tensors) for b in l["branches"]])
        else:
            raise ValueError(f"unknown layer type {t}")
        mods.append(m)
    return torch.nn.Sequential(*mods)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--netmorph", default="target/release/netmorph")
    args = ap.parse_args()
    with safe_open(args.model, framework="pt") as f:
        arch = json.loads(f.metadata()["netmorph"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    # netmorph runs a model in the precision its file stores; so does the reference.
    f64 = arch["dtype"] == "f64"
    dtype, np_dtype, tol = (torch.float64, np.float64, 1e-9) if f64 else (torch.float32, np.float32, 1e-5)
    net = build(arch["layers"], tensors).to(dtype).eval()
    c, h, w = arch["input"]
    x = np.random.default_rng(0).standard_normal((8, c, h, w)).astype(np_dtype)
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/x.npy", x)
        subprocess.run([args.netmorph, "predict", args.model, "--input", f"{d}/x.npy", "--output", f"{d}/y.npy"], check=True)
        ours = np.load(f"{d}/y.npy")
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).reshape(len(x), -1).numpy()
    rel = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"{arch['dtype']}: max |netmorph - torch| / max |torch| = {rel:.2e} (bound {tol:.0e})")
    sys.exit(0 if ours.dtype == np_dtype and rel < tol else 1)


if __name__ == "__main__":
    main()
