"""A standalone ``torch.nn.utils.prune`` script that applies exactly what a recipe describes.

``generate_script(recipe)`` returns the source of a Python script that needs only torch (and
safetensors to read and write weight files), not PruneLab. It prunes with the torch functions
users know (``prune.global_unstructured``, ``prune.l1_unstructured``, ``prune.ln_structured``),
carries small functions for what torch lacks (PruneLab's seeded random scores, the global
structured ranking, N:M patterns) and applies their masks with ``prune.custom_from_mask``, then
``prune.remove`` makes the pruning permanent. Its masks equal the engine's (``compute_masks``)
element for element: counts are rounded the same way (Python's ``round``), structured layers keep
at least one neuron and output layers are never structured-pruned. (One limit: where scores tie
exactly at the cut-off, ``torch.topk`` inside ``l1_unstructured``/``global_unstructured``/
``ln_structured`` breaks the tie its own way, while the engine prunes the earliest position; trained
float weights do not tie. The functions the script carries itself break ties as the engine does.)

Everything the script needs to know about the model (target layers in order, output layers, the
bias and BatchNorm parameters that go with each neuron, parameter shapes) is computed here from the
sample architecture and embedded as literals.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

from pruning_core import allocation, graph
from pruning_core.effective import Dataflow
from pruning_core.masks import check_scope, check_sparsity, erk_sparsities, per_layer_sparsities
from pruning_core.methods import Magnitude, NMMagnitude, Random, StructuredNorm, get_method
from pruning_core.recipe import Recipe
from pruning_core.targets import find_targets

__all__ = ["generate_script"]

_LINE = 120  # the project's line length; embedded literals are laid out the way ruff format would


# --- what the script needs to know, computed from the architecture --------------------------------------


@dataclass
class _Plan:
    recipe: Recipe
    kind: str  # "magnitude", "random", "structured" or "nm"
    description: str
    targets: list[str]
    outputs: list[str]
    pruned: list[str]  # layers whose weights may be pruned (structured: targets minus outputs)
    shapes: dict[str, tuple[int, ...]]
    sparsity: float | None = None  # scope "global"
    layer_sparsity: dict[str, float] | None = None  # scopes "layerwise" and "per-layer"
    linked: dict[str, list[str]] = field(default_factory=dict)  # structured
    dataflow: dict[str, dict[str, Any]] = field(default_factory=dict)  # structured, global scope
    p: int | None = None  # structured norm
    n_m: tuple[int, int] | None = None  # N:M
    schedule: Any = None  # a pruning_core.schedules.Schedule, when reproducing the recipe trains
    target: float | None = None  # the overall sparsity a multi-step schedule reaches


def _kind(method) -> str:
    if type(method) is Magnitude:
        return "magnitude"
    if type(method) is Random:
        return "random"
    if isinstance(method, StructuredNorm):
        return "structured"
    if isinstance(method, NMMagnitude):
        return "nm"
    raise ValueError(
        f"no standalone script for method {method.name!r}: scripts exist for magnitude, random, "
        "structured-l1/-l2 and nm-N:M"
    )


def _plan(recipe: Recipe) -> _Plan:
    import sample_models

    if recipe.model not in sample_models.available():
        raise ValueError(
            f"a standalone script needs a sample model, not {recipe.model!r}; "
            f"valid: {', '.join(sample_models.available())}"
        )
    method = get_method(recipe.method)
    kind = _kind(method)
    scope = check_scope(recipe.scope)
    try:
        schedule = recipe.schedule_object
    except TypeError as exc:  # an unknown key in the schedule or finetune mapping
        raise ValueError(f"schedule/finetune: {exc}") from None
    model = sample_models.build(recipe.model)  # seeded privately: the global random state is left alone
    targets = find_targets(model, recipe.exclude)
    layers = [t.layer for t in targets]
    outputs = sorted(graph.output_layers(model), key=[n for n, _ in model.named_modules()].index)
    scored = targets
    linked: dict[str, list[str]] = {}
    if kind == "structured":
        scored = [t for t in targets if t.layer not in outputs]
        if not scored:
            raise ValueError("structured pruning needs a layer other than the output layer to prune")
        norms = graph.norm_of(model)
        modules = dict(model.named_modules())
        for t in scored:
            names = [f"{t.layer}.bias"] if getattr(t.module, "bias", None) is not None else []
            norm = norms.get(t.layer)
            if norm is not None:
                names += [f"{norm}.{p}" for p in ("weight", "bias") if getattr(modules[norm], p, None) is not None]
            linked[t.layer] = names
    params = dict(model.named_parameters())
    shapes = {f"{layer}.weight": tuple(params[f"{layer}.weight"].shape) for layer in layers}
    for names in linked.values():
        shapes.update({name: tuple(params[name].shape) for name in names})

    plan = _Plan(
        recipe=recipe,
        kind=kind,
        description=method.description,
        targets=layers,
        outputs=outputs,
        pruned=[t.layer for t in scored],
        shapes=shapes,
        linked=linked,
    )
    if kind == "structured":
        plan.p = method.p
        if scope == "global":
            flow = Dataflow.of(model)
            plan.dataflow = {
                name: {
                    "width": f.out_channels,
                    "inputs": f.in_columns,
                    "kernel": f.kernel,
                    "consumer": f.consumer,
                    "span": f.span,
                }
                for name, f in flow.layers.items()
            }
    if kind == "nm":
        plan.n_m = (method.n, method.m)
    if scope == "per-layer":
        if not isinstance(recipe.layer_sparsities, dict) or not recipe.layer_sparsities:
            raise ValueError("scope 'per-layer' needs layer_sparsities: a mapping of layer name to fraction")
        fractions = per_layer_sparsities(scored, recipe.layer_sparsities)
        plan.layer_sparsity = dict(zip(plan.pruned, fractions, strict=True))
    elif scope == "layerwise":
        s = check_sparsity(recipe.sparsity)
        plan.layer_sparsity = dict.fromkeys(plan.pruned, s)
    elif scope == "erk":
        by_layer = erk_sparsities(scored, check_sparsity(recipe.sparsity))
        plan.layer_sparsity = {layer: by_layer[layer] for layer in plan.pruned}
    else:
        plan.sparsity = check_sparsity(recipe.sparsity)
    if kind == "nm":  # a fixed pattern: the sparsity was checked (as the engine does) but is not used
        plan.sparsity = plan.layer_sparsity = None
    if recipe.trains:
        plan.schedule = schedule
        if schedule.kind != "oneshot":
            if scope == "per-layer":
                raise ValueError(f"schedule {schedule.kind!r} takes one overall sparsity, not a per-layer mapping")
            if scope == "erk":
                raise ValueError(
                    f"no standalone script for scope 'erk' with schedule {schedule.kind!r} (the ERK allocation "
                    "changes at every pruning step): use scope global or layerwise, or the one-shot schedule"
                )
            plan.target = check_sparsity(recipe.sparsity)
    return plan


# --- Python literals, laid out as ruff format lays them out ------------------------------------------


def _plain(value: Any) -> Any:
    """Recipe data as JSON-like values (a hand-written YAML may hold dates or other objects)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, _dt.date | _dt.datetime | _dt.time):
        return value.isoformat()
    return str(value)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_inline(k)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_inline(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str):
        return json.dumps(value)  # double quotes, ASCII-only escapes: valid Python too
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    return repr(value)


def _literal(value: Any, indent: int = 0, used: int = 0, expand_depth: int = 0) -> str:
    """``value`` as Python source; containers are expanded (one item a line, trailing comma) when
    they do not fit on the line, and dicts at the first ``expand_depth`` levels always."""
    inline = _inline(value)
    is_container = isinstance(value, dict | list | tuple) and len(value) > 0
    force = isinstance(value, dict) and expand_depth > 0
    if not is_container or (not force and indent + used + len(inline) + 1 <= _LINE):
        return inline
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = f"{_inline(k)}: "
            items.append(f"{pad}{key}{_literal(v, indent + 4, len(key), expand_depth - 1)},")
        open_, close = "{", "}"
    else:
        items = [f"{pad}{_literal(v, indent + 4, 0, expand_depth - 1)}," for v in value]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    return open_ + "\n" + "\n".join(items) + "\n" + " " * indent + close


def _constant(name: str, value: Any, comment: str, expand_depth: int = 0) -> str:
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append(f"{name} = {_literal(value, 0, len(name) + 3, expand_depth)}")
    return "\n".join(lines) + "\n"


# --- the script --------------------------------------------------------------------------------------


def _sparsity_text(plan: _Plan) -> str:
    recipe = plan.recipe
    if plan.kind == "nm":
        n, m = plan.n_m
        return f"the fixed {n}:{m} pattern ({1 - n / m:.0%} sparsity)"
    if recipe.scope == "per-layer":
        listed = ", ".join(f"{layer} {s:g}" for layer, s in plan.layer_sparsity.items() if s > 0)
        return f"per-layer sparsities {listed or 'all 0'} (other layers dense)"
    if recipe.scope == "erk":
        listed = ", ".join(f"{layer} {s:.4g}" for layer, s in plan.layer_sparsity.items())
        return f"sparsity {recipe.sparsity:g} allocated by ERK ({listed})"
    return f"sparsity {recipe.sparsity:g}"


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def _schedule_label(schedule) -> str:
    """A short ASCII description of the schedule, for messages."""
    epochs = _epochs(schedule.finetune.epochs)
    if schedule.kind == "oneshot":
        return f"one-shot pruning, then {epochs} of fine-tuning"
    if schedule.kind == "gradual":
        return f"gradual pruning during {epochs} of training"
    return f"{schedule.kind} pruning, {schedule.rounds} rounds of {epochs}"


def _schedule_text(plan: _Plan) -> str:
    """The schedule and fine-tuning settings, for the script's docstring."""
    schedule, ft = plan.schedule, plan.schedule.finetune
    epochs = _epochs(ft.epochs)
    if schedule.kind == "oneshot":
        text = f"Schedule: one-shot. The trained weights are pruned once, then fine-tuned for {epochs}."
    elif schedule.kind == "gradual":
        n = schedule.pruning_steps
        what = (
            "the N:M pattern is applied to the current weights (its sparsity is fixed)"
            if plan.kind == "nm"
            else f"the sparsity rises from {schedule.initial_sparsity:g} to {plan.target:g} along "
            f"s_t = s_f + (s_i - s_f)(1 - t / ({n} dt))^3"
        )
        text = (
            f"Schedule: gradual (Zhu & Gupta 2017). During {epochs} of training, {what} at optimiser steps "
            f"t = 0, dt, ..., {n} dt (dt = int(0.75 * total steps) // {n}, at least 1), each time pruning the "
            "current weights (a pruned weight stays pruned); after training the masks are computed once more "
            "at exactly the target."
        )
    else:
        if plan.kind == "nm":
            rounds = f"{schedule.rounds} rounds, each applying the N:M pattern to the current weights"
        else:
            keep = (1.0 - plan.target) ** (1.0 / schedule.rounds)
            levels = ", ".join(f"{1.0 - keep**i:.3g}" for i in range(1, schedule.rounds + 1))
            rounds = (
                f"{schedule.rounds} rounds, each pruning the same fraction of the weights that remain "
                f"(sparsity {levels}) on the current weights"
            )
        text = f"Schedule: {schedule.kind}. {rounds}; a pruned weight stays pruned."
        if schedule.kind == "lottery":
            to = (
                "the initial weights (init_state)"
                if schedule.rewind_iteration == 0
                else f"those after {schedule.rewind_iteration} steps of dense training from the initial weights"
            )
            text += f" After each round's pruning, every weight is rewound to {to} (Frankle & Carbin 2019)."
        text += f" Each round is followed by {epochs} of training."
    optimiser = (
        f"SGD (lr {ft.lr:g}, momentum {ft.momentum:g}, weight decay {ft.weight_decay:g})"
        if ft.optimizer == "sgd"
        else f"Adam (lr {ft.lr:g}, weight decay {ft.weight_decay:g})"
    )
    text += (
        f" Fine-tuning: {optimiser}, cross-entropy, mini-batches of {ft.batch_size} shuffled with seed {ft.seed}, "
        "on the training split only; pruned weights are held at zero (their gradients are masked before every "
        "step and the masks re-applied after it)."
    )
    return text


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


_REUSE = (
    "finetune(model, masks, X, y) is the masked training loop and masks_at(model, sparsity) the method's masks "
    "on the current weights; both can be reused on their own."
)


def _docstring(plan: _Plan) -> str:
    from pruning_core import __version__

    recipe = plan.recipe
    module = "prune_" + recipe.model.replace("-", "_")
    exclude = f", excluding {', '.join(recipe.exclude)}" if recipe.exclude else ""
    seed = f", seed {recipe.seed}" if plan.kind == "random" else ""
    summary = _fill(
        f"Recipe: model {recipe.model}, method {recipe.method}, scope {recipe.scope}, "
        f"{_sparsity_text(plan)}{exclude}{seed}. {plan.description}"
    )
    about = f"Generated by PruneLab {__version__}. The pruning is applied with torch.nn.utils.prune, then made "
    about += "permanent with prune.remove, so the result is a plain model (no weight_orig/weight_mask) whose pruned "
    if plan.schedule is None:
        about += "entries are zero; the masks equal PruneLab's element for element."
    else:
        about += (
            "entries are zero. Every pruning step computes its masks on the current weights as PruneLab does, "
            "and the training loop is PruneLab's, so on the same machine and torch version the weights equal "
            "PruneLab's bit for bit (floating-point training may differ in the last bits elsewhere)."
        )
    if plan.kind == "magnitude" or (plan.kind == "structured" and recipe.scope != "global"):
        about += (
            " (Only where weights or neurons tie exactly at the cut-off, which trained float weights do not, "
            "may torch.nn.utils.prune pick other ones of the tied than PruneLab; the counts always agree.)"
        )
    about += " It needs only torch (and safetensors to read and write weight files), not PruneLab."
    about = _fill(about)
    if plan.schedule is None:
        return f'''"""Prune a {recipe.model} model exactly as a PruneLab recipe describes, with torch.nn.utils.prune.

{summary}

{about}

From Python (saved as {module}.py):

    from {module} import apply_pruning, prune_state_dict

    model = apply_pruning(model)  # a {recipe.model} model, pruned in place and returned
    state = prune_state_dict(state)  # or a state dict: a new dict with the pruned tensors

From the command line:

    python {module}.py --weights dense.safetensors --out pruned.safetensors
"""
'''
    lottery = plan.schedule.kind == "lottery"
    init = ", init_state" if lottery else ""
    init_line = "\n    # init_state: the state dict the model was initialised with, before training" if lottery else ""
    cli = _fill(
        "The command line (--weights, --out, --train-data with tensors X_train and y_train"
        + (", --init-weights" if lottery else "")
        + ") cannot apply this recipe: training needs the model's forward pass, which a state dict does not "
        "carry, so it says so and exits with status 2. Apply the recipe from Python as above."
    )
    return f'''"""Prune and fine-tune a {recipe.model} model exactly as a PruneLab recipe describes, with torch.nn.utils.prune.

{summary}

{_fill(_schedule_text(plan))}

{about}

From Python (saved as {module}.py):

    from {module} import apply_pruning

    # model: a {recipe.model} with its trained weights; X_train, y_train: the training split{init_line}
    model = apply_pruning(model, X_train, y_train{init})  # pruned and fine-tuned in place, and returned

{_fill(_REUSE)}

{cli}
"""
'''


_IMPORTS = """
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune
"""


def _schedule_constants(plan: _Plan) -> str:
    schedule, ft = plan.schedule, plan.schedule.finetune
    parts = []
    if plan.target is not None and plan.sparsity is None:
        what = "(the N:M pattern itself is fixed)" if plan.kind == "nm" else "(the same in every layer)"
        parts.append(_constant("SPARSITY", plan.target, f"The sparsity the schedule reaches {what}."))
    if schedule.kind in ("iterative", "lottery"):
        parts.append(_constant("ROUNDS", schedule.rounds, "Rounds of pruning, each followed by fine-tuning."))
    if schedule.kind == "lottery" and schedule.rewind_iteration:
        parts.append(
            _constant(
                "REWIND_ITERATION",
                schedule.rewind_iteration,
                "Weights are rewound to those after this many steps of dense training from the initial ones.",
            )
        )
    if schedule.kind == "gradual":
        parts.append(
            "# Gradual pruning: the sparsity at the first pruning step, and how many times it rises.\n"
            f"INITIAL_SPARSITY = {schedule.initial_sparsity!r}\nPRUNING_STEPS = {schedule.pruning_steps!r}\n"
        )
    parts.append(f'# The schedule in words, for messages.\nSCHEDULE_LABEL = "{_schedule_label(schedule)}"\n')
    per_round = " (per round)" if schedule.kind in ("iterative", "lottery") else ""
    optimiser = "SGD" if ft.optimizer == "sgd" else "Adam"
    lines = [
        f"# Fine-tuning{per_round}: epochs, {optimiser} settings, mini-batch size and the seed of the shuffling.",
        f"EPOCHS = {ft.epochs!r}",
        f"LR = {ft.lr!r}",
    ]
    if ft.optimizer == "sgd":
        lines.append(f"MOMENTUM = {ft.momentum!r}")
    lines += [
        f"WEIGHT_DECAY = {ft.weight_decay!r}",
        f"BATCH_SIZE = {ft.batch_size!r}",
        f"SHUFFLE_SEED = {ft.seed!r}",
    ]
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _constants(plan: _Plan) -> str:
    recipe = plan.recipe
    parts = [
        _constant(
            "RECIPE",
            _plain(recipe.to_dict()),
            "The recipe this script was generated from, for the record (the constants below are what it uses).",
            expand_depth=2,
        ),
        f'MODEL = "{recipe.model}"\nMETHOD = "{recipe.method}"\nSCOPE = "{recipe.scope}"\n',
    ]
    if plan.sparsity is not None:
        parts.append(_constant("SPARSITY", plan.sparsity, "Fraction of the target weights to remove."))
    if plan.layer_sparsity is not None:
        what = "neurons" if plan.kind == "structured" else "weights"
        parts.append(_constant("LAYER_SPARSITY", plan.layer_sparsity, f"Fraction of each layer's {what} to remove.", 1))
    if plan.kind == "random":
        parts.append(_constant("SEED", recipe.seed, "Seed of the random scores."))
    if plan.kind == "structured":
        parts.append(_constant("NORM_P", plan.p, "Neurons are ranked by the L_p norm of their weights."))
    if plan.kind == "nm":
        n, m = plan.n_m
        parts.append(
            "# In every group of M_GROUP consecutive inputs (a Linear's input features; a convolution's\n"
            "# input channels at each kernel position), keep the N_KEEP largest |w|.\n"
            f"N_KEEP = {n}\nM_GROUP = {m}\n"
        )
    if plan.schedule is not None:
        parts.append(_schedule_constants(plan))
    parts.append(
        _constant(
            "TARGET_LAYERS",
            plan.targets,
            "Layers whose weights are pruned, in module order (Linear/Conv layers minus excluded ones).",
        )
    )
    output_comment = (
        "Layers whose outputs are the model's outputs (the classes): structured pruning never removes their neurons."
        if plan.kind == "structured"
        else "Layers whose outputs are the model's outputs (for reference: unstructured pruning treats them like any layer)."
    )
    parts.append(_constant("OUTPUT_LAYERS", plan.outputs, output_comment))
    if plan.kind == "structured":
        parts.append(
            _constant(
                "PRUNED_LAYERS",
                plan.pruned,
                "Layers whose neurons may be removed: the target layers except the output layers.",
            )
        )
        parts.append(
            _constant(
                "LINKED",
                plan.linked,
                "Parameters that go with each neuron of a layer (its bias, the following BatchNorm's weight and\n"
                "bias): a removed neuron's entries are zeroed too, so it outputs nothing at all.",
                expand_depth=1,
            )
        )
    if plan.dataflow:
        parts.append(
            _constant(
                "DATAFLOW",
                plan.dataflow,
                "Every Linear/Conv layer: its neurons (width), input columns, kernel elements, the layer reading\n"
                "its outputs (consumer) and how many of the consumer's input columns each neuron feeds (span).",
                expand_depth=1,
            )
        )
        parts.append(
            _constant("MIN_WIDTH_FRACTION", allocation.MIN_WIDTH_FRACTION, "Every layer keeps at least this share.")
        )
        parts.append(
            _constant("COST_EXPONENT", allocation.COST_EXPONENT, "How much what a removal frees weighs in the ranking.")
        )
    parts.append(
        _constant(
            "SHAPES",
            plan.shapes,
            f"Shape of every parameter this script prunes in a {recipe.model}, checked before pruning.",
            expand_depth=1,
        )
    )
    return "\n".join(parts)


_MAGNITUDE_GLOBAL = '''
def _prune(modules: dict[str, nn.Module], sparsity: float = SPARSITY) -> list[tuple[nn.Module, str]]:
    """Global magnitude pruning: the round(sparsity * N) smallest |w| of all N target weights together."""
    params = [(modules[layer], "weight") for layer in TARGET_LAYERS]
    total = sum(module.weight.numel() for module, _ in params)
    # An integer amount, so the count is rounded exactly as PruneLab rounds it.
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=round(sparsity * total))
    return params
'''

_MAGNITUDE_LAYERWISE = '''
def _prune(
    modules: dict[str, nn.Module], layer_sparsity: dict[str, float] = LAYER_SPARSITY
) -> list[tuple[nn.Module, str]]:
    """Magnitude pruning layer by layer: the round(s * n) smallest |w| of each layer's n weights."""
    params = []
    for layer in TARGET_LAYERS:
        module = modules[layer]
        # An integer amount, so the count is rounded exactly as PruneLab rounds it.
        prune.l1_unstructured(module, "weight", amount=round(layer_sparsity[layer] * module.weight.numel()))
        params.append((module, "weight"))
    return params
'''

_LOWEST_K = '''
def _lowest_k_kept(scores: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Keep-masks (True = kept) pruning the k lowest scores of all tensors together; among equal scores
    the earliest (tensor order, then flat index) are pruned first, as in PruneLab."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.sort(flat, stable=True).indices[:k]] = False
    return [part.reshape(s.shape) for part, s in zip(keep.split([s.numel() for s in scores]), scores)]
'''

_RANDOM_SCORES = '''
def _random_scores(modules: dict[str, nn.Module]) -> list[torch.Tensor]:
    """PruneLab's random scores: one uniform draw per weight, target by target, from one seeded generator."""
    generator = torch.Generator().manual_seed(SEED)
    shapes = [modules[layer].weight.shape for layer in TARGET_LAYERS]
    return [torch.rand(shape, generator=generator, dtype=torch.float32) for shape in shapes]
'''

_RANDOM_GLOBAL = '''
def _prune(modules: dict[str, nn.Module], sparsity: float = SPARSITY) -> list[tuple[nn.Module, str]]:
    """Random pruning, global: the round(sparsity * N) lowest random scores of all N target weights."""
    scores = _random_scores(modules)
    masks = _lowest_k_kept(scores, round(sparsity * sum(s.numel() for s in scores)))
    params = []
    for layer, mask in zip(TARGET_LAYERS, masks):
        prune.custom_from_mask(modules[layer], "weight", mask)
        params.append((modules[layer], "weight"))
    return params
'''

_RANDOM_LAYERWISE = '''
def _prune(
    modules: dict[str, nn.Module], layer_sparsity: dict[str, float] = LAYER_SPARSITY
) -> list[tuple[nn.Module, str]]:
    """Random pruning layer by layer: the round(s * n) lowest random scores of each layer's n weights."""
    params = []
    for layer, scores in zip(TARGET_LAYERS, _random_scores(modules)):
        (mask,) = _lowest_k_kept([scores], round(layer_sparsity[layer] * scores.numel()))
        prune.custom_from_mask(modules[layer], "weight", mask)
        params.append((modules[layer], "weight"))
    return params
'''

_LINKED = '''
def _prune_linked(modules: dict[str, nn.Module], layer: str, keep: torch.Tensor) -> list[tuple[nn.Module, str]]:
    """Zero the removed neurons' bias and BatchNorm entries with the layer's kept-neuron vector."""
    params = []
    for name in LINKED[layer]:
        path, _, attr = name.rpartition(".")
        prune.custom_from_mask(modules[path], attr, keep)
        params.append((modules[path], attr))
    return params
'''

_STRUCTURED_LAYERWISE = '''
def _prune(
    modules: dict[str, nn.Module], layer_sparsity: dict[str, float] = LAYER_SPARSITY
) -> list[tuple[nn.Module, str]]:
    """Structured pruning layer by layer: the k neurons with the smallest L_p norm of their weights."""
    params = []
    for layer in PRUNED_LAYERS:
        module = modules[layer]
        channels = module.weight.shape[0]
        # An integer amount rounded as PruneLab rounds it; at least one neuron stays in every layer.
        k = min(round(layer_sparsity[layer] * channels), channels - 1)
        prune.ln_structured(module, "weight", amount=k, n=NORM_P, dim=0)
        params.append((module, "weight"))
        params += _prune_linked(modules, layer, module.weight_mask.flatten(1).any(dim=1))
    return params
'''

_STRUCTURED_GLOBAL = '''
def _kept_neurons(modules: dict[str, nn.Module], sparsity: float) -> list[torch.Tensor]:
    \"\"\"PruneLab's global structured allocation. Each neuron's key is its L_p norm over the L2 norm of
    its layer's norms, over COST_EXPONENT's power of its cost (what its removal frees: its weight row,
    its LINKED entries and its column block in the consumer). Each layer may lose all but
    max(1, ceil(MIN_WIDTH_FRACTION * width)) neurons, lowest key first, merged into one order. Along
    that order the Linear/Conv weights effectively removed are counted exactly (a row over the
    producer's neurons still kept, a column block over the consumer's), and the order is cut where
    that comes closest to round(sparsity * N) of all N weights (the fewer removals on a tie).\"\"\"
    producer = {flow["consumer"]: layer for layer, flow in DATAFLOW.items() if flow["consumer"] is not None}
    candidates = []
    for index, layer in enumerate(PRUNED_LAYERS):
        weight = modules[layer].weight.detach()
        norms = torch.norm(weight, p=NORM_P, dim=tuple(range(1, weight.dim()))).double()
        consumer = DATAFLOW[layer]["consumer"]
        cost = weight[0].numel() + len(LINKED[layer])
        if consumer is not None:
            cost += DATAFLOW[consumer]["width"] * DATAFLOW[layer]["span"] * DATAFLOW[consumer]["kernel"]
        key = (norms / norms.norm().clamp_min(1e-12) / cost**COST_EXPONENT).tolist()
        floor = min(len(key), max(1, math.ceil(MIN_WIDTH_FRACTION * len(key) - 1e-9)))
        order = sorted(range(len(key)), key=lambda i, key=key: (key[i], i))
        candidates += [(key[i], index, i) for i in order[: len(key) - floor]]
    candidates.sort()
    width = {layer: flow["width"] for layer, flow in DATAFLOW.items()}
    removed = [0]
    for _, index, _ in candidates:
        layer = PRUNED_LAYERS[index]
        flow, source = DATAFLOW[layer], producer.get(layer)
        inputs = flow["inputs"] if source is None else width[source] * DATAFLOW[source]["span"]
        step = inputs * flow["kernel"]
        if flow["consumer"] is not None:
            step += width[flow["consumer"]] * flow["span"] * DATAFLOW[flow["consumer"]]["kernel"]
        width[layer] -= 1
        removed.append(removed[-1] + step)
    budget = round(sparsity * sum(f["width"] * f["inputs"] * f["kernel"] for f in DATAFLOW.values()))
    cut = max(i for i, r in enumerate(removed) if r <= budget)
    if cut + 1 < len(removed) and removed[cut + 1] - budget < budget - removed[cut]:
        cut += 1
    kept = [torch.ones(DATAFLOW[layer]["width"], dtype=torch.bool) for layer in PRUNED_LAYERS]
    for _, index, neuron in candidates[:cut]:
        kept[index][neuron] = False
    return kept


def _prune(modules: dict[str, nn.Module], sparsity: float = SPARSITY) -> list[tuple[nn.Module, str]]:
    """Structured pruning, global: whole neurons chosen by the ranking above."""
    params = []
    for layer, keep in zip(PRUNED_LAYERS, _kept_neurons(modules, sparsity)):
        module = modules[layer]
        mask = keep.reshape((-1,) + (1,) * (module.weight.dim() - 1)).expand_as(module.weight)
        prune.custom_from_mask(module, "weight", mask)
        params.append((module, "weight"))
        params += _prune_linked(modules, layer, keep)
    return params
'''

_NM = '''
def _nm_kept(weight: torch.Tensor) -> torch.Tensor:
    """Keep-mask of the N_KEEP largest |w| in every group of M_GROUP consecutive inputs: along the
    input dimension of a Linear, along the input channels at each kernel position of a convolution
    (as sparse tensor cores group them); a short last group keeps min(N_KEEP, its length)."""
    scores = weight.detach().abs()
    channels_last = scores.movedim(1, -1)
    rows = channels_last.reshape(-1, scores.shape[1])
    pad = (-rows.shape[1]) % M_GROUP
    padded = torch.nn.functional.pad(rows, (0, pad), value=-1.0).reshape(rows.shape[0], -1, M_GROUP)
    keep = torch.zeros_like(padded, dtype=torch.bool)
    keep.scatter_(2, padded.topk(N_KEEP, dim=2).indices, True)
    kept_rows = keep.reshape(rows.shape[0], -1)[:, : rows.shape[1]]
    return kept_rows.reshape(channels_last.shape).movedim(-1, 1).contiguous()


def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """N:M pruning of every target layer."""
    params = []
    for layer in TARGET_LAYERS:
        module = modules[layer]
        prune.custom_from_mask(module, "weight", _nm_kept(module.weight))
        params.append((module, "weight"))
    return params
'''

_HELPERS = '''
def _check(found: dict[str, torch.Tensor | None], what: str) -> None:
    """Refuse a model or state dict that is not the recipe's architecture, naming what differs."""
    missing = [name for name, tensor in found.items() if tensor is None]
    if missing:
        raise ValueError(f"{what} has no {', '.join(missing)}, which the recipe prunes: it is not a {MODEL}")
    wrong = [
        f"{name} is {tuple(tensor.shape)}, expected {SHAPES[name]}"
        for name, tensor in found.items()
        if tuple(tensor.shape) != SHAPES[name]
    ]
    if wrong:
        raise ValueError(f"{what} does not match a {MODEL}: {'; '.join(wrong)}")


def _parameter(modules: dict[str, nn.Module], name: str) -> torch.Tensor | None:
    path, _, attr = name.rpartition(".")
    module = modules.get(path)
    return None if module is None else getattr(module, attr, None)


def _holders(state: dict[str, torch.Tensor]) -> dict[str, nn.Module]:
    """One tiny module per layer, holding copies of just the parameters the recipe prunes."""
    holders: dict[str, nn.Module] = {}
    for name in SHAPES:
        path, _, attr = name.rpartition(".")
        setattr(holders.setdefault(path, nn.Module()), attr, nn.Parameter(state[name].detach().clone()))
    return holders
'''

_PLAIN_API = '''
def apply_pruning(
    model: nn.Module,
    X_train: torch.Tensor | None = None,
    y_train: torch.Tensor | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Prune ``model`` (a MODEL) in place with torch.nn.utils.prune, make it permanent, return it.

    This recipe does not train: ``X_train``, ``y_train`` and ``init_state`` are not used.
    """
    modules = dict(model.named_modules())
    _check({name: _parameter(modules, name) for name in SHAPES}, "the model")
    for module, name in _prune(modules):
        prune.remove(module, name)  # weight = weight_orig * weight_mask, as a plain parameter again
    return model


def prune_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same pruning applied to a state dict of a MODEL: a new dict, other entries copied unchanged."""
    _check({name: state.get(name) for name in SHAPES}, "the state dict")
    holders = _holders(state)
    for module, name in _prune(holders):
        prune.remove(module, name)
    pruned = {name: _parameter(holders, name).detach() for name in SHAPES}
    return {key: pruned[key] if key in pruned else value.clone() for key, value in state.items()}


def _error(message: str) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Prune a {MODEL} state dict as a PruneLab recipe describes.")
    parser.add_argument("--weights", required=True, metavar="IN.safetensors", help=f"dense weights of a {MODEL}")
    parser.add_argument("--out", required=True, metavar="OUT.safetensors", help="where to write the pruned weights")
    args = parser.parse_args(argv)
    try:
        from safetensors.torch import load_file, save_file
    except ImportError:
        return _error("reading and writing .safetensors files needs safetensors: pip install safetensors")
    if not Path(args.weights).is_file():
        return _error(f"cannot read {args.weights}: no such file")
    try:
        state = load_file(args.weights)
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        return _error(f"cannot read {args.weights}: not a safetensors weight file ({exc})")
    try:
        pruned = prune_state_dict(state)
    except ValueError as exc:
        return _error(f"{args.weights}: {exc}")
    try:
        save_file(pruned, args.out)
    except Exception as exc:  # an unwritable path: OSError or a safetensors error, depending on the version
        return _error(f"cannot write {args.out}: {exc}")
    weights = [pruned[f"{layer}.weight"] for layer in TARGET_LAYERS]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    print(f"{MODEL}, {METHOD} ({SCOPE}): {zeros / total:.2%} of the target weights are zero; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

# --- recipes that train: the masks at each pruning step, the masked training loop, the schedule ------------

_MASKS_OF = '''
def _masks_of(holders: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """The masks torch.nn.utils.prune left on the holders (``weight_mask``...), as booleans by parameter name."""
    masks = {}
    for name in SHAPES:
        path, _, attr = name.rpartition(".")
        mask = getattr(holders[path], attr + "_mask", None)
        if mask is not None:  # a parameter the method leaves whole has none
            masks[name] = mask.bool()
    return masks
'''

_MASKS_AT_GLOBAL = '''
def masks_at(model: nn.Module, sparsity: float = SPARSITY) -> dict[str, torch.Tensor]:
    """Keep-masks (True = kept) by parameter name that the pruning above gives at ``sparsity`` on the
    model's current weights; computed on copies, so the model is left as it is."""
    holders = _holders(dict(model.named_parameters()))
    _prune(holders, sparsity)
    return _masks_of(holders)
'''

_MASKS_AT_LAYERWISE = '''
def masks_at(model: nn.Module, sparsity: float | dict[str, float] = LAYER_SPARSITY) -> dict[str, torch.Tensor]:
    """Keep-masks (True = kept) by parameter name that the pruning above gives on the model's current
    weights, at ``sparsity`` in every layer (or one fraction per layer, as LAYER_SPARSITY); computed
    on copies, so the model is left as it is."""
    layer_sparsity = sparsity if isinstance(sparsity, dict) else dict.fromkeys(LAYER_SPARSITY, sparsity)
    holders = _holders(dict(model.named_parameters()))
    _prune(holders, layer_sparsity)
    return _masks_of(holders)
'''

_MASKS_AT_NM = '''
def masks_at(model: nn.Module, sparsity: float | None = None) -> dict[str, torch.Tensor]:
    """Keep-masks (True = kept) by parameter name that the N:M pruning above gives on the model's
    current weights (a fixed pattern: ``sparsity`` is not used); computed on copies, so the model is
    left as it is."""
    holders = _holders(dict(model.named_parameters()))
    _prune(holders)
    return _masks_of(holders)
'''

_FINETUNE = '''
def _combine(previous: dict[str, torch.Tensor] | None, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``masks`` that also keep pruned what ``previous`` pruned: a pruned weight stays pruned."""
    if previous is None:
        return dict(masks)
    return {name: mask & previous[name] if name in previous else mask for name, mask in masks.items()}


def _zero_pruned(params: dict[str, nn.Parameter], masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)


def finetune(
    model: nn.Module,
    masks: dict[str, torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int = EPOCHS,
    on_step=None,
    max_steps: int | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``X``, ``y`` for ``epochs`` epochs with its pruned weights held at
    zero; return it in eval mode.

    Every epoch visits the samples in an order drawn from one generator seeded with SHUFFLE_SEED, in
    mini-batches of BATCH_SIZE, minimising the cross-entropy. Before each optimiser step the gradients
    of pruned weights are zeroed, and after it the masks are applied again (momentum and weight decay
    would otherwise move a zero). ``on_step(step)``, if given, is called before every step and may
    return new masks, used from then on (gradual pruning); ``max_steps`` stops training early.
    """
    params = dict(model.named_parameters())
    @OPTIMIZER@
    generator = torch.Generator().manual_seed(SHUFFLE_SEED)
    loss_fn = nn.CrossEntropyLoss()
    _zero_pruned(params, masks)
    model.train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), BATCH_SIZE):
            if max_steps is not None and step >= max_steps:
                return model.eval()
            if on_step is not None:
                new_masks = on_step(step)
                if new_masks is not None:
                    masks = dict(new_masks)
                    _zero_pruned(params, masks)
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(X[batch]), y[batch]).backward()
            with torch.no_grad():
                for name, mask in masks.items():
                    if params[name].grad is not None:
                        params[name].grad.mul_(mask)
            optimizer.step()
            _zero_pruned(params, masks)
            step += 1
    return model.eval()
'''

_ADAM = "optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)"
_SGD = "optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)"

_ONESHOT = '''
def run_schedule(model: nn.Module, X_train: torch.Tensor, y_train: torch.Tensor) -> dict[str, torch.Tensor]:
    """One-shot: prune the trained weights once, then fine-tune with the pruned weights held at zero.
    Returns the masks."""
    masks = masks_at(model)
    finetune(model, masks, X_train, y_train)
    return masks
'''

_ROUND_SPARSITIES = '''
def round_sparsities(target: float, rounds: int) -> list[float]:
    """The sparsity after each round when every round prunes the same fraction of the weights that remain."""
    keep = (1.0 - target) ** (1.0 / rounds)
    return [1.0 - keep**i for i in range(1, rounds + 1)]
'''

_ITERATIVE = '''
def run_schedule(model: nn.Module, X_train: torch.Tensor, y_train: torch.Tensor) -> dict[str, torch.Tensor]:
    """Iterative pruning: ROUNDS rounds, each pruning the current weights to the round's sparsity (a
    pruned weight stays pruned), then fine-tuning. Returns the masks."""
    masks = None
    for sparsity in round_sparsities(SPARSITY, ROUNDS):
        masks = _combine(masks, masks_at(model, sparsity))
        finetune(model, masks, X_train, y_train)
    return masks
'''

_REWIND = '''
def rewind_weights(
    model: nn.Module, init_state: dict[str, torch.Tensor], X_train: torch.Tensor, y_train: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The weights after REWIND_ITERATION steps of dense training from ``init_state``, with the same
    settings as the fine-tuning; the model's own weights are put back afterwards."""
    trained = {name: value.detach().clone() for name, value in model.state_dict().items()}
    model.load_state_dict(init_state)
    steps_per_epoch = -(-len(X_train) // BATCH_SIZE)
    epochs = -(-REWIND_ITERATION // steps_per_epoch)
    finetune(model, {}, X_train, y_train, epochs=epochs, max_steps=REWIND_ITERATION)
    rewound = {name: value.detach().clone() for name, value in model.state_dict().items()}
    model.load_state_dict(trained)
    return rewound
'''

_LOTTERY = '''
def run_schedule(
    model: nn.Module, X_train: torch.Tensor, y_train: torch.Tensor, init_state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Lottery ticket: ROUNDS rounds, each pruning the current weights to the round's sparsity (a
    pruned weight stays pruned), then rewinding every weight to ``rewind_state`` and training.
    Returns the masks."""
    @REWIND_STATE@
    masks = None
    for sparsity in round_sparsities(SPARSITY, ROUNDS):
        masks = _combine(masks, masks_at(model, sparsity))
        model.load_state_dict(rewind_state)  # finetune then zeroes the pruned weights
        finetune(model, masks, X_train, y_train)
    return masks
'''

_GRADUAL = '''
def zhu_gupta_sparsity(step: int, every: int) -> float:
    """The sparsity at optimiser ``step`` when it rises every ``every`` steps (Zhu & Gupta 2017):
    SPARSITY + (INITIAL_SPARSITY - SPARSITY) * (1 - step / (PRUNING_STEPS * every)) ** 3, then constant."""
    if step <= 0:
        return INITIAL_SPARSITY
    progress = min(1.0, step / (PRUNING_STEPS * every))
    return SPARSITY + (INITIAL_SPARSITY - SPARSITY) * (1.0 - progress) ** 3


def run_schedule(model: nn.Module, X_train: torch.Tensor, y_train: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradual pruning: while training, prune the current weights at steps 0, every, ..., PRUNING_STEPS *
    every (about three quarters into training; a pruned weight stays pruned), then once more at exactly
    SPARSITY after training. Returns the masks."""
    total_steps = EPOCHS * -(-len(X_train) // BATCH_SIZE)
    every = max(1, int(0.75 * total_steps) // PRUNING_STEPS)
    masks = None

    def on_step(step: int) -> dict[str, torch.Tensor] | None:
        nonlocal masks
        if step % every or step // every > PRUNING_STEPS:
            return None
        masks = _combine(masks, masks_at(model, zhu_gupta_sparsity(step, every)))
        return masks

    finetune(model, {}, X_train, y_train, on_step=on_step)
    return _combine(masks, masks_at(model, SPARSITY))  # land exactly on the target
'''

_TRAINING_API = '''
NEEDS_THE_MODEL = (
    f"this recipe trains ({SCHEDULE_LABEL}), and training needs the model's forward pass, which a state dict "
    "does not carry: apply it from Python with apply_pruning(model, X_train, y_train@INIT@)"
)


def apply_pruning(
    model: nn.Module,
    X_train: torch.Tensor | None = None,
    y_train: torch.Tensor | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Prune and fine-tune ``model`` (a MODEL with its trained weights) in place as the recipe's
    schedule says, on the training split ``X_train``, ``y_train``; make the pruning permanent with
    torch.nn.utils.prune; return the model. @INIT_DOC@"""
    modules = dict(model.named_modules())
    _check({name: _parameter(modules, name) for name in SHAPES}, "the model")
    if X_train is None or y_train is None:
        raise ValueError(
            f"this recipe fine-tunes the model ({SCHEDULE_LABEL}): apply_pruning needs the training split "
            "it was fine-tuned on, apply_pruning(model, X_train, y_train@INIT@)"
        )
    if len(X_train) != len(y_train):
        raise ValueError(f"X_train has {len(X_train)} samples but y_train has {len(y_train)}")
@CHECK_INIT@    masks = run_schedule(model, X_train, y_train@INIT@)
    for name, mask in masks.items():
        path, _, attr = name.rpartition(".")
        prune.custom_from_mask(modules[path], attr, mask)  # the pruned weights are zero already
        prune.remove(modules[path], attr)  # weight = weight_orig * weight_mask, as a plain parameter again
    return model


def prune_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Not for this recipe: it trains, which a state dict alone cannot (raises ValueError)."""
    raise ValueError(NEEDS_THE_MODEL)


def _error(message: str) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Prune a {MODEL} as a PruneLab recipe describes.")
    parser.add_argument("--weights", required=True, metavar="IN.safetensors", help=f"trained weights of a {MODEL}")
    parser.add_argument("--out", required=True, metavar="OUT.safetensors", help="where to write the pruned weights")
    parser.add_argument(
        "--train-data", metavar="TRAIN.safetensors", help="the training split: tensors named X_train and y_train"
    )
@INIT_ARG@    parser.parse_args(argv)
    # Training needs the model's forward pass, which a state dict does not carry: see NEEDS_THE_MODEL.
    return _error(NEEDS_THE_MODEL)


if __name__ == "__main__":
    sys.exit(main())
'''

_CHECK_INIT = """    if init_state is None:
        raise ValueError(
            "the lottery schedule rewinds the weights to those the model was initialised with: "
            "apply_pruning(model, X_train, y_train, init_state)"
        )
"""

_INIT_ARG = """    parser.add_argument(
        "--init-weights", metavar="INIT.safetensors", help="the weights the model was initialised with (lottery)"
    )
"""


def _method_code(plan: _Plan) -> str:
    scope = plan.recipe.scope
    if plan.kind == "magnitude":
        return _MAGNITUDE_GLOBAL if scope == "global" else _MAGNITUDE_LAYERWISE
    if plan.kind == "random":
        return _LOWEST_K + "\n" + _RANDOM_SCORES + "\n" + (_RANDOM_GLOBAL if scope == "global" else _RANDOM_LAYERWISE)
    if plan.kind == "structured":
        return _LINKED + "\n" + (_STRUCTURED_GLOBAL if scope == "global" else _STRUCTURED_LAYERWISE)
    return _NM


def _training_code(plan: _Plan) -> str:
    """masks_at, the masked training loop, the schedule and the API of a recipe that trains."""
    schedule = plan.schedule
    if plan.kind == "nm":
        masks_at = _MASKS_AT_NM
    else:
        masks_at = _MASKS_AT_GLOBAL if plan.sparsity is not None else _MASKS_AT_LAYERWISE
    finetune = _FINETUNE.replace("@OPTIMIZER@", _SGD if schedule.finetune.optimizer == "sgd" else _ADAM)
    if schedule.kind == "oneshot":
        steps = [_ONESHOT]
    elif schedule.kind == "gradual":
        steps = [_GRADUAL]
    elif schedule.kind == "iterative":
        steps = [_ROUND_SPARSITIES, _ITERATIVE]
    else:
        rewinds = schedule.rewind_iteration > 0
        lottery = _LOTTERY.replace(
            "@REWIND_STATE@",
            "rewind_state = rewind_weights(model, init_state, X_train, y_train)"
            if rewinds
            else "rewind_state = init_state  # the weights the model was initialised with",
        )
        steps = [_ROUND_SPARSITIES] + ([_REWIND] if rewinds else []) + [lottery]
    lottery = schedule.kind == "lottery"
    api = (
        _TRAINING_API.replace("@INIT@", ", init_state" if lottery else "")
        .replace("@CHECK_INIT@", _CHECK_INIT if lottery else "")
        .replace("@INIT_ARG@", _INIT_ARG if lottery else "")
        .replace(
            "@INIT_DOC@",
            "``init_state`` is the state dict the model was\n    initialised with, before training: the lottery rewinds to it."
            if lottery
            else "``init_state`` is not used.",
        )
    )
    return "\n".join([_MASKS_OF, masks_at, finetune, *steps, api])


def generate_script(recipe: Recipe) -> str:
    """The source of a standalone script applying ``recipe`` with torch.nn.utils.prune (see module doc).

    Raises ValueError for a recipe the engine would refuse (unknown layers, bad sparsity, a model
    that is not a sample) or a method without a script. A recipe that trains (fine-tuning or a
    multi-step schedule) gives a script whose ``apply_pruning`` runs the schedule on the training split.
    """
    plan = _plan(recipe)
    if plan.schedule is None:
        imports, tail = _IMPORTS, _HELPERS + "\n" + _PLAIN_API
    else:
        imports = _IMPORTS.replace("from pathlib import Path\n", "")
        tail = _HELPERS + "\n" + _training_code(plan)
    if plan.dataflow:
        imports = imports.replace("import argparse\n", "import argparse\nimport math\n")
    return (
        _docstring(plan)
        + imports
        + "\n"
        + _constants(plan)
        + "\n"
        + _method_code(plan)
        + "\n"
        + tail.replace("a MODEL", f"a {recipe.model}")
    )
