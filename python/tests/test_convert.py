"""Conversion to and from PyTorch, model files, and the errors for what cannot convert."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TOLERANCE, border_inputs, conv_net, rel_dev
from torch import nn

import netmorph
from netmorph.torch import PActivation, ParallelSum

SHAPE = (2, 7, 7)
README = Path(__file__).resolve().parents[2] / "README.md"


def test_round_trip_through_netmorph_is_the_same_module(dtype):
    parent = conv_net(dtype)
    net = netmorph.from_torch(parent, SHAPE).to_torch()
    x = border_inputs(8, SHAPE, dtype, 1)
    with torch.no_grad():
        assert rel_dev(net(x), parent(x)) <= TOLERANCE[dtype]
    # Parameters are copied exactly (PReLU's weight is P-activation a).
    assert torch.equal(net[4].a, parent[3][1].weight.detach())
    assert torch.equal(net[0].weight, parent[0].weight.detach())


def test_our_modules_convert_both_ways():
    act = PActivation("tanh", 4)
    with torch.no_grad():
        act.a.copy_(torch.tensor([0.0, 0.3, 1.0, 0.7]))
    parent = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        act,
        ParallelSum([nn.Sequential(nn.Conv2d(4, 3, 1)), nn.Conv2d(4, 3, 3, padding="same")]),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 2, bias=False),
    )
    model = netmorph.from_torch(parent, (1, 6, 6))
    kinds = [layer["type"] for layer in model.arch()["layers"]]
    assert kinds == ["conv2d", "activation", "parallel_sum", "activation", "flatten", "dense"]
    x = border_inputs(5, (1, 6, 6), torch.float32, 3)
    with torch.no_grad():
        assert rel_dev(model.to_torch()(x), parent(x)) <= 1e-6
    # The missing bias became a zero parameter with no source in the module.
    child, report = model.morph("kernel@2.1.0,k=5", seed=0)
    entry = next(e for e in report["carry"] if e["child"] == "5.bias")
    assert entry["parent"] is None
    entry = next(e for e in report["carry"] if e["child"] == "2.branches.1.0.weight")
    assert entry["parent"] == "2.branches.1.weight"


def test_state_dict_loads_into_to_torch():
    model = netmorph.from_torch(conv_net(torch.float64), SHAPE)
    net = model.to_torch()
    state = model.state_dict()
    assert list(state) == list(net.state_dict())
    net.load_state_dict(state)
    assert state["7.weight"].dtype == torch.float64


def test_file_round_trip(tmp_path, dtype):
    model = netmorph.from_torch(conv_net(dtype), SHAPE)
    path = tmp_path / "m.safetensors"
    model.save(path)
    back = netmorph.load(path)
    assert back.to_bytes() == model.to_bytes()
    assert back.dtype == model.dtype
    assert netmorph.Model.from_bytes(path.read_bytes()).to_bytes() == model.to_bytes()
    # The file is what safetensors and the CLI read: PyTorch layout, same names.
    from safetensors.torch import load_file

    tensors = load_file(path)
    assert torch.equal(tensors["layers.0.weight"], model.state_dict()["0.weight"])


def test_missing_and_corrupt_files_are_errors(tmp_path):
    with pytest.raises(netmorph.NetmorphError, match="No such file"):
        netmorph.load(tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(netmorph.NetmorphError, match="bad.safetensors"):
        netmorph.load(bad)
    with pytest.raises(netmorph.NetmorphError):
        netmorph.from_torch(conv_net(torch.float32), SHAPE).save(tmp_path / "no" / "dir.st")


UNSUPPORTED = [
    (nn.Conv2d(2, 4, 3, dilation=2), "dilation"),
    (nn.Conv2d(2, 4, 3, groups=2), "groups=2"),
    (nn.Conv2d(2, 4, (3, 1)), "not square"),
    (nn.Conv2d(2, 4, 3, padding=(1, 0)), "padding"),
    (nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), "padding_mode"),
    (nn.Conv2d(3, 4, 3), "takes 3 channels but gets 2"),
    (nn.BatchNorm2d(2), "not supported"),
    (nn.Dropout(), "not supported"),
    (nn.Linear(98, 3), "put nn.Flatten"),
    (nn.MaxPool2d(2, padding=1), "padded pooling"),
    (nn.MaxPool2d(2, dilation=2), "dilation=1"),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
    (nn.Flatten(0), "start_dim=1"),
    (nn.LeakyReLU(), "not supported"),
    (nn.PReLU(3), "has 3 parameters for 2 channels"),
    (nn.Conv2d(2, 4, 2, padding="same"), "odd kernel"),
    (nn.Sequential(nn.Conv2d(2, 4, 7), nn.Linear(4, 3)), "put nn.Flatten() before it"),
    (nn.Sequential(nn.Flatten(), nn.Linear(97, 3)), "takes 97 features but gets 98"),
    (nn.Sequential(nn.Flatten(), nn.Conv2d(98, 3, 1)), "gets a flat [N, 98] tensor"),
    (ParallelSum([]), "has no branches"),
    (ParallelSum([nn.Conv2d(2, 3, 3), nn.Conv2d(2, 3, 1)]), "branches must produce equal shapes"),
]


@pytest.mark.parametrize("module,message", UNSUPPORTED, ids=[m[1] for m in UNSUPPORTED])
def test_unsupported_modules_are_named(module, message):
    net = nn.Sequential(nn.Identity(), nn.Sequential(module))
    with pytest.raises(netmorph.UnsupportedModuleError) as e:
        netmorph.from_torch(net, SHAPE)
    assert message in str(e.value)
    assert "module `1.0" in str(e.value)


class Doubled(nn.Sequential):
    def forward(self, x):
        return 2 * super().forward(x)


class Shifted(nn.Linear):
    def forward(self, x):
        return super().forward(x) + 1


@pytest.mark.parametrize("module", [Doubled(nn.Flatten()), nn.Sequential(nn.Flatten(), Shifted(98, 2))])
def test_a_subclass_that_computes_something_else_is_refused(module):
    with pytest.raises(netmorph.UnsupportedModuleError, match="overrides forward"):
        netmorph.from_torch(module, SHAPE)


def test_dense_and_convolution_meet_without_flatten(dtype):
    """A convolution with a 1 x 1 output feeding a dense layer directly (and the reverse) is
    a network netmorph holds; to_torch gives it modules that reshape, and from_torch takes
    them back."""
    parent = nn.Sequential(
        nn.Conv2d(2, 4, 7), nn.ReLU(), nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)
    ).to(dtype)
    model = netmorph.from_torch(parent, SHAPE)
    x = border_inputs(8, SHAPE, dtype, 4)
    # Removing the flatten's effect: a depth morph of the conv with a 1x1 output, then
    # an identity insertion between the dense layers, gives dense after conv and conv-like
    # neighbours; both must run in PyTorch and match.
    for op in ["insert@1,cl=4", "depth@0,cl=5,k1=7", "insert@4,cl=6"]:
        child, _ = model.morph(op, seed=0)
        net = child.to_torch()
        with torch.no_grad():
            assert rel_dev(net(x), parent(x)) <= TOLERANCE[dtype], op
        again = netmorph.from_torch(net, SHAPE)
        assert again.to_bytes() == child.to_bytes(), op
    # The network of a dense layer followed by a convolution, built directly.
    flat = nn.Sequential(nn.Linear(5, 4), netmorph.torch.ImageConv2d(4, 3, 1), nn.Flatten()).to(dtype)
    model = netmorph.from_torch(flat, (5,))
    y = border_inputs(8, (5,), dtype, 2)
    with torch.no_grad():
        assert rel_dev(model.to_torch()(y), flat(y)) <= TOLERANCE[dtype]


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="without the batch"):
        netmorph.from_torch(conv_net(torch.float32), (1, 2, 7, 7))
    with pytest.raises(netmorph.UnsupportedModuleError, match="all in float32 or all in float64"):
        netmorph.from_torch(nn.Sequential(nn.Linear(3, 2).half()), (3,))
    mixed = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2).double())
    with pytest.raises(netmorph.UnsupportedModuleError, match="torch.float32, torch.float64"):
        netmorph.from_torch(mixed, (3,))
    # An explicit dtype converts.
    model = netmorph.from_torch(nn.Sequential(nn.Linear(3, 2).half()), (3,), dtype="f32")
    assert model.dtype == "f32"


def test_readme_example_runs():
    text = README.read_text()
    block = re.search(r"## Use from PyTorch.*?```python\n(.*?)```", text, re.S)
    assert block, "README has no 'Use from PyTorch' python block"
    code = block.group(1)
    assert 5 <= len(code.strip().splitlines()) <= 15
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    deviation = float(out.stdout.split("max |child - parent|:")[1].split()[0])
    assert deviation < 1e-5, out.stdout
