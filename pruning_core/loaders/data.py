"""Users' data sets (CSV, NPZ), checked alone and against the model they are meant for.

CSV: one row per sample, a named label column, every other column a numeric feature. NPZ:
``X_train, y_train, X_test, y_test`` (optionally ``X_val, y_val``) or ``X, y`` (then split here),
read with ``numpy.load(allow_pickle=False)`` only after the zip's central directory and every
member's ``.npy`` header were checked (declared shape x dtype must equal the member's size, and
stay within the limits): a zip bomb or a lying header is refused before anything is allocated.

Splits are stratified and seeded (scikit-learn's ``train_test_split`` with a fixed
``random_state``: a private generator, never the global one); a validation split is carved from
train the same way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pruning_core.loaders.common import (
    DEFAULT_LIMITS,
    Limits,
    UntrustedFileError,
    element_count,
    extension,
    open_zip,
    read_source,
    sha256,
)

LABEL_NAMES = ("label", "target", "y", "class")
NPZ_LAYOUTS = (
    {"X_train", "y_train", "X_test", "y_test"},
    {"X_train", "y_train", "X_test", "y_test", "X_val", "y_val"},
    {"X", "y"},
)
DATA_FORMATS = (".csv", ".npz")


@dataclass
class LoadedData:
    """A user's data set, split and checked: ``split`` is a ``sample_models.DataSplit``."""

    split: Any
    format: str
    sha256: str
    n_classes: int
    sample_shape: tuple[int, ...]
    X_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    feature_names: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def load_data(  # noqa: PLR0912 - one check per refusal, in the order the file is read
    path_or_bytes: Any,
    *,
    filename: str,
    model: Any = None,
    label_column: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
) -> LoadedData:
    """Read, check and split a data set; refusals raise UntrustedFileError naming the problem.

    ``model`` (a ``LoadedModel`` or an ``nn.Module``) is checked against the data: one sample runs
    through it, its output size bounds the labels, and rows x multiply-adds bound the evaluation.
    """
    ext = extension(filename)
    if ext not in DATA_FORMATS:
        raise UntrustedFileError(f"data file {filename!r}: unsupported format {ext or '(none)'}; use .csv or .npz")
    data = read_source(path_or_bytes, limits.max_data_bytes, "data file")
    notes: list[str] = []
    features: tuple[str, ...] = ()
    if ext == ".csv":
        X, y, features, label_column = _read_csv(data, label_column, limits, notes)
        arrays = {"X": X, "y": y}
    else:
        arrays = _read_npz(data, limits)
    arrays = {k: _check_array(k, v, limits) for k, v in arrays.items()}

    module, input_shape, macs = _model_facts(model)
    if input_shape is not None:
        for key in [k for k in arrays if k.startswith("X")]:
            arrays[key] = _fit_shape(key, arrays[key], input_shape, notes, features)
    sample_shape = tuple(next(v for k, v in arrays.items() if k.startswith("X")).shape[1:])
    for key in [k for k in arrays if k.startswith("X")]:
        if tuple(arrays[key].shape[1:]) != sample_shape:
            raise UntrustedFileError(f"{key} has samples of shape {arrays[key].shape[1:]}, others {sample_shape}")

    n_classes = None
    if module is not None:
        n_classes, measured = _run_one(module, arrays, sample_shape, limits)
        macs = macs or measured
        rows = sum(len(v) for k, v in arrays.items() if k.startswith("X"))
        if macs and rows * macs > limits.max_eval_macs:
            raise UntrustedFileError(
                f"{rows:,} samples x {macs:,} multiply-adds per sample exceed the evaluation budget of "
                f"{limits.max_eval_macs:,}; use fewer samples"
            )
    shown = {"y": f"the label column {label_column!r}"} if ext == ".csv" else {}
    labels = {k: _labels(shown.get(k, k), v, n_classes) for k, v in arrays.items() if k.startswith("y")}
    n_classes = n_classes or int(max(int(v.max()) for v in labels.values() if v.size) + 1)
    X = {k: torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float32) for k, v in arrays.items() if k[0] == "X"}
    y = {k: torch.as_tensor(v, dtype=torch.int64) for k, v in labels.items()}

    if "X" in X:
        X_train, y_train, X_test, y_test = _split(X["X"], y["y"], test_fraction, seed, "test", notes)
    else:
        X_train, y_train, X_test, y_test = X["X_train"], y["y_train"], X["X_test"], y["y_test"]
    if "X_val" in X:
        X_val, y_val = X["X_val"], y["y_val"]
    elif val_fraction > 0:
        X_train, y_train, X_val, y_val = _split(X_train, y_train, val_fraction, seed, "validation", notes)
    else:
        X_val = y_val = None
    _class_notes(n_classes, y_train, y_test, notes)
    split = _data_split(X_train, y_train, X_test, y_test, X_val, y_val)
    return LoadedData(
        split=split, format=ext[1:], sha256=sha256(data), n_classes=n_classes, sample_shape=tuple(X_test.shape[1:]),
        X_val=X_val, y_val=y_val, feature_names=features, notes=notes,
    )  # fmt: skip


def _read_csv(data: bytes, label_column: str | None, limits: Limits, notes: list[str]) -> tuple:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data), nrows=limits.max_rows + 1, low_memory=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UntrustedFileError(f"the CSV could not be parsed: {str(exc).splitlines()[0]}") from None
    if len(frame) > limits.max_rows:
        raise UntrustedFileError(f"the CSV has more than {limits.max_rows:,} rows; use fewer samples")
    columns = [str(c) for c in frame.columns]
    if label_column is None:
        label_column = next((c for c in columns if c.lower() in LABEL_NAMES), None)
        if label_column is None:
            raise UntrustedFileError(
                f"name the label column; the CSV's columns are: {', '.join(columns[:20])}"
                + (" ..." if len(columns) > 20 else "")
            )
        notes.append(f"used column {label_column!r} as the label")
    if label_column not in columns:
        raise UntrustedFileError(
            f"the CSV has no label column {label_column!r}; its columns are: {', '.join(columns[:20])}"
            + (" ..." if len(columns) > 20 else "")
        )
    frame.columns = columns
    feature_cols = [c for c in columns if c != label_column]
    if not feature_cols:
        raise UntrustedFileError("the CSV has a label column but no feature columns")
    if len(feature_cols) > limits.max_features:
        raise UntrustedFileError(f"the CSV has {len(feature_cols):,} features; at most {limits.max_features:,}")
    text_cols = [c for c in feature_cols if not pd.api.types.is_numeric_dtype(frame[c])]
    if text_cols:
        raise UntrustedFileError(
            f"feature columns must be numeric; not numeric: {', '.join(text_cols[:10])}"
            + (f" and {len(text_cols) - 10} more" if len(text_cols) > 10 else "")
            + " (encode them as numbers, or drop them)"
        )
    X = frame[feature_cols].to_numpy(dtype=np.float64)
    bad = [c for c, ok in zip(feature_cols, np.isfinite(X).all(axis=0)) if not ok]
    if bad:
        raise UntrustedFileError(f"feature columns hold empty, NaN or infinite values: {', '.join(bad[:10])}")
    label = frame[label_column]
    if not pd.api.types.is_numeric_dtype(label):
        raise UntrustedFileError(
            f"label column {label_column!r} must hold class indices 0..C-1; it holds text such as {label.iloc[0]!r}"
        )
    return X, label.to_numpy(), tuple(feature_cols), label_column


def _read_npz(data: bytes, limits: Limits) -> dict[str, np.ndarray]:
    archive = open_zip(data, limits, limits.max_data_bytes * 4, "NPZ file")
    members = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise UntrustedFileError(f"NPZ member {info.filename!r} is not a .npy array")
        members[info.filename[:-4]] = info
    if set(members) not in NPZ_LAYOUTS:
        raise UntrustedFileError(
            f"the NPZ holds {', '.join(sorted(members)) or 'nothing'}; expected X_train, y_train, X_test, y_test "
            "(optionally X_val, y_val) or X, y"
        )
    total = 0
    for key, info in members.items():
        with archive.open(info) as handle:
            try:
                version = np.lib.format.read_magic(handle)
                reader = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = reader(handle)
            except ValueError as exc:
                raise UntrustedFileError(f"NPZ member {key!r} is not a valid .npy array: {exc}") from None
            header_bytes = handle.tell()
        if dtype.hasobject:
            raise UntrustedFileError(f"NPZ member {key!r} holds Python objects (needs pickle); save numeric arrays")
        count = element_count(shape)
        if any(d > limits.max_dim for d in shape) or count > limits.max_tensor_elements:
            raise UntrustedFileError(
                f"NPZ member {key!r} declares shape {shape} ({count:,} elements); at most "
                f"{limits.max_tensor_elements:,} elements and {limits.max_dim:,} per dimension"
            )
        if count * dtype.itemsize != info.file_size - header_bytes:
            raise UntrustedFileError(
                f"NPZ member {key!r} declares shape {shape} of {dtype} ({count * dtype.itemsize:,} bytes) but holds "
                f"{info.file_size - header_bytes:,}: the file is corrupt or lies about its sizes"
            )
        total += count
    if total > limits.max_parameters * 4:
        raise UntrustedFileError(f"the NPZ holds {total:,} elements; too many")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in members}


def _check_array(key: str, value: np.ndarray, limits: Limits) -> np.ndarray:
    if value.dtype.kind not in "biuf":
        raise UntrustedFileError(f"{key} has dtype {value.dtype}; numbers (bool, int, float) are expected")
    if key.startswith("X"):
        if value.ndim < 2:
            raise UntrustedFileError(f"{key} has shape {value.shape}; expected (samples, features...)")
        if element_count(value.shape[1:]) > limits.max_features:
            raise UntrustedFileError(f"{key} has {element_count(value.shape[1:]):,} values per sample; too many")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            count = int((~np.isfinite(value)).sum())
            raise UntrustedFileError(f"{key} holds {count:,} NaN or infinite values; every input must be finite")
    elif value.ndim != 1:
        raise UntrustedFileError(f"{key} has shape {value.shape}; labels must be one class index per sample")
    if len(value) == 0:
        raise UntrustedFileError(f"{key} is empty")
    if len(value) > limits.max_rows:
        raise UntrustedFileError(f"{key} has {len(value):,} rows; at most {limits.max_rows:,}")
    return value


def _model_facts(model: Any) -> tuple[nn.Module | None, tuple[int, ...] | None, int | None]:
    if model is None:
        return None, None, None
    module = getattr(model, "model", model)
    shape = getattr(model, "input_shape", None) or getattr(module, "input_shape", None)
    macs = getattr(model, "macs_per_sample", None)
    return module, (tuple(shape) if shape else None), macs


def _fit_shape(
    key: str, X: np.ndarray, input_shape: tuple[int, ...], notes: list[str], features: tuple[str, ...]
) -> np.ndarray:
    if tuple(X.shape[1:]) == input_shape:
        return X
    if element_count(X.shape[1:]) == element_count(input_shape):
        note = f"reshaped samples from {X.shape[1:]} to the model's input {input_shape}"
        if note not in notes:
            notes.append(note)
        return X.reshape(len(X), *input_shape)
    expected = f"the model expects {element_count(input_shape):,} inputs per sample (shape {input_shape})"
    if features:
        raise UntrustedFileError(
            f"the CSV has {len(features)} feature columns ({', '.join(features[:20])}); {expected}"
        )
    raise UntrustedFileError(
        f"{key} has {element_count(X.shape[1:]):,} values per sample (shape {X.shape[1:]}); {expected}"
    )


def _run_one(
    module: nn.Module, arrays: dict[str, np.ndarray], sample_shape: tuple[int, ...], limits: Limits
) -> tuple[int, int | None]:
    """Run one sample through the model; return its number of outputs and multiply-adds per sample.

    A converted ONNX graph runs under the per-step limits of ``onnx_model.probe``; a PyTorch model
    (the user's own code) runs as is, its multiply-adds read off PruneLab's recorded dataflow.
    """
    from pruning_core.loaders.onnx_model import OnnxModule, probe

    key = "X_test" if "X_test" in arrays else "X"
    x = torch.as_tensor(np.ascontiguousarray(arrays[key][:1]), dtype=torch.float32)
    macs = None
    try:
        if isinstance(module, OnnxModule):
            out, macs = probe(module, x, limits)
        else:
            with torch.inference_mode():
                out = module(x)
    except UntrustedFileError:
        raise
    except Exception as exc:  # the model's own forward on the user's sample shape
        raise UntrustedFileError(
            f"the model does not accept samples of shape {sample_shape}: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UntrustedFileError(f"the model returns {shape} for one sample; PruneLab needs (1, classes) scores")
    if out.shape[1] < 2:
        raise UntrustedFileError("the model returns one score per sample; PruneLab needs one score per class")
    if macs is None:
        from pruning_core.dataflow import DataflowError
        from pruning_core.metrics import count_macs

        try:
            macs = count_macs(module, x)[0]
        except DataflowError:
            macs = None
    return int(out.shape[1]), macs


def _labels(key: str, y: np.ndarray, n_classes: int | None) -> np.ndarray:
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or not np.all(y == np.round(y))):
        raise UntrustedFileError(f"{key} holds non-integer labels; labels are class indices 0..C-1")
    y = y.astype(np.int64)
    low, high = int(y.min()), int(y.max())
    if low < 0 or (n_classes is not None and high >= n_classes):
        valid = f"0..{n_classes - 1} (the model has {n_classes} outputs)" if n_classes else "0 or more"
        bad = sorted({int(v) for v in y if v < 0 or (n_classes is not None and v >= n_classes)})
        raise UntrustedFileError(
            f"{key} holds labels out of range: {', '.join(map(str, bad[:10]))}"
            + (" ..." if len(bad) > 10 else "")
            + f"; valid labels are {valid}"
        )
    return y


def _split(X: torch.Tensor, y: torch.Tensor, fraction: float, seed: int, what: str, notes: list[str]) -> tuple:
    from sklearn.model_selection import train_test_split

    counts = torch.bincount(y)
    stratify = y.numpy() if int(counts[counts > 0].min()) >= 2 else None
    if stratify is None:
        notes.append(f"a class has a single sample: the {what} split is random, not stratified")
    if len(y) < 4:
        raise UntrustedFileError(f"{len(y)} samples are too few to split off a {what} set")
    try:
        idx_keep, idx_out = train_test_split(
            np.arange(len(y)), test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError:
        idx_keep, idx_out = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed)
        notes.append(f"the {what} split is random, not stratified (too few samples per class)")
    keep, out = torch.as_tensor(np.sort(idx_keep)), torch.as_tensor(np.sort(idx_out))
    notes.append(f"split {len(out)} of {len(y)} samples off as the {what} set (seed {seed})")
    return X[keep], y[keep], X[out], y[out]


def _class_notes(n_classes: int, y_train: torch.Tensor, y_test: torch.Tensor, notes: list[str]) -> None:
    absent = [c for c in range(n_classes) if not bool((y_train == c).any()) and not bool((y_test == c).any())]
    if absent:
        notes.append(
            f"classes {', '.join(map(str, absent[:20]))} of the model's {n_classes} outputs never occur in the data"
        )
    untested = [c for c in range(n_classes) if c not in absent and not bool((y_test == c).any())]
    if untested:
        notes.append(f"classes {', '.join(map(str, untested[:20]))} have no test samples")


def _data_split(X_train, y_train, X_test, y_test, X_val, y_val) -> Any:
    """A ``sample_models.DataSplit``, with the validation fields when that class has them."""
    from sample_models.datasets import DataSplit

    fields = getattr(DataSplit, "_fields", ())
    if "X_val" in fields:
        return DataSplit(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test, X_val=X_val, y_val=y_val)
    return DataSplit(X_train, y_train, X_test, y_test)
