"""Dependency groups: which channels of a network must be removed together, read off its dataflow.

In a chain each layer's neurons can go on their own. Real networks couple them (the idea of
Torch-Pruning's ``DependencyGraph``): tensors added together (a residual connection) share their
channel indices, so channel c can only go from all of them at once; a concatenation maps each
branch's channels to an offset range of what follows; a depthwise convolution's output channel c
is its input channel c; a BatchNorm follows the channels it normalises; a flatten maps channel c to
a block of the next Linear's inputs.

Every output channel of a prunable layer is a *slot*. One recorded forward pass
(``pruning_core.dataflow``) tells, for every tensor, which slot each of its channels (dimension 1)
comes from; slots added together are merged (union-find), and the merged sets are the *channel
groups*. A group is *blocked*, with the reason, when removing it could change what the model
computes: it passes an op that is not known to keep channels apart and map 0 to 0 (sigmoid, a
LayerNorm, an unknown function), a grouped convolution, a reshape other than a flatten, or it
reaches the model's output (the classes). Shrinking (``pruning_core.shrink``) removes a group only
when every layer contributing to it has it fully masked and it is not blocked; structured masks
(``pruning_core.masks``) pick the same channels for every layer of a coupled group.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from pruning_core.dataflow import DataflowError, Node, dataflow
from pruning_core.graph import _CHANNEL_PRESERVING_FUNCTIONS, _CHANNEL_PRESERVING_METHODS, _CHANNEL_PRESERVING_MODULES
from pruning_core.targets import PRUNABLE_TYPES

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PRESERVING_FUNCTIONS = _CHANNEL_PRESERVING_FUNCTIONS | {
    torch.nn.functional.leaky_relu,
    torch.nn.functional.relu6,
    torch.nn.functional.elu,
    torch.nn.functional.hardtanh,
    torch.nn.functional.hardswish,
    torch.nn.functional.max_pool3d,
    torch.nn.functional.avg_pool3d,
    torch.nn.functional.adaptive_avg_pool1d,
    torch.nn.functional.adaptive_avg_pool2d,
    torch.nn.functional.adaptive_max_pool1d,
    torch.nn.functional.adaptive_max_pool2d,
    torch.erf,
    torch.neg,
    torch.abs,
}
_PRESERVING_METHODS = _CHANNEL_PRESERVING_METHODS | {"relu_", "contiguous", "clone", "to", "float", "detach"}
# Ops that keep dimension 1 when the shapes say so: reductions over the positions (a global
# average pool written as ``x.mean((2, 3))``) and spatial padding (ONNX's asymmetric pads).
_SHAPE_PRESERVING = {"mean", "amax", "sum", "max", "pad", "squeeze", "unsqueeze"}
_ADD = {"add", "__add__", "__radd__", "__iadd__", "add_", "sub", "__sub__", "__isub__", "sub_"}
_CAT = {"cat", "concat", "concatenate"}
# Elementwise ops that do not map 0 to 0: a zero channel becomes a constant one. Their output is
# *tainted*: harmless when only multiplied by the same channels (ONNX's GELU is x * 0.5 * (1 +
# erf(x / sqrt 2)), SiLU x * sigmoid(x)), blocking anywhere else.
_ELEMENTWISE = {"sigmoid", "exp", "pow", "__pow__", "sqrt", "log", "reciprocal", "softplus", "hardsigmoid", "cos"}
_ELEMENTWISE_MODULES = (nn.Sigmoid, nn.Hardsigmoid, nn.Softplus)
_RESHAPE = {"flatten", "reshape", "view"}
OUTPUT_REASON = "reaches the model's output (its channels are the classes)"


def _name(node: Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))


@dataclass(frozen=True)
class ChannelGroups:
    """The channel groups of a model, by group id (0..n-1).

    ``rows[layer]`` gives the group of each output channel (weight row) of a prunable layer; for a
    depthwise convolution (``passthrough``) these are its input channels' groups. ``inputs[layer]``
    gives the group of each input column of a layer (None: unknown, its inputs are never sliced).
    ``norms[name]`` gives the group of each channel of a BatchNorm. ``blocked`` maps a group that
    must stay to the reason; ``owners`` names the layers whose rows form each group.
    """

    size: int
    rows: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor | None]
    norms: dict[str, torch.Tensor]
    passthrough: frozenset[str]
    blocked: dict[int, str]
    owners: dict[int, tuple[str, ...]]

    def layer_reasons(self, layer: str) -> list[str]:
        """Why some of ``layer``'s channels cannot be removed (empty: all of them could)."""
        groups = self.rows.get(layer)
        if groups is None:
            return ["it is not in the recorded dataflow"]
        return list(dict.fromkeys(self.blocked[g] for g in groups.tolist() if g in self.blocked))


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.reason: dict[int, str] = {}

    def new(self, count: int, reason: str | None = None) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        if reason is not None:
            self.reason.update(dict.fromkeys(range(start, start + count), reason))
        return list(range(start, start + count))

    def find(self, slot: int) -> int:
        root = slot
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[slot] != root:
            self.parent[slot], slot = root, self.parent[slot]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if ra not in self.reason and rb in self.reason:
                self.reason[ra] = self.reason[rb]

    def block(self, slots: list[int] | None, reason: str) -> None:
        for slot in slots or ():
            self.reason.setdefault(self.find(slot), reason)


@dataclass
class _Analysis:
    """The state of one walk over the recorded nodes."""

    modules: dict[str, nn.Module]
    uf: _UnionFind = field(default_factory=_UnionFind)
    desc: dict[Node, list[int] | None] = field(default_factory=dict)  # node -> slot of each channel
    owner: dict[int, str] = field(default_factory=dict)  # slot -> layer whose rows it is
    rows: dict[str, list[int]] = field(default_factory=dict)
    inputs: dict[str, list[int] | None] = field(default_factory=dict)
    norms: dict[str, list[int]] = field(default_factory=dict)
    passthrough: set[str] = field(default_factory=set)
    tainted: dict[Node, str] = field(default_factory=dict)  # node -> why its zero channels are not zero

    def raw_arg(self, node: Node, i: int = 0) -> tuple[list[int] | None, str | None]:
        """The slots of argument ``i`` and, if it is tainted, why."""
        source = node.args[i] if i < len(node.args) else None
        if source is None:
            return None, None
        return self.desc.get(source), self.tainted.get(source)

    def arg(self, node: Node, i: int = 0) -> list[int] | None:
        """The slots of argument ``i`` for an op that needs zero channels to be zero: a tainted
        argument's slots are blocked with its reason."""
        slots, taint = self.raw_arg(node, i)
        if taint is not None:
            self.uf.block(slots, taint)
        return slots

    def owners_of(self, slots: list[int] | None) -> str:
        names = list(dict.fromkeys(self.owner[s] for s in slots or () if s in self.owner))
        return ", ".join(repr(n) for n in names[:3]) + (" ..." if len(names) > 3 else "") or "the input"

    def block_all(self, node: Node, why: str) -> None:
        """Block the channels of every argument of ``node``; ``why`` names them with ``{layers}``."""
        for i in range(len(node.args)):
            slots = self.arg(node, i)
            if slots:
                self.uf.block(slots, why.format(layers=f"layer {self.owners_of(slots)}"))


def _op_name(node: Node, modules: Mapping[str, nn.Module]) -> str:
    return type(modules[node.target]).__name__ if node.op == "call_module" else _name(node)


def _preserves(node: Node, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_module":
        module = modules[node.target]
        return isinstance(module, _CHANNEL_PRESERVING_MODULES) and not isinstance(module, nn.Flatten)
    if node.op == "call_function":
        return node.target in _PRESERVING_FUNCTIONS and node.target is not torch.flatten
    return node.op == "call_method" and node.target in _PRESERVING_METHODS and node.target != "flatten"


_KIND_BY_NAME = {
    **dict.fromkeys(_ADD, "add"),
    **dict.fromkeys(_CAT, "cat"),
    **dict.fromkeys(_RESHAPE, "reshape"),
    **dict.fromkeys(_SHAPE_PRESERVING, "shape"),
    **dict.fromkeys(("mul", "__mul__", "__rmul__", "mul_", "__imul__"), "mul"),
    **dict.fromkeys(("div", "__truediv__", "div_", "__itruediv__"), "div"),
    **dict.fromkeys((*_ELEMENTWISE, "__rsub__", "rsub"), "elementwise"),
}


def _kind(node: Node, modules: Mapping[str, nn.Module]) -> str:
    """What the walk does at ``node``: layer, norm, preserve, add, cat, reshape, shape, mul, div,
    elementwise, or block (an op it does not know)."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, PRUNABLE_TYPES):
            return "layer"
        if isinstance(module, _NORMS):
            return "norm"
        if isinstance(module, nn.Flatten):
            return "reshape"
        if isinstance(module, _ELEMENTWISE_MODULES):
            return "elementwise"
    if _preserves(node, modules):
        return "preserve"
    if node.op == "call_module":
        return "block"
    return _KIND_BY_NAME.get(_name(node), "block")


def _channels(shape: tuple[int, ...] | None) -> int | None:
    return shape[1] if shape is not None and len(shape) >= 2 else None


def _visit(state: _Analysis, node: Node) -> list[int] | None:  # noqa: PLR0911, C901 - one return per kind of op
    """The slot of each channel of ``node``'s output (None: unknown), merging and blocking on the way."""
    kind = _kind(node, state.modules) if node.op not in ("placeholder", "output") else node.op
    if kind == "placeholder":
        return state.uf.new(_channels(node.shape) or 0, "it is fed by the model's input")
    if kind == "output":
        for i in range(len(node.args)):
            state.uf.block(state.arg(node, i), OUTPUT_REASON)
        return None
    if kind == "layer":
        return _visit_layer(state, node)
    if kind == "norm":
        return _visit_norm(state, node)
    if kind in ("preserve", "shape", "div", "elementwise"):
        return _visit_preserving(state, node, kind)
    if kind == "mul":
        return _visit_mul(state, node)
    if kind == "add":
        return _visit_add(state, node)
    if kind == "cat":
        return _visit_cat(state, node)
    if kind == "reshape":
        return _visit_reshape(state, node)
    op = _op_name(node, state.modules)
    if node.op == "call_module" and isinstance(state.modules[node.target], nn.LayerNorm | nn.GroupNorm):
        state.block_all(node, op + " after {layers} normalises across channels: removing one would change the others")
    else:
        state.block_all(node, op + " after {layers} is not known to preserve channels and map 0 to 0")
    return None


def _one_tensor(node: Node) -> int | None:
    """The index of the one recorded argument of ``node`` when every other tensor argument is a
    one-element constant (a scalar), else None."""
    produced = [i for i, source in enumerate(node.args) if source is not None]
    constants = [shape for source, shape in zip(node.args, node.arg_shapes) if source is None]
    return produced[0] if len(produced) == 1 and all(math.prod(shape) == 1 for shape in constants) else None


def _visit_preserving(state: _Analysis, node: Node, kind: str) -> list[int] | None:
    """Ops that keep each channel apart: they map 0 to 0, or taint their output (``elementwise``)."""
    index = _one_tensor(node)
    op = _op_name(node, state.modules)
    if index is None or (kind == "div" and index != 0):
        state.block_all(node, op + " of tensors after {layers} is not known to keep channels apart")
        return None
    slots, taint = state.raw_arg(node, index)
    source = node.arg_shapes[index]
    same_channels = (
        node.shape is not None and node.shape[:1] == source[:1] and _channels(node.shape) == _channels(source)
    )
    if (kind == "elementwise" and not same_channels) or (kind == "shape" and not _keeps_channels(node, source)):
        state.block_all(node, op + " after {layers} changes the channel axis")
        return None
    if kind == "elementwise" and taint is None:
        taint = f"{op} after layer {state.owners_of(slots)} is not known to preserve channels and map 0 to 0"
    if taint is not None:
        state.tainted[node] = taint
    return slots


def _keeps_channels(node: Node, source: tuple[int, ...]) -> bool:
    """A reduction, padding or (un)squeeze that leaves the batch and channel axes alone, read off
    its arguments (a shape alone cannot tell ``x.mean(1)`` from ``x.mean(2)`` when C == H)."""
    rank, name = len(source), _name(node)
    if node.shape is None or rank < 2 or node.shape[:1] != source[:1] or _channels(node.shape) != source[1]:
        return False
    if name == "pad":
        pad = node.option(1, "pad", ())
        return len(pad) <= 2 * (rank - 2)
    dims = node.option(1, "dim")
    if dims is None:
        return False  # every axis (a reduction) or every size-1 axis (squeeze): the batch of 1 too
    dims = [dims] if isinstance(dims, int) else list(dims)
    width = rank + 1 if name == "unsqueeze" else rank
    return all(d % width >= 2 for d in dims)


def _visit_mul(state: _Analysis, node: Node) -> list[int] | None:
    """A product is zero where either factor is: times a scalar it keeps channels; of two tensors
    with the same channels it is as clean as its cleaner factor (x * sigmoid(x)); of two tensors
    with different channels their channels are joined, as for an addition."""
    if _one_tensor(node) is not None:
        return _visit_preserving(state, node, "preserve")
    (a, taint_a), (b, taint_b) = state.raw_arg(node, 0), state.raw_arg(node, 1)
    if len(node.args) != 2 or a is None or b is None or node.arg_shapes[0] != node.arg_shapes[1]:
        state.block_all(node, "a product of differently shaped tensors after {layers}")
        return None
    if a == b:
        if taint_a is not None and taint_b is not None:
            state.tainted[node] = taint_a
        return a
    state.arg(node, 0), state.arg(node, 1)  # different channels: a tainted factor blocks them
    for x, y in zip(a, b):
        state.uf.union(x, y)
    return a


def _visit_layer(state: _Analysis, node: Node) -> list[int] | None:
    name = node.target
    module = state.modules[name]
    slots = state.arg(node)
    in_shape = node.arg_shapes[0] if node.arg_shapes else ()
    weight = cast(torch.Tensor, module.weight)
    groups = getattr(module, "groups", 1)
    expected, out_channels = int(weight.shape[1]) * groups, int(weight.shape[0])
    if name in state.rows:
        state.uf.block(slots, f"layer {name!r} is called more than once")
        state.uf.block(state.rows[name], f"layer {name!r} is called more than once")
        state.inputs[name] = None
        return state.rows[name]
    if isinstance(module, nn.Linear) and len(in_shape) != 2:
        state.uf.block(slots, f"layer {name!r} is a Linear applied to a {len(in_shape)}-D input")
        slots = None
    elif slots is not None and len(slots) != expected:
        state.uf.block(slots, f"the {len(slots)} channels reaching layer {name!r} do not match its {expected} inputs")
        slots = None
    if groups > 1 and groups == expected == out_channels and slots is not None:
        state.passthrough.add(name)  # depthwise: output channel c is input channel c
        state.rows[name], state.inputs[name] = slots, None
        return slots
    own = state.uf.new(out_channels)
    state.owner.update(dict.fromkeys(own, name))
    state.rows[name], state.inputs[name] = own, slots
    if groups > 1:
        why = f"layer {name!r} is a grouped convolution (groups={groups}), left whole"
        state.uf.block(slots, why)
        state.uf.block(own, why)
        state.inputs[name] = None
    if isinstance(module, nn.Linear) and len(node.shape or ()) != 2:
        state.uf.block(own, f"layer {name!r} has a {len(node.shape or ())}-D output")
        return None
    return own


def _visit_norm(state: _Analysis, node: Node) -> list[int] | None:
    slots = state.arg(node)
    name = node.target
    known = state.norms.get(name)
    if slots is None or (known is not None and known != slots):
        state.uf.block(slots, f"BatchNorm {name!r} is reused on other channels")
        state.uf.block(known, f"BatchNorm {name!r} is reused on other channels")
        return slots
    state.norms[name] = slots
    return slots


def _visit_add(state: _Analysis, node: Node) -> list[int] | None:
    if _one_tensor(node) is not None:  # x + 1: every channel shifted, zeros become a constant
        return _visit_preserving(state, node, "elementwise")
    first, second = state.arg(node, 0), state.arg(node, 1)
    shapes = node.arg_shapes
    if len(node.args) != 2 or first is None or second is None or len(first) != len(second) or shapes[0] != shapes[1]:
        state.block_all(node, "an addition of a constant or of differently shaped tensors after {layers}")
        return None
    for a, b in zip(first, second):
        state.uf.union(a, b)
    return first


def _visit_cat(state: _Analysis, node: Node) -> list[int] | None:
    out, shapes = node.shape, node.arg_shapes
    along_channels = (
        out is not None
        and len(out) >= 2
        and all(len(s) == len(out) and all(s[d] == out[d] for d in range(len(out)) if d != 1) for s in shapes)
        and out[1] == sum(s[1] for s in shapes)
    )
    if not along_channels:
        state.block_all(node, "a concatenation along another axis than the channels after {layers}")
        return None
    slots: list[int] = []
    for i, shape in enumerate(shapes):
        part = state.arg(node, i)
        slots += part if part is not None else state.uf.new(shape[1], "it is concatenated with a constant")
    return slots


def _visit_reshape(state: _Analysis, node: Node) -> list[int] | None:
    slots, shape = state.arg(node), node.shape
    source = node.arg_shapes[0] if node.arg_shapes else None
    if slots is None or source is None or shape is None:
        return None
    if shape == source:
        return slots
    if len(shape) == 2 and shape[0] == source[0] and shape[1] == math.prod(source[1:]):
        span = math.prod(source[2:])
        return [s for s in slots for _ in range(span)]  # channel c -> inputs [c * span, (c + 1) * span)
    state.block_all(node, f"a reshape from {list(source)} to {list(shape)} after {{layers}}")
    return None


def channel_groups(model: nn.Module, example_input: torch.Tensor | None = None) -> ChannelGroups:
    """The channel groups of ``model`` (see the module docstring); raises DataflowError if its
    dataflow cannot be recorded. Reads the per-architecture cached dataflow; touches no global state."""
    nodes = dataflow(model, example_input).nodes
    state = _Analysis(dict(model.named_modules()))
    for node in nodes:
        state.desc[node] = _visit(state, node)
    return _finish(state)


def _finish(state: _Analysis) -> ChannelGroups:
    """Number the merged slot sets 0..n-1 and turn the walk's lists into tensors."""
    uf = state.uf
    ids: dict[int, int] = {}

    def group(slot: int) -> int:
        return ids.setdefault(uf.find(slot), len(ids))

    def groups_of(slots: list[int]) -> torch.Tensor:
        return torch.tensor([group(s) for s in slots], dtype=torch.long)

    rows = {name: groups_of(slots) for name, slots in state.rows.items()}
    inputs = {name: groups_of(slots) if slots is not None else None for name, slots in state.inputs.items()}
    norms = {name: groups_of(slots) for name, slots in state.norms.items()}
    owners: dict[int, list[str]] = {}
    for name, groups in rows.items():
        for g in dict.fromkeys(groups.tolist()):
            owners.setdefault(g, []).append(name)
    blocked: dict[int, str] = {}
    for slot, reason in uf.reason.items():
        blocked.setdefault(group(slot), reason)
    return ChannelGroups(
        size=len(ids),
        rows=rows,
        inputs=inputs,
        norms=norms,
        passthrough=frozenset(state.passthrough),
        blocked=blocked,
        owners={g: tuple(names) for g, names in owners.items()},
    )


def _alive(entries: torch.Tensor | None, rows: int) -> torch.Tensor:
    """Per row: some entry is kept (None keeps everything)."""
    if entries is None:
        return torch.ones(rows, dtype=torch.bool)
    return entries.reshape(rows, -1).any(1)


def row_alive(
    groups: ChannelGroups, kept: Mapping[str, torch.Tensor], params: Collection[str]
) -> dict[str, torch.Tensor]:
    """Per layer and BatchNorm, which of its neurons still computes something: any weight, bias or
    norm entry kept. ``kept`` holds a bool per element (a mask, or ``tensor != 0``); a parameter of
    ``params`` without an entry is kept whole; a norm without affine parameters always outputs."""
    alive = {}
    for name, where in [*groups.rows.items(), *groups.norms.items()]:
        if f"{name}.weight" not in params:
            alive[name] = torch.ones(len(where), dtype=torch.bool)
            continue
        row = _alive(kept.get(f"{name}.weight"), len(where))
        if f"{name}.bias" in params:
            row = row | _alive(kept.get(f"{name}.bias"), len(where))
        alive[name] = row
    return alive


def dead_groups(groups: ChannelGroups, alive: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Groups no layer or norm computes anything in (True), from :func:`row_alive`."""
    counts = torch.zeros(groups.size, dtype=torch.long)
    for name, row in alive.items():
        counts.index_add_(0, groups.rows[name] if name in groups.rows else groups.norms[name], row.long())
    return counts == 0


def removable(groups: ChannelGroups, alive: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Channel groups that can go (True): no layer or norm contributing to them computes anything
    there (``alive``, from :func:`row_alive`), they are not blocked, and each layer keeps at least
    one neuron and one input (a layer with none disconnects the network; it computes zeros)."""
    result = dead_groups(groups, alive)
    result[list(groups.blocked)] = False
    while True:
        changed = False
        for where in [*groups.rows.values(), *(w for w in groups.inputs.values() if w is not None)]:
            if len(where) and bool(result[where].all()):
                result[where[0]] = False
                changed = True
        if not changed:
            return result


def try_channel_groups(model: nn.Module, example_input: torch.Tensor | None = None) -> ChannelGroups | None:
    """:func:`channel_groups`, or None when the dataflow cannot be recorded."""
    try:
        return channel_groups(model, example_input)
    except DataflowError:
        return None


@dataclass(frozen=True)
class Coupling:
    """How structured masks stay consistent on coupled layers: one *leader* per set of layers
    whose channels are joined picks the channels, and its *followers* take the same ones.

    ``followers[layer] = (leader, positions)``: row j of ``layer`` is the leader's row
    ``positions[j]``. ``rows`` holds the groups of every scored layer's rows (leaders and layers on
    their own); ``norms`` the BatchNorms whose channels all belong to them.
    """

    groups: ChannelGroups
    followers: dict[str, tuple[str, torch.Tensor]]
    rows: dict[str, torch.Tensor]
    norms: tuple[str, ...]

    def aggregate(self, layers: list[str], scores: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each leader's score plus its followers' scores of the same channels (Torch-Pruning sums a
        group's importance the same way); layers on their own keep theirs. Followers are dropped."""
        by_layer = dict(zip(layers, scores, strict=True))
        totals = {name: score.clone() for name, score in by_layer.items() if name not in self.followers}
        for follower, (leader, positions) in self.followers.items():
            totals[leader].index_add_(0, positions, by_layer[follower].to(totals[leader].dtype))
        return [totals[name] for name in layers if name not in self.followers]

    def group_keep(self, keep: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Which channel groups stay, from the kept rows of every scored layer (True = kept)."""
        kept = torch.ones(self.groups.size, dtype=torch.bool)
        for layer, rows in self.rows.items():
            if layer in keep:
                kept[rows] = keep[layer]
        return kept

    def follower_keep(self, keep: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Kept rows of each follower: the leader's choice at the same channels."""
        return {layer: keep[leader][positions] for layer, (leader, positions) in self.followers.items()}


def _layer_sets(groups: ChannelGroups, scored: list[str]) -> list[list[str]]:
    """Scored layers whose rows share a group, merged transitively; each set in ``scored`` order."""
    uf = _UnionFind()
    index = {name: i for i, name in enumerate(scored)}
    uf.new(len(scored))
    for owners in groups.owners.values():
        members = [index[o] for o in owners if o in index]
        for other in members[1:]:
            uf.union(members[0], other)
    sets: dict[int, list[str]] = {}
    for name in scored:
        sets.setdefault(uf.find(index[name]), []).append(name)
    return [members for members in sets.values() if len(members) > 1]


def _leader_of(groups: ChannelGroups, members: list[str], owners_complete: bool) -> str | None:
    """The first member whose rows are each of the set's groups exactly once, if every member's
    rows are distinct groups (else the channels cannot be matched one to one)."""
    every = set().union(*(groups.rows[m].tolist() for m in members))
    if not owners_complete or any(len(set(groups.rows[m].tolist())) != len(groups.rows[m]) for m in members):
        return None
    return next((m for m in members if len(groups.rows[m]) == len(every)), None)


def coupling(model: nn.Module, scored: list[str], example_input: torch.Tensor | None = None) -> Coupling | None:
    """The leaders and followers among the ``scored`` layers, or None when no two are coupled (a
    chain) or the dataflow cannot be recorded: then every layer picks its own neurons."""
    groups = try_channel_groups(model, example_input)
    if groups is None:
        return None
    followers: dict[str, tuple[str, torch.Tensor]] = {}
    scored_set = set(scored)
    for members in _layer_sets(groups, scored):
        every = set().union(*(groups.rows[m].tolist() for m in members))
        complete = all(set(groups.owners[g]) <= scored_set for g in every)
        leader = _leader_of(groups, members, complete)
        if leader is None:
            continue  # left independent; shrinking names what stays and why
        position = {g: i for i, g in enumerate(groups.rows[leader].tolist())}
        for member in members:
            if member != leader:
                positions = torch.tensor([position[g] for g in groups.rows[member].tolist()], dtype=torch.long)
                followers[member] = (leader, positions)
    if not followers:
        return None
    rows = {name: groups.rows[name] for name in scored if name not in followers and name in groups.rows}
    owned = set().union(*(r.tolist() for r in rows.values())) if rows else set()
    norms = tuple(n for n, where in groups.norms.items() if set(where.tolist()) <= owned)
    return Coupling(groups, followers, rows, norms)
