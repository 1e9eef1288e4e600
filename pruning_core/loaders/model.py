"""One entry point for a user's model file: ONNX, safetensors or ``.pt`` state dicts; never code.

The format is decided by the file name's extension and confirmed by the bytes (a safetensors
header, a zip archive, a pickle), so a file renamed to look harmless is still read as what it is.
Refused outright: full pickled models (``torch.save(model)``), TorchScript archives and
``torch.export`` programs (``.pt2``): loading each of them can run code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pruning_core.loaders import onnx_model, state_dict
from pruning_core.loaders.common import (
    DEFAULT_LIMITS,
    Limits,
    UntrustedFileError,
    check_finite,
    extension,
    read_source,
    sha256,
)

MODEL_FORMATS = (".onnx", ".safetensors", ".pt", ".pth", ".bin")
REFUSED_FORMATS = {
    ".pt2": state_dict.refusal_pt2(),
    ".pkl": "pickle files are refused: unpickling can run code. " + state_dict.EXPORT_HINT,
    ".pickle": "pickle files are refused: unpickling can run code. " + state_dict.EXPORT_HINT,
    ".joblib": "joblib files are pickles and are refused. For scikit-learn models export to ONNX with skl2onnx "
    "(options={id(model): {'zipmap': False}})",
    ".keras": "Keras files are not read; export to ONNX with tf2onnx",
    ".h5": "Keras files are not read; export to ONNX with tf2onnx",
}


@dataclass
class LoadedModel:
    """A user's model ready for PruneLab: the module in eval mode and what is known about it."""

    model: nn.Module
    format: str  # "onnx", "safetensors" or "pt"
    sha256: str
    description: str
    input_shape: tuple[int, ...] | None  # one sample's shape, when the file or the architecture tells
    macs_per_sample: int | None = None
    notes: list[str] = field(default_factory=list)
    conversion: onnx_model.Conversion | None = None  # for ONNX: where each layer's weight came from
    # The original file without the weights written back from the module (``without_written_data``),
    # to write pruned weights back into the user's graph.
    source_bytes: bytes | None = field(default=None, repr=False)
    load_seconds: float = 0.0

    def pruned_onnx(self, pruned: nn.Module) -> bytes:
        """The user's ONNX graph with ``pruned``'s weights written into it (ONNX models only)."""
        if self.conversion is None or self.source_bytes is None:
            raise ValueError("only a model loaded from ONNX can be written back into its own graph")
        return onnx_model.write_pruned_weights(self.source_bytes, self.conversion, pruned)


def load_model(
    path_or_bytes: Any,
    *,
    filename: str,
    factory: state_dict.Factory | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> LoadedModel:
    """Load a user's model file without running code from it; refusals raise UntrustedFileError.

    ``filename`` names the format (uploads have no path); ``factory`` names the architecture of a
    state dict: a sample name, a callable, or ``package.module:factory``.
    """
    started = time.perf_counter()
    ext = extension(filename)
    if ext in REFUSED_FORMATS:
        raise UntrustedFileError(f"{filename!r}: {REFUSED_FORMATS[ext]}")
    if ext not in MODEL_FORMATS:
        raise UntrustedFileError(
            f"{filename!r}: unsupported model format {ext or '(no extension)'}; use .onnx, .safetensors "
            "(with an architecture) or a .pt state dict"
        )
    data = read_source(path_or_bytes, limits.max_model_bytes, "model file")
    digest = sha256(data)
    if ext == ".onnx":
        if data[:8].startswith(b"PK\x03\x04") or data[:1] == b"\x80":
            raise UntrustedFileError("the .onnx file is a zip archive or a pickle, not an ONNX protobuf")
        proto = onnx_model.parse_onnx(data, limits)
        del data  # the parsed graph holds what is needed: not the file's bytes besides it and the module
        loaded = _load_onnx(proto, digest, limits)
    else:
        loaded = _load_state_dict(data, digest, ext, factory, limits)
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def _load_onnx(proto: Any, digest: str, limits: Limits) -> LoadedModel:
    conversion = onnx_model.convert(proto, limits)
    module = conversion.module
    check_finite(dict(module.named_parameters()), "ONNX model")
    # BatchNorm statistics must be finite too; graph constants may legitimately be -inf (masks).
    check_finite({k: v for k, v in module.named_buffers() if not k.startswith("const_")}, "ONNX model")
    notes = list(conversion.notes)
    macs = None
    if conversion.input_shape is not None:
        _, macs = onnx_model.probe(module, torch.zeros((1, *conversion.input_shape)), limits)
    else:
        notes.append("the ONNX input has unknown dimensions: the model is checked when data is loaded")
    layers = [n for n, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    if not layers:
        notes.append("no Linear or Conv layer with constant weights was found: there is nothing to prune")
    producer = proto.producer_name or "unknown exporter"
    description = (
        f"ONNX model from {producer} (opset {max(o.version for o in proto.opset_import)}): "
        f"{len(proto.graph.node)} nodes, {len(layers)} prunable layers"
    )
    return LoadedModel(
        model=module, format="onnx", sha256=digest, description=description, input_shape=conversion.input_shape,
        macs_per_sample=macs, notes=notes, conversion=conversion,
        source_bytes=onnx_model.without_written_data(proto, conversion),
    )  # fmt: skip


def _load_state_dict(
    data: bytes, digest: str, ext: str, factory: state_dict.Factory | None, limits: Limits
) -> LoadedModel:
    notes: list[str] = []
    looks_safetensors = len(data) > 9 and data[8:9] == b"{"
    if ext == ".safetensors" or (looks_safetensors and not state_dict.is_zip(data)):
        if ext != ".safetensors":
            notes.append("the file is safetensors despite its extension")
        tensors = state_dict.read_safetensors(data, limits)
        fmt = "safetensors"
    else:
        tensors, more = state_dict.read_pt(data, limits)
        notes += more
        fmt = "pt"
    check_finite(tensors, "weights file")
    model, description = state_dict.build_architecture(factory, limits)
    notes += state_dict.load_into(model, tensors)
    model.eval()
    shape = getattr(model, "input_shape", None)
    return LoadedModel(
        model=model, format=fmt, sha256=digest, description=f"{fmt} weights for {description}",
        input_shape=tuple(shape) if shape else None, notes=notes,
    )  # fmt: skip
