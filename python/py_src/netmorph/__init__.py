"""netmorph: network morphism (Wei, Wang, Rui and Chen, ICML 2016) for PyTorch models.

Grow a trained network into a deeper, wider, larger-kernel or sub-netted child that computes
exactly the same function, then keep training the child::

    import torch, netmorph
    model = netmorph.from_torch(parent, (3, 32, 32))
    child, report = model.morph("depth@3,cl=64,k1=3,k2=3,act=tanh", seed=0)
    net = child.to_torch()

The morphs run in Rust (the ``netmorph`` crate) with the GIL released; this package converts
models to and from PyTorch (``netmorph.torch``), reads and writes the project's model files
(safetensors) and ONNX.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

from ._netmorph import OPS_HELP, NetmorphError
from ._netmorph import Model as _Inner
from ._netmorph import write_atomic as _write_atomic

__all__ = [
    "Model",
    "NetmorphError",
    "UnsupportedModuleError",
    "OPS_HELP",
    "from_torch",
    "load",
    "import_onnx",
]

Path = Union[str, "os.PathLike[str]"]
LayerRef = Union[int, str, Sequence[int]]


class UnsupportedModuleError(NetmorphError):
    """A PyTorch module netmorph cannot represent; the message names the module and why.
    (An ONNX node netmorph cannot read is a plain :class:`NetmorphError` naming the node.)"""


def _path(layer: LayerRef) -> str:
    """`3`, `"3.1.0"` or `(3, 1, 0)` as the op language's layer path."""
    if isinstance(layer, int):
        return str(layer)
    if isinstance(layer, str):
        return layer
    return ".".join(str(int(i)) for i in layer)


def _op(name: str, layer: LayerRef, **keys) -> str:
    """`name@layer,key=value,...` for the keys that are not None."""
    parts = [f"{name}@{_path(layer)}"]
    for key, value in keys.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = "/".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}={value}")
    return ",".join(parts)


def _torch_key(name: str) -> str:
    """A model-file tensor name (`layers.3.weight`) as a key of `Model.to_torch()`'s state."""
    return name[len("layers.") :] if name.startswith("layers.") else name


class Model:
    """A trained network that netmorph can morph, in float32 or float64.

    Build one with :func:`from_torch`, :func:`load` or :func:`import_onnx`. Layers are
    counted as ``netmorph ops`` describes: every module that ``from_torch`` keeps (activations,
    pooling and flatten included) is one layer; ``"3.1.0"`` is layer 0 of branch 1 of the
    parallel block at index 3.
    """

    def __init__(self, inner: _Inner, sources: Optional[Dict[str, str]] = None):
        self._inner = inner
        # Model-file tensor name -> name of the parameter it came from in the torch module
        # given to `from_torch` (a parameter the module did not have, e.g. a missing bias,
        # is absent). Without a source module the names are `to_torch()`'s.
        self._sources = sources

    # -- what it is -------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        """``"f32"`` or ``"f64"``."""
        return self._inner.dtype

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """``(channels, height, width)`` of one input; ``(features, 1, 1)`` for flat inputs."""
        return self._inner.input_shape

    @property
    def param_count(self) -> int:
        """Number of learnable parameters."""
        return self._inner.param_count

    def arch(self) -> dict:
        """The architecture as in the model file format (docs/format.md)."""
        import json

        return json.loads(self._inner.arch())

    def __repr__(self) -> str:
        return repr(self._inner)

    # -- morphs -------------------------------------------------------------------------
    def morph(
        self, op: str, seed: int = 0, probes: int = 256, allow_deviation: bool = False
    ) -> Tuple["Model", dict]:
        """Applies one operation in the command line's language (see ``netmorph.OPS_HELP``).

        Returns the child and a report: ``op``, ``layer``, ``params_before``,
        ``params_after``, ``nonzero_fraction``, ``algorithm``, ``condition7``, ``residual``,
        ``solves``, ``new_layers``, ``max_abs_deviation`` and ``max_rel_deviation`` (measured on
        ``probes`` random inputs), and ``carry``: for every parameter of ``child.to_torch()``,
        the parent parameter it continues (named as in the module given to ``from_torch``, or
        as in the parent's ``to_torch()``) and, per axis, the parent index behind each child
        index (``None`` for an unchanged axis, ``None`` entries for new positions). See
        :func:`netmorph.torch.carry_optimizer_state`.

        Raises :class:`NetmorphError` when the operation does not apply, or when an exact
        operation's child moved further than its precision allows (1e-4 relative in f32,
        1e-9 in f64) unless ``allow_deviation``.
        """
        inner, report = self._inner.morph(op, seed, probes, allow_deviation)
        for entry in report["carry"]:
            entry["child"] = _torch_key(entry["child"])
            if entry["parent"] is not None:
                entry["parent"] = self._source(entry["parent"])
                if entry["parent"] is None:
                    entry["index"] = []
                    entry["parent_shape"] = None
        return Model(inner), report

    def _source(self, name: str) -> Optional[str]:
        if self._sources is None:
            return _torch_key(name)
        return self._sources.get(name)

    def deepen(
        self,
        layer: LayerRef,
        cl: int,
        k1: int = 1,
        k2: int = 1,
        act: str = "relu",
        alg: str = "auto",
        seed: int = 0,
    ) -> Tuple["Model", dict]:
        """Depth morph (eq. 6): layer ``G`` becomes ``F_l``, a P-activation ``act`` (starting
        as the identity) and ``F_{l+1}`` with ``cl`` channels in between."""
        return self.morph(_op("depth", layer, cl=cl, k1=k1, k2=k2, act=act, alg=alg), seed)

    def insert(
        self,
        at: LayerRef,
        cl: int,
        k1: int = 1,
        k2: int = 1,
        act: str = "relu",
        alg: str = "auto",
        trailing: bool = False,
        seed: int = 0,
    ) -> Tuple["Model", dict]:
        """Inserts two new layers before ``at`` where the parent computes the identity."""
        keys = dict(cl=cl, k1=k1, k2=k2, act=act, alg=alg, trailing=trailing or None)
        return self.morph(_op("insert", at, **keys), seed)

    def widen(self, layer: LayerRef, to: int, seed: int = 0) -> Tuple["Model", dict]:
        """Width morph (eq. 12-18): layer's output grows to ``to`` channels."""
        return self.morph(_op("width", layer, to=to), seed)

    def grow_kernel(self, layer: LayerRef, k: int) -> Tuple["Model", dict]:
        """Kernel-size morph: a convolution's kernel grows to ``k`` (zero taps, more padding)."""
        return self.morph(_op("kernel", layer, k=k))

    def subnet(
        self,
        layer: LayerRef,
        widths: Sequence[int],
        kernels: Sequence[int],
        act: str = "relu",
        alg: str = "auto",
        seed: int = 0,
    ) -> Tuple["Model", dict]:
        """Sequential subnet (eq. 19): a layer becomes ``len(kernels)`` layers."""
        keys = dict(widths=list(widths), kernels=list(kernels), alg=alg, act=act)
        return self.morph(_op("subnet", layer, **keys), seed)

    def stack(
        self,
        layer: LayerRef,
        n: int = 2,
        split: str = "equal",
        cl: Optional[int] = None,
        k1: int = 1,
        k2: int = 1,
        act: str = "relu",
        alg: str = "auto",
        seed: int = 0,
    ) -> Tuple["Model", dict]:
        """Stacked subnet (eq. 20): ``n`` parallel branches whose sum is the layer, each
        deepened with ``cl`` middle channels if given."""
        deep = dict(k1=k1, k2=k2, act=act, alg=alg) if cl is not None else {}
        return self.morph(_op("stack", layer, n=n, split=split, cl=cl, **deep), seed)

    def idmorph(self, layer: LayerRef, k: int = 1) -> Tuple["Model", dict]:
        """Net2Net baseline (IdMorph / Net2DeeperNet): an identity layer after ``layer``'s
        activation."""
        return self.morph(_op("idmorph", layer, k=k))

    def net2wider(
        self, layer: LayerRef, to: int, noise: float = 0.0, seed: int = 0
    ) -> Tuple["Model", dict]:
        """Net2Net baseline (Net2WiderNet): widen by replicating channels."""
        return self.morph(
            _op("net2wider", layer, to=to, noise=noise), seed, allow_deviation=noise > 0
        )

    # -- PyTorch --------------------------------------------------------------------------
    def to_torch(self):
        """An ``nn.Sequential`` computing this network, in its dtype (see netmorph.torch)."""
        from .torch import to_torch

        return to_torch(self)

    def state_dict(self):
        """The parameters as torch tensors, keyed as ``to_torch()``'s ``state_dict``."""
        from .torch import state_dict

        return state_dict(self)

    # -- files ----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Writes the model file (safetensors, docs/format.md) atomically."""
        self._inner.save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The model file's bytes."""
        return self._inner.to_bytes()

    @staticmethod
    def from_bytes(data: bytes) -> "Model":
        """A model from a model file's bytes."""
        return Model(_Inner.from_bytes(data))

    def export_onnx(self, path: Path) -> None:
        """Writes the network as ONNX (opset 13, docs/onnx.md)."""
        _write_atomic(os.fspath(path), self._inner.export_onnx())


def load(path: Path) -> Model:
    """Reads a model file written by netmorph (``model.save``, the ``netmorph`` CLI)."""
    return Model(_Inner.load(os.fspath(path)))


def import_onnx(path: Path, dtype: Optional[str] = None) -> Model:
    """Reads an ONNX file (what ``export_onnx`` or ``torch.onnx.export`` writes for the
    supported layers, docs/onnx.md) as a model in ``dtype`` (``"f32"`` or ``"f64"``; default:
    the precision of the file's parameters)."""
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    try:
        return Model(_Inner.import_onnx(data, dtype))
    except NetmorphError as e:
        raise NetmorphError(f"{os.fspath(path)}: {e}") from None


def from_torch(module, input_shape: Sequence[int], dtype: Optional[str] = None) -> Model:
    """A netmorph model of a PyTorch ``nn.Sequential`` (see :func:`netmorph.torch.from_torch`)."""
    from .torch import from_torch as convert

    return convert(module, input_shape, dtype)
