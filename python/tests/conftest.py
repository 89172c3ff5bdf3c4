"""Shared models, data and tolerances of the Python tests."""

import pytest
import torch
from torch import nn

# Relative max-abs deviation a morphed child may show against its parent (issue 9): the
# core's morphs are exact up to rounding; PyTorch evaluates parent and child in different
# orders of operations, so rounding differs by a few ulps of the logits' scale.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}
DTYPE_NAME = {torch.float32: "f32", torch.float64: "f64"}


def rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (morphism notes, section 10)."""
    return ((a - b).abs().max() / b.abs().max()).item()


def border_inputs(n: int, shape, dtype, seed: int) -> torch.Tensor:
    """Random inputs whose border rows and columns are large, so a morph that is wrong at the
    image border (padding) shows there."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=dtype)
    if len(shape) == 3:
        x[..., 0, :] *= 4
        x[..., -1, :] *= 4
        x[..., :, 0] *= 4
        x[..., :, -1] *= 4
    return x


def conv_net(dtype) -> nn.Sequential:
    """A small image classifier with every supported kind of layer (7x7 inputs: odd sizes
    exercise ceil-mode pooling)."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),  # 0
        nn.ReLU(),  # 1
        nn.MaxPool2d(2, ceil_mode=True),  # 2: 7 -> 4
        nn.Sequential(
            nn.Conv2d(4, 6, 3, padding=1),  # 3
            nn.PReLU(6, init=0.2),  # 4
        ),
        nn.AvgPool2d(2, ceil_mode=True),  # 5: 4 -> 2
        nn.Flatten(),  # 6
        nn.Linear(6 * 2 * 2, 12),  # 7
        nn.Tanh(),  # 8
        nn.Identity(),
        nn.Linear(12, 5),  # 9
    ).to(dtype)


def train_a_little(net: nn.Module, shape, dtype, steps: int = 5, seed: int = 0):
    """A few SGD steps with momentum on random data; returns the optimizer and the data."""
    torch.manual_seed(seed)
    x = border_inputs(32, shape, dtype, seed)
    y = torch.randint(0, 5, (32,))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return opt, x, y


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param
