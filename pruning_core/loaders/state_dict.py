"""PyTorch state dicts (``.safetensors``, or ``.pt`` read with ``weights_only=True``) for a named
architecture, checked before a tensor is allocated and against the architecture they are for.

A safetensors file is an 8-byte header length, a JSON header (name -> dtype, shape, data offsets)
and raw bytes. The header is checked first: every dtype known, every shape within the limits, every
tensor's byte range exactly ``numel x itemsize`` long, the ranges tiling the data section without
gaps or overlaps, and the data section exactly as long as the file says. A truncated file or a
header that lies about its sizes is refused before ``safetensors`` reads anything.

A ``.pt`` file must be a current ``torch.save`` zip archive (torch checks each storage's declared
size against its record there; bare pickles and the legacy format are refused) and is only ever
unpickled by ``torch.load(weights_only=True)``, whose restricted
unpickler builds tensors and containers and nothing else; what it refuses (a pickled ``nn.Module``,
a ``__reduce__`` that would call ``os.system``) is turned into a message saying how to export.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pruning_core.loaders.common import Limits, UntrustedFileError, element_count, human_bytes, open_zip

SAFETENSORS_DTYPES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
MAX_HEADER_BYTES = 16 * 1024 * 1024

EXPORT_HINT = (
    "Save the weights instead: safetensors.torch.save_file(model.state_dict(), 'model.safetensors') "
    "and name the architecture (a sample name or 'package.module:factory'), or export to ONNX "
    "(torch.onnx.export(model, example, 'model.onnx'))"
)


def check_safetensors_header(  # noqa: C901, PLR0912 - one check per refusal of a hostile header
    data: bytes, limits: Limits
) -> dict[str, dict[str, Any]]:
    """The parsed, checked header (tensor name -> dtype, shape, data_offsets); see the module docstring."""
    if len(data) < 8:
        raise UntrustedFileError("the safetensors file is truncated: it is shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(MAX_HEADER_BYTES, len(data) - 8):
        raise UntrustedFileError(
            f"the safetensors header claims {header_len:,} bytes but the file holds {len(data) - 8:,} after the "
            "length field: the file is truncated or not safetensors"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UntrustedFileError(f"the safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise UntrustedFileError("the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_len = len(data) - 8 - header_len
    ranges = []
    total = 0
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise UntrustedFileError(f"safetensors entry {name!r} is malformed: needs dtype, shape, data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise UntrustedFileError(f"tensor {name!r} has dtype {dtype!r}; supported: {', '.join(SAFETENSORS_DTYPES)}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and 0 <= d <= limits.max_dim for d in shape):
            raise UntrustedFileError(
                f"tensor {name!r} declares shape {shape!r}; dimensions must be integers from 0 to {limits.max_dim:,}"
            )
        count = element_count(shape)
        if count > limits.max_tensor_elements:
            raise UntrustedFileError(
                f"tensor {name!r} declares shape {shape} ({count:,} elements); at most "
                f"{limits.max_tensor_elements:,} per tensor"
            )
        total += count
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise UntrustedFileError(f"tensor {name!r} has malformed data_offsets {offsets!r}")
        begin, end = offsets
        expected = count * SAFETENSORS_DTYPES[dtype]
        if not 0 <= begin <= end or end - begin != expected:
            raise UntrustedFileError(
                f"tensor {name!r} declares shape {shape} of {dtype} ({human_bytes(expected)}) but its data offsets "
                f"{offsets} span {end - begin:,} bytes: the header lies about its sizes"
            )
        ranges.append((begin, end, name))
    if total > limits.max_parameters:
        raise UntrustedFileError(f"the file holds {total:,} elements; at most {limits.max_parameters:,} are accepted")
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            raise UntrustedFileError(
                f"tensor {name!r} starts at byte {begin:,} of the data, expected {position:,}: the tensors overlap "
                "or leave gaps, so the header lies about the layout"
            )
        position = end
    if position != data_len:
        raise UntrustedFileError(
            f"the header describes {position:,} bytes of tensor data but the file holds {data_len:,}: "
            + ("the file is truncated" if position > data_len else "the file has unexplained trailing bytes")
        )
    return header


def read_safetensors(data: bytes, limits: Limits) -> dict[str, torch.Tensor]:
    """A state dict from safetensors bytes whose header passed :func:`check_safetensors_header`."""
    from safetensors.torch import load

    check_safetensors_header(data, limits)
    try:
        return load(data)
    except Exception as exc:  # safetensors' own checks, after ours
        raise UntrustedFileError(f"the safetensors file could not be read: {exc}") from None


def read_pt(data: bytes, limits: Limits) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A state dict from a ``torch.save`` file, unpickled with ``weights_only=True`` only."""
    notes: list[str] = []
    if data[:4] != b"PK\x03\x04":
        # Not the zip format of torch.save (PyTorch >= 1.6): a bare pickle, or the legacy format whose
        # loader allocates each storage at the size the pickle declares before reading it.
        raise UntrustedFileError(
            "the .pt file is not a current torch.save archive (it is a bare pickle or the legacy pre-1.6 "
            "format) and is not read. " + EXPORT_HINT
        )
    if data[:4] == b"PK\x03\x04":
        archive = open_zip(data, limits, limits.max_model_bytes * 2, "PyTorch file")
        names = archive.namelist()
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            raise UntrustedFileError(
                "the file is a TorchScript archive: TorchScript is code and is not loaded. " + EXPORT_HINT
            )
        if any(n.endswith(".json") and "/models/" in n for n in names) or any("archive_format" in n for n in names):
            raise UntrustedFileError(refusal_pt2())
    try:
        loaded = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu", mmap=False)
    except Exception as exc:  # UnpicklingError for a refused global, RuntimeError for a corrupt archive
        text = str(exc)
        if (
            "Weights only load failed" in text
            or "Unsupported global" in text
            or "UnpicklingError" in type(exc).__name__
        ):
            found = _global_named(text)
            raise UntrustedFileError(
                "the .pt file is a pickle of Python objects"
                + (f" (it needs {found})" if found else "")
                + ", not a plain state dict of tensors; pickles can run code, so it was not loaded. "
                + EXPORT_HINT
            ) from None
        raise UntrustedFileError(
            f"the .pt file could not be read as a PyTorch state dict: {text.splitlines()[0]}"
        ) from None
    if isinstance(loaded, dict) and not _all_tensors(loaded):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), dict) and _all_tensors(loaded[key]):
                notes.append(f"read the state dict under the checkpoint's {key!r} entry")
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not _all_tensors(loaded):
        kind = type(loaded).__name__
        raise UntrustedFileError(f"the .pt file holds a {kind}, not a state dict of named tensors. " + EXPORT_HINT)
    total = sum(t.numel() for t in loaded.values())
    if total > limits.max_parameters:
        raise UntrustedFileError(f"the file holds {total:,} elements; at most {limits.max_parameters:,} are accepted")
    return dict(loaded), notes


def refusal_pt2() -> str:
    """Why ``torch.export`` programs are refused, and what to send instead."""
    return (
        "torch.export programs (.pt2) are refused: torch.export.load unpickles parts of the archive with "
        "weights_only=False (weights, constants, and a fallback for the example inputs), so a crafted file "
        "runs code while loading. " + EXPORT_HINT
    )


def _all_tensors(value: dict) -> bool:
    return bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _global_named(text: str) -> str | None:
    """The Python global the refused pickle asked for (``__main__.Net``, ``posix.system``)."""
    found = re.search(r"GLOBAL ([\w.]+)", text)
    return found.group(1) if found else None


def is_zip(data: bytes) -> bool:
    """Whether the bytes start like a zip archive (``torch.save``, ``.pt2``, ``.npz``)."""
    return data[:4] == b"PK\x03\x04" and zipfile.is_zipfile(io.BytesIO(data))


Factory = str | Callable[[], nn.Module]


def build_architecture(factory: Factory | None, limits: Limits) -> tuple[nn.Module, str]:
    """The user's architecture: a sample name (``digits-cnn``), a callable, or ``package.module:name``
    imported and called with no arguments (the user's own code; refused when
    ``limits.factory_imports`` is False, as on a shared server)."""
    import sample_models

    if factory is None:
        raise UntrustedFileError(
            "a state dict holds weights but no architecture: name one (a sample: "
            f"{', '.join(sample_models.available())}; or 'package.module:factory' for your own code)"
        )
    if callable(factory):
        model, description = factory(), getattr(factory, "__qualname__", repr(factory))
    elif factory in sample_models.available():
        model, description = sample_models.build(factory), f"sample architecture {factory}"
    else:
        module_name, sep, attr = str(factory).partition(":")
        if not sep or not module_name or not attr:
            raise UntrustedFileError(
                f"unknown architecture {factory!r}: give a sample name ({', '.join(sample_models.available())}) "
                "or 'package.module:factory'"
            )
        if not limits.factory_imports:
            raise UntrustedFileError(
                f"importing {factory!r} is disabled here; choose a sample architecture "
                f"({', '.join(sample_models.available())})"
            )
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise UntrustedFileError(f"cannot find the factory {factory!r}: {exc}") from None
        if not callable(target):
            raise UntrustedFileError(f"{factory!r} is not callable; it must build and return the model")
        model, description = target(), f"{factory}"
    if not isinstance(model, nn.Module):
        raise UntrustedFileError(f"the factory {description!r} returned a {type(model).__name__}, not an nn.Module")
    return model, description


def load_into(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy ``state`` into ``model`` after checking keys, shapes and dtypes; return notes.

    Every problem is listed at once (missing keys, unexpected keys, shape mismatches), so the user
    can fix the file or the architecture in one go.
    """
    notes = []
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    wrong_kind = [
        f"{k}: {state[k].dtype} for {expected[k].dtype}"
        for k in expected
        if k in state and expected[k].is_floating_point() and not state[k].is_floating_point()
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches: {'; '.join(wrong_shape)}")
    if wrong_kind:
        problems.append(f"non-float values for float tensors: {'; '.join(wrong_kind)}")
    if problems:
        raise UntrustedFileError("the weights do not fit the architecture: " + " | ".join(problems))
    converted = sorted({str(state[k].dtype) for k in expected if state[k].dtype != expected[k].dtype})
    if converted:
        notes.append(f"converted {', '.join(converted)} tensors to the model's dtypes")
    model.load_state_dict({k: state[k].to(expected[k].dtype) for k in expected}, strict=True)
    return notes
