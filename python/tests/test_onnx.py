"""ONNX out (checked by onnxruntime, an independent runtime) and ONNX in (torch.onnx.export)."""

import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import border_inputs, conv_net, rel_dev, train_a_little
from torch import nn

import netmorph

SHAPE = (2, 7, 7)
# Issue 9: an exported child run by onnxruntime matches netmorph to 1e-5 (f32).
ONNX_TOLERANCE = 1e-5


def run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def torch_onnx_bytes(module: nn.Module, x: torch.Tensor) -> bytes:
    """What torch.onnx.export writes for `module` (the TorchScript exporter: the dynamo one
    needs onnxscript, which a plain torch install lacks)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=17)
    return buf.getvalue()


@pytest.mark.parametrize(
    "op",
    [
        "depth@3,cl=8,k1=3,k2=3,act=tanh",
        "width@3,to=9",
        "kernel@0,k=5",
        "stack@3,n=2,cl=5,k1=3,k2=3",
        "idmorph@0,k=3",
        "depth@7,cl=16,act=sigmoid",
    ],
)
def test_exported_child_runs_in_onnxruntime(op, tmp_path):
    parent = conv_net(torch.float32)
    train_a_little(parent, SHAPE, torch.float32)
    child, _ = netmorph.from_torch(parent, SHAPE).morph(op, seed=2)
    # Let the inserted P-activations move away from a = 1, so their nodes matter.
    net = child.to_torch()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, netmorph.torch.PActivation):
                m.a.mul_(0.5)
    child = netmorph.from_torch(net, SHAPE)
    path = tmp_path / "child.onnx"
    child.export_onnx(path)
    x = border_inputs(16, SHAPE, torch.float32, 5)
    with torch.no_grad():
        dev = rel_dev(run_onnx(path, x), net(x))
    assert dev <= ONNX_TOLERANCE, f"{op}: {dev:.3e}"
    # And back: importing the export gives the same network.
    back = netmorph.import_onnx(path)
    assert back.to_bytes() == child.to_bytes()


def test_torch_onnx_export_imports(tmp_path):
    parent = conv_net(torch.float32)
    train_a_little(parent, SHAPE, torch.float32)
    x = border_inputs(4, SHAPE, torch.float32, 9)
    path = tmp_path / "torch.onnx"
    path.write_bytes(torch_onnx_bytes(parent.eval(), x))
    model = netmorph.import_onnx(path)
    with torch.no_grad():
        assert rel_dev(model.to_torch()(x), parent(x)) <= ONNX_TOLERANCE
    # The imported model morphs like any other.
    child, _ = model.morph("depth@3,cl=8,k1=3,k2=3", seed=0)
    with torch.no_grad():
        assert rel_dev(child.to_torch()(x), parent(x)) <= ONNX_TOLERANCE


def test_an_unsupported_node_is_named(tmp_path):
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.LeakyReLU(0.1), nn.Flatten(), nn.Linear(75, 2))
    path = tmp_path / "leaky.onnx"
    path.write_bytes(torch_onnx_bytes(net.eval(), torch.randn(1, *SHAPE)))
    with pytest.raises(netmorph.NetmorphError, match="LeakyRelu") as e:
        netmorph.import_onnx(path)
    assert "leaky.onnx" in str(e.value)


def test_a_file_that_is_not_onnx_is_an_error(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(netmorph.NetmorphError, match="junk.onnx"):
        netmorph.import_onnx(path)


def test_f64_mlp_exports_and_imports_as_f64(tmp_path):
    """onnxruntime runs float64 Gemm and activations (not float64 Conv, docs/onnx.md)."""
    parent = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    child, _ = netmorph.from_torch(parent, (6,)).morph("depth@2,cl=5,act=sigmoid", seed=1)
    path = tmp_path / "mlp64.onnx"
    child.export_onnx(path)
    back = netmorph.import_onnx(path)
    assert back.dtype == "f64"
    assert back.to_bytes() == child.to_bytes()
    x = border_inputs(16, (6,), torch.float64, 3)
    with torch.no_grad():
        assert rel_dev(run_onnx(path, x), parent(x)) <= 1e-12
