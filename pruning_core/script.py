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

import torch

from pruning_core import graph
from pruning_core.masks import check_scope, check_sparsity, per_layer_sparsities
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
    p: int | None = None  # structured norm
    n_m: tuple[int, int] | None = None  # N:M


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
    with torch.random.fork_rng(devices=[]):  # building initialises weights; leave the caller's RNG alone
        model = sample_models.get_spec(recipe.model).build()
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
    else:
        plan.sparsity = check_sparsity(recipe.sparsity)
    if kind == "nm":  # a fixed pattern: the sparsity was checked (as the engine does) but is not used
        plan.sparsity = plan.layer_sparsity = None
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
    return f"sparsity {recipe.sparsity:g}"


def _docstring(plan: _Plan) -> str:
    from pruning_core import __version__

    recipe = plan.recipe
    module = "prune_" + recipe.model.replace("-", "_")
    exclude = f", excluding {', '.join(recipe.exclude)}" if recipe.exclude else ""
    seed = f", seed {recipe.seed}" if plan.kind == "random" else ""
    summary = textwrap.fill(
        f"Recipe: model {recipe.model}, method {recipe.method}, scope {recipe.scope}, "
        f"{_sparsity_text(plan)}{exclude}{seed}. {plan.description}",
        width=100,
        break_long_words=False,
        break_on_hyphens=False,
    )
    about = (
        f"Generated by PruneLab {__version__}. The pruning is applied with torch.nn.utils.prune, then made "
        "permanent with prune.remove, so the result is a plain model (no weight_orig/weight_mask) whose pruned "
        "entries are zero; the masks equal PruneLab's element for element."
    )
    if plan.kind == "magnitude" or (plan.kind == "structured" and recipe.scope != "global"):
        about += (
            " (Only where weights or neurons tie exactly at the cut-off, which trained float weights do not, "
            "may torch.nn.utils.prune pick other ones of the tied than PruneLab; the counts always agree.)"
        )
    about += " It needs only torch (and safetensors to read and write weight files), not PruneLab."
    about = textwrap.fill(about, width=100, break_long_words=False, break_on_hyphens=False)
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


_IMPORTS = """
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune
"""


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
            f"# In every group of M_GROUP consecutive input weights, keep the N_KEEP largest |w|.\n"
            f"N_KEEP = {n}\nM_GROUP = {m}\n"
        )
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
def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """Global magnitude pruning: the round(SPARSITY * N) smallest |w| of all N target weights together."""
    params = [(modules[layer], "weight") for layer in TARGET_LAYERS]
    total = sum(module.weight.numel() for module, _ in params)
    # An integer amount, so the count is rounded exactly as PruneLab rounds it.
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=round(SPARSITY * total))
    return params
'''

_MAGNITUDE_LAYERWISE = '''
def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """Magnitude pruning layer by layer: the round(s * n) smallest |w| of each layer's n weights."""
    params = []
    for layer in TARGET_LAYERS:
        module = modules[layer]
        # An integer amount, so the count is rounded exactly as PruneLab rounds it.
        prune.l1_unstructured(module, "weight", amount=round(LAYER_SPARSITY[layer] * module.weight.numel()))
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
def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """Random pruning, global: the round(SPARSITY * N) lowest random scores of all N target weights."""
    scores = _random_scores(modules)
    masks = _lowest_k_kept(scores, round(SPARSITY * sum(s.numel() for s in scores)))
    params = []
    for layer, mask in zip(TARGET_LAYERS, masks):
        prune.custom_from_mask(modules[layer], "weight", mask)
        params.append((modules[layer], "weight"))
    return params
'''

_RANDOM_LAYERWISE = '''
def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """Random pruning layer by layer: the round(s * n) lowest random scores of each layer's n weights."""
    params = []
    for layer, scores in zip(TARGET_LAYERS, _random_scores(modules)):
        (mask,) = _lowest_k_kept([scores], round(LAYER_SPARSITY[layer] * scores.numel()))
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
def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """Structured pruning layer by layer: the k neurons with the smallest L_p norm of their weights."""
    params = []
    for layer in PRUNED_LAYERS:
        module = modules[layer]
        channels = module.weight.shape[0]
        # An integer amount rounded as PruneLab rounds it; at least one neuron stays in every layer.
        k = min(round(LAYER_SPARSITY[layer] * channels), channels - 1)
        prune.ln_structured(module, "weight", amount=k, n=NORM_P, dim=0)
        params.append((module, "weight"))
        params += _prune_linked(modules, layer, module.weight_mask.flatten(1).any(dim=1))
    return params
'''

_STRUCTURED_GLOBAL = '''
def _kept_neurons(modules: dict[str, nn.Module]) -> list[torch.Tensor]:
    """PruneLab's global structured ranking: neurons of all layers ranked together by their L_p norm
    over their layer's mean norm, pruned lowest first while the pruned weights fit the budget of
    round(SPARSITY * N) weights, and never the last neuron of a layer."""
    weights = [modules[layer].weight.detach() for layer in PRUNED_LAYERS]
    norms = [torch.norm(w, p=NORM_P, dim=tuple(range(1, w.dim()))) for w in weights]
    normalised = [s / s.mean().clamp_min(1e-12) for s in norms]
    sizes = [w[0].numel() for w in weights]
    budget = round(SPARSITY * sum(size * s.numel() for size, s in zip(sizes, normalised)))
    candidates = sorted(
        (float(score), index, channel)
        for index, scores in enumerate(normalised)
        for channel, score in enumerate(scores.tolist())
    )
    kept = [torch.ones(s.numel(), dtype=torch.bool) for s in normalised]
    remaining = [s.numel() for s in normalised]
    pruned = 0
    for _, index, channel in candidates:
        if pruned + sizes[index] > budget or remaining[index] == 1:
            continue
        kept[index][channel] = False
        remaining[index] -= 1
        pruned += sizes[index]
    return kept


def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """Structured pruning, global: whole neurons chosen by the ranking above."""
    params = []
    for layer, keep in zip(PRUNED_LAYERS, _kept_neurons(modules)):
        module = modules[layer]
        mask = keep.reshape((-1,) + (1,) * (module.weight.dim() - 1)).expand_as(module.weight)
        prune.custom_from_mask(module, "weight", mask)
        params.append((module, "weight"))
        params += _prune_linked(modules, layer, keep)
    return params
'''

_NM = '''
def _nm_kept(weight: torch.Tensor) -> torch.Tensor:
    """Keep-mask of the N_KEEP largest |w| in every group of M_GROUP consecutive input weights of each
    output neuron (a short last group keeps min(N_KEEP, its length))."""
    scores = weight.detach().abs()
    rows = scores.reshape(scores.shape[0], -1)
    pad = (-rows.shape[1]) % M_GROUP
    padded = torch.nn.functional.pad(rows, (0, pad), value=-1.0).reshape(rows.shape[0], -1, M_GROUP)
    keep = torch.zeros_like(padded, dtype=torch.bool)
    keep.scatter_(2, padded.topk(N_KEEP, dim=2).indices, True)
    return keep.reshape(rows.shape[0], -1)[:, : rows.shape[1]].reshape(scores.shape)


def _prune(modules: dict[str, nn.Module]) -> list[tuple[nn.Module, str]]:
    """N:M pruning of every target layer."""
    params = []
    for layer in TARGET_LAYERS:
        module = modules[layer]
        prune.custom_from_mask(module, "weight", _nm_kept(module.weight))
        params.append((module, "weight"))
    return params
'''

_COMMON = '''
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


def apply_pruning(model: nn.Module) -> nn.Module:
    """Prune ``model`` (a MODEL) in place with torch.nn.utils.prune, make it permanent, return it."""
    modules = dict(model.named_modules())
    _check({name: _parameter(modules, name) for name in SHAPES}, "the model")
    for module, name in _prune(modules):
        prune.remove(module, name)  # weight = weight_orig * weight_mask, as a plain parameter again
    return model


def prune_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same pruning applied to a state dict of a MODEL: a new dict, other entries copied unchanged."""
    _check({name: state.get(name) for name in SHAPES}, "the state dict")
    holders: dict[str, nn.Module] = {}  # one tiny module per layer, holding just the parameters pruned
    for name in SHAPES:
        path, _, attr = name.rpartition(".")
        setattr(holders.setdefault(path, nn.Module()), attr, nn.Parameter(state[name].detach().clone()))
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


def _method_code(plan: _Plan) -> str:
    scope = plan.recipe.scope
    if plan.kind == "magnitude":
        return _MAGNITUDE_GLOBAL if scope == "global" else _MAGNITUDE_LAYERWISE
    if plan.kind == "random":
        return _LOWEST_K + "\n" + _RANDOM_SCORES + "\n" + (_RANDOM_GLOBAL if scope == "global" else _RANDOM_LAYERWISE)
    if plan.kind == "structured":
        return _LINKED + "\n" + (_STRUCTURED_GLOBAL if scope == "global" else _STRUCTURED_LAYERWISE)
    return _NM


def generate_script(recipe: Recipe) -> str:
    """The source of a standalone script applying ``recipe`` with torch.nn.utils.prune (see module doc).

    Raises ValueError for a recipe the engine would refuse (unknown layers, bad sparsity, a model
    that is not a sample) or a method without a script.
    """
    plan = _plan(recipe)
    return (
        _docstring(plan)
        + _IMPORTS
        + "\n"
        + _constants(plan)
        + "\n"
        + _method_code(plan)
        + "\n"
        + _COMMON.replace("a MODEL", f"a {recipe.model}")
    )
