"""Physical removal of pruned neurons and filters: a smaller dense model that computes the same.

A neuron can be removed when its whole weight row, its bias and its BatchNorm entries are masked:
the masked model then feeds exact zeros to the next layer, whose matching input columns are
removed too. The output layer keeps its neurons (they are the classes). We use our own slicing
rather than Torch-Pruning because the engine's masks decide which neurons go (Torch-Pruning picks
its own), and because the result must stay a plain module whose state dict saves as safetensors.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from pruning_core.graph import GraphError, trace_links
from pruning_core.masks import apply_masks


def _weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module.weight)


def _kept_neurons(model: nn.Module, layer: str, norm: str | None, masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Neurons of ``layer`` that must stay: any weight, bias or norm entry still unmasked."""
    module = model.get_submodule(layer)
    out = int(_weight(module).shape[0])
    weight_mask = masks.get(f"{layer}.weight")
    if weight_mask is None:
        return torch.ones(out, dtype=torch.bool)
    kept = weight_mask.reshape(out, -1).any(1)
    linked = [f"{layer}.bias"] if module.bias is not None else []
    if norm is not None:
        linked += [f"{norm}.weight", f"{norm}.bias"]
    for name in linked:
        mask = masks.get(name)
        kept = kept | (torch.ones(out, dtype=torch.bool) if mask is None else mask.reshape(out))
    if not kept.any():
        kept[0] = True  # a layer needs one neuron to stay connected; it computes zeros
    return kept


def _slice_layer(module: Any, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> nn.Module:
    weight = module.weight.detach()
    bias = module.bias.detach() if module.bias is not None else None
    if out_idx is not None:
        weight = weight[out_idx]
        bias = bias[out_idx] if bias is not None else None
    if in_idx is not None:
        weight = weight[:, in_idx]
    if isinstance(module, nn.Linear):
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        if module.groups != 1:
            raise GraphError("grouped convolutions cannot be shrunk yet")
        new = type(module)(
            weight.shape[1],
            weight.shape[0],
            kernel_size=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=bias is not None,
            padding_mode=module.padding_mode,
        )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _slice_norm(norm: Any, idx: torch.Tensor) -> nn.Module:
    new = type(norm)(
        len(idx), eps=norm.eps, momentum=norm.momentum, affine=norm.affine, track_running_stats=norm.track_running_stats
    )
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            source = getattr(norm, name, None)
            if source is not None:
                getattr(new, name).copy_(source[idx])
        if norm.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(norm.num_batches_tracked)
    return new


def shrink(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """A physically smaller copy of ``model`` with fully pruned neurons/filters removed.

    Other masked weights stay in place as zeros. ``model`` is not modified. Raises GraphError (a
    ValueError) naming the reason when the architecture is not a chain of layers we can slice.
    """
    links = trace_links(model)
    pruned = apply_masks(model, masks)
    in_idx: dict[str, torch.Tensor] = {}
    out_idx: dict[str, torch.Tensor] = {}
    for layer, link in links.items():
        if link.is_output or link.consumer is None:
            continue
        kept = _kept_neurons(model, layer, link.norm, masks)
        if bool(kept.all()):
            continue
        idx = kept.nonzero().squeeze(1)
        out_idx[layer] = idx
        consumer = model.get_submodule(link.consumer)
        channels = int(_weight(model.get_submodule(layer)).shape[0])
        fan_in = int(_weight(consumer).shape[1])
        if fan_in == channels:
            in_idx[link.consumer] = idx
        elif isinstance(consumer, nn.Linear) and fan_in % channels == 0:
            # A flatten between them: each channel is a block of fan_in / channels features.
            span = fan_in // channels
            in_idx[link.consumer] = (idx[:, None] * span + torch.arange(span)).reshape(-1)
        else:
            raise GraphError(
                f"cannot match the {channels} outputs of {layer!r} to the {fan_in} inputs of {link.consumer!r}"
            )
    for layer, link in links.items():
        if layer in out_idx or layer in in_idx:
            module = pruned.get_submodule(layer)
            pruned.set_submodule(layer, _slice_layer(module, out_idx.get(layer), in_idx.get(layer)))
        if layer in out_idx and link.norm is not None:
            pruned.set_submodule(link.norm, _slice_norm(pruned.get_submodule(link.norm), out_idx[layer]))
    return pruned.eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Weight shape of every Linear/Conv layer, by layer name."""
    from pruning_core.targets import PRUNABLE_TYPES

    return {n: tuple(_weight(m).shape) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


@torch.inference_mode()
def measure_latency_ms(model: nn.Module, x: torch.Tensor, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time of one forward pass on ``x``, in milliseconds."""
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


@torch.inference_mode()
def compare_latency_ms(models: Sequence[nn.Module], x: torch.Tensor, repeats: int = 30, warmup: int = 5) -> list[float]:
    """Median forward time of each model on ``x`` in ms, measured interleaved so that load on the
    machine affects every model alike."""
    for model in models:
        for _ in range(warmup):
            model(x)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for model, bucket in zip(models, times):
            start = time.perf_counter()
            model(x)
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) * 1e3 for bucket in times]


@dataclass(frozen=True)
class ShrinkReport:
    """What physical removal changed: parameters, layer shapes, and measured CPU latency."""

    params_before: int
    params_after: int
    shapes_before: dict[str, tuple[int, ...]]
    shapes_after: dict[str, tuple[int, ...]]
    latency_ms_before: float
    latency_ms_after: float
    max_abs_difference: float  # between the masked and the shrunk model's outputs

    @property
    def speedup(self) -> float:
        return self.latency_ms_before / self.latency_ms_after if self.latency_ms_after else float("nan")


def shrink_report(
    model: nn.Module, masks: Mapping[str, torch.Tensor], x: torch.Tensor, repeats: int = 30
) -> tuple[nn.Module, ShrinkReport]:
    """Shrink ``model`` by ``masks`` and measure both models on the batch ``x``."""
    small = shrink(model, masks)
    masked = apply_masks(model, masks).eval()
    with torch.inference_mode():
        difference = float((masked(x) - small(x)).abs().max())
    before, after = compare_latency_ms([model, small], x, repeats)
    return small, ShrinkReport(
        params_before=count_params(model),
        params_after=count_params(small),
        shapes_before=layer_shapes(model),
        shapes_after=layer_shapes(small),
        latency_ms_before=before,
        latency_ms_after=after,
        max_abs_difference=difference,
    )
