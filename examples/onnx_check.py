#!/usr/bin/env python3
"""Check netmorph's ONNX export and import against ONNX Runtime and PyTorch.

    pip install onnxruntime onnx numpy torch     # onnxscript too for torch's dynamo exporter
    cargo build
    python3 examples/onnx_check.py model.safetensors [more.safetensors ...] --torch \\
        [--netmorph target/debug/netmorph]

For each model file: `netmorph export-onnx` writes it as ONNX; ONNX Runtime (CPU) runs it on
a seeded batch of random inputs, extreme ones among them (large values on the image border,
where padding and clipped pooling windows see them, large values everywhere, tiny ones), and
its outputs are compared with `netmorph predict` on the same batch: relative max-abs error
(max |ort - netmorph| / max |netmorph|) at most 1e-5 for f32 models, 1e-9 for f64. ONNX
Runtime has no float64 `Conv` kernel; for an f64 model it refuses, the script says so and
skips that comparison (it runs where the model has no such node, e.g. an MLP). Every model
also goes back through `netmorph import-onnx`, and `netmorph predict` on the imported model
must equal the original's bit for bit.

With `--torch`: a small `nn.Sequential` (Conv2d, PReLU, MaxPool2d(ceil_mode=True), Conv2d,
ReLU, AvgPool2d(ceil_mode=True), Tanh, Flatten, Linear, PReLU, Linear, Sigmoid, Linear) is
exported with `torch.onnx.export` (its default exporter; the TorchScript one, `dynamo=False`,
if the default needs a package that is missing; the script prints which ran), read with
`netmorph import-onnx`, and `netmorph predict` on it is compared with the module's own
output (at most 1e-5 relative).

Prints every measured deviation; exit status 1 if any check fails.
"""
import argparse
import inspect
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

F32_BOUND = 1e-5
F64_BOUND = 1e-9


def run(cmd):
    """Runs a netmorph command; its error output on failure."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {p.stderr.strip()}")


def architecture(model):
    """The architecture JSON of a netmorph model file (safetensors header metadata)."""
    with open(model, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return json.loads(header["__metadata__"]["netmorph"])


def inputs(shape, dtype, rng, n=12):
    """A seeded batch: standard normal samples, then extreme ones (never all zeros)."""
    x = rng.standard_normal((n, *shape))
    if len(shape) == 3:
        # Large values on the border rows and columns only: padding and clipped windows.
        border = np.zeros(shape, dtype=bool)
        border[:, [0, -1], :] = True
        border[:, :, [0, -1]] = True
        x[-3][border] *= 1e3
    else:
        x[-3] *= 1e3
    x[-2] *= 100.0
    x[-1] *= 1e-6
    return x.astype(dtype)


def predict(netmorph, model, x, workdir, tag):
    """`netmorph predict` of `model` on `x`."""
    xin, yout = Path(workdir) / f"{tag}.x.npy", Path(workdir) / f"{tag}.y.npy"
    np.save(xin, x)
    run([netmorph, "predict", model, "--input", xin, "--output", yout])
    return np.load(yout)


def relative(ours, reference):
    scale = np.abs(reference).max()
    return float(np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max() / max(scale, np.finfo(np.float64).tiny))


def check_model(model, netmorph, workdir, rng):
    """Export, ONNX Runtime vs netmorph predict, and the import round trip. True if passed."""
    import onnxruntime as ort

    arch = architecture(model)
    f64 = arch["dtype"] == "f64"
    dtype, bound = (np.float64, F64_BOUND) if f64 else (np.float32, F32_BOUND)
    name = Path(model).stem
    onnx_path = Path(workdir) / f"{name}.onnx"
    run([netmorph, "export-onnx", model, onnx_path])
    ok = True
    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own NotImplemented/Fail types
        if not f64:
            print(f"{name} ({arch['dtype']}): FAIL onnxruntime cannot load the export: {e}")
            return False
        print(f"{name} (f64): onnxruntime refuses the f64 model ({str(e).strip()}); comparison skipped")
        sess = None
    info = sess.get_inputs()[0] if sess else None
    c, h, w = arch["input"]
    flat = info is not None and len(info.shape) == 2
    x = inputs((c * h * w,) if flat else (c, h, w), dtype, rng)
    ours = predict(netmorph, model, x, workdir, name)
    if sess is not None:
        theirs = sess.run(None, {info.name: x})[0]
        rel = relative(theirs, ours)
        passed = rel <= bound and theirs.dtype == dtype
        ok &= passed
        print(f"{name} ({arch['dtype']}): max |onnxruntime - netmorph| / max |netmorph| = {rel:.2e} "
              f"(bound {bound:.0e}) {'ok' if passed else 'FAIL'}")
    back = Path(workdir) / f"{name}.imported.safetensors"
    run([netmorph, "import-onnx", onnx_path, back])
    again = predict(netmorph, back, x, workdir, f"{name}.imported")
    same = again.dtype == ours.dtype and np.array_equal(again, ours)
    ok &= same
    print(f"{name} ({arch['dtype']}): export then import-onnx, predict max |diff| = "
          f"{float(np.abs(again.astype(np.float64) - ours).max()):.2e} (must be 0) {'ok' if same else 'FAIL'}")
    return ok


def torch_model(torch):
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2),
        torch.nn.PReLU(6),
        torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        torch.nn.Conv2d(6, 8, 3, padding=1),
        torch.nn.ReLU(),
        # 14 -> 7 with the last window clipped to two columns: divided by its clipped size.
        torch.nn.AvgPool2d(3, 2, ceil_mode=True),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 7 * 7, 32),
        torch.nn.PReLU(),
        torch.nn.Linear(32, 16),
        torch.nn.Sigmoid(),
        torch.nn.Linear(16, 10),
    )
    with torch.no_grad():
        # Slopes other than PReLU's uniform 0.25 default, one per channel.
        m[1].weight.uniform_(0.05, 0.5)
        m[9].weight.fill_(0.1)
    return m.eval()


def export_torch(torch, m, x, path):
    """torch.onnx.export with the default exporter, else the TorchScript one; its name."""
    params = inspect.signature(torch.onnx.export).parameters
    dynamo = "dynamo" in params and params["dynamo"].default is True
    names = dict(input_names=["input"], output_names=["logits"])
    legacy = dict(names, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    if not dynamo:
        torch.onnx.export(m, (x,), str(path), **legacy)
        return f"TorchScript (torch.onnx.export's default in torch {torch.__version__})"
    try:
        # The parameters inside the .onnx file: netmorph does not read external data.
        torch.onnx.export(m, (x,), str(path), dynamic_shapes=({0: torch.export.Dim("N")},),
                          external_data=False, verbose=False, **names)
        return f"dynamo (torch.onnx.export's default in torch {torch.__version__})"
    except ImportError as e:
        torch.onnx.export(m, (x,), str(path), dynamo=False, **legacy)
        return f"TorchScript (dynamo=False: the default dynamo exporter needs {e.name or e})"


def check_torch(netmorph, workdir, rng):
    """torch.onnx.export, import-onnx, netmorph predict vs the torch module. True if passed."""
    import torch

    m = torch_model(torch)
    x = inputs((1, 28, 28), np.float32, rng)
    path = Path(workdir) / "torch.onnx"
    exporter = export_torch(torch, m, torch.from_numpy(x[:2]), path)
    print(f"torch: exporter {exporter}")
    model = Path(workdir) / "torch.safetensors"
    run([netmorph, "import-onnx", path, model])
    ours = predict(netmorph, model, x, workdir, "torch")
    with torch.no_grad():
        theirs = m(torch.from_numpy(x)).numpy()
    rel = relative(ours, theirs)
    passed = rel <= F32_BOUND and ours.dtype == np.float32
    print(f"torch (f32): max |netmorph - torch| / max |torch| = {rel:.2e} (bound {F32_BOUND:.0e}) "
          f"{'ok' if passed else 'FAIL'}")
    return passed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="netmorph model files (.safetensors) to export and check")
    ap.add_argument("--netmorph", default="target/debug/netmorph", help="the netmorph binary")
    ap.add_argument("--torch", action="store_true", help="also check a torch.onnx.export through import-onnx")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    args = ap.parse_args()
    if not args.models and not args.torch:
        ap.error("give model files, --torch, or both")
    rng = np.random.default_rng(args.seed)
    ok = True
    with tempfile.TemporaryDirectory() as workdir:
        for model in args.models:
            try:
                ok &= check_model(model, args.netmorph, workdir, rng)
            except (RuntimeError, OSError, KeyError, ValueError) as e:
                print(f"{model}: FAIL {e}")
                ok = False
        if args.torch:
            try:
                ok &= check_torch(args.netmorph, workdir, rng)
            except RuntimeError as e:
                print(f"torch: FAIL {e}")
                ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
