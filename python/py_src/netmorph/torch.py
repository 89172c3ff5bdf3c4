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
    "FlatLinear",
    "ImageConv2d",
    "ImageMaxPool2d",
    "ImageAvgPool2d",
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


class _AsImage:
    """Views a flat ``[N, C]`` input as ``[N, C, 1, 1]`` first (netmorph holds both alike)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[:, :, None, None] if x.dim() == 2 else x)


class ImageConv2d(_AsImage, nn.Conv2d):
    """``nn.Conv2d`` that also takes a flat ``[N, C]`` input as ``C x 1 x 1`` images (a
    convolution right after a dense layer, which morphs can create)."""


class ImageMaxPool2d(_AsImage, nn.MaxPool2d):
    """``nn.MaxPool2d`` that also takes a flat ``[N, C]`` input as ``C x 1 x 1`` images."""


class ImageAvgPool2d(_AsImage, nn.AvgPool2d):
    """``nn.AvgPool2d`` that also takes a flat ``[N, C]`` input as ``C x 1 x 1`` images."""


class FlatLinear(nn.Linear):
    """``nn.Linear`` that also takes a ``[N, C, 1, 1]`` input as ``[N, C]`` (a dense layer
    right after a convolution or pooling with a 1 x 1 output, which netmorph needs no
    ``Flatten`` for)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1) if x.dim() > 2 else x)


# The modules whose computation from_torch knows: their own `forward`, not a subclass's.
_KNOWN = (
    nn.Sequential,
    nn.Identity,
    nn.Conv2d,
    nn.Linear,
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.PReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.Flatten,
    PActivation,
    ParallelSum,
    ImageConv2d,
    ImageMaxPool2d,
    ImageAvgPool2d,
    FlatLinear,
)
_KNOWN_FORWARDS = {cls.forward for cls in _KNOWN}
_FLAT_OK = (FlatLinear,)
_IMAGE_OK = (ImageConv2d, ImageMaxPool2d, ImageAvgPool2d)


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
        if isinstance(module, _KNOWN) and type(module).forward not in _KNOWN_FORWARDS:
            raise _unsupported(
                name,
                module,
                "overrides forward(); netmorph only knows what "
                f"{next(c for c in type(module).__mro__ if c in _KNOWN).__name__} itself computes",
            )
        if isinstance(module, nn.Sequential):
            for child_name, child in module.named_children():
                yield from self.leaves(child, f"{name}.{child_name}" if name else child_name)
        elif not isinstance(module, nn.Identity):
            yield name, module

    def sequence(self, module: nn.Module, qual: str, prefix: str, blob):
        """The layers of `module` (named `qual` in the source) as JSON, netmorph names under
        `prefix` (`layers.`), and the blob they produce. A blob is `((c, h, w), rank)`: the
        shape netmorph sees and the rank of the tensor PyTorch passes (2: `[N, F]`, 4:
        `[N, C, H, W]`)."""
        layers = []
        for name, leaf in self.leaves(module, qual):
            layer, blob = self.layer(leaf, name, f"{prefix}{len(layers)}", blob)
            layers.append(layer)
        return layers, blob

    @staticmethod
    def param(name: str, attr: str) -> str:
        """The qualified name of parameter `attr` of the module named `name`."""
        return f"{name}.{attr}" if name else attr

    def layer(self, m: nn.Module, name: str, base: str, blob):
        shape, rank = blob
        c, h, w = shape
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            if rank == 2 and not isinstance(m, _IMAGE_OK):
                raise _unsupported(
                    name, m, f"gets a flat [N, {c}] tensor; it needs [N, C, H, W]"
                )
            if isinstance(m, nn.Conv2d):
                layer, out = self.conv(m, name, base, shape)
            else:
                layer, out = self.pool(m, name, shape)
            return layer, (out, 4)
        if isinstance(m, nn.Linear):
            if rank == 4 and not (isinstance(m, _FLAT_OK) and (h, w) == (1, 1)):
                raise _unsupported(
                    name, m, f"applied to a {c}x{h}x{w} image; put nn.Flatten() before it"
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
            return layer, ((m.out_features, 1, 1), 2)
        if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid)):
            function = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}[type(m)]
            return self.activation(function, torch.zeros(c), None, base, c), blob
        if isinstance(m, nn.PReLU):
            n = m.weight.numel()
            if n not in (1, c):
                raise _unsupported(name, m, f"has {n} parameters for {c} channels")
            a = m.weight.detach().reshape(-1).expand(c)
            return self.activation("relu", a, self.param(name, "weight"), base, c), blob
        if isinstance(m, PActivation):
            if m.a.numel() != c:
                raise _unsupported(name, m, f"has {m.a.numel()} channels but gets {c}")
            return self.activation(m.function, m.a, self.param(name, "a"), base, c), blob
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise _unsupported(name, m, "only Flatten(start_dim=1, end_dim=-1) is supported")
            return {"type": "flatten"}, ((c * h * w, 1, 1), 2)
        if isinstance(m, ParallelSum):
            return self.parallel(m, name, base, blob)
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

    def parallel(self, m: ParallelSum, name: str, base: str, blob):
        if len(m.branches) == 0:
            raise _unsupported(name, m, "has no branches")
        branches, outs = [], []
        for b, branch in enumerate(m.branches):
            qual = f"{name}.branches.{b}" if name else f"branches.{b}"
            layers, out = self.sequence(branch, qual, f"{base}.branches.{b}.", blob)
            branches.append(layers)
            outs.append(out)
        if any(o != outs[0] for o in outs):
            shapes = ", ".join(f"{'x'.join(map(str, o[0]))} (rank {o[1]})" for o in outs)
            raise _unsupported(name, m, f"branches must produce equal shapes, not {shapes}")
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
    rank = 2 if len(tuple(input_shape)) == 1 else 4
    if dtype is None:
        dtypes = {p.dtype for p in module.parameters()}
        if dtypes - {torch.float32, torch.float64} or len(dtypes) > 1:
            raise UnsupportedModuleError(
                f"parameters of dtype {', '.join(sorted(map(str, dtypes)))}; netmorph runs "
                "all in float32 or all in float64 (pass dtype='f32' or 'f64' to convert)"
            )
        dtype = "f64" if dtypes == {torch.float64} else "f32"
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r}: use 'f32' or 'f64'")
    builder = _Builder(_DTYPES[dtype])
    layers, _ = builder.sequence(module, "", "layers.", (shape, rank))
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


def _build(layers: list, tensors: Dict[str, torch.Tensor], dtype: torch.dtype, rank: int):
    """The modules of `layers` on a tensor of `rank` (2 or 4), and the rank they produce."""
    out: List[nn.Module] = []
    for layer in layers:
        kind = layer["type"]
        if kind == "dense":
            # skip_init: the values come from the model, and torch's random state stays as is.
            cls = FlatLinear if rank == 4 else nn.Linear
            m = skip_init(cls, layer["in"], layer["out"], dtype=dtype)
            rank = 2
        elif kind == "conv2d":
            m = skip_init(
                ImageConv2d if rank == 2 else nn.Conv2d,
                layer["in"],
                layer["out"],
                layer["kernel"],
                stride=layer["stride"],
                padding=layer["padding"],
                dtype=dtype,
            )
            rank = 4
        elif kind == "activation":
            m = PActivation(layer["function"], layer["channels"], dtype=dtype)
        elif kind in ("maxpool2d", "avgpool2d"):
            pools = {"maxpool2d": (nn.MaxPool2d, ImageMaxPool2d), "avgpool2d": (nn.AvgPool2d, ImageAvgPool2d)}
            pool = pools[kind][rank == 2]
            m = pool(layer["kernel"], stride=layer["stride"], ceil_mode=layer["ceil_mode"])
            rank = 4
        elif kind == "flatten":
            m = nn.Flatten()
            rank = 2
        elif kind == "parallel_sum":
            built = [_build(b, tensors, dtype, rank) for b in layer["branches"]]
            m = ParallelSum([nn.Sequential(*modules) for modules, _ in built])
            rank = built[0][1]
        else:
            raise UnsupportedModuleError(f"layer type {kind!r} has no PyTorch module here")
        with torch.no_grad():
            for attr in ("weight", "bias", "a"):
                if attr in layer:
                    getattr(m, attr).copy_(tensors[layer[attr]])
        out.append(m)
    return out, rank


def to_torch(model: Model) -> nn.Sequential:
    """An ``nn.Sequential`` computing ``model`` in its dtype: ``nn.Conv2d``, ``nn.Linear``,
    :class:`PActivation` (learnable ``a``), ``nn.MaxPool2d`` / ``nn.AvgPool2d``,
    ``nn.Flatten`` and :class:`ParallelSum` (and :class:`FlatLinear`, :class:`ImageConv2d`
    and its pooling siblings where a dense layer meets a convolution without a flatten). A
    model whose inputs are ``(features, 1, 1)`` takes ``[N, features]``; image models take
    ``[N, C, H, W]``. Parameter names follow the model file's tensor
    names without ``layers.`` (``3.weight``, ``3.branches.1.0.bias``)."""
    dtype = _DTYPES[model.dtype]
    _, h, w = model.input_shape
    modules, _ = _build(model.arch()["layers"], _tensors(model, dtype), dtype, 2 if h == w == 1 else 4)
    return nn.Sequential(*modules)


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


def _embed(value: torch.Tensor, entry: dict, like: torch.Tensor) -> torch.Tensor:
    """`value` (state of the parent parameter) placed where `entry` says the parameter went,
    in the dtype and on the device of the child parameter `like`; zeros at new positions."""
    value = value.to(dtype=like.dtype, device=like.device)
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
    (Adam's ``step``) is copied, so in a tensor that is partly new (new channels, grown taps)
    Adam's bias correction treats the new positions' zero moments as old: their first updates
    are up to ``(1 - beta1) / sqrt(1 - beta2)`` (about 3x) the learning rate, where a fresh
    Adam would take steps of the learning rate. State is cast to the child parameter's dtype
    and device. Returns the number of child parameters that received state.
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
                new[key] = _embed(value, entry, children[entry["child"]])
            elif torch.is_tensor(value):
                new[key] = value.clone()
            else:
                new[key] = value
        child_optimizer.state[children[entry["child"]]] = new
        carried += 1
    return carried
