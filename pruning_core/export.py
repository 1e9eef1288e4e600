"""Taking a pruning choice away: recipes measured and applied, weights and ONNX files written.

Weights are saved as a plain safetensors state dict of the same architecture with the zeros in
place: no ``weight_orig``/``weight_mask`` pairs (they double the file) and no pickles (they can run
code). Structured methods also give the physically smaller model, as safetensors and as ONNX
checked with onnxruntime against PyTorch's outputs.

A user's own model (``pruning_core.loaders.OwnModel``) goes the same way: a recipe records its
file's format and SHA-256 (never a path), applying checks the file given is that one, and the pruned
weights are written in the user's format: an ONNX model as the user's own graph with the pruned
tensors written into it (checked with onnxruntime), a state dict as safetensors with the user's keys.
Without data, data-free methods still prune; only the size metrics are measured then.
"""

from __future__ import annotations

import gzip
import io
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

import sample_models
from pruning_core.apply import apply_choice
from pruning_core.choice import Calibration, PruningChoice
from pruning_core.loaders.own import NO_LOTTERY, OwnModel
from pruning_core.recipe import OWN_MODEL, Recipe, provenance, source_problems
from pruning_core.schedules import Schedule
from pruning_core.shrink import shrink_with_notes
from pruning_core.sweep import sweep

RECORDED_METRICS = (
    "accuracy",
    "loss",
    "f1",
    "actual_sparsity",
    "effective_sparsity",
    "sparsity_all_params",
    "nonzero_params",
    "effective_params",
    "total_params",
    "dense_bytes",
    "sparse_bytes",
    "effective_sparse_bytes",
    "compression_ratio",
    "theoretical_speedup",
)


def measure_choice(model: str | OwnModel, choice: PruningChoice) -> dict[str, Any]:
    """The sweep row of exactly this choice on the sample named ``model`` or a user's model
    (schedule, fine-tuning and calibration included): accuracy, sparsity, sizes, multiply-adds.
    A user's model without data gets the size metrics only (see :func:`size_only_metrics`)."""
    resolved, _ = choice.resolved()
    if isinstance(model, OwnModel):
        refuse_lottery(resolved)
        if model.split is None:
            return size_only_metrics(model.model, resolved)
        network, data, init_state = model.model, model.split, None
    else:
        sample = sample_models.load_sample(model)
        network, data, init_state = sample.model, sample.data, sample_models.initial_state(model)
    table = sweep(
        network,
        data,
        [resolved.method],
        [resolved.sparsity_argument],
        scope=resolved.scope,
        exclude=resolved.exclude,
        seed=resolved.seed,
        schedule=resolved.schedule if resolved.trains else None,
        calibration=resolved.calibration,
        init_state=init_state,
    )
    row = table.iloc[0]
    return {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in RECORDED_METRICS}


def size_only_metrics(model: nn.Module, choice: PruningChoice) -> dict[str, Any]:
    """Sparsity, sizes and multiply-adds of a data-free ``choice`` on ``model`` (no accuracy: there
    is no data), as a sweep row would give them; the input shape is the model's declared one."""
    from pruning_core.dataflow import guess_input
    from pruning_core.effective import Dataflow, effective_counts
    from pruning_core.metrics import ModelProfile, nonzero_counts, size_metrics

    resolved, _ = choice.resolved()
    if resolved.trains or resolved.method_object.needs_data:
        raise ValueError(data_needed(resolved))
    applied = apply_choice(model, None, resolved)
    params = dict(applied.model.named_parameters())
    example = guess_input(model)
    if example is None:
        raise ValueError("the model's input shape is unknown (its file does not declare it): give data")
    profile = ModelProfile.of(model, example)
    counts = effective_counts(Dataflow.of(model), params)
    metrics = size_metrics(profile, nonzero_counts({n: params[n] for n in applied.masks}), counts)
    return {name: metrics[name] for name in RECORDED_METRICS if name in metrics}


def refuse_lottery(choice: PruningChoice) -> None:
    """Refuse the lottery schedule for a user's model (ValueError): see ``NO_LOTTERY``."""
    if choice.trains and choice.schedule is not None and choice.schedule.kind == "lottery":
        raise ValueError(NO_LOTTERY)


def data_needed(choice: PruningChoice) -> str:
    """Why ``choice`` (resolved) cannot run without data, or "" when it can."""
    if choice.trains:
        label = choice.schedule.label if choice.schedule is not None else "training"
        return f"a schedule that trains ({label}) fine-tunes on the train split of your data"
    if choice.method_object.needs_data:
        return f"{choice.method} scores weights on calibration samples of the train split of your data"
    return ""


def measure(recipe: Recipe, own: OwnModel | None = None) -> dict[str, Any]:
    """The sweep row of exactly this recipe (schedule and fine-tuning included): accuracy,
    sparsity, sizes, multiply-adds; ``own`` is the user's model a recipe for one needs."""
    return measure_choice(own if recipe.is_own_model and own is not None else recipe.model, recipe.to_choice())


def recipe_for(
    model: str | OwnModel, choice: PruningChoice, metrics: Mapping[str, Any] | None = None
) -> tuple[Recipe, list[str]]:
    """The recipe of ``choice`` resolved (what is applied is what is recorded) with provenance, and
    the notes on how the request was adjusted; the metrics are measured unless given. For a user's
    model the recipe records its file's (and data's) format and SHA-256, never a path."""
    resolved, notes = choice.resolved()
    if metrics is None:
        metrics = measure_choice(model, resolved)
    recorded = provenance({k: metrics[k] for k in RECORDED_METRICS if k in metrics})
    if isinstance(model, OwnModel):
        refuse_lottery(resolved)
        recipe = Recipe.from_choice(
            OWN_MODEL, resolved, provenance=recorded, model_file=model.model_identity, data_file=model.data_identity
        )
        return recipe, notes
    return Recipe.from_choice(model, resolved, provenance=recorded), notes


def check_own_sources(recipe: Recipe, own: OwnModel) -> list[str]:
    """Refuse (ValueError) a model file that is not the one ``recipe`` was made for, data whose
    difference changes the pruning (the choice reads data), missing data the choice needs, and the
    lottery schedule; return a note when other data only changes what is measured."""
    if not recipe.is_own_model:
        raise ValueError(f"the recipe is for the sample model {recipe.model!r}, not for a model file")
    problems = source_problems(recipe, own.loaded.sha256)
    if problems:
        raise ValueError(problems[0])
    resolved, _ = recipe.to_choice().resolved()
    refuse_lottery(resolved)
    needed = data_needed(resolved)
    wanted = recipe.data_file or {}
    if own.data is None:
        if needed:
            made_with = f" (the recipe was made with a {wanted['format']} file, SHA-256 {wanted['sha256']})"
            raise ValueError(f"{needed}: give the data{made_with if wanted else ''}")
        return []
    different = source_problems(recipe, own.loaded.sha256, own.data.sha256)
    if not different:
        return []
    if needed:
        raise ValueError(f"{different[0]}; {needed}, so other data prunes differently")
    return [
        f"the data (SHA-256 {own.data.sha256[:12]}...) is not the recipe's ({wanted['sha256'][:12]}...): "
        "the pruned weights are the same, the measured metrics differ from the recorded ones"
    ]


def make_recipe(
    model: str | OwnModel,
    method: str,
    scope: str = "global",
    sparsity: float | dict[str, float] = 0.5,
    exclude: tuple[str, ...] | list[str] = (),
    seed: int = 0,
    metrics: dict[str, Any] | None = None,
    schedule: Schedule | None = None,
    calibration: Calibration | None = None,
) -> Recipe:
    """A recipe for this choice (a ``Schedule`` optional) with provenance; the metrics are
    measured unless given. See :func:`recipe_for` for the notes on adjustments."""
    common: dict[str, Any] = {
        "exclude": tuple(exclude),
        "seed": int(seed),
        "schedule": schedule if schedule is not None and schedule.finetune_epochs > 0 else None,
        "calibration": calibration if calibration is not None else Calibration(),
    }
    if isinstance(sparsity, Mapping):
        choice = PruningChoice.per_layer(method, sparsity, **common)
    else:
        choice = PruningChoice(method=method, scope=scope, sparsity=float(sparsity), **common)
    return recipe_for(model, choice, metrics)[0]


@dataclass
class AppliedRecipe:
    """A recipe carried out: the pruned model (zeros in place), its masks, and what was measured."""

    recipe: Recipe
    model: nn.Module
    masks: dict[str, torch.Tensor]
    metrics: dict[str, Any]
    example_input: torch.Tensor | None
    shrunk: nn.Module | None = None
    notes: list[str] = field(default_factory=list)
    own: OwnModel | None = None  # the user's model a recipe for one was applied to


def apply_recipe(recipe: Recipe, own: OwnModel | None = None) -> AppliedRecipe:
    """Prune the recipe's model as it says (through ``apply_choice``, with the recipe's
    calibration samples), measure it, and shrink it when structured. A recipe for a user's model
    needs that model as ``own`` (checked by SHA-256: see :func:`check_own_sources`)."""
    notes: list[str] = []
    if recipe.is_own_model or own is not None:
        if own is None:
            fmt = (recipe.model_file or {}).get("format", "")
            raise ValueError(f"the recipe is for your own {fmt} model file: load it (load_own) and pass it")
        notes = check_own_sources(recipe, own)
        model, data, init_state, example = own.model, own.split, None, own.example_input
    else:
        sample = sample_models.load_sample(recipe.model)
        model, data, example = sample.model, sample.data, sample.data.X_test
        init_state = sample_models.initial_state(recipe.model)
    applied = apply_choice(model, data, recipe.to_choice(), init_state=init_state)
    result = AppliedRecipe(
        recipe=recipe,
        model=applied.model,
        masks=applied.masks,
        metrics=measure_choice(own if own is not None else recipe.model, applied.choice),
        example_input=example,
        notes=notes + list(applied.notes),
        own=own,
    )
    if recipe.granularity == "structured":
        try:
            result.shrunk, left = shrink_with_notes(
                applied.model, applied.masks, None if example is None else example[:1]
            )
            result.notes += [f"not removed: {note}" for note in left]
        except ValueError as exc:
            result.notes.append(f"not shrunk physically: {exc}")
    return result


def state_dict_bytes(model: nn.Module) -> bytes:
    """The model's state dict as safetensors bytes (tensors copied so none share storage)."""
    return save({name: t.detach().clone().contiguous() for name, t in model.state_dict().items()})


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6))


def onnx_bytes(model: nn.Module, example_input: torch.Tensor) -> bytes:
    """The model as ONNX (opset 17) with a dynamic batch dimension."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter needs only torch and onnx; the newer torch.export-based
        # one needs onnxscript as well, which PruneLab does not otherwise use.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example_input[:2],),
            buffer,  # type: ignore[arg-type]  # a file-like object works; the stubs name paths only
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return buffer.getvalue()


def onnx_max_difference(onnx_model: bytes, model: nn.Module, x: torch.Tensor, output: str | None = None) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs on ``x``: the ONNX
    graph's first output, or the value named ``output`` (made an output of a copy when it is not one)."""
    import onnx
    import onnxruntime

    if output is not None:
        proto = onnx.load_from_string(onnx_model)
        if output not in {o.name for o in proto.graph.output}:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(output))
            onnx_model = proto.SerializeToString()
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run([output or session.get_outputs()[0].name], {session.get_inputs()[0].name: x.numpy()})
    with torch.inference_mode():
        torch_out = model.eval()(x).numpy()
    return float(abs(onnx_out - torch_out).max())


def write_outputs(applied: AppliedRecipe, out_dir: str | Path) -> dict[str, Any]:
    """Write pruned.safetensors, report.json and, for structured methods, shrunk.safetensors and
    model.onnx into ``out_dir``; return the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}
    report: dict[str, Any] = {"recipe": applied.recipe.to_dict(), "measured": applied.metrics}
    if applied.own is not None and applied.own.loaded.format == "onnx":
        _write_pruned_onnx(applied, out, files, report)
    else:
        weights = state_dict_bytes(applied.model)
        (out / "pruned.safetensors").write_bytes(weights)
        files["pruned.safetensors"] = len(weights)
        report["pruned_safetensors_gzip_bytes"] = gzip_size(weights)
    recorded = applied.recipe.provenance.get("metrics", {})
    if recorded:
        report["recorded"] = recorded
        report["matches_recorded"] = all(
            abs(float(applied.metrics[k]) - float(v)) <= 1e-9 * max(1.0, abs(float(v)))
            for k, v in recorded.items()
            if k in applied.metrics and isinstance(v, int | float)
        )
    if applied.shrunk is not None:
        _write_shrunk(applied, applied.shrunk, out, files, report)
    report["files_bytes"] = files
    report["notes"] = applied.notes
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _write_shrunk(
    applied: AppliedRecipe, shrunk: nn.Module, out: Path, files: dict[str, int], report: dict[str, Any]
) -> None:
    """``shrunk.safetensors`` and ``model.onnx``: the physically smaller model, its ONNX export
    checked with onnxruntime against PyTorch's outputs."""
    small = state_dict_bytes(shrunk)
    (out / "shrunk.safetensors").write_bytes(small)
    files["shrunk.safetensors"] = len(small)
    report["shrunk_params"] = sum(p.numel() for p in shrunk.parameters())
    report["shrunk_shapes"] = {
        name: list(module.weight.shape)
        for name, module in shrunk.named_modules()
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)
    }
    x = applied.example_input
    if x is None:
        applied.notes.append("model.onnx is not written: the model's input shape is unknown without data")
        return
    try:
        model_onnx = onnx_bytes(shrunk, x)
    except Exception as exc:  # a user's architecture the exporter cannot trace: say so, keep the rest
        applied.notes.append(f"model.onnx is not written: the ONNX export of the smaller model failed ({exc})")
        return
    (out / "model.onnx").write_bytes(model_onnx)
    files["model.onnx"] = len(model_onnx)
    report["onnx_max_abs_difference"] = onnx_max_difference(model_onnx, shrunk, x)


def _write_pruned_onnx(applied: AppliedRecipe, out: Path, files: dict[str, int], report: dict[str, Any]) -> None:
    """``pruned.onnx``: the user's own graph with the pruned tensors written in, and how far
    onnxruntime's outputs on it are from the pruned PyTorch model's (on up to 256 test inputs)."""
    assert applied.own is not None and applied.own.loaded.conversion is not None
    written = applied.own.loaded.pruned_onnx(applied.model)
    (out / "pruned.onnx").write_bytes(written)
    files["pruned.onnx"] = len(written)
    report["pruned_onnx_gzip_bytes"] = gzip_size(written)
    x = applied.example_input
    if x is not None and applied.own.data is None:  # one zero sample says little: seeded random inputs
        x = torch.randn((16, *x.shape[1:]), generator=torch.Generator().manual_seed(0))
    if x is not None:
        output = applied.own.loaded.conversion.output_name
        report["pruned_onnx_max_abs_difference"] = onnx_max_difference(written, applied.model, x[:256], output)
