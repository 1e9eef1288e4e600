"""What every loader shares: the limits, the one refusal type, and reading bytes safely.

A file from a user is read only after its size is known to be within the limits (``os.stat`` for a
path, ``len`` for uploaded bytes), so a 300 MB upload is refused without reading it. Zip archives
(NPZ, ``torch.save`` files) are checked from their central directory before any member is read.

Python threads cannot be killed, so nothing here is stopped by a timer. Instead every cost is
bounded before it is paid: file size, ONNX node count, parameter count, the elements of every
intermediate tensor and the multiply-adds of one sample (checked while one sample runs through the
model), and rows x multiply-adds for an evaluation. Those bounds make conversion and evaluation
finish in seconds on a laptop-class CPU. ``Limits.max_seconds`` adds a wall-clock bound on top: a
caller runs the work under ``pruning_core.deadline.time_limit``, and the engine checks it between
steps (it stops cooperatively, raising ``TimeLimitExceeded``, a kind of ``UntrustedFileError``).
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pruning_core.errors import UntrustedFileError as UntrustedFileError  # the loaders' refusal type

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on what a user's file may cost; a file beyond one is refused before the cost is paid."""

    max_model_bytes: int = 100 * MB
    max_data_bytes: int = 100 * MB
    max_parameters: int = 50_000_000  # elements over all weights of a model
    max_tensor_elements: int = 50_000_000  # elements of any one declared tensor
    max_dim: int = 1_000_000  # any one declared dimension
    max_onnx_nodes: int = 5_000
    max_activation_elements: int = 20_000_000  # any intermediate tensor of one sample's forward pass
    max_macs_per_sample: int = 2_000_000_000
    max_eval_macs: int = 200_000_000_000  # rows x multiply-adds per sample: one evaluation's cost
    max_rows: int = 2_000_000
    max_features: int = 100_000  # elements of one sample
    max_zip_members: int = 64
    factory_imports: bool = True  # False on a shared server: only sample names or callables as factories
    max_seconds: float | None = None  # wall clock per computation on the model (None: no limit)


DEFAULT_LIMITS = Limits()


def human_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable size (``1.5 MB``)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def read_source(path_or_bytes: str | os.PathLike | bytes, max_bytes: int, what: str) -> bytes:
    """The file's bytes, refused before reading if larger than ``max_bytes``.

    A path is measured with ``os.stat`` (a sparse or huge file is never read); bytes are measured
    with ``len`` (an upload is already in memory, but nothing is parsed).
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
        check_size(len(data), max_bytes, what)
        return data
    path = Path(path_or_bytes)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UntrustedFileError(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from None
    if not path.is_file():
        raise UntrustedFileError(f"the {what} {str(path)!r} is not a regular file")
    check_size(size, max_bytes, what)
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    check_size(len(data), max_bytes, what)  # the file grew after stat
    return data


def check_size(size: int, max_bytes: int, what: str) -> None:
    """Refuse a file of ``size`` bytes above ``max_bytes``, naming both."""
    if size > max_bytes:
        raise UntrustedFileError(
            f"the {what} is {human_bytes(size)}; the limit is {human_bytes(max_bytes)}. "
            "Use a smaller file (fewer samples, or a smaller model)"
        )
    if size == 0:
        raise UntrustedFileError(f"the {what} is empty")


def sha256(data: bytes) -> str:
    """Hex SHA-256 of the bytes: what identifies the user's file in results and caches."""
    return hashlib.sha256(data).hexdigest()


def extension(filename: str) -> str:
    """The lower-case extension with its dot (``.safetensors``), ``""`` when there is none."""
    return Path(filename).suffix.lower()


def open_zip(data: bytes, limits: Limits, max_total: int, what: str) -> zipfile.ZipFile:
    """A zip archive whose central directory was checked: member count, no encrypted members, each
    member's and the total uncompressed size within ``max_total`` (a zip bomb declares its size
    there; Python's reader never returns more than the declared size)."""
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise UntrustedFileError(f"the {what} is not a readable zip archive: {exc}") from None
    infos = archive.infolist()
    if len(infos) > limits.max_zip_members:
        raise UntrustedFileError(f"the {what} holds {len(infos)} files; at most {limits.max_zip_members} are accepted")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise UntrustedFileError(f"the {what} member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UntrustedFileError(
                f"the {what} member {info.filename!r} uses an unsupported compression; use stored or deflate"
            )
        total += info.file_size
        if info.file_size > max_total or total > max_total:
            raise UntrustedFileError(
                f"the {what} would unpack to more than {human_bytes(max_total)} "
                f"(member {info.filename!r} declares {human_bytes(info.file_size)} from "
                f"{human_bytes(info.compress_size)} compressed): refused as a possible zip bomb"
            )
    return archive


def check_finite(named: dict[str, torch.Tensor], what: str) -> None:
    """Refuse tensors holding NaN or infinity, naming the first few: they make every metric NaN."""
    bad = []
    for name, tensor in named.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            bad.append(f"{name} ({count} of {tensor.numel()})")
    if bad:
        raise UntrustedFileError(
            f"the {what} holds NaN or infinite values in {', '.join(bad[:5])}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            + "; every weight must be a finite number"
        )


def element_count(shape: tuple[int, ...] | list[int]) -> int:
    """Elements of a tensor of ``shape`` (exact integer arithmetic, no overflow)."""
    return math.prod(int(d) for d in shape)
