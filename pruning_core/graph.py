"""Dataflow between prunable layers, read off one recorded forward pass (``pruning_core.dataflow``).

Structured pruning needs to know, for each layer, which BatchNorm normalises its outputs (its
entries go with the pruned neuron) and which layer consumes its outputs (whose matching inputs are
removed when the model is physically shrunk), and which layer produces the model's output (its
neurons are the classes, so structured methods never remove them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from pruning_core.dataflow import DataflowError, Node, dataflow
from pruning_core.targets import PRUNABLE_TYPES

# Ops that keep the channel axis as it is and map 0 to 0, so a channel of zeros before them is a
# channel of zeros after them (not sigmoid: sigmoid(0) = 0.5 would still reach the next layer).
_CHANNEL_PRESERVING_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.ELU,
    nn.Dropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.Identity,
    nn.Flatten,
)
_CHANNEL_PRESERVING_FUNCTIONS = {
    torch.relu,
    torch.nn.functional.relu,
    torch.nn.functional.gelu,
    torch.nn.functional.silu,
    torch.tanh,
    torch.flatten,
    torch.nn.functional.max_pool1d,
    torch.nn.functional.max_pool2d,
    torch.nn.functional.avg_pool1d,
    torch.nn.functional.avg_pool2d,
    torch.nn.functional.dropout,
}
_CHANNEL_PRESERVING_METHODS = {"relu", "flatten", "tanh"}
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class LayerLink:
    """How one prunable layer connects to the rest of the network."""

    layer: str
    norm: str | None  # BatchNorm applied to this layer's outputs
    consumer: str | None  # the next prunable layer reading this layer's outputs
    is_output: bool  # this layer's outputs are the model's outputs


class GraphError(ValueError):
    """The model's dataflow is not a chain PruneLab can shrink physically."""


def _is_preserving(node: Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _CHANNEL_PRESERVING_MODULES)
    if node.op == "call_function":
        return node.target in _CHANNEL_PRESERVING_FUNCTIONS
    if node.op == "call_method":
        return node.target in _CHANNEL_PRESERVING_METHODS
    return False


def _follow(node: Node, modules: dict[str, nn.Module], layer: str) -> tuple[str | None, str | None, bool]:
    """Walk forward from a layer's output to the next prunable layer; return (norm, consumer, is_output)."""
    norm = None
    while True:
        users = list(node.users)
        if len(users) != 1:
            raise GraphError(f"the output of layer {layer!r} is used {len(users)} times; only chains can be shrunk")
        user = users[0]
        if user.op == "output":
            return norm, None, True
        if user.op == "call_module" and isinstance(modules[user.target], PRUNABLE_TYPES):
            return norm, user.target, False
        if user.op == "call_module" and isinstance(modules[user.target], _NORMS):
            if norm is not None:
                raise GraphError(f"layer {layer!r} is followed by two norm layers")
            norm = user.target
        elif not _is_preserving(user, modules):
            if user.op == "call_method" and user.target == "__getitem__":
                raise GraphError(f"indexing after layer {layer!r} is not supported for shrinking")
            op = (
                type(modules[user.target]).__name__
                if user.op == "call_module"
                else getattr(user.target, "__name__", user.target)
            )
            raise GraphError(
                f"{op} after layer {layer!r} is not known to preserve channels and map 0 to 0, "
                "so its neurons cannot be removed physically"
            )
        node = user


def trace_links(model: nn.Module, example_input: torch.Tensor | None = None) -> dict[str, LayerLink]:
    """Links of every prunable layer, keyed by layer name; raises GraphError if the model is no chain.

    The dataflow is recorded once per architecture (``pruning_core.dataflow``), never by patching
    torch for the whole process, so this is safe while other threads run models.
    """
    try:
        nodes = dataflow(model, example_input).nodes
    except DataflowError as exc:
        raise GraphError(f"the model's dataflow cannot be recorded: {exc}") from exc
    modules = dict(model.named_modules())
    links = {}
    for node in nodes:
        if node.op == "call_module" and isinstance(modules[node.target], PRUNABLE_TYPES):
            if node.target in links:
                raise GraphError(f"layer {node.target!r} is called more than once")
            norm, consumer, is_output = _follow(node, modules, node.target)
            links[node.target] = LayerLink(node.target, norm, consumer, is_output)
    return links


def output_layers(model: nn.Module, example_input: torch.Tensor | None = None) -> set[str]:
    """Layers whose outputs are the model's outputs: read off the chain, or for a model that is no
    chain off its channel groups (``pruning_core.groups``); the last prunable layer if both fail."""
    try:
        return {name for name, link in trace_links(model, example_input).items() if link.is_output}
    except GraphError:
        from pruning_core.groups import OUTPUT_REASON, try_channel_groups  # groups reads this module

        groups = try_channel_groups(model, example_input)
        if groups is not None:
            found = {
                n
                for n, rows in groups.rows.items()
                if any(groups.blocked.get(g) == OUTPUT_REASON for g in rows.tolist())
            }
            if found:
                return found
        layers = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
        return {layers[-1]} if layers else set()


def norm_of(model: nn.Module, example_input: torch.Tensor | None = None) -> dict[str, str]:
    """The BatchNorm that directly normalises each layer's outputs, where there is one.

    Found from the recorded dataflow; if it cannot be recorded, a BatchNorm registered right after
    a layer with a matching number of features is taken instead.
    """
    try:
        return {name: link.norm for name, link in trace_links(model, example_input).items() if link.norm}
    except GraphError:
        named = list(model.named_modules())
        found = {}
        for (name, module), (next_name, next_module) in zip(named, named[1:], strict=False):
            if (
                isinstance(module, PRUNABLE_TYPES)
                and isinstance(next_module, _NORMS)
                and next_module.num_features == cast(torch.Tensor, module.weight).shape[0]
            ):
                found[name] = next_name
        return found
