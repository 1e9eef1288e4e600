"""A standalone script that applies exactly what a recipe describes, and the masks file beside it.

``generate_script(recipe)`` returns the source of a Python script that needs only torch (and
safetensors to read and write weight files), not PruneLab. The script is: a docstring saying what
the recipe does; ``SPEC``, the recipe's constants and what PruneLab knows of the architecture
(target layers, output layers, the bias and BatchNorm entries that go with each neuron, the
dataflow facts of the global structured ranking, parameter shapes); the text of
``pruning_core.kernels`` unmodified (the mask math the engine itself runs); and the text of
``pruning_core.script_driver`` (builds the masks with those kernels as ``MaskPlan`` does, runs the
schedule, applies the masks with ``prune.custom_from_mask`` and ``prune.remove``). No engine code is
rewritten into strings: the script runs the engine's own functions, so its masks equal the engine's
element for element, and a recipe that trains ends with the engine's weights bit for bit.

``generate_mask_file(recipe)`` returns the engine's masks for a recipe as a safetensors file (bool
tensors), for whoever cannot run a data-driven criterion (no calibration data): ``python
prune_it.py --weights IN --out OUT --masks masks.safetensors`` applies them as they are.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import math
import textwrap
from typing import Any

import torch

from pruning_core import allocation, graph, kernels, script_driver
from pruning_core.choice import Calibration
from pruning_core.effective import Dataflow
from pruning_core.masks import check_scope, check_sparsity, compute_masks, per_layer_sparsities
from pruning_core.methods import NMMagnitude, SynFlow, get_method
from pruning_core.methods import activation_watch as _activation_watch
from pruning_core.recipe import Recipe
from pruning_core.schedules import SCHEDULES
from pruning_core.targets import find_targets

__all__ = ["generate_mask_file", "generate_script", "script_spec"]

_LINE = 120  # the project's line length; embedded literals are laid out the way ruff format would
_ONLY_BEGIN = "# >>> PruneLab only"
_ONLY_END = "# <<< PruneLab only"


# --- what the script needs to know, computed from the recipe and the architecture -----------------------


def _calibration(recipe: Recipe) -> Calibration:
    """The recipe's calibration spec (a ``Calibration`` or its dict); a recipe without one reads the
    first 256 train samples, as the engine does."""
    spec = getattr(recipe, "calibration", None)
    return spec if isinstance(spec, Calibration) else Calibration.from_dict(spec)


def _schedule(recipe: Recipe):
    try:
        return recipe.schedule_object
    except TypeError as exc:  # an unknown key in the schedule or finetune mapping
        raise ValueError(f"schedule/finetune: {exc}") from None


def script_spec(recipe: Recipe) -> dict[str, Any]:
    """The ``SPEC`` a generated script carries: plain values only. Raises ValueError for what the
    engine refuses (unknown layers, bad sparsity, a model that is not a sample)."""
    import sample_models

    if recipe.is_own_model:
        raise ValueError(
            "a standalone script is written for the sample models only (it carries what PruneLab knows of "
            "their architecture); for your own model run `prunelab apply RECIPE --model-file PATH --out DIR`, "
            "which writes the pruned weights in your model's format"
        )
    if recipe.model not in sample_models.available():
        raise ValueError(
            f"a standalone script needs a sample model, not {recipe.model!r}; "
            f"valid: {', '.join(sample_models.available())}"
        )
    method = get_method(recipe.method)
    scope = check_scope(recipe.scope)
    schedule = _schedule(recipe)
    sample = sample_models.load_sample(recipe.model)  # read only: nothing here modifies it
    model, example = sample.model, sample.data.X_train[:1]
    targets = find_targets(model, recipe.exclude)
    order = [n for n, _ in model.named_modules()]
    outputs = sorted(graph.output_layers(model, example), key=order.index)
    norm_of = graph.norm_of(model, example)
    modules, params = dict(model.named_modules()), dict(model.named_parameters())
    scored = targets
    linked: dict[str, list[str]] = {}
    structured_layers: list[dict] = []
    widths: dict[str, int] = {}
    if method.granularity == "structured":
        scored = [t for t in targets if t.layer not in outputs]
        if not scored:
            raise ValueError("structured pruning needs a layer other than the output layer to prune")
        for t in scored:
            names = [f"{t.layer}.bias"] if getattr(t.module, "bias", None) is not None else []
            norm = norm_of.get(t.layer)
            if norm is not None:
                names += [f"{norm}.{p}" for p in ("weight", "bias") if getattr(modules[norm], p, None) is not None]
            linked[t.layer] = names
        flow = Dataflow.of(model)
        structured_layers = allocation.layer_descriptions(model, scored, flow)
        widths = {name: f.out_channels for name, f in flow.layers.items()}
    pruned = [t.layer for t in scored]
    layer_sparsity = None
    if scope == "per-layer":
        if not isinstance(recipe.layer_sparsities, dict) or not recipe.layer_sparsities:
            raise ValueError("scope 'per-layer' needs layer_sparsities: a mapping of layer name to fraction")
        layer_sparsity = dict(zip(pruned, per_layer_sparsities(scored, recipe.layer_sparsities), strict=True))
        sparsity = None
    else:
        sparsity = check_sparsity(recipe.sparsity)
    trains = recipe.trains
    if trains and schedule.kind != "oneshot" and scope == "per-layer":
        raise ValueError(f"schedule {schedule.kind!r} takes one overall sparsity, not a per-layer mapping")
    masked = [f"{t.layer}.weight" for t in targets] + [n for names in linked.values() for n in names]
    gammas = [f"{norm}.weight" for layer, norm in norm_of.items() if layer in pruned and f"{norm}.weight" in params]
    shapes = {name: list(params[name].shape) for name in dict.fromkeys(masked + gammas)}
    needs = ""
    if trains:
        needs = f"this recipe trains ({schedule.label}) on the training split"
    elif method.needs_data:
        needs = f"{method.name} scores weights on calibration samples of the training split"
    needs_model = (
        f"{'this recipe trains' if trains else method.name + ' runs the model'}, which a state dict cannot: "
        "apply a masks file (--masks masks.safetensors, from `python -m pruning_core script RECIPE --masks "
        "masks.safetensors`) or call apply_pruning(model, X_train, y_train) from Python"
    )
    return {
        "model": recipe.model,
        "method": method.name,
        "granularity": method.granularity,
        "scope": scope,
        "sparsity": sparsity,
        "layer_sparsity": layer_sparsity,
        "seed": recipe.seed,
        "p": getattr(method, "p", None),
        "n_m": [method.n, method.m] if isinstance(method, NMMagnitude) else None,
        "targets": [t.layer for t in targets],
        "pruned": pruned,
        "outputs": outputs,
        "linked": linked,
        "masked": masked,
        "shapes": shapes,
        "norm_of": {layer: norm for layer, norm in norm_of.items() if layer in pruned},
        "watch": [list(w) for w in _activation_watch(model, scored, example)] if method.needs_data else [],
        "input_shape": list(sample.data.X_train.shape[1:]),
        "structured_layers": structured_layers,
        "widths": widths,
        "total_weights": allocation.total_prunable_weights(model),
        "min_width_fraction": allocation.MIN_WIDTH_FRACTION,
        "cost_exponent": allocation.COST_EXPONENT,
        "synflow_rounds": SynFlow.rounds,
        "calibration": _calibration(recipe).to_dict(),
        "needs_data_because": needs,
        "needs_labels": trains or method.name == "taylor",
        "needs_model": needs_model,
        "schedule": schedule.to_dict() if trains else None,
    }


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


def _long_string(text: str, indent: int) -> str:
    """A string too long for one line, as implicitly concatenated pieces in parentheses."""
    pad = " " * (indent + 4)
    width = max(20, _LINE - len(pad) - 4)
    pieces, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(_inline(candidate)) > width:
            pieces.append(current + " ")
            current = word
        else:
            current = candidate
    pieces.append(current)
    lines = "".join(f"{pad}{_inline(piece)}\n" for piece in pieces)
    return f"(\n{lines}{' ' * indent})"


def _literal(value: Any, indent: int = 0, used: int = 0, expand_depth: int = 0) -> str:
    """``value`` as Python source; containers are expanded (one item a line, trailing comma) when
    they do not fit on the line, and dicts at the first ``expand_depth`` levels always."""
    inline = _inline(value)
    if isinstance(value, str) and indent + used + len(inline) + 1 > _LINE:
        return _long_string(value, indent)
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


# --- the script --------------------------------------------------------------------------------------


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def _module_text(module) -> str:
    """A module's source without the lines between the "PruneLab only" markers."""
    text = inspect.getsource(module)
    if _ONLY_BEGIN in text:
        start, end = text.index(_ONLY_BEGIN), text.index(_ONLY_END)
        text = text[:start] + text[text.index("\n", end) + 1 :]
    return text.strip("\n") + "\n"


def _sparsity_text(spec: dict[str, Any]) -> str:
    if spec["n_m"]:
        n, m = spec["n_m"]
        return f"the fixed {n}:{m} pattern ({1 - n / m:.0%} sparsity)"
    if spec["layer_sparsity"] is not None:
        listed = ", ".join(f"{layer} {s:g}" for layer, s in spec["layer_sparsity"].items() if s > 0)
        return f"per-layer sparsities {listed or 'all 0'} (other layers dense)"
    return f"sparsity {spec['sparsity']:g}"


def _docstring(recipe: Recipe, spec: dict[str, Any]) -> str:
    from pruning_core import __version__

    method = get_method(recipe.method)
    module = "prune_" + recipe.model.replace("-", "_")
    exclude = f", excluding {', '.join(recipe.exclude)}" if recipe.exclude else ""
    summary = _fill(
        f"Recipe: model {recipe.model}, method {method.name}, scope {recipe.scope}, {_sparsity_text(spec)}"
        f"{exclude}, seed {recipe.seed}. {method.description}"
    )
    schedule = _schedule(recipe)
    if spec["schedule"] is not None:
        ft = schedule.finetune
        summary += "\n\n" + _fill(
            f"Schedule: {schedule.label} ({SCHEDULES[schedule.kind].description}) Fine-tuning: {ft.optimizer}, "
            f"lr {ft.lr:g}, batches of {ft.batch_size} shuffled with seed {ft.seed}, on the training split only; "
            "pruned weights are held at zero."
        )
    calibration = spec["calibration"]
    data = ""
    if spec["needs_data_because"]:
        data = _fill(
            f"Data: {spec['needs_data_because']}. Pass the training split in its order, apply_pruning(model, "
            f"X_train, y_train); the calibration samples are the {calibration['order']} {calibration['samples']} "
            f"of it (order 'shuffled': drawn with seed {calibration['seed']}), inputs shaped "
            f"{tuple(spec['input_shape'])}. Without that data, apply the engine's masks instead: "
            "apply_pruning(model, masks=load_file('masks.safetensors')) or --masks on the command line."
        )
        data = "\n" + data + "\n"
    about = _fill(
        f"Generated by PruneLab {__version__}. Below: SPEC (the recipe and what PruneLab knows of the "
        "architecture), then PruneLab's own mask kernels (pruning_core/kernels.py, unmodified), then its "
        "driver (pruning_core/script_driver.py). Masks are applied with torch.nn.utils.prune.custom_from_mask "
        "and made permanent with prune.remove, so the result is a plain model whose pruned entries are zero; "
        "the masks equal PruneLab's element for element, and a recipe that trains ends with PruneLab's "
        "weights bit for bit on the same machine and torch version. It needs only torch (and safetensors for "
        "weight files), not PruneLab; it prints whether it computed the masks or applied a masks file."
    )
    return f'''"""Prune a {recipe.model} model exactly as a PruneLab recipe describes, with torch.nn.utils.prune.

{summary}
{data}
{about}

From Python (saved as {module}.py):

    from {module} import apply_pruning, prune_state_dict

    model = apply_pruning(model, X_train, y_train)  # pruned in place and returned (data: see above)
    state = prune_state_dict(state)  # or a state dict (data-free methods, or with masks=...)

From the command line:

    python {module}.py --weights dense.safetensors --out pruned.safetensors [--masks masks.safetensors]
"""
'''


def generate_script(recipe: Recipe) -> str:
    """The source of a standalone script applying ``recipe`` (see the module docstring).

    Raises ValueError for a recipe the engine would refuse (unknown layers, bad sparsity, a model
    that is not a sample)."""
    spec = script_spec(recipe)
    spec_text = "SPEC = " + _literal(_plain(spec), 0, len("SPEC = "), expand_depth=1) + "\n"
    return (
        _docstring(recipe, spec)
        + "# ruff: noqa: E402, I001 (the kernels and the driver are embedded as whole modules, imports and all)\n\n"
        + "# The recipe, and what PruneLab knows of the architecture.\n"
        + spec_text
        + "\n\n"
        + _module_text(kernels)
        + "\n\n"
        + _module_text(script_driver)
        + '\n\nif __name__ == "__main__":\n    sys.exit(main())\n'
    )


def generate_mask_file(recipe: Recipe) -> bytes:
    """The engine's masks for a one-shot ``recipe`` without fine-tuning, as safetensors bytes (one
    BOOL tensor per masked parameter; the metadata names the model, method and calibration), for
    ``--masks`` in the generated script. A recipe that trains has no such file: its weights, not
    only its masks, come from training."""
    from safetensors.torch import save

    import sample_models

    spec = script_spec(recipe)
    if spec["schedule"] is not None:
        raise ValueError("a masks file reproduces a recipe that does not train; this one trains: run its script")
    sample = sample_models.load_sample(recipe.model)
    calibration = Calibration.from_dict(spec["calibration"])
    X, y = calibration.select(sample.data.X_train, sample.data.y_train)
    masks = compute_masks(
        sample.model, recipe.method, recipe.scope, recipe.sparsity_argument, recipe.exclude, recipe.seed, X, y
    )
    metadata = {
        "format": "prunelab-masks",
        "model": recipe.model,
        "method": recipe.method,
        "calibration": json.dumps(spec["calibration"]),
    }
    return save({name: mask.to(torch.bool).contiguous() for name, mask in masks.items()}, metadata=metadata)
