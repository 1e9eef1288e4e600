"""Physical removal of pruned neurons and filters: a smaller dense model that computes the same.

A neuron can be removed when its whole weight row, its bias and its BatchNorm entries are masked:
the masked model then feeds exact zeros to the next layer, whose matching input columns are
removed too. On a network that is no chain, neurons go by channel group (``pruning_core.groups``):
channels added together (a residual), passed through a depthwise convolution or normalised
together go only when every layer contributing to them has them masked; what cannot go safely
stays in place and is named with the reason (:func:`shrink_with_notes`). The output layer keeps
its neurons (they are the classes). We use our own slicing rather than Torch-Pruning because the
engine's masks decide which neurons go (Torch-Pruning picks its own), and because the result must
stay a plain module whose state dict saves as safetensors.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from pruning_core.dataflow import DataflowError
from pruning_core.graph import GraphError
from pruning_core.groups import OUTPUT_REASON, ChannelGroups, channel_groups, dead_groups, removable, row_alive
from pruning_core.masks import apply_masks


def _weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module.weight)


@dataclass(frozen=True)
class ShrinkNote:
    """Neurons the masks remove entirely that the smaller model still has, and why."""

    layer: str
    neurons: int
    reason: str
    refused: bool  # removal would change what the model computes (not merely the classes or a partner's kept)

    def __str__(self) -> str:
        return f"layer {self.layer!r}: {self.neurons} fully masked neuron(s) left in place: {self.reason}"


def removable_groups(model: nn.Module, groups: ChannelGroups, masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Channel groups the smaller model drops (True); see :func:`pruning_core.groups.removable`."""
    return removable(groups, row_alive(groups, masks, set(dict(model.named_parameters()))))


def shrink_notes(
    model: nn.Module, groups: ChannelGroups, masks: Mapping[str, torch.Tensor], removable: torch.Tensor
) -> list[ShrinkNote]:
    """Layers with fully masked neurons that stay, with the reason (blocked, or coupled to a kept one)."""
    alive = row_alive(groups, masks, set(dict(model.named_parameters())))
    dead = dead_groups(groups, alive)
    notes: dict[tuple[str, str], int] = {}
    refused: dict[tuple[str, str], bool] = {}
    for layer, where in groups.rows.items():
        for g in where[~alive[layer] & ~removable[where]].tolist():
            partners = [o for o in groups.owners.get(g, ()) if o != layer]
            if g in groups.blocked:
                reason = groups.blocked[g]
            elif dead[g]:
                reason = "kept so that every layer keeps one neuron and one input (it computes zeros)"
            else:
                reason = f"its channels are joined with those of {', '.join(map(repr, partners))}, which stay"
            notes[(layer, reason)] = notes.get((layer, reason), 0) + 1
            refused[(layer, reason)] = g in groups.blocked and reason != OUTPUT_REASON
    return [ShrinkNote(layer, count, reason, refused[(layer, reason)]) for (layer, reason), count in notes.items()]


def _slice_layer(module: Any, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> nn.Module:
    weight = module.weight.detach()
    bias = module.bias.detach() if module.bias is not None else None
    if out_idx is not None:
        weight = weight[out_idx]
        bias = bias[out_idx] if bias is not None else None
    if in_idx is not None:
        weight = weight[:, in_idx]
    groups = 1
    if isinstance(module, nn.Linear):
        new: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        if module.groups != 1:  # a depthwise convolution keeps one filter per kept channel
            if not (module.groups == module.in_channels == module.out_channels) or in_idx is not None:
                raise GraphError(f"a grouped convolution (groups={module.groups}) cannot be sliced")
            groups = weight.shape[0]
        new = type(module)(
            weight.shape[1] * groups,
            weight.shape[0],
            kernel_size=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=groups,
            bias=bias is not None,
            padding_mode=module.padding_mode,
        )
    with torch.no_grad():
        _weight(new).copy_(weight)
        if bias is not None:
            cast(torch.Tensor, new.bias).copy_(bias)
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


def _kept_index(removable: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor | None:
    """Positions whose group stays, or None when all stay (nothing to slice)."""
    if where is None:
        return None
    kept = ~removable[where]
    return None if bool(kept.all()) else kept.nonzero().squeeze(1)


def shrink_with_notes(
    model: nn.Module, masks: Mapping[str, torch.Tensor], example_input: torch.Tensor | None = None
) -> tuple[nn.Module, list[ShrinkNote]]:
    """A physically smaller copy of ``model``, and notes naming the layers left whole and why.

    A channel group (``pruning_core.groups``: the channels added, concatenated or passed through a
    depthwise convolution together) goes when every layer and BatchNorm contributing to it has it
    fully masked and nothing between producer and consumer forbids it; its weight rows, biases,
    norm entries and the consumers' input columns are sliced away. Everything else stays, masked
    weights as zeros, so the smaller model computes what the masked one does. ``model`` is not
    modified. Raises GraphError (a ValueError) when the dataflow cannot be recorded.
    """
    try:
        groups = channel_groups(model, example_input)
    except DataflowError as exc:
        raise GraphError(f"the model's dataflow cannot be recorded: {exc}") from exc
    removable = removable_groups(model, groups, masks)
    notes = shrink_notes(model, groups, masks, removable)
    pruned = apply_masks(model, masks)
    for layer, where in groups.rows.items():
        out_idx = _kept_index(removable, where)
        in_idx = None if layer in groups.passthrough else _kept_index(removable, groups.inputs.get(layer))
        if out_idx is not None or in_idx is not None:
            pruned.set_submodule(layer, _slice_layer(pruned.get_submodule(layer), out_idx, in_idx))
    for norm, where in groups.norms.items():
        idx = _kept_index(removable, where)
        if idx is not None:
            pruned.set_submodule(norm, _slice_norm(pruned.get_submodule(norm), idx))
    return pruned.eval(), notes


def shrink(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """A physically smaller copy of ``model`` with fully pruned neurons/filters removed.

    Other masked weights stay in place as zeros. ``model`` is not modified. Raises GraphError (a
    ValueError) naming the layers and the reason when masks remove neurons that cannot be removed
    without changing the output (e.g. a sigmoid after them); :func:`shrink_with_notes` instead
    leaves them in place and says so.
    """
    small, notes = shrink_with_notes(model, masks)
    refused = [str(note) for note in notes if note.refused]
    if refused:
        raise GraphError("; ".join(refused) + ". Its neurons cannot be removed physically.")
    return small


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
    notes: tuple[ShrinkNote, ...] = ()  # layers with fully masked neurons left in place, and why

    @property
    def speedup(self) -> float:
        return self.latency_ms_before / self.latency_ms_after if self.latency_ms_after else float("nan")


def shrink_report(
    model: nn.Module, masks: Mapping[str, torch.Tensor], x: torch.Tensor, repeats: int = 30
) -> tuple[nn.Module, ShrinkReport]:
    """Shrink ``model`` by ``masks`` (leaving in place what cannot go, named in ``notes``) and
    measure both models on the batch ``x``."""
    small, notes = shrink_with_notes(model, masks, x[:1])
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
        notes=tuple(notes),
    )
