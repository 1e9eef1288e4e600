"""Dataflow between prunable layers, read off one recorded forward pass (``pruning_core.dataflow``).

Structured pruning needs to know, for each layer, which BatchNorm normalises its outputs (its
entries go with the pruned neuron) and which layer consumes its outputs (whose matching inputs are
removed when the model is physically shrunk), and which layer produces the model's output (its
neurons are the classes, so structured methods never remove them).

The BatchNorm of a layer (:func:`norm_pairing`) is read off the dataflow of any model that runs,
chain or not; the consumer links (:func:`trace_links`) only of a chain.
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


@dataclass(frozen=True)
class NormPairing:
    """Each prunable layer's BatchNorm (layer -> BatchNorm name), and a note when the pairing was
    not read off the recorded dataflow."""

    norms: dict[str, str]
    note: str | None = None


def _norm_after(node: Node, modules: dict[str, nn.Module], calls: dict[str, int]) -> str | None:
    """The BatchNorm whose input is ``node``'s output, or is reached from it through
    channel-preserving ops (ReLU, pooling, dropout) that nothing else reads; None if there is none
    or more than one. Other users of the same output (a residual addition, a second branch) do not
    matter: the BatchNorm still normalises exactly this layer's channels."""
    while True:
        users = list(node.users)
        norms = [u for u in users if u.op == "call_module" and isinstance(modules[u.target], _NORMS)]
        if norms:
            found = norms[0]
            single = len(norms) == 1 and calls[found.target] == 1 and found.args == (node,)
            return found.target if single else None
        if len(users) != 1 or not _is_preserving(users[0], modules):
            return None
        node = users[0]


def _pairing_from(nodes: tuple[Node, ...], modules: dict[str, nn.Module]) -> dict[str, str]:
    """Layer -> BatchNorm read off the recorded nodes: the BatchNorm directly on the layer's output
    (:func:`_norm_after`) with one feature per output channel. A layer or BatchNorm called more than
    once gets no pairing (its calls could be normalised differently)."""
    calls: dict[str, int] = {}
    for node in nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    found: dict[str, str] = {}
    for node in nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(module, PRUNABLE_TYPES) or calls[node.target] != 1:
            continue
        norm = _norm_after(node, modules, calls)
        if norm is not None and modules[norm].num_features == cast(torch.Tensor, module.weight).shape[0]:
            found[node.target] = norm
    return found


def _pairing_by_order(model: nn.Module, reason: str) -> NormPairing:
    """Without a dataflow, registration order is trusted only when it is unambiguous: every
    BatchNorm of the model is registered right after a prunable layer with as many output
    channels. If any is not (all convolutions declared before all BatchNorms, a branch's
    BatchNorm declared elsewhere), no layer gets a BatchNorm: no pairing rather than a wrong one."""
    named = list(model.named_modules())
    found, trusted = {}, True
    for (name, module), (next_name, next_module) in zip(named, named[1:], strict=False):
        if isinstance(next_module, _NORMS):
            matches = (
                isinstance(module, PRUNABLE_TYPES)
                and next_module.num_features == cast(torch.Tensor, module.weight).shape[0]
            )
            trusted = trusted and matches
            if matches:
                found[name] = next_name
    if not any(isinstance(m, _NORMS) for _, m in named):
        return NormPairing({})
    if not trusted:
        return NormPairing(
            {},
            f"the model's dataflow cannot be recorded ({reason}), and the order its modules are declared "
            "in does not tell which BatchNorm normalises which layer: no BatchNorm is paired with a layer",
        )
    return NormPairing(
        found,
        f"the model's dataflow cannot be recorded ({reason}): each BatchNorm is paired with the layer "
        "declared right before it (registration order), not with the layer it is seen to normalise",
    )


def norm_pairing(model: nn.Module, example_input: torch.Tensor | None = None) -> NormPairing:
    """The BatchNorm that directly normalises each layer's outputs, where there is one, for any
    model whose dataflow can be recorded (chains, residual additions, concatenations, branches):
    the BatchNorm whose input is the layer's output tensor (see :func:`_norm_after`). On a chain
    this is the norm :func:`trace_links` finds. If the dataflow cannot be recorded, registration
    order is used only when unambiguous (:func:`_pairing_by_order`), and the note says so."""
    try:
        nodes = dataflow(model, example_input).nodes
    except DataflowError as exc:
        return _pairing_by_order(model, str(exc))
    return NormPairing(_pairing_from(nodes, dict(model.named_modules())))


def norm_of(model: nn.Module, example_input: torch.Tensor | None = None) -> dict[str, str]:
    """Layer -> the BatchNorm that directly normalises its outputs (:func:`norm_pairing`)."""
    return norm_pairing(model, example_input).norms
