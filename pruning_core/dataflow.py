"""How tensors flow between a model's modules, recorded without any process-global patching.

Structured pruning needs the dataflow between layers (which BatchNorm normalises a layer's
outputs, which layer consumes them), and size accounting needs each layer's multiply-adds. The
usual tools for both patch the whole process while they run: ``torch.fx.symbolic_trace`` replaces
``torch.nn.Module.__call__``/``__getattr__`` and ``FlopCounterMode`` installs global module hooks,
so on a server where other threads evaluate models at that moment, those threads receive proxies
or corrupt the count.

Here one real forward pass of a private copy of the model is recorded instead:

- forward hooks on the copy's own leaf modules (hooks local to the copy, seen by no one else);
- a ``TorchFunctionMode`` for the functions and tensor methods called between modules. Torch
  function modes live in thread-local state, so only the recording thread is affected.

The result is cached per architecture (module tree, parameter shapes, input shape) under a lock,
so each architecture is analysed once per process whatever the number of sessions asking.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from pruning_core.targets import PRUNABLE_TYPES


@dataclass(eq=False)
class Node:
    """One recorded operation, shaped like a ``torch.fx.Node`` (op, target, users)."""

    op: str  # "placeholder", "call_module", "call_function", "call_method" or "output"
    target: Any  # module name, function, or method name
    inputs: list[Node] = field(default_factory=list)
    users: dict[Node, None] = field(default_factory=dict)  # ordered set, as in torch.fx
    # Every tensor argument in order (None: a tensor no recorded op produced, e.g. a constant
    # buffer), their shapes, and the first output's shape: what channel grouping reads
    # (``pruning_core.groups``) to tell a concatenation's axis or a flatten's span.
    args: tuple[Node | None, ...] = ()
    arg_shapes: tuple[tuple[int, ...], ...] = ()
    shape: tuple[int, ...] | None = None
    # The plain (non-tensor) arguments of a function or method call, by position or keyword
    # (``x.mean(dim=(2, 3))`` -> (("dim", (2, 3)),)): which axes a reduction or padding touches.
    options: tuple[tuple[int | str, Any], ...] = ()

    def option(self, position: int, keyword: str, default: Any = None) -> Any:
        """A plain argument given by ``keyword`` or at ``position`` (counting ``self`` for methods)."""
        found = dict(self.options)
        return found.get(keyword, found.get(position, default))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        name = self.target if isinstance(self.target, str) else getattr(self.target, "__name__", self.target)
        return f"Node({self.op}, {name})"


@dataclass(frozen=True)
class Dataflow:
    """What one recorded forward pass tells: the op graph and each prunable layer's multiply-adds."""

    nodes: tuple[Node, ...]
    layer_macs: dict[str, int]  # prunable layer -> multiply-adds for one sample
    other_macs: int  # matrix products outside Linear/Conv modules (functional calls)
    calls: dict[str, int]  # prunable layer -> how many times it was called

    @property
    def dense_macs(self) -> int:
        return sum(self.layer_macs.values()) + self.other_macs


class DataflowError(ValueError):
    """The model could not be run on an example input to record its dataflow."""


def _tensors(value: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(value)
    return [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one call of a Linear/Conv layer that produced ``output`` (bias not counted,
    as ``FlopCounterMode`` and ShrinkBench count them)."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    conv = cast(nn.modules.conv._ConvNd, module)
    per_output = (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)
    return output.numel() * per_output


_MATMUL_FUNCTIONS = {torch.matmul, torch.mm, torch.bmm, torch.nn.functional.linear, torch.Tensor.matmul}


def _functional_macs(func: Callable, args: tuple, output: Any) -> int:
    """Multiply-adds of a matrix product called outside a Linear/Conv module."""
    if func not in _MATMUL_FUNCTIONS or not isinstance(output, torch.Tensor):
        return 0
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if first is None or first.dim() == 0:
        return 0
    return output.numel() * first.shape[-1]


def _plain(value: Any) -> bool:
    """An int, float, bool, str or None, or a short tuple/list of ints: kept on the node."""
    if isinstance(value, list | tuple):
        return len(value) <= 16 and all(isinstance(v, int) for v in value)
    return value is None or isinstance(value, int | float | bool | str)


class _Recorder(TorchFunctionMode):
    """Builds the op graph while a forward pass runs; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.producer: dict[int, Node] = {}
        self.alive: list[torch.Tensor] = []  # keeps recorded tensors alive so their ids stay unique
        self.nodes: list[Node] = []
        self.depth = 0  # > 0 while inside a leaf module: its internals are one node
        self.other_macs = 0

    def node(
        self,
        op: str,
        target: Any,
        inputs: list[torch.Tensor],
        outputs: list[torch.Tensor],
        options: tuple[tuple[int | str, Any], ...] = (),
    ) -> Node:
        sources = list(dict.fromkeys(self.producer[id(t)] for t in inputs if id(t) in self.producer))
        node = Node(
            op,
            target,
            sources,
            args=tuple(self.producer.get(id(t)) for t in inputs),
            arg_shapes=tuple(tuple(t.shape) for t in inputs),
            shape=tuple(outputs[0].shape) if outputs else None,
            options=options,
        )
        for source in sources:
            source.users[node] = None
        for t in outputs:
            self.producer[id(t)] = node
            self.alive.append(t)
        self.nodes.append(node)
        return node

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            outputs = _tensors(out)
            inputs = _tensors((args, kwargs))
            if outputs and inputs:
                name = getattr(func, "__name__", "")
                is_method = getattr(torch.Tensor, name, None) is func or (
                    getattr(func, "__objclass__", None) is torch._C.TensorBase
                )
                options = tuple((i, a) for i, a in enumerate(args) if _plain(a))
                options += tuple((k, v) for k, v in kwargs.items() if _plain(v))
                op = "call_method" if is_method else "call_function"
                self.node(op, name if is_method else func, inputs, outputs, options)
            self.other_macs += _functional_macs(func, args, out)
        return out


def sharing_copy(model: nn.Module) -> nn.Module:
    """A private copy of ``model``'s module tree, in eval mode, whose parameters are the model's own
    tensors (not copies); buffers are copied. For forward passes that only read the weights
    (inference, recording): the copy's hooks and modes stay on the copy, and a large model is not
    duplicated for them. Never write to the copy's parameters."""
    memo: dict[int, Any] = {id(p): p for p in model.parameters()}
    return copy.deepcopy(model, memo).eval()


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def record(model: nn.Module, example_input: torch.Tensor) -> Dataflow:
    """Run a private copy of ``model`` once on one sample of ``example_input`` and record its dataflow.

    ``model`` is not touched: the copy (:func:`sharing_copy`, which reads the model's weights without
    copying them) carries the hooks and is put in eval mode (BatchNorm uses its running statistics,
    nothing is updated).
    """
    work = sharing_copy(model)
    recorder = _Recorder()
    macs: dict[str, int] = {}
    calls: dict[str, int] = {}
    handles = []

    def before(module: nn.Module, args: tuple) -> None:
        recorder.depth += 1

    def after(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            recorder.depth -= 1
            if recorder.depth == 0:
                outputs = _tensors(output)
                recorder.node("call_module", name, _tensors(args), outputs)
                if isinstance(module, PRUNABLE_TYPES) and outputs:
                    macs[name] = macs.get(name, 0) + layer_macs(module, outputs[0])
                    calls[name] = calls.get(name, 0) + 1

        return hook

    for name, module in work.named_modules():
        if name and _is_leaf(module):
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after(name)))
    x = example_input[:1].detach()
    try:
        with torch.inference_mode(), recorder:
            recorder.node("placeholder", "x", [], [x])
            out = work(x)
    except Exception as exc:  # any error of the model's own forward on this input
        raise DataflowError(f"the model could not run on an input of shape {tuple(x.shape)}: {exc}") from exc
    finally:
        for handle in handles:
            handle.remove()
    recorder.node("output", "output", _tensors(out), [])
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES) and name:
            macs.setdefault(name, 0)
    return Dataflow(tuple(recorder.nodes), macs, recorder.other_macs, calls)


def guess_input(model: nn.Module) -> torch.Tensor | None:
    """An example input when none is given: the model's declared ``input_shape`` attribute, or the
    fan-in of a first Linear layer; None when neither tells (a convolution's spatial size is unknown)."""
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return torch.zeros((1, *shape))
    first = next((m for m in model.modules() if isinstance(m, PRUNABLE_TYPES)), None)
    if isinstance(first, nn.Linear):
        return torch.zeros((1, first.in_features))
    if isinstance(first, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return _search_spatial(model, first)
    return None


def _search_spatial(model: nn.Module, first: nn.modules.conv._ConvNd) -> torch.Tensor | None:
    """The smallest square spatial size (up to 64) on which the model runs: the dataflow between
    layers is the same for every size that runs, only the multiply-adds differ."""
    dims = len(first.kernel_size)
    work = sharing_copy(model)
    with torch.inference_mode():
        for size in range(1, 65):
            x = torch.zeros((1, first.in_channels, *([size] * dims)))
            try:
                work(x)
            except Exception:  # noqa: S112 - the wrong size raises shape errors of many kinds
                continue
            return x
    return None


def architecture_key(model: nn.Module, example_input: torch.Tensor | None) -> tuple:
    """What the dataflow depends on: the class, the module tree with parameter shapes, the input shape."""
    modules = tuple(
        (name, type(m).__qualname__, tuple((p, tuple(t.shape)) for p, t in m.named_parameters(recurse=False)))
        for name, m in model.named_modules()
    )
    shape = None if example_input is None else tuple(example_input.shape[1:])
    return (type(model).__module__, type(model).__qualname__, modules, shape)


_CACHE: dict[tuple, Dataflow | DataflowError] = {}
_CACHE_LIMIT = 256
_LOCK = threading.Lock()


def dataflow(model: nn.Module, example_input: torch.Tensor | None = None) -> Dataflow:
    """The recorded dataflow of ``model``, cached per architecture; computed once under a lock.

    Without ``example_input`` an input is guessed (see :func:`guess_input`); raises DataflowError
    if none can be found or the model does not run.
    """
    key = architecture_key(model, example_input)
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            x = example_input if example_input is not None else guess_input(model)
            if x is None:
                found = DataflowError(
                    "cannot tell the model's input shape: give an example input (calibration or test data)"
                )
            else:
                try:
                    found = record(model, x)
                except DataflowError as exc:
                    found = exc
            if len(_CACHE) >= _CACHE_LIMIT:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = found
    if isinstance(found, DataflowError):
        raise DataflowError(str(found))
    return found
