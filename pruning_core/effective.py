"""What pruning really removes: dead neurons propagated through the network to a fixed point.

Zeroing weights can make whole neurons useless, and a useless neuron takes more with it than its
own zeros. Counting only the zeros (the *direct* numbers) under-reports what structured pruning
removes and hides what unstructured pruning removes by accident. The *effective* numbers count
what is still needed once every dead neuron is gone:

- A neuron is **silent** when it outputs exactly 0 for every input. Without a BatchNorm after it,
  that is when all its incoming weights are zero (or read only silent neurons' outputs) and its
  bias is zero or absent. With a BatchNorm, it is when the BatchNorm's weight and bias entries are
  both zero (with zero incoming weights but a live BatchNorm the neuron outputs the constant
  ``beta - gamma * mean / sqrt(var + eps)``, which is not removable without folding it into the
  next layer's bias, and we do not fold). A zero BatchNorm weight alone makes the neuron output
  the constant beta: its incoming row and bias are dead, its BatchNorm bias is not. The activations
between layers map 0 to 0
  (``pruning_core.graph`` refuses others), so a silent neuron feeds exact zeros to its consumer:
  its outgoing weights (its columns in the consumer) are dead too.
- A neuron is **unused** when its outgoing weights are all zero (or go only to dead neurons of
  the consumer): it contributes nothing, so its incoming row, bias and BatchNorm entries are dead.
- The output layer's neurons are the model's outputs (the classes): never removed.

A dead neuron can make others dead (its consumer's row may now read only dead inputs; its
producer's column may now reach only dead rows), so the rules are applied until nothing changes.
For structured masks this removes exactly the masked neurons and their consumers' columns: the
effective counts are those of the physically shrunk model (``pruning_core.shrink``).

Models that are no chain (residual additions, concatenations, depthwise convolutions) are read as
channel groups (``pruning_core.groups``) instead: a group every contributing layer has zeroed is
removed with its consumers' columns, exactly what ``shrink`` removes, with no further propagation.
Models whose dataflow cannot be recorded get no propagation: their effective numbers equal the
direct ones. Pure torch; works on parameter tensors, never copies a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from pruning_core.graph import GraphError, trace_links
from pruning_core.groups import ChannelGroups, removable, row_alive, try_channel_groups


@dataclass(frozen=True)
class LayerFlow:
    """One prunable layer as the propagation sees it: its parameters and where its outputs go."""

    layer: str
    weight: str  # parameter names
    bias: str | None
    norm_weight: str | None  # affine BatchNorm on this layer's outputs
    norm_bias: str | None
    norm_affine_missing: bool  # a BatchNorm without affine parameters: its neurons are never silent
    out_channels: int
    in_columns: int  # weight.shape[1]
    kernel: int  # elements per (row, column) pair: prod(kernel_size) for convs, 1 for Linear
    consumer: str | None  # the layer whose input columns this layer's neurons feed (None: unknown)
    span: int  # consumer columns per neuron: 1, or fan_in / channels through a flatten
    is_output: bool


@dataclass(frozen=True)
class Dataflow:
    """The prunable layers of a model and how their neurons feed each other; built once per model."""

    layers: dict[str, LayerFlow]
    producer: dict[str, str] = field(default_factory=dict)  # consumer layer -> producing layer
    # A model that is no chain: its channel groups (``pruning_core.groups``), counted as
    # ``shrink`` removes them; None when even those are unknown (effective = direct).
    groups: ChannelGroups | None = None
    params: frozenset[str] = frozenset()

    @classmethod
    def of(cls, model: nn.Module) -> Dataflow:
        """Trace ``model`` once (``graph.trace_links``). A model that is no chain (residual additions,
        concatenations, depthwise convolutions) is read as channel groups instead; one whose
        dataflow cannot be recorded gets no links at all: its effective numbers equal the direct ones."""
        grouped_conv = any(
            getattr(m, "groups", 1) != 1 for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
        )
        try:
            if grouped_conv:  # a chain with a depthwise convolution couples its input and output channels
                raise GraphError("grouped convolution")
            links = trace_links(model)
        except GraphError:
            names = frozenset(name for name, _ in model.named_parameters())
            return cls({}, groups=try_channel_groups(model), params=names)
        modules = dict(model.named_modules())
        layers: dict[str, LayerFlow] = {}
        for name, link in links.items():
            module = modules[name]
            out_channels, in_columns = module.weight.shape[0], module.weight.shape[1]
            consumer, span = link.consumer, 1
            if consumer is not None:
                target = modules[consumer]
                fan_in = target.weight.shape[1]
                grouped = getattr(target, "groups", 1) != 1 or getattr(module, "groups", 1) != 1
                if grouped or fan_in % out_channels or (fan_in != out_channels and not isinstance(target, nn.Linear)):
                    consumer = None  # a mapping we cannot read column by column: nothing propagates here
                else:
                    span = fan_in // out_channels
            norm = modules[link.norm] if link.norm is not None else None
            affine = norm is not None and getattr(norm, "weight", None) is not None
            layers[name] = LayerFlow(
                layer=name,
                weight=f"{name}.weight",
                bias=f"{name}.bias" if module.bias is not None else None,
                norm_weight=f"{link.norm}.weight" if affine else None,
                norm_bias=f"{link.norm}.bias" if affine and norm is not None and norm.bias is not None else None,
                norm_affine_missing=norm is not None and not affine,
                out_channels=out_channels,
                in_columns=in_columns,
                kernel=math.prod(module.weight.shape[2:]),
                consumer=consumer,
                span=span,
                is_output=link.is_output,
            )
        producer = {flow.consumer: name for name, flow in layers.items() if flow.consumer is not None}
        return cls(layers, producer)

    def consumer_columns(self, layer: str) -> int:
        """Weights of the consumer that one neuron of ``layer`` feeds (its column block), 0 if none."""
        flow = self.layers[layer]
        if flow.consumer is None:
            return 0
        consumer = self.layers[flow.consumer]
        return consumer.out_channels * flow.span * consumer.kernel


@dataclass(frozen=True)
class EffectiveCounts:
    """What remains needed after dead neurons are removed.

    ``nonzero`` maps every parameter the dataflow covers (weights, biases and BatchNorm entries of
    the prunable layers) to its nonzero elements that are still needed; ``shapes`` to the shape
    the tensor has once dead neurons are sliced away (what ``shrink`` would produce); ``removed``
    maps each layer to its dead neurons (True = dead).
    """

    nonzero: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    removed: dict[str, torch.Tensor]


def _nonzero(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach() != 0


@dataclass
class _Nonzero:
    """Which entries of each layer's parameters are nonzero, reduced to what the fixed point reads."""

    # Nonzero weights per (neuron, input column): float32 sums over a kernel, or bool when the kernel
    # is 1 (a quarter of the memory; products read it a block of rows at a time, see ``_product``).
    counts: dict[str, torch.Tensor]
    links: dict[str, torch.Tensor]  # counts > 0 (the same tensor when the kernel is 1)
    bias: dict[str, torch.Tensor | None]
    norm_weight: dict[str, torch.Tensor | None]
    norm_bias: dict[str, torch.Tensor | None]

    @classmethod
    def of(cls, layers: Mapping[str, LayerFlow], params: Mapping[str, torch.Tensor]) -> _Nonzero:
        # Nonzero weights per (output neuron, input column), summed over the kernel. float32 holds them
        # exactly, and so every product below: each sums 0/1 or counts over one row or one column,
        # far below 2**24; only the total over all rows is summed in float64 (``_remaining``).
        # Half the memory traffic of float64, which a sweep pays once per level.
        counts = {
            name: _nonzero(params[f.weight]).reshape(f.out_channels, f.in_columns, f.kernel).sum(2, dtype=torch.float32)
            if f.kernel > 1
            else _nonzero(params[f.weight]).reshape(f.out_channels, f.in_columns)
            for name, f in layers.items()
        }

        def entries(param: str | None) -> torch.Tensor | None:
            return _nonzero(params[param]) if param else None

        return cls(
            counts,
            {name: c if layers[name].kernel == 1 else (c > 0).float() for name, c in counts.items()},
            {name: entries(f.bias) for name, f in layers.items()},
            {name: entries(f.norm_weight) for name, f in layers.items()},
            {name: entries(f.norm_bias) for name, f in layers.items()},
        )


_ROWS_PER_BLOCK_ELEMENTS = 1 << 17  # a bool matrix is multiplied a block of this many entries at a time


def _product(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``left @ right`` in float32 where one side may be a bool matrix (then converted a block of
    rows at a time, never whole). Every product here sums 0/1 or small counts, exact in float32
    whatever the blocking, so the result is the one a float32 matrix gives."""
    if left.dtype != torch.bool and right.dtype != torch.bool:
        return left @ right
    # The products are written into preallocated results: a small result allocated beside each
    # block's float copy would be carved out of the copy's freed memory, so the next copy could
    # not reuse it and the heap would grow by a block per step (about 50 MB on a 4096 x 4096 layer).
    if left.dtype == torch.bool:  # matrix @ vector: each block of rows gives its own entries
        step = max(1, _ROWS_PER_BLOCK_ELEMENTS // max(left.shape[1], 1))
        out = torch.empty(left.shape[0], dtype=torch.float32)
        for start in range(0, left.shape[0], step):
            torch.mv(left[start : start + step].float(), right.float(), out=out[start : start + step])
        return out
    step = max(1, _ROWS_PER_BLOCK_ELEMENTS // max(right.shape[1], 1))  # vector @ matrix: sum over blocks
    total = torch.zeros(right.shape[1], dtype=torch.float32)
    for vector, block in zip(left.split(step), right.split(step), strict=True):
        total.addmv_(block.float().t(), vector.float())  # total += vector @ block
    return total


@torch.no_grad()
def effective_counts(flow: Dataflow, params: Mapping[str, torch.Tensor]) -> EffectiveCounts:
    """Propagate dead neurons through ``flow`` for the parameter values in ``params`` (a model's
    ``named_parameters()``, masked values in place) until nothing changes; count what remains.

    One pass over each weight reduces it to nonzero counts per (neuron, input column); the fixed
    point then only multiplies those small matrices by keep-vectors, so a sweep level stays cheap.
    """
    if flow.groups is not None:
        return _grouped_counts(flow.groups, flow.params, params)
    nz = _Nonzero.of(flow.layers, params)
    removed, row_dead = _dead_neurons(flow, nz)
    return _remaining(flow, params, nz, removed, row_dead)


def _dead_neurons(flow: Dataflow, nz: _Nonzero) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Dead neurons of every layer at the fixed point, and the rows a zero BatchNorm weight kills."""
    layers = flow.layers
    norm_zero, row_dead = {}, {}
    for name, f in layers.items():
        row_dead[name] = torch.zeros(f.out_channels, dtype=torch.bool)
        gamma, beta = nz.norm_weight[name], nz.norm_bias[name]
        if gamma is not None:
            norm_zero[name] = ~gamma & (~beta if beta is not None else True)
            # A zero BatchNorm weight outputs the constant beta whatever comes in: row and bias are dead.
            row_dead[name] = ~gamma
    removed = {name: torch.zeros(f.out_channels, dtype=torch.bool) for name, f in layers.items()}

    def kept_rows(name: str) -> torch.Tensor:
        return (~(removed[name] | row_dead[name])).float()

    def kept_columns(name: str) -> torch.Tensor:
        producer = flow.producer.get(name)
        if producer is None:
            return torch.ones(layers[name].in_columns, dtype=torch.float32)
        return (~removed[producer]).repeat_interleave(layers[producer].span).float()

    while True:
        rows = {name: kept_rows(name) for name in layers}
        columns = {name: kept_columns(name) for name in layers}
        changed = False
        for name, f in layers.items():
            if f.is_output:
                continue  # the outputs are the classes
            dead = _silent(name, f, nz, norm_zero, columns[name])
            if f.consumer is not None:
                reached = _product(rows[f.consumer], nz.links[f.consumer])  # per consumer column: live rows
                dead = dead | (reached.reshape(f.out_channels, f.span).sum(1) == 0)
            new = removed[name] | dead
            if not torch.equal(new, removed[name]):
                removed[name], changed = new, True
        if not changed:
            return removed, row_dead


def _silent(
    name: str, f: LayerFlow, nz: _Nonzero, norm_zero: dict[str, torch.Tensor], columns: torch.Tensor
) -> torch.Tensor:
    """Neurons of ``name`` that output exactly 0 given the live input ``columns``."""
    if f.norm_weight is not None:
        return norm_zero[name]
    if f.norm_affine_missing:
        return torch.zeros(f.out_channels, dtype=torch.bool)
    dead = _product(nz.links[name], columns) == 0  # no live input reaches the neuron
    live_bias = nz.bias[name]
    return dead & ~live_bias if live_bias is not None else dead


def _remaining(
    flow: Dataflow,
    params: Mapping[str, torch.Tensor],
    nz: _Nonzero,
    removed: dict[str, torch.Tensor],
    row_dead: dict[str, torch.Tensor],
) -> EffectiveCounts:
    """Nonzero entries still needed and the sliced shapes, given the dead neurons."""
    layers = flow.layers
    nonzero: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for name, f in layers.items():
        rows = (~(removed[name] | row_dead[name])).double()
        producer = flow.producer.get(name)
        if producer is None:
            columns = torch.ones(f.in_columns, dtype=torch.float32)
        else:
            columns = (~removed[producer]).repeat_interleave(layers[producer].span).float()
        kept_out = f.out_channels - int(removed[name].sum())
        kept_in = (
            f.in_columns if producer is None else f.in_columns - int(removed[producer].sum()) * layers[producer].span
        )
        nonzero[f.weight] = round(float(rows @ _product(nz.counts[name], columns).double()))  # per row exact in float32
        shapes[f.weight] = (kept_out, kept_in, *params[f.weight].shape[2:])
        dead_entries = {
            f.bias: removed[name] | row_dead[name],
            f.norm_weight: removed[name],
            f.norm_bias: removed[name],
        }
        entries = ((f.bias, nz.bias[name]), (f.norm_weight, nz.norm_weight[name]), (f.norm_bias, nz.norm_bias[name]))
        for param, mask in entries:
            if param is not None and mask is not None:
                nonzero[param] = int((mask & ~dead_entries[param]).sum())
                shapes[param] = (kept_out,)
    return EffectiveCounts(nonzero, shapes, removed)


@torch.no_grad()
def _grouped_counts(
    groups: ChannelGroups, names: frozenset[str], params: Mapping[str, torch.Tensor]
) -> EffectiveCounts:
    """What ``shrink`` keeps of a model that is no chain: the channel groups every contributor has
    zeroed go (rows, biases, norm entries and the consumers' input columns); no further propagation."""
    nonzero_entries = {name: _nonzero(params[name]) for name in names if name in params}
    gone = removable(groups, row_alive(groups, nonzero_entries, names))
    nonzero: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    removed: dict[str, torch.Tensor] = {}
    for layer, where in groups.rows.items():
        rows = ~gone[where]
        inputs = groups.inputs.get(layer)
        columns = ~gone[inputs] if inputs is not None and layer not in groups.passthrough else None
        kept = nonzero_entries[f"{layer}.weight"][rows]
        kept = kept[:, columns] if columns is not None else kept
        nonzero[f"{layer}.weight"] = int(kept.sum())
        shapes[f"{layer}.weight"] = tuple(kept.shape)
        removed[layer] = ~rows
        if f"{layer}.bias" in nonzero_entries:
            nonzero[f"{layer}.bias"] = int(nonzero_entries[f"{layer}.bias"][rows].sum())
            shapes[f"{layer}.bias"] = (int(rows.sum()),)
    for norm, where in groups.norms.items():
        rows = ~gone[where]
        for param in (f"{norm}.weight", f"{norm}.bias"):
            if param in nonzero_entries:
                nonzero[param] = int(nonzero_entries[param][rows].sum())
                shapes[param] = (int(rows.sum()),)
    return EffectiveCounts(nonzero, shapes, removed)
