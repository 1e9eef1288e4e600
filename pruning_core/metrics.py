"""Honest accounting: accuracy metrics, parameter and byte counts, and multiply-adds.

Sizes follow ShrinkBench: compression ratio = total parameters / nonzero parameters; theoretical
speedup = dense multiply-adds / effective multiply-adds, where a layer's effective multiply-adds
are its dense multiply-adds times the fraction of its weights that are nonzero. That speedup is an
upper bound that dense kernels never see: zeros in a dense tensor are multiplied like any other
number. Only removing neurons (``pruning_core.shrink``) makes a dense kernel faster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pruning_core.targets import PRUNABLE_TYPES

INDEX_BYTES = 4  # int32 indices, enough for any tensor below 2**31 elements


@torch.inference_mode()
def evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, batch_size: int = 4096
) -> dict[str, float]:
    """Accuracy, mean cross-entropy loss, and macro precision, recall and F1 on (X, y).

    Macro averages run over the classes present in ``y`` or in the predictions, with 0 for a class
    never predicted (scikit-learn's ``average="macro", zero_division=0``).
    """
    logits = torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
    n_classes = n_classes or logits.shape[1]
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    pred = logits.argmax(1)
    confusion = torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = confusion.diagonal().double()
    predicted, actual = confusion.sum(0).double(), confusion.sum(1).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), 0.0)
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-300), 0.0)
    present = (predicted > 0) | (actual > 0)
    return {
        "accuracy": float(tp.sum() / len(y)),
        "loss": loss,
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
    }


def layer_macs(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Multiply-adds per prunable layer for one sample, counted by PyTorch's FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(example_input[:1])
    counts = counter.get_flop_counts()
    root = type(model).__name__
    macs = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            flops = sum(counts.get(f"{root}.{name}", {}).values())
            macs[name] = int(flops) // 2  # FlopCounterMode counts a multiply-add as 2 FLOPs
    return macs


def total_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """All multiply-adds of one forward pass of one sample."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(example_input[:1])
    return int(counter.get_total_flops()) // 2


def sparse_tensor_bytes(shape: tuple[int, ...], nonzero: int, element_bytes: int) -> int:
    """Bytes of the smaller of CSR (rows = first dim) and bitmask-plus-values encodings."""
    numel = 1
    for d in shape:
        numel *= d
    rows = shape[0] if len(shape) > 1 else 1
    csr = nonzero * (element_bytes + INDEX_BYTES) + (rows + 1) * INDEX_BYTES
    bitmask = (numel + 7) // 8 + nonzero * element_bytes
    return min(csr, bitmask)


@dataclass(frozen=True)
class ModelProfile:
    """Per-model facts computed once and reused for every sparsity level."""

    total_params: int
    dense_bytes: int
    prunable_weights: dict[str, int]  # param name -> numel of every Linear/Conv weight
    nonzero: dict[str, int]  # param name -> nonzero elements of the dense model
    macs: dict[str, int]  # layer -> dense multiply-adds per sample
    dense_macs: int  # whole forward pass, per sample

    @classmethod
    def of(cls, model: nn.Module, example_input: torch.Tensor) -> ModelProfile:
        params = dict(model.named_parameters())
        prunable = {f"{n}.weight": m.weight.numel() for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}
        return cls(
            total_params=sum(p.numel() for p in params.values()),
            dense_bytes=sum(p.numel() * p.element_size() for p in params.values()),
            prunable_weights=prunable,
            nonzero={n: int(torch.count_nonzero(p)) for n, p in params.items()},
            macs=layer_macs(model, example_input),
            dense_macs=total_macs(model, example_input),
        )


def size_metrics(profile: ModelProfile, model: nn.Module, masked: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Sparsity, sizes and multiply-adds of ``model`` whose parameters named in ``masked`` are pruned.

    ``masked`` maps parameter names to their (already masked) tensors; zeros anywhere count.
    """
    nonzero_total, sparse_bytes = 0, 0
    nonzero_by_name = {}
    for name, p in model.named_parameters():
        if name in masked:
            nnz = int(torch.count_nonzero(masked[name]))
            sparse_bytes += sparse_tensor_bytes(tuple(p.shape), nnz, p.element_size())
        else:
            nnz = profile.nonzero[name]
            sparse_bytes += p.numel() * p.element_size()
        nonzero_by_name[name] = nnz
        nonzero_total += nnz
    prunable_total = sum(profile.prunable_weights.values())
    prunable_nonzero = sum(nonzero_by_name[n] for n in profile.prunable_weights)
    effective = profile.dense_macs
    for name, numel in profile.prunable_weights.items():
        layer = name[: -len(".weight")]
        effective -= profile.macs.get(layer, 0) * (1 - nonzero_by_name[name] / numel)
    return {
        "actual_sparsity": 1 - prunable_nonzero / prunable_total,
        "sparsity_all_params": 1 - nonzero_total / profile.total_params,
        "nonzero_params": nonzero_total,
        "total_params": profile.total_params,
        "dense_bytes": profile.dense_bytes,
        "sparse_bytes": sparse_bytes,
        "compression_ratio": profile.total_params / max(nonzero_total, 1),
        "dense_macs": profile.dense_macs,
        "effective_macs": effective,
        "theoretical_speedup": profile.dense_macs / max(effective, 1),
    }
