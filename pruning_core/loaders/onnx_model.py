"""ONNX files as ``torch.nn.Module``: checked without running anything, converted by our own code.

Why not ``onnx2torch``: it needs torchvision, which has no CPU wheel here. Why not run the file in
onnxruntime: a custom operator domain runs whatever the runtime registered for it, and the point
is to prune the weights in PyTorch anyway.

What is checked before any tensor is allocated (``parse_onnx``): the protobuf parses; every domain
is standard (``""``/``ai.onnx``, and ``ai.onnx.ml`` whose Scaler is converted and whose other nodes
may only lie off the path to the chosen output, e.g. skl2onnx's label branch); no model-local
functions; no tensor stores its data outside the file (``data_location == EXTERNAL``: refused, never
followed); every declared dim is within ``Limits.max_dim``; every initializer's declared size
matches the bytes it holds, and the total is within ``Limits.max_parameters``; the node count is
within ``Limits.max_onnx_nodes``.

The converted module (``OnnxModule``) executes the graph's nodes in order. A Gemm, or a MatMul with
a constant 2-D weight (plus a following Add of a constant vector, skl2onnx's pattern), becomes an
``nn.Linear``; a Conv with constant weights an ``nn.Conv1d/2d/3d``; BatchNormalization an
``nn.BatchNorm*d``: PruneLab's prunable-layer logic (``pruning_core.targets``) sees them as it sees
the sample models'. Layers are named after the weight initializer (``fc1.weight`` -> ``fc1``) or,
for an anonymous one (``onnx::Conv_12``), after the node (``/layer1/conv/Conv`` -> ``layer1_conv``).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pruning_core.deadline import check_deadline
from pruning_core.loaders.common import Limits, UntrustedFileError, element_count

STANDARD_DOMAINS = ("", "ai.onnx")
ML_DOMAIN = "ai.onnx.ml"  # scikit-learn: Scaler is converted; other ML nodes only off the path to the scores
FLOAT_TYPES = {1: torch.float32, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}
TENSOR_TYPES = {
    **FLOAT_TYPES,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
}
_BYTES = {1: 4, 10: 2, 11: 8, 16: 2, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1}


def parse_onnx(data: bytes, limits: Limits) -> Any:  # noqa: C901, PLR0912 - one check per refusal, before any allocation
    """The parsed ``onnx.ModelProto`` after the checks in the module docstring; refusals raise
    UntrustedFileError naming the node, tensor or domain."""
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise UntrustedFileError(f"the file is not a valid ONNX model (protobuf could not parse it: {exc})") from None
    graph = model.graph
    if not graph.node:
        raise UntrustedFileError("the ONNX file has no graph nodes: is it an ONNX model?")
    for opset in model.opset_import:
        if opset.domain not in (*STANDARD_DOMAINS, ML_DOMAIN):
            raise UntrustedFileError(
                f"the ONNX model imports the custom operator domain {opset.domain!r}: custom operators run "
                "code a runtime registered for them and cannot be converted; export with standard ONNX "
                "operators only (domains '' / 'ai.onnx', or 'ai.onnx.ml' for scikit-learn)"
            )
    if len(model.functions):
        names = ", ".join(f"{f.domain}.{f.name}" for f in model.functions)
        raise UntrustedFileError(f"the ONNX model defines its own functions ({names}); inline them when exporting")
    if len(graph.node) > limits.max_onnx_nodes:
        raise UntrustedFileError(
            f"the ONNX graph has {len(graph.node)} nodes; at most {limits.max_onnx_nodes} are converted"
        )
    if len(graph.sparse_initializer):
        raise UntrustedFileError("sparse initializers are not supported; export dense weights")
    total = 0
    for tensor in graph.initializer:
        total += _check_tensor(tensor, limits, f"initializer {tensor.name!r}")
    for node in graph.node:
        if node.domain not in (*STANDARD_DOMAINS, ML_DOMAIN):
            raise UntrustedFileError(
                f"node {node.name or node.op_type!r} uses the custom operator {node.domain}.{node.op_type}; "
                "only standard ONNX operators can be converted"
            )
        for attr in node.attribute:
            if any(abs(v) > limits.max_dim for v in (*attr.ints, attr.i)):
                raise UntrustedFileError(
                    f"node {node.name or node.op_type!r} ({node.op_type}) has attribute {attr.name} = "
                    f"{list(attr.ints) or attr.i}; values beyond {limits.max_dim:,} are refused"
                )
            if attr.HasField("t"):
                total += _check_tensor(attr.t, limits, f"constant of node {node.name or node.op_type!r}")
            if attr.HasField("g") or len(attr.graphs):
                raise UntrustedFileError(
                    f"node {node.name or node.op_type!r} ({node.op_type}) holds a subgraph; control flow "
                    "(If, Loop, Scan) is not supported"
                )
    if total > limits.max_parameters:
        raise UntrustedFileError(
            f"the ONNX model holds {total:,} weight elements; at most {limits.max_parameters:,} are accepted"
        )
    for value in (*graph.input, *graph.output, *graph.value_info):
        dims = value.type.tensor_type.shape.dim
        for d in dims:
            if d.HasField("dim_value") and not 0 <= d.dim_value <= limits.max_dim:
                raise UntrustedFileError(
                    f"value {value.name!r} declares a dimension of {d.dim_value:,}; dimensions must be between "
                    f"0 and {limits.max_dim:,}"
                )
        known = [d.dim_value for d in dims if d.HasField("dim_value")]
        if element_count(known) > limits.max_activation_elements:
            raise UntrustedFileError(
                f"value {value.name!r} declares shape {known} ({element_count(known):,} elements); at most "
                f"{limits.max_activation_elements:,} elements per tensor are accepted"
            )
    return model


def _check_tensor(tensor: Any, limits: Limits, what: str) -> int:
    """Check one TensorProto without decoding it; return its element count."""
    from onnx import TensorProto

    if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
        location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
        raise UntrustedFileError(
            f"{what} stores its data in an external file ({location!r}); external data is never read. "
            "Save the model as one file: onnx.save_model(model, path, save_as_external_data=False)"
        )
    dims = list(tensor.dims)
    if any(d < 0 or d > limits.max_dim for d in dims):
        raise UntrustedFileError(f"{what} declares shape {dims}; dimensions must be between 0 and {limits.max_dim:,}")
    count = element_count(dims)
    if count > limits.max_tensor_elements:
        raise UntrustedFileError(
            f"{what} declares shape {dims} ({count:,} elements); at most {limits.max_tensor_elements:,} per tensor"
        )
    if tensor.data_type not in TENSOR_TYPES:
        raise UntrustedFileError(f"{what} has ONNX data type {tensor.data_type}, which is not supported")
    if tensor.HasField("raw_data") or tensor.raw_data:
        held = len(tensor.raw_data) // _BYTES[tensor.data_type]
        if len(tensor.raw_data) != count * _BYTES[tensor.data_type]:
            raise UntrustedFileError(
                f"{what} declares shape {dims} ({count:,} elements) but holds {len(tensor.raw_data):,} bytes "
                f"({held:,} elements): the file is corrupt or lies about its sizes"
            )
    else:
        held = max(len(tensor.float_data), len(tensor.int32_data), len(tensor.int64_data), len(tensor.double_data))
        if held != count:
            raise UntrustedFileError(
                f"{what} declares shape {dims} ({count:,} elements) but holds {held:,}: the file is corrupt "
                "or lies about its sizes"
            )
    return count


_RAW_TYPES = {1: np.float32, 11: np.float64, 6: np.int32, 7: np.int64}  # read straight from raw_data


def _to_tensor(tensor: Any) -> torch.Tensor:
    """A checked TensorProto as a torch tensor (a copy: nothing points into the protobuf)."""
    from onnx import numpy_helper

    if tensor.data_type in _RAW_TYPES and tensor.HasField("raw_data"):
        # One copy: the raw bytes (little-endian in ONNX) written into the tensor, no numpy copy between.
        raw = np.frombuffer(tensor.raw_data, dtype=np.dtype(_RAW_TYPES[tensor.data_type]).newbyteorder("<"))
        value = torch.empty(tuple(tensor.dims), dtype=TENSOR_TYPES[tensor.data_type])
        value.numpy().reshape(-1)[:] = raw
        return value.float() if value.is_floating_point() else value
    array = numpy_helper.to_array(tensor)
    value = torch.from_numpy(np.array(array, copy=True))
    # PruneLab computes in float32: float16/bfloat16/float64 weights are converted once, here.
    return value.float() if value.is_floating_point() else value


@dataclass(frozen=True)
class Step:
    """One node to execute: plain, immutable data, so the module deep-copies and is thread-safe."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    module: str | None = None

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)


@dataclass(frozen=True)
class WeightSource:
    """Where a converted layer's weight lives in the ONNX file, to write pruned weights back."""

    initializer: str
    transposed: bool  # the ONNX tensor is the transpose of ``layer.weight`` (MatMul, Gemm transB=0)
    scale: float  # ``layer.weight = scale * tensor`` (Gemm alpha)


class OnnxModule(nn.Module):
    """A converted ONNX graph: Linear/Conv/BatchNorm submodules plus a list of steps run in order.

    Each converted graph gets its own subclass (named after a hash of its wiring) so that PruneLab's
    per-architecture caches (``pruning_core.dataflow``) never mix two graphs with the same layers.
    """

    def __init__(
        self,
        steps: list[Step],
        input_name: str,
        output_name: str,
        constants: dict[str, torch.Tensor],
        layers: dict[str, nn.Module],
        input_shape: tuple[int, ...] | None,
    ) -> None:
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.constant_names: dict[str, str] = {}
        for i, (value, tensor) in enumerate(constants.items()):
            self.register_buffer(f"const_{i}", tensor, persistent=False)
            self.constant_names[value] = f"const_{i}"
        self.steps = tuple(steps)
        self.input_name = input_name
        self.output_name = output_name
        if input_shape is not None:
            self.input_shape = input_shape  # one sample's shape, read by pruning_core.dataflow.guess_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return execute(self, x)

    def __reduce_ex__(self, protocol: int) -> tuple:
        # The per-graph subclass is made at run time, so pickle (worker processes) and deepcopy
        # rebuild it by name instead of looking it up in this module.
        return (_new_graph_module, (type(self).__name__,), self.__getstate__())


_GRAPH_CLASSES: dict[str, type[OnnxModule]] = {}
_GRAPH_CLASSES_LOCK = threading.Lock()


def graph_class(name: str) -> type[OnnxModule]:
    """The OnnxModule subclass named ``name`` (one class object per name in a process)."""
    if not re.fullmatch(r"OnnxGraph_[0-9a-f]{12}", name):
        raise ValueError(f"not a converted-graph class name: {name!r}")
    with _GRAPH_CLASSES_LOCK:
        if name not in _GRAPH_CLASSES:
            _GRAPH_CLASSES[name] = type(name, (OnnxModule,), {"__module__": __name__, "__qualname__": name})
        return _GRAPH_CLASSES[name]


def _new_graph_module(name: str) -> OnnxModule:
    cls = graph_class(name)
    return cls.__new__(cls)


Observer = Callable[[Step, list[Any]], None]


def execute(module: OnnxModule, x: torch.Tensor, observer: Observer | None = None) -> torch.Tensor:
    """Run the graph on ``x``; ``observer(step, inputs)`` is called before each step (limit checks)."""
    env: dict[str, Any] = {module.input_name: x}
    for value, buffer in module.constant_names.items():
        env[value] = getattr(module, buffer)
    last_use = {name: i for i, step in enumerate(module.steps) for name in step.inputs}
    for i, step in enumerate(module.steps):
        check_deadline()  # a time limit (an upload on a shared server) stops between steps
        args = [env[name] if name else None for name in step.inputs]
        if observer is not None:
            observer(step, args)
        result = _OPS[step.op](module, step, args)
        if not isinstance(result, tuple):
            result = (result,)
        for name, value in zip(step.outputs, result):
            if name:
                env[name] = value
        del args, result
        for name in step.inputs:  # a value no later step reads is dropped: one batch's activations
            if name and last_use.get(name) == i and name != module.output_name:  # are not all kept at once
                env.pop(name, None)
    return env[module.output_name]


# --- operator implementations: (module, step, args) -> tensor -----------------------------------


def _layer(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    return getattr(m, s.module)(a[0])


def _gemm(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    A = a[0].transpose(0, 1) if s.attr("transA", 0) else a[0]
    B = a[1].transpose(0, 1) if s.attr("transB", 0) else a[1]
    out = s.attr("alpha", 1.0) * (A @ B)
    return out + s.attr("beta", 1.0) * a[2] if len(a) > 2 and a[2] is not None else out


def _softmax(log: bool) -> Callable:
    def run(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
        x, axis = a[0], s.attr("axis", -1 if s.attr("opset") >= 13 else 1)
        fn = torch.log_softmax if log else torch.softmax
        if s.attr("opset") >= 13:
            return fn(x, axis)
        axis = axis % x.dim()  # opset < 13: coerced to 2-D at ``axis``
        return fn(x.reshape(math.prod(x.shape[:axis]), -1), 1).reshape(x.shape)

    return run


def _clip(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    low = a[1] if len(a) > 1 and a[1] is not None else s.attr("min")
    high = a[2] if len(a) > 2 and a[2] is not None else s.attr("max")
    return torch.clamp(a[0], low, high)


def _pool(kind: str) -> Callable:
    def run(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
        x = a[0]
        dims = x.dim() - 2
        kernel = tuple(s.attr("kernel_shape"))
        strides = tuple(s.attr("strides") or (1,) * dims)
        pads = tuple(s.attr("pads") or (0,) * (2 * dims))
        begin, end = pads[:dims], pads[dims:]
        ceil = bool(s.attr("ceil_mode", 0))
        if kind == "max":
            dilations = tuple(s.attr("dilations") or (1,) * dims)
            if begin != end:
                x = F.pad(x, [p for i in reversed(range(dims)) for p in (begin[i], end[i])], value=-math.inf)
                begin = (0,) * dims
            fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
            return fn(x, kernel, strides, begin, dilations, ceil_mode=ceil)
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1]
        return fn(x, kernel, strides, begin, ceil_mode=ceil, count_include_pad=bool(s.attr("count_include_pad", 0)))

    return run


def _flatten(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    x, axis = a[0], s.attr("axis", 1)
    axis = axis % x.dim() if x.dim() else 0
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _reshape(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    x, shape = a[0], [int(v) for v in a[1].tolist()]
    if not s.attr("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


def _axes(s: Step, a: list) -> list[int] | None:
    if len(a) > 1 and a[1] is not None:
        return [int(v) for v in a[1].tolist()]
    axes = s.attr("axes")
    return None if axes is None else list(axes)


def _unsqueeze(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    x, axes = a[0], _axes(s, a)
    rank = x.dim() + len(axes)
    for axis in sorted(v % rank for v in axes):
        x = x.unsqueeze(axis)
    return x


def _squeeze(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    x, axes = a[0], _axes(s, a)
    if axes is None:
        return x.squeeze()
    for axis in sorted((v % x.dim() for v in axes), reverse=True):
        x = x.squeeze(axis)
    return x


def _reduce_mean(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    axes = _axes(s, a)
    keep = bool(s.attr("keepdims", 1))
    if axes is None or not axes:
        return a[0].mean() if not keep else a[0].mean(dim=tuple(range(a[0].dim())), keepdim=True)
    return a[0].mean(dim=tuple(axes), keepdim=keep)


def _gather(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    data, index, axis = a[0], a[1].long(), s.attr("axis", 0) % a[0].dim()
    index = torch.where(index < 0, index + data.shape[axis], index)
    out = data.index_select(axis, index.reshape(-1))
    return out.reshape((*data.shape[:axis], *index.shape, *data.shape[axis + 1 :]))


def _shape(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    shape = list(a[0].shape)
    start, end = s.attr("start", 0), s.attr("end")
    return torch.tensor(shape[start:end], dtype=torch.int64)


def _cast(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    return a[0].to(TENSOR_TYPES[s.attr("to")])


def _gelu(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    return F.gelu(a[0], approximate=s.attr("approximate", "none"))


_OPS: dict[str, Callable[[OnnxModule, Step, list], Any]] = {
    "layer": _layer,
    "Gemm": _gemm,
    "MatMul": lambda m, s, a: torch.matmul(a[0], a[1]),
    "Relu": lambda m, s, a: torch.relu(a[0]),
    "LeakyRelu": lambda m, s, a: F.leaky_relu(a[0], s.attr("alpha", 0.01)),
    "Sigmoid": lambda m, s, a: torch.sigmoid(a[0]),
    "Tanh": lambda m, s, a: torch.tanh(a[0]),
    "Gelu": _gelu,
    "Softmax": _softmax(log=False),
    "LogSoftmax": _softmax(log=True),
    "Erf": lambda m, s, a: torch.erf(a[0]),
    "Sqrt": lambda m, s, a: torch.sqrt(a[0]),
    "Exp": lambda m, s, a: torch.exp(a[0]),
    "Log": lambda m, s, a: torch.log(a[0]),
    "Neg": lambda m, s, a: torch.neg(a[0]),
    "Abs": lambda m, s, a: torch.abs(a[0]),
    "Reciprocal": lambda m, s, a: torch.reciprocal(a[0]),
    "Clip": _clip,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda m, s, a: a[0].mean(dim=tuple(range(2, a[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda m, s, a: a[0].amax(dim=tuple(range(2, a[0].dim())), keepdim=True),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Add": lambda m, s, a: torch.add(a[0], a[1]),
    "Sub": lambda m, s, a: torch.sub(a[0], a[1]),
    "Mul": lambda m, s, a: torch.mul(a[0], a[1]),
    "Div": lambda m, s, a: (
        torch.div(a[0], a[1], rounding_mode="trunc") if not a[0].is_floating_point() else torch.div(a[0], a[1])
    ),
    "Pow": lambda m, s, a: torch.pow(a[0], a[1]),
    "Concat": lambda m, s, a: torch.cat([t for t in a if t is not None], dim=s.attr("axis")),
    "Identity": lambda m, s, a: a[0],
    "Dropout": lambda m, s, a: a[0],
    "Transpose": lambda m, s, a: a[0].permute(*(s.attr("perm") or tuple(reversed(range(a[0].dim()))))),
    "Shape": _shape,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Cast": _cast,
    "ReduceMean": _reduce_mean,
    "Pad": lambda m, s, a: F.pad(a[0], list(s.attr("pads"))),  # inserted before a Conv with asymmetric pads
}


def _scaler(m: OnnxModule, s: Step, a: list) -> torch.Tensor:
    offset = torch.tensor(s.attr("offset", (0.0,)), dtype=a[0].dtype)
    scale = torch.tensor(s.attr("scale", (1.0,)), dtype=a[0].dtype)
    return (a[0] - offset) * scale


_OPS["Scaler"] = _scaler  # ai.onnx.ml.Scaler: scikit-learn's StandardScaler in a pipeline
ML_OPS = frozenset({"Scaler"})
# ONNX operators the converter accepts ("layer" and "Pad" are its own steps).
SUPPORTED_OPS = frozenset(_OPS) - {"layer", "Pad", "Scaler"} | {"Conv", "BatchNormalization", "Constant"}


# --- conversion ----------------------------------------------------------------------------------


@dataclass
class Conversion:
    """A converted ONNX model with what PruneLab needs besides the module."""

    module: OnnxModule
    weight_sources: dict[str, WeightSource]  # layer name -> its weight's initializer
    input_name: str
    output_name: str  # the graph output the module's result corresponds to
    input_shape: tuple[int, ...] | None  # one sample's declared shape (batch dim dropped)
    notes: list[str] = field(default_factory=list)
    # Every other tensor of a layer that lives in one initializer of its own: biases ("fc1.bias") and
    # BatchNorm's scale, bias and statistics, keyed by state-dict name. Pruning zeroes biases and
    # BatchNorm entries with their neurons, and fine-tuning changes them all: both are written back.
    param_sources: dict[str, WeightSource] = field(default_factory=dict)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value)
        elif not isinstance(value, int | float | str):
            continue  # tensors (Constant) are handled by the caller
        out[attr.name] = value
    return out


def _sanitize(name: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_")
    name = re.sub(r"_+", "_", name)
    return f"l_{name}" if not name or name[0].isdigit() else name


class _Namer:
    """Unique module names, never shadowing an attribute of nn.Module."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, initializer: str, node: Any, op: str) -> str:
        base = initializer
        if base.startswith("onnx::") or not base or base.replace("_", "").isdigit():
            parts = [p for p in (node.name or "").split("/") if p]
            if parts and parts[-1].split("_")[0] == op:
                parts = parts[:-1]
            base = "_".join(parts) or f"{op.lower()}"
        for suffix in (".weight", "_weight", "/weight"):
            if base.endswith(suffix) and len(base) > len(suffix):
                base = base[: -len(suffix)]
        name = _sanitize(base)
        if hasattr(OnnxModule, name) or name in ("steps", "input_name", "output_name", "constant_names", "input_shape"):
            name += "_layer"
        candidate, i = name, 2
        while candidate in self.used or candidate.startswith("const_"):
            candidate, i = f"{name}_{i}", i + 1
        self.used.add(candidate)
        return candidate


def _value_shape(value: Any) -> list[int | None] | None:
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


SHAPE_HINT_MAX_ELEMENTS = 4096  # initializers up to this size keep their values for shape inference


def _without_weight_data(model: Any) -> Any:
    """The model for shape inference: large initializers become typed graph inputs (their shapes are
    what inference reads), so it does not copy the weights (``infer_shapes`` serialises the whole
    model and parses its answer: about three transient copies of every weight). Small ones, such
    as a Reshape's target shape, keep their values."""
    import onnx

    light = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    listed = {v.name for v in model.graph.input}
    for tensor in model.graph.initializer:
        if element_count(list(tensor.dims)) <= SHAPE_HINT_MAX_ELEMENTS:
            graph.initializer.append(tensor)
        elif tensor.name not in listed:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return light


def convert(  # noqa: C901, PLR0912, PLR0915 - one branch per ONNX operator; a dispatch table is the fix (to do)
    model: Any, limits: Limits
) -> Conversion:
    """Convert a model checked by :func:`parse_onnx` into an :class:`OnnxModule`."""
    from onnx import shape_inference

    graph = model.graph
    notes: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 13)
    initializers = {t.name: t for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(v.name for v in inputs) or "none"
        raise UntrustedFileError(
            f"PruneLab feeds a model one input tensor; this ONNX model takes {len(inputs)} ({names})"
        )
    graph_input = inputs[0]
    output_name, output_note = _choose_output(graph)
    if output_note:
        notes.append(output_note)

    # Nodes the chosen output depends on, walking back from it.
    producer = {out: node for node in graph.node for out in node.output if out}
    needed: list[Any] = []
    seen: set[int] = set()
    stack = [output_name]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(i for i in node.input if i)
    needed = [node for node in graph.node if id(node) in seen]
    skipped = sorted({n.op_type for n in graph.node if id(n) not in seen})
    if skipped:
        notes.append(f"nodes not needed for output {output_name!r} were left out: {', '.join(skipped)}")
    unsupported = sorted(
        {f"{n.domain}.{n.op_type}" for n in needed if n.domain == ML_DOMAIN and n.op_type not in ML_OPS}
        | {n.op_type for n in needed if n.domain in STANDARD_DOMAINS and n.op_type not in SUPPORTED_OPS}
    )
    if unsupported:
        raise UntrustedFileError(
            f"the ONNX model uses operators PruneLab cannot convert: {', '.join(unsupported)}; supported: "
            f"{', '.join(sorted(SUPPORTED_OPS))}"
        )

    try:
        inferred = shape_inference.infer_shapes(_without_weight_data(model), check_type=False, strict_mode=False)
        ranks = {
            v.name: len(v.type.tensor_type.shape.dim)
            for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
            if v.type.tensor_type.HasField("shape")
        }
    except Exception:  # shape inference is only a hint for BatchNorm's class
        ranks = {}

    uses: dict[str, int] = {}
    for node in needed:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    consumers: dict[str, list[Any]] = {}
    for node in needed:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}

    namer = _Namer()
    constants: dict[str, torch.Tensor] = {}
    layers: dict[str, nn.Module] = {}
    sources: dict[str, WeightSource] = {}
    param_sources: dict[str, WeightSource] = {}
    steps: list[Step] = []
    fused_adds: dict[int, str] = {}  # id(Add node) -> name of the MatMul output it was fused into
    available = {graph_input.name, *initializers}

    # Exporters also alias one initializer under several names through Identity nodes (equal biases).
    aliases = {
        node.output[0]: node.input[0]
        for node in needed
        if node.op_type == "Identity" and len(node.input) == 1 and node.input[0] in initializers
    }

    def constant(name: str) -> torch.Tensor | None:
        name = aliases.get(name, name)
        return _to_tensor(initializers[name]) if name in initializers else None

    # Exports without constant folding feed a weight through Transpose (or Identity) into MatMul/Gemm:
    # such a weight is still the layer's, read through the transpose.
    folded: dict[str, tuple[str, bool]] = {}  # value -> (initializer, transposed)
    folded_nodes: set[int] = set()
    for node in needed:
        source = node.input[0] if len(node.input) == 1 else ""
        if node.op_type not in ("Transpose", "Identity") or source not in initializers or uses.get(source) != 1:
            continue
        if node.op_type == "Transpose" and (
            len(initializers[source].dims) != 2 or _attrs(node).get("perm") not in (None, (1, 0))
        ):
            continue
        users = consumers.get(node.output[0], [])
        if (
            len(users) == 1
            and users[0].op_type in ("Gemm", "MatMul")
            and list(users[0].input[1:2]) == [node.output[0]]
            and node.output[0] not in graph_outputs
        ):
            folded[node.output[0]] = (source, node.op_type == "Transpose")
            folded_nodes.add(id(node))

    for node in needed:
        check_deadline()
        missing = [i for i in node.input if i and i not in available]
        if missing:
            raise UntrustedFileError(
                f"node {node.name or node.op_type!r} reads {', '.join(missing)} before it is produced: the graph is "
                "not in topological order or is incomplete"
            )
        available.update(o for o in node.output if o)
        if id(node) in fused_adds:
            steps.append(Step("Identity", (fused_adds[id(node)],), tuple(node.output[:1])))
            continue
        attrs = _attrs(node)
        op = node.op_type
        if op == "Constant":
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            if tensor is not None:
                constants[node.output[0]] = _to_tensor(tensor)
            else:
                values = {k: v for k, v in attrs.items() if k.startswith("value_")}
                if not values:
                    raise UntrustedFileError(f"Constant node {node.name!r} has no value")
                ((kind, value),) = values.items()
                dtype = torch.float32 if "float" in kind else torch.int64
                constants[node.output[0]] = torch.tensor(value, dtype=dtype)
            continue
        step_inputs = tuple(node.input)
        if id(node) in folded_nodes:
            continue
        weight_name = node.input[1] if len(node.input) > 1 else ""
        weight_name, flipped = folded.get(weight_name, (weight_name, False))
        weight = constant(weight_name) if weight_name in initializers and uses.get(weight_name) == 1 else None
        if flipped and weight is not None:
            weight = weight.transpose(0, 1).contiguous()
        if weight_name in initializers and uses.get(weight_name, 0) > 1 and op in ("Gemm", "MatMul", "Conv"):
            notes.append(f"weight {weight_name!r} is shared by several nodes: kept as a constant, not pruned")

        if (
            op in ("Gemm", "MatMul")
            and weight is not None
            and weight.is_floating_point()
            and weight.dim() == 2
            and not attrs.get("transA", 0)
        ):
            trans_b = bool(attrs.get("transB", 0)) if op == "Gemm" else False
            alpha = float(attrs.get("alpha", 1.0)) if op == "Gemm" else 1.0
            w = weight if trans_b else weight.transpose(0, 1)
            out_features, in_features = w.shape
            bias, out_name, bias_source = None, node.output[0], None
            bias_name = node.input[2] if op == "Gemm" and len(node.input) > 2 else ""
            if op == "Gemm" and bias_name:
                c = constant(bias_name)
                if c is None or c.numel() not in (1, out_features):
                    bias = "not-constant"
                else:
                    beta = float(attrs.get("beta", 1.0))
                    bias = beta * c.reshape(-1).expand(out_features).to(w.dtype)
                    if bias_name in initializers and uses.get(bias_name) == 1:
                        bias_source = WeightSource(bias_name, transposed=False, scale=beta)
                    else:  # exporters merge equal biases (all zeros) into one initializer
                        note = (
                            f"bias {aliases.get(bias_name, bias_name)!r} is shared by several nodes: each layer gets "
                            "its own copy (a changed bias cannot be written back into this graph)"
                        )
                        notes += [note] if note not in notes else []
            elif op == "MatMul":
                users = consumers.get(out_name, [])
                if len(users) == 1 and users[0].op_type == "Add" and out_name not in graph_outputs:
                    add = users[0]
                    other = add.input[1] if add.input[0] == out_name else add.input[0]
                    c = constant(other)
                    if c is not None and c.numel() == out_features and c.dim() <= 2 and uses.get(other) == 1:
                        bias = c.reshape(-1).to(w.dtype)
                        bias_source = WeightSource(other, transposed=False, scale=1.0)
                        fused_adds[id(add)] = out_name
            if isinstance(bias, str):  # a Gemm whose C is computed: run it as a function
                steps.append(Step("Gemm", step_inputs, tuple(node.output), tuple(attrs.items())))
                for name in node.input[1:]:
                    if name in initializers:
                        constants[name] = constant(name)
                if node.input[1] in folded:
                    constants[node.input[1]] = weight
                continue
            name = namer(weight_name, node, op)
            linear = nn.Linear(in_features, out_features, bias=bias is not None, device="meta")
            # The layer adopts the tensor read for it (a fresh copy of the file's data): no second
            # copy of every weight while loading, and no heap left fragmented by one.
            linear.weight = nn.Parameter(w.contiguous() if alpha == 1 else alpha * w)
            if bias is not None:
                linear.bias = nn.Parameter(bias.contiguous().clone())
            layers[name] = linear
            sources[name] = WeightSource(weight_name, transposed=(not trans_b) != flipped, scale=alpha)
            if bias_source is not None:
                param_sources[f"{name}.bias"] = bias_source
            steps.append(Step("layer", (node.input[0],), (out_name,), module=name))
            continue

        if op == "Conv" and weight is not None and weight.is_floating_point() and 3 <= weight.dim() <= 5:
            dims = weight.dim() - 2
            groups = int(attrs.get("group", 1))
            kernel = tuple(attrs.get("kernel_shape") or weight.shape[2:])
            strides = tuple(attrs.get("strides") or (1,) * dims)
            dilations = tuple(attrs.get("dilations") or (1,) * dims)
            pads = tuple(attrs.get("pads") or (0,) * (2 * dims))
            auto_pad = attrs.get("auto_pad", "NOTSET")
            if auto_pad == "VALID":
                pads = (0,) * (2 * dims)
            elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                if any(s != 1 for s in strides):
                    raise UntrustedFileError(
                        f"Conv node {node.name!r} uses auto_pad={auto_pad} with strides {strides}; export with "
                        "explicit pads"
                    )
                total = [(k - 1) * d for k, d in zip(kernel, dilations)]
                small = [t // 2 for t in total]
                big = [t - t // 2 for t in total]
                pads = (*small, *big) if auto_pad == "SAME_UPPER" else (*big, *small)
            begin, end = pads[:dims], pads[dims:]
            bias_name = node.input[2] if len(node.input) > 2 else ""
            bias = constant(bias_name) if bias_name else None
            if bias_name and (bias is None or uses.get(bias_name) != 1):
                raise UntrustedFileError(
                    f"Conv node {node.name!r} has a computed bias; only constant biases are supported"
                )
            in_channels = weight.shape[1] * groups
            cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
            name = namer(weight_name, node, op)
            conv = cls(
                in_channels, weight.shape[0], kernel, stride=strides, padding=begin if begin == end else 0,
                dilation=dilations, groups=groups, bias=bias is not None, device="meta",
            )  # fmt: skip
            conv.weight = nn.Parameter(weight.contiguous())  # adopted, as a Linear's (no second copy)
            if bias is not None:
                conv.bias = nn.Parameter(bias.to(weight.dtype).contiguous().clone())
            layers[name] = conv
            sources[name] = WeightSource(weight_name, transposed=False, scale=1.0)
            if bias is not None:
                param_sources[f"{name}.bias"] = WeightSource(bias_name, transposed=False, scale=1.0)
            source = node.input[0]
            if begin != end:
                padded = f"{node.name or node.output[0]} (padding)"
                flat = [p for i in reversed(range(dims)) for p in (begin[i], end[i])]
                steps.append(Step("Pad", (source,), (padded,), (("pads", tuple(flat)),)))
                source = padded
            steps.append(Step("layer", (source,), (node.output[0],), module=name))
            continue

        if op == "BatchNormalization" and all(constant(i) is not None for i in node.input[1:5]):
            scale, bias, mean, var = (constant(i) for i in node.input[1:5])
            rank = ranks.get(node.input[0])
            cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(
                rank, _AnyRankBatchNorm
            )
            name = namer(node.input[1], node, op)
            norm = cls(scale.numel(), eps=float(attrs.get("epsilon", 1e-5)))
            with torch.no_grad():
                norm.weight.copy_(scale)
                norm.bias.copy_(bias)
                norm.running_mean.copy_(mean)
                norm.running_var.copy_(var)
            layers[name] = norm.eval()
            if all(uses.get(i) == 1 for i in node.input[1:5]):  # a shared initializer is not written back
                for key, initializer in zip(("weight", "bias", "running_mean", "running_var"), node.input[1:5]):
                    param_sources[f"{name}.{key}"] = WeightSource(initializer, transposed=False, scale=1.0)
            steps.append(Step("layer", (node.input[0],), (node.output[0],), module=name))
            continue
        if op == "BatchNormalization":
            raise UntrustedFileError(f"BatchNormalization node {node.name!r} has computed statistics; not supported")

        if op in ("Gemm", "MatMul", "Conv") and op not in _OPS:
            raise UntrustedFileError(f"{op} node {node.name!r} with computed weights is not supported")
        for name in node.input:
            if name in initializers and name not in constants:
                constants[name] = constant(name)
            elif name in folded:  # a folded weight whose consumer stayed a function after all
                source, flip = folded[name]
                constants[name] = constant(source).transpose(0, 1) if flip else constant(source)
        step_attrs = dict(attrs)
        if op in ("Softmax", "LogSoftmax"):
            step_attrs["opset"] = opset
        if op == "AveragePool":
            p = step_attrs.get("pads") or ()
            if p and tuple(p[: len(p) // 2]) != tuple(p[len(p) // 2 :]):
                raise UntrustedFileError(f"AveragePool node {node.name!r} has asymmetric pads; not supported")
        if op in ("MaxPool", "AveragePool") and step_attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise UntrustedFileError(f"{op} node {node.name!r} uses auto_pad; export with explicit pads")
        if op == "Conv":
            raise UntrustedFileError(f"Conv node {node.name!r} with computed or shared weights is not supported")
        steps.append(Step(op, step_inputs, tuple(node.output), tuple(step_attrs.items())))

    used_values = {i for s in steps for i in s.inputs}
    constants = {k: v for k, v in constants.items() if k in used_values}
    declared = _value_shape(graph_input)
    input_shape = None
    if declared and all(d is not None and d > 0 for d in declared[1:]):
        input_shape = tuple(int(d) for d in declared[1:])
    wiring = repr([(s.op, s.inputs, s.outputs, s.attrs, s.module) for s in steps]).encode()
    cls = graph_class(f"OnnxGraph_{hashlib.sha256(wiring).hexdigest()[:12]}")
    module = cls(steps, graph_input.name, output_name, constants, layers, input_shape).eval()
    return Conversion(module, sources, graph_input.name, output_name, input_shape, notes, param_sources)


class _AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm for an input whose rank the ONNX file does not declare."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"BatchNorm expects at least 2-D input, got {input.dim()}-D")


def _choose_output(graph: Any) -> tuple[str, str | None]:
    """The graph output PruneLab scores: the first floating-point one; if a Softmax produced it
    (through Identity), the Softmax's input, so the loss is cross-entropy on logits (same argmax)."""
    floats = [o for o in graph.output if o.type.tensor_type.elem_type in FLOAT_TYPES]
    if not floats:
        names = ", ".join(o.name for o in graph.output)
        raise UntrustedFileError(
            f"no output of the ONNX model is a float tensor of scores ({names}); a scikit-learn export "
            "needs options={id(model): {'zipmap': False}} so the probabilities are a tensor"
        )
    chosen = floats[0].name
    note = None
    if len(graph.output) > 1:
        note = f"scored output {chosen!r} of {', '.join(o.name for o in graph.output)}"
    producer = {out: node for node in graph.node for out in node.output if out}
    name = chosen
    while name in producer and producer[name].op_type == "Identity":
        name = producer[name].input[0]
    node = producer.get(name)
    if node is not None and node.op_type == "Softmax":
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if axis in (-1, 1):
            note = (note + "; " if note else "") + (
                f"output {chosen!r} is a softmax: PruneLab scores its input (the logits, same predicted class)"
            )
            return node.input[0], note
    return chosen, note


def probe(  # noqa: C901 - one limit check per step kind, before the step runs
    module: OnnxModule, x: torch.Tensor, limits: Limits
) -> tuple[torch.Tensor, int]:
    """Run one sample through the graph, refusing before any step that would exceed the limits on
    intermediate elements or multiply-adds; return the output and the multiply-adds counted."""
    macs = 0

    def check(step: Step, args: list) -> None:
        nonlocal macs
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        predicted = max((t.numel() for t in tensors), default=0)
        if step.op in ("Add", "Sub", "Mul", "Div", "Pow") and len(tensors) == 2:
            predicted = element_count(torch.broadcast_shapes(tensors[0].shape, tensors[1].shape))
        elif step.op == "Concat":
            predicted = sum(t.numel() for t in tensors)
        elif step.attr("pads") and tensors and tensors[0].dim() >= 2:  # Pad, MaxPool/AveragePool pads
            x0, pads = tensors[0], list(step.attr("pads"))
            extra = [pads[i] + pads[i + len(pads) // 2] for i in range(len(pads) // 2)]
            if step.op == "Pad":  # F.pad order: last dim first, (begin, end) pairs
                extra = [pads[2 * i] + pads[2 * i + 1] for i in reversed(range(len(pads) // 2))]
            dims = x0.shape[x0.dim() - len(extra) :]
            predicted = element_count(x0.shape[: x0.dim() - len(extra)]) * element_count(
                [d + e for d, e in zip(dims, extra)]
            )
        elif step.op == "layer":
            layer = getattr(module, step.module)
            x0 = tensors[0]
            if isinstance(layer, nn.Linear):
                cost = x0.numel() // max(layer.in_features, 1) * layer.in_features * layer.out_features
                predicted = x0.numel() // max(layer.in_features, 1) * layer.out_features
            elif isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d):
                positions = x0.shape[0] * element_count([s + 2 * p for s, p in zip(x0.shape[2:], layer.padding)])
                predicted = positions * layer.out_channels
                cost = predicted * (layer.in_channels // layer.groups) * element_count(layer.kernel_size)
            else:
                cost = 0
            macs += cost
        elif step.op in ("MatMul", "Gemm") and len(tensors) >= 2:
            a, b = tensors[0], tensors[1]
            predicted = a.numel() // max(a.shape[-1], 1) * b.shape[-1] if b.dim() else a.numel()
            macs += predicted * (a.shape[-1] if a.dim() else 1)
        if predicted > limits.max_activation_elements:
            raise UntrustedFileError(
                f"node {step.outputs[0]!r} ({step.op}) would produce {predicted:,} elements for one sample; at "
                f"most {limits.max_activation_elements:,} are accepted"
            )
        if macs > limits.max_macs_per_sample:
            raise UntrustedFileError(
                f"one sample costs more than {limits.max_macs_per_sample:,} multiply-adds (at node "
                f"{step.outputs[0]!r}); the model is too large to prune here"
            )

    with torch.inference_mode():
        try:
            out = execute(module, x, observer=check)
        except UntrustedFileError:
            raise
        except Exception as exc:  # the user's graph does not run on its own declared input
            raise UntrustedFileError(
                f"the converted ONNX model does not run on an input of shape {tuple(x.shape)}: {exc}"
            ) from None
    return out, macs


_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def without_written_data(model: Any, conversion: Conversion) -> bytes:
    """``model`` (the parsed file, changed in place) serialised without the data of the initializers
    :func:`write_pruned_weights` overwrites from the module: the file minus its weights, so a loaded
    model does not keep a second copy of every weight. Their names, types and shapes stay."""
    written = {s.initializer for s in (*conversion.weight_sources.values(), *conversion.param_sources.values())}
    names = [t.name for t in model.graph.initializer]
    for tensor in model.graph.initializer:
        if tensor.name in written and names.count(tensor.name) == 1:  # a duplicated name is left whole
            for name in _DATA_FIELDS:
                tensor.ClearField(name)
    return model.SerializeToString()


def write_pruned_weights(original: bytes, conversion: Conversion, pruned: nn.Module) -> bytes:
    """The user's own ONNX graph with the pruned (or fine-tuned) layers' tensors written back into its
    initializers: weights, biases and BatchNorm's scale, bias and statistics. ``original`` is the
    file, or :func:`without_written_data` of it (every initializer written here is overwritten).

    Only initializers change, so every node, name and attribute of the user's graph is kept. Refuses
    (ValueError) when a layer's shape changed (a physically shrunk model needs a fresh export,
    ``pruning_core.export.onnx_bytes``) or when a tensor changed that has no initializer of its own
    to write it to (then the written graph would not compute what ``pruned`` computes).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.ParseFromString(original)
    by_name = {t.name: t for t in model.graph.initializer}
    state = pruned.state_dict()
    sources = {f"{layer}.weight": source for layer, source in conversion.weight_sources.items()}
    sources.update(conversion.param_sources)
    before = conversion.module.state_dict()
    unwritable = [
        key
        for key, value in state.items()
        if key not in sources
        and key in before
        and not key.endswith("num_batches_tracked")  # a training counter; inference never reads it
        and not torch.equal(value, before[key])
    ]
    if unwritable:
        raise ValueError(
            f"{', '.join(unwritable)} changed but {'has' if len(unwritable) == 1 else 'have'} no initializer of "
            "its own in the ONNX file (shared or computed): the pruned model cannot be written into this graph"
        )
    for key, source in sources.items():
        tensor = by_name[source.initializer]
        expected = tuple(tensor.dims)
        value = state[key].detach()
        value = value.transpose(0, 1) if source.transposed else value
        value = value / source.scale if source.scale != 1.0 else value
        if tuple(value.shape) != expected:
            if value.numel() == math.prod(expected) or (value.dim() == 1 and math.prod(expected) == 1):
                # a bias stored as (1, n), or a Gemm C broadcast from one value: written as n values
                value = value.reshape(expected) if value.numel() == math.prod(expected) else value
            else:
                raise ValueError(
                    f"{key!r} changed shape ({tuple(value.shape)} vs {expected} in the file): write a "
                    "shrunk model with a fresh ONNX export instead"
                )
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        tensor.CopyFrom(numpy_helper.from_array(value.contiguous().numpy().astype(dtype), source.initializer))
    return model.SerializeToString()
