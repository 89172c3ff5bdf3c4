"""PyTorch side of netmorph: modules, conversion, and optimizer state after a morph.

``from_torch`` accepts a (nested) ``nn.Sequential`` of:

* ``nn.Conv2d``: square kernel, symmetric zero padding (an int, an equal pair, ``"valid"`` or
  ``"same"`` with an odd kernel and stride 1), square stride, ``groups=1``, ``dilation=1``;
* ``nn.Linear`` on a flat blob (put ``nn.Flatten`` after convolutions);
* ``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.PReLU`` (exactly the P-activation of ReLU:
  ``(1 - a) relu(x) + a x = relu(x) + a min(x, 0)``), :class:`PActivation`;
* ``nn.MaxPool2d`` / ``nn.AvgPool2d``: square window and stride, no padding, ceil mode either
  way (``dilation=1``, no ``return_indices``, no ``divisor_override``);
* ``nn.Flatten`` (``start_dim=1``, ``end_dim=-1``), ``nn.Identity`` (dropped), and
  :class:`ParallelSum`.

Anything else raises :class:`netmorph.UnsupportedModuleError` naming the module and why.
``to_torch`` builds the same kinds of modules back, with a learnable per-channel ``a`` in
every :class:`PActivation`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.utils import skip_init

from . import Model, UnsupportedModuleError
from ._netmorph import Model as _Inner

__all__ = [
    "PActivation",
    "ParallelSum",
    "from_torch",
    "to_torch",
    "state_dict",
    "carry_optimizer_state",
]

_PHI = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
_DTYPES = {"f32": torch.float32, "f64": torch.float64}


class PActivation(nn.Module):
    """The P-activation of section 3.3 (eq. 9): ``(1 - a) phi(x) + a x`` with one learnable
    ``a`` per channel (dimension 1 of the input). ``a = 0`` is ``phi``, ``a = 1`` the identity
    that a depth morph inserts. netmorph's own trainer keeps ``a`` in ``[0, 1]``; call
    :meth:`clamp_` after an optimizer step to do the same."""

    def __init__(self, function: str, channels: int, dtype: Optional[torch.dtype] = None):
        super().__init__()
        if function not in _PHI:
            raise ValueError(f"function {function!r}: use one of {sorted(_PHI)}")
        self.function = function
        self.a = nn.Parameter(torch.zeros(channels, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a.view(-1, *([1] * (x.dim() - 2)))
        return (1 - a) * _PHI[self.function](x) + a * x

    @torch.no_grad()
    def clamp_(self) -> "PActivation":
        """Clamps ``a`` into ``[0, 1]`` in place."""
        self.a.clamp_(0, 1)
        return self

    def extra_repr(self) -> str:
        return f"{self.function}, channels={self.a.numel()}"


class ParallelSum(nn.Module):
    """Runs every branch on the same input and sums their outputs in order (eq. 20)."""

    def __init__(self, branches: Sequence[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for branch in self.branches:
            y = branch(x)
            out = y if out is None else out + y
        return out


# -- from PyTorch --------------------------------------------------------------------------


def _unsupported(name: str, module: nn.Module, reason: str) -> UnsupportedModuleError:
    label = name or "<root>"
    return UnsupportedModuleError(f"module `{label}` ({type(module).__name__}): {reason}")


def _square(name: str, module: nn.Module, what: str, value) -> int:
    """An int, or a pair of equal ints, as one int."""
    if isinstance(value, int):
        return value
    values = tuple(value)
    if len(values) == 2 and values[0] == values[1]:
        return int(values[0])
    raise _unsupported(name, module, f"{what} {values} is not square; netmorph needs equal sizes")


def _pool_out(n: int, k: int, s: int, ceil: bool) -> int:
    """docs/format.md's pooling output size (PyTorch's, without padding)."""
    span = n - k
    out = (-(-span // s) if ceil else span // s) + 1
    if (out - 1) * s >= n:
        out -= 1
    return out


class _Builder:
    """Walks modules into the architecture JSON, collecting tensors and their sources."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.tensors: Dict[str, Tuple[List[int], bytes]] = {}
        self.sources: Dict[str, str] = {}

    def tensor(self, name: str, value: torch.Tensor, source: Optional[str]) -> str:
        t = value.detach().to(device="cpu", dtype=self.dtype).contiguous()
        self.tensors[name] = (list(t.shape), t.numpy().tobytes())
        if source is not None:
            self.sources[name] = source
        return name

    def leaves(self, module: nn.Module, name: str):
        """(qualified name, module) of the layers, through nested nn.Sequential."""
        if isinstance(module, nn.Sequential):
            for child_name, child in module.named_children():
                yield from self.leaves(child, f"{name}.{child_name}" if name else child_name)
        elif not isinstance(module, nn.Identity):
            yield name, module

    def sequence(self, module: nn.Module, qual: str, prefix: str, shape: Tuple[int, int, int]):
        """The layers of `module` (named `qual` in the source) as JSON, netmorph names under
        `prefix` (`layers.`), and the shape they produce."""
        layers = []
        for name, leaf in self.leaves(module, qual):
            layer, shape = self.layer(leaf, name, f"{prefix}{len(layers)}", shape)
            layers.append(layer)
        return layers, shape

    @staticmethod
    def param(name: str, attr: str) -> str:
        """The qualified name of parameter `attr` of the module named `name`."""
        return f"{name}.{attr}" if name else attr

    def layer(self, m: nn.Module, name: str, base: str, shape: Tuple[int, int, int]):
        c, h, w = shape
        if isinstance(m, nn.Conv2d):
            return self.conv(m, name, base, shape)
        if isinstance(m, nn.Linear):
            if (h, w) != (1, 1):
                raise _unsupported(
                    name, m, f"applied to a {c}x{h}x{w} blob; put nn.Flatten() before it"
                )
            if m.in_features != c:
                raise _unsupported(name, m, f"takes {m.in_features} features but gets {c}")
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
            layer = {
                "type": "dense",
                "in": m.in_features,
                "out": m.out_features,
                "weight": self.tensor(f"{base}.weight", m.weight, self.param(name, "weight")),
                "bias": self.tensor(
                    f"{base}.bias", bias, self.param(name, "bias") if m.bias is not None else None
                ),
            }
            return layer, (m.out_features, 1, 1)
        if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid)):
            function = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}[type(m)]
            return self.activation(function, torch.zeros(c), None, base, c), shape
        if isinstance(m, nn.PReLU):
            n = m.weight.numel()
            if n not in (1, c):
                raise _unsupported(name, m, f"has {n} parameters for {c} channels")
            a = m.weight.detach().reshape(-1).expand(c)
            return self.activation("relu", a, self.param(name, "weight"), base, c), shape
        if isinstance(m, PActivation):
            if m.a.numel() != c:
                raise _unsupported(name, m, f"has {m.a.numel()} channels but gets {c}")
            return self.activation(m.function, m.a, self.param(name, "a"), base, c), shape
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return self.pool(m, name, shape)
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise _unsupported(name, m, "only Flatten(start_dim=1, end_dim=-1) is supported")
            return {"type": "flatten"}, (c * h * w, 1, 1)
        if isinstance(m, ParallelSum):
            return self.parallel(m, name, base, shape)
        raise _unsupported(
            name,
            m,
            "not supported; netmorph converts Conv2d, Linear, ReLU, Tanh, Sigmoid, PReLU, "
            "Identity, MaxPool2d, AvgPool2d, Flatten, netmorph.torch.PActivation and "
            "netmorph.torch.ParallelSum in nn.Sequential",
        )

    def activation(self, function, a, source, base, c):
        return {
            "type": "activation",
            "function": function,
            "channels": c,
            "a": self.tensor(f"{base}.a", a, source),
        }

    def conv(self, m: nn.Conv2d, name: str, base: str, shape):
        c, h, w = shape
        if m.groups != 1:
            raise _unsupported(name, m, f"groups={m.groups}; netmorph convolutions have groups=1")
        if tuple(m.dilation) != (1, 1):
            raise _unsupported(
                name, m, f"dilation {tuple(m.dilation)}; netmorph convolutions have dilation 1"
            )
        if m.padding_mode != "zeros":
            raise _unsupported(name, m, f"padding_mode={m.padding_mode!r}; only zero padding")
        k = _square(name, m, "kernel", m.kernel_size)
        stride = _square(name, m, "stride", m.stride)
        if m.padding == "valid":
            pad = 0
        elif m.padding == "same":
            if k % 2 == 0 or stride != 1:
                raise _unsupported(name, m, "padding='same' needs an odd kernel and stride 1")
            pad = k // 2
        else:
            pad = _square(name, m, "padding", m.padding)
        if m.in_channels != c:
            raise _unsupported(name, m, f"takes {m.in_channels} channels but gets {c}")
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if min(h + 2 * pad, w + 2 * pad) < k:
            raise _unsupported(name, m, f"a {k}x{k} kernel does not fit a {h}x{w} input")
        bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
        layer = {
            "type": "conv2d",
            "in": m.in_channels,
            "out": m.out_channels,
            "kernel": k,
            "stride": stride,
            "padding": pad,
            "weight": self.tensor(f"{base}.weight", m.weight, self.param(name, "weight")),
            "bias": self.tensor(
                f"{base}.bias", bias, self.param(name, "bias") if m.bias is not None else None
            ),
        }
        return layer, (m.out_channels, oh, ow)

    def pool(self, m, name: str, shape):
        c, h, w = shape
        k = _square(name, m, "kernel", m.kernel_size)
        stride = _square(name, m, "stride", m.stride if m.stride is not None else k)
        if _square(name, m, "padding", m.padding) != 0:
            raise _unsupported(name, m, "padded pooling is not supported; use padding=0")
        if isinstance(m, nn.MaxPool2d):
            if _square(name, m, "dilation", m.dilation) != 1 or m.return_indices:
                raise _unsupported(name, m, "only dilation=1 without return_indices")
            kind = "maxpool2d"
        else:
            if m.divisor_override is not None:
                raise _unsupported(name, m, "divisor_override is not supported")
            kind = "avgpool2d"
        if min(h, w) < k:
            raise _unsupported(name, m, f"a {k}x{k} window does not fit a {h}x{w} input")
        ceil = bool(m.ceil_mode)
        out = (c, _pool_out(h, k, stride, ceil), _pool_out(w, k, stride, ceil))
        return {"type": kind, "kernel": k, "stride": stride, "ceil_mode": ceil}, out

    def parallel(self, m: ParallelSum, name: str, base: str, shape):
        branches, outs = [], []
        for b, branch in enumerate(m.branches):
            qual = f"{name}.branches.{b}" if name else f"branches.{b}"
            layers, out = self.sequence(branch, qual, f"{base}.branches.{b}.", shape)
            branches.append(layers)
            outs.append(out)
        if not branches or any(o != outs[0] for o in outs):
            raise _unsupported(name, m, f"branches must produce equal shapes, not {outs}")
        return {"type": "parallel_sum", "branches": branches}, outs[0]


def _input_shape(input_shape: Sequence[int]) -> Tuple[int, int, int]:
    dims = tuple(int(d) for d in input_shape)
    if len(dims) == 1:
        dims = (dims[0], 1, 1)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(
            f"input_shape {tuple(input_shape)}: give (channels, height, width) or (features,), "
            "without the batch dimension"
        )
    return dims


def from_torch(module: nn.Module, input_shape: Sequence[int], dtype: Optional[str] = None) -> Model:
    """A netmorph :class:`~netmorph.Model` computing ``module`` on inputs of ``input_shape``
    (``(channels, height, width)``, or ``(features,)`` for flat inputs; no batch dimension).

    ``dtype`` (``"f32"`` or ``"f64"``) defaults to the module's parameters' dtype. Raises
    :class:`netmorph.UnsupportedModuleError` for a module netmorph cannot represent.
    """
    shape = _input_shape(input_shape)
    if dtype is None:
        dtypes = {p.dtype for p in module.parameters()}
        if dtypes - {torch.float32, torch.float64}:
            raise UnsupportedModuleError(
                f"parameters of dtype {sorted(map(str, dtypes))}; netmorph runs float32 or "
                "float64 (pass dtype='f32' to convert)"
            )
        dtype = "f64" if dtypes == {torch.float64} else "f32"
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r}: use 'f32' or 'f64'")
    builder = _Builder(_DTYPES[dtype])
    layers, _ = builder.sequence(module, "", "layers.", shape)
    arch = {
        "format": "netmorph/1",
        "dtype": dtype,
        "input": list(shape),
        "input_scale": "standard",
        "layers": layers,
    }
    inner = _Inner.from_parts(json.dumps(arch), builder.tensors)
    return Model(inner, builder.sources)


# -- to PyTorch ----------------------------------------------------------------------------


def _tensors(model: Model, dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    return {
        name: torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape)
        for name, shape, data in model._inner.tensors()
    }


def _build(layers: list, tensors: Dict[str, torch.Tensor], dtype: torch.dtype) -> List[nn.Module]:
    out: List[nn.Module] = []
    for layer in layers:
        kind = layer["type"]
        if kind == "dense":
            # skip_init: the values come from the model, and torch's random state stays as is.
            m = skip_init(nn.Linear, layer["in"], layer["out"], dtype=dtype)
        elif kind == "conv2d":
            m = skip_init(
                nn.Conv2d,
                layer["in"],
                layer["out"],
                layer["kernel"],
                stride=layer["stride"],
                padding=layer["padding"],
                dtype=dtype,
            )
        elif kind == "activation":
            m = PActivation(layer["function"], layer["channels"], dtype=dtype)
        elif kind in ("maxpool2d", "avgpool2d"):
            pool = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
            m = pool(layer["kernel"], stride=layer["stride"], ceil_mode=layer["ceil_mode"])
        elif kind == "flatten":
            m = nn.Flatten()
        elif kind == "parallel_sum":
            m = ParallelSum(
                [nn.Sequential(*_build(b, tensors, dtype)) for b in layer["branches"]]
            )
        else:
            raise UnsupportedModuleError(f"layer type {kind!r} has no PyTorch module here")
        with torch.no_grad():
            for attr in ("weight", "bias", "a"):
                if attr in layer:
                    getattr(m, attr).copy_(tensors[layer[attr]])
        out.append(m)
    return out


def to_torch(model: Model) -> nn.Sequential:
    """An ``nn.Sequential`` computing ``model`` in its dtype: ``nn.Conv2d``, ``nn.Linear``,
    :class:`PActivation` (learnable ``a``), ``nn.MaxPool2d`` / ``nn.AvgPool2d``,
    ``nn.Flatten`` and :class:`ParallelSum`. Parameter names follow the model file's tensor
    names without ``layers.`` (``3.weight``, ``3.branches.1.0.bias``)."""
    dtype = _DTYPES[model.dtype]
    arch = model.arch()
    return nn.Sequential(*_build(arch["layers"], _tensors(model, dtype), dtype))


def _names(layers: list):
    """The tensor names of `layers`, in module order."""
    for layer in layers:
        for attr in ("weight", "bias", "a"):
            if attr in layer:
                yield layer[attr]
        for branch in layer.get("branches", []):
            yield from _names(branch)


def state_dict(model: Model) -> "OrderedDict[str, torch.Tensor]":
    """The parameters as torch tensors, keyed and ordered like
    ``to_torch(model).state_dict()``."""
    tensors = _tensors(model, _DTYPES[model.dtype])
    return OrderedDict(
        (name[len("layers.") :], tensors[name]) for name in _names(model.arch()["layers"])
    )


# -- optimizer state -----------------------------------------------------------------------


def _embed(value: torch.Tensor, entry: dict) -> torch.Tensor:
    """`value` (state of the parent parameter) placed where `entry` says the parameter went;
    zeros at new positions."""
    pshape = list(entry["parent_shape"])
    if list(value.shape) != pshape:
        if value.numel() == 1:  # a single-parameter PReLU became one `a` per channel
            value = value.reshape(()).expand(pshape)
        else:
            value = value.reshape(pshape)
    out = torch.zeros(entry["shape"], dtype=value.dtype, device=value.device)
    rank = len(pshape)
    child_ix, parent_ix = [], []
    for axis, m in enumerate(entry["index"]):
        if m is None:
            c = p = list(range(entry["shape"][axis]))
        else:
            pairs = [(ci, pi) for ci, pi in enumerate(m) if pi is not None]
            c, p = [ci for ci, _ in pairs], [pi for _, pi in pairs]
        view = [1] * rank
        view[axis] = -1
        child_ix.append(torch.tensor(c, dtype=torch.long, device=value.device).view(view))
        parent_ix.append(torch.tensor(p, dtype=torch.long, device=value.device).view(view))
    out[tuple(child_ix)] = value[tuple(parent_ix)]
    return out


def carry_optimizer_state(
    parent_optimizer: torch.optim.Optimizer,
    parent_module: nn.Module,
    child_optimizer: torch.optim.Optimizer,
    child_module: nn.Module,
    report: dict,
) -> int:
    """Carries per-parameter optimizer state across a morph, so training continues without
    restarting the optimizer.

    ``parent_module`` is the module the parent model came from (``from_torch``'s argument, or
    the parent's ``to_torch()``), trained by ``parent_optimizer``; ``child_module`` is the
    child's ``to_torch()``, to be trained by ``child_optimizer``; ``report`` is the morph's.
    Every state tensor shaped like its parameter (SGD's ``momentum_buffer``, Adam's
    ``exp_avg``, ``exp_avg_sq`` and ``max_exp_avg_sq``) follows the parameter's values to
    their places in the child; positions the morph created (new layers, channels, taps,
    Net2WiderNet replicas) get zeros, which for SGD is the same as a fresh buffer. Scalar state
    (Adam's ``step``) is copied. Returns the number of child parameters that received state.
    """
    parents = dict(parent_module.named_parameters())
    children = dict(child_module.named_parameters())
    carried = 0
    for entry in report["carry"]:
        if entry["parent"] is None:
            continue
        if entry["child"] not in children or entry["parent"] not in parents:
            missing = entry["child"] if entry["child"] not in children else entry["parent"]
            raise KeyError(
                f"parameter {missing!r} is not in the module; pass the module the parent came "
                "from and the child's to_torch()"
            )
        state = parent_optimizer.state.get(parents[entry["parent"]])
        if not state:
            continue
        new = {}
        for key, value in state.items():
            if torch.is_tensor(value) and value.dim() > 0:
                new[key] = _embed(value, entry)
            elif torch.is_tensor(value):
                new[key] = value.clone()
            else:
                new[key] = value
        child_optimizer.state[children[entry["child"]]] = new
        carried += 1
    return carried
