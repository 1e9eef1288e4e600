"""Honest accounting: accuracy metrics, parameter and byte counts, and multiply-adds.

Sizes follow ShrinkBench: compression ratio = total parameters / nonzero parameters; theoretical
speedup = dense multiply-adds / effective multiply-adds, where a layer's multiply-adds are its
dense multiply-adds times the fraction of its weights that are nonzero. Both are computed on the
*effective* counts: what remains needed once dead neurons are removed with everything they feed
and everything that feeds them (``pruning_core.effective``); the *direct* counts (zeros only) are
reported beside them. That speedup is an upper bound that dense kernels never see: zeros in a
dense tensor are multiplied like any other number. Only removing neurons
(``pruning_core.shrink``) makes a dense kernel faster."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from pruning_core.dataflow import dataflow
from pruning_core.deadline import check_deadline
from pruning_core.targets import PRUNABLE_TYPES

if TYPE_CHECKING:
    from pruning_core.effective import EffectiveCounts

INDEX_BYTES = 4  # int32 indices, enough for any tensor below 2**31 elements


@torch.inference_mode()
def evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, batch_size: int = 512
) -> dict[str, float]:
    """Accuracy, mean cross-entropy loss, and macro precision, recall and F1 on (X, y).

    Macro averages run over the classes present in ``y`` or in the predictions, with 0 for a class
    never predicted (scikit-learn's ``average="macro", zero_division=0``).
    """
    logits = torch.cat([_checked(model, X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
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


def _checked(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """``model(batch)`` after a time-limit check (``pruning_core.deadline``): one per batch."""
    check_deadline()
    return model(batch)


def count_macs(model: nn.Module, example_input: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Multiply-adds of one sample's forward pass, in total and per prunable layer.

    Read off one recorded forward pass (``pruning_core.dataflow``): a Linear layer costs
    ``in_features`` per output element, a convolution ``in_channels / groups * prod(kernel)``;
    matrix products called outside those layers count too. Biases and activations are not counted
    (as in ``FlopCounterMode``, which counts a multiply-add as 2 FLOPs, and ShrinkBench).
    Cached per architecture and input shape; never patches torch for the whole process.
    """
    flow = dataflow(model, example_input)
    return flow.dense_macs, dict(flow.layer_macs)


def sparse_tensor_bytes(shape: tuple[int, ...], nonzero: int, element_bytes: int) -> int:
    """Bytes of the smallest of three encodings: dense, CSR (rows = first dim, int32 indices) and
    bitmask plus values. A file writer picks per tensor, so a sparse size never exceeds the dense one."""
    numel = math.prod(shape)
    rows = shape[0] if len(shape) > 1 else 1
    dense = numel * element_bytes
    csr = nonzero * (element_bytes + INDEX_BYTES) + (rows + 1) * INDEX_BYTES
    bitmask = (numel + 7) // 8 + nonzero * element_bytes
    return min(dense, csr, bitmask)


@dataclass(frozen=True)
class ModelProfile:
    """Per-model facts computed once and reused for every sparsity level."""

    total_params: int
    dense_bytes: int
    params: dict[str, tuple[tuple[int, ...], int]]  # name -> (shape, bytes per element)
    prunable_weights: dict[str, int]  # param name -> numel of every Linear/Conv weight
    nonzero: dict[str, int]  # param name -> nonzero elements of the dense model
    macs: dict[str, int]  # layer -> dense multiply-adds per sample
    dense_macs: int  # whole forward pass, per sample

    @classmethod
    def of(cls, model: nn.Module, example_input: torch.Tensor) -> ModelProfile:
        """Profile ``model``: sizes and nonzeros now, multiply-adds from the per-architecture dataflow."""
        params = dict(model.named_parameters())
        dense_macs, macs = count_macs(model, example_input)
        return cls(
            total_params=sum(p.numel() for p in params.values()),
            dense_bytes=sum(p.numel() * p.element_size() for p in params.values()),
            params={n: (tuple(p.shape), p.element_size()) for n, p in params.items()},
            prunable_weights={
                f"{n}.weight": cast(torch.Tensor, m.weight).numel()
                for n, m in model.named_modules()
                if isinstance(m, PRUNABLE_TYPES)
            },
            nonzero=nonzero_counts(params),
            macs=macs,
            dense_macs=dense_macs,
        )


def nonzero_counts(tensors: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Nonzero elements of each tensor, counted with one synchronisation."""
    if not tensors:
        return {}
    with torch.no_grad():
        counts = torch.stack([torch.count_nonzero(t) for t in tensors.values()]).tolist()
    return dict(zip(tensors, counts))


def size_metrics(
    profile: ModelProfile, pruned_nonzero: Mapping[str, int], effective: EffectiveCounts | None = None
) -> dict[str, float]:
    """Sparsity, sizes and multiply-adds of the model when the parameters in ``pruned_nonzero`` have
    that many nonzero elements (every other parameter as in the dense model).

    *Direct* columns count the zeros; *effective* ones count what is still needed once dead neurons
    are gone (``effective``, from :func:`pruning_core.effective.effective_counts`; without it they
    equal the direct ones). Compression ratio and theoretical speedup use the effective counts.
    """
    nonzero = {**profile.nonzero, **pruned_nonzero}
    effective_nonzero = {**nonzero, **(effective.nonzero if effective else {})}
    shapes = effective.shapes if effective else {}
    sparse_bytes = effective_bytes = 0
    for name, (shape, element_bytes) in profile.params.items():
        if name in pruned_nonzero:
            sparse_bytes += sparse_tensor_bytes(shape, nonzero[name], element_bytes)
        else:
            sparse_bytes += math.prod(shape) * element_bytes
        # The tensor with dead neurons sliced away, stored in whichever encoding is smallest.
        kept_shape = shapes.get(name, shape)
        dense = math.prod(kept_shape) * element_bytes
        effective_bytes += min(dense, sparse_tensor_bytes(kept_shape, effective_nonzero[name], element_bytes))
    nonzero_total = sum(nonzero.values())
    effective_total = sum(effective_nonzero.values())
    prunable_total = sum(profile.prunable_weights.values())
    direct_macs: float = profile.dense_macs
    effective_macs: float = profile.dense_macs
    for name, numel in profile.prunable_weights.items():
        layer_macs = profile.macs.get(name[: -len(".weight")], 0)
        direct_macs -= layer_macs * (1 - nonzero[name] / numel)
        effective_macs -= layer_macs * (1 - effective_nonzero[name] / numel)
    return {
        "actual_sparsity": 1 - sum(nonzero[n] for n in profile.prunable_weights) / prunable_total,
        "effective_sparsity": 1 - sum(effective_nonzero[n] for n in profile.prunable_weights) / prunable_total,
        "sparsity_all_params": 1 - nonzero_total / profile.total_params,
        "nonzero_params": nonzero_total,
        "effective_params": effective_total,
        "total_params": profile.total_params,
        "dense_bytes": profile.dense_bytes,
        "sparse_bytes": sparse_bytes,
        "effective_sparse_bytes": effective_bytes,
        "compression_ratio": profile.total_params / max(effective_total, 1),
        "direct_compression_ratio": profile.total_params / max(nonzero_total, 1),
        "dense_macs": profile.dense_macs,
        "direct_macs": direct_macs,
        "effective_macs": effective_macs,
        "theoretical_speedup": profile.dense_macs / max(effective_macs, 1),
        "direct_speedup": profile.dense_macs / max(direct_macs, 1),
    }
