"""Taking a pruning choice away: recipes measured and applied, weights and ONNX files written.

Weights are saved as a plain safetensors state dict of the same architecture with the zeros in
place: no ``weight_orig``/``weight_mask`` pairs (they double the file) and no pickles (they can run
code). Structured methods also give the physically smaller model, as safetensors and as ONNX
checked with onnxruntime against PyTorch's outputs.
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
from pruning_core.recipe import Recipe, provenance
from pruning_core.schedules import Schedule
from pruning_core.shrink import shrink
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


def measure_choice(model_name: str, choice: PruningChoice) -> dict[str, Any]:
    """The sweep row of exactly this choice on the sample ``model_name`` (schedule, fine-tuning and
    calibration included): accuracy, sparsity, sizes, multiply-adds."""
    sample = sample_models.load_sample(model_name)
    resolved, _ = choice.resolved()
    table = sweep(
        sample.model,
        sample.data,
        [resolved.method],
        [resolved.sparsity_argument],
        scope=resolved.scope,
        exclude=resolved.exclude,
        seed=resolved.seed,
        schedule=resolved.schedule if resolved.trains else None,
        calibration=resolved.calibration,
        init_state=sample_models.initial_state(model_name),
    )
    row = table.iloc[0]
    return {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in RECORDED_METRICS}


def measure(recipe: Recipe) -> dict[str, Any]:
    """The sweep row of exactly this recipe (schedule and fine-tuning included): accuracy,
    sparsity, sizes, multiply-adds."""
    return measure_choice(recipe.model, recipe.to_choice())


def recipe_for(
    model_name: str, choice: PruningChoice, metrics: Mapping[str, Any] | None = None
) -> tuple[Recipe, list[str]]:
    """The recipe of ``choice`` resolved (what is applied is what is recorded) with provenance, and
    the notes on how the request was adjusted; the metrics are measured unless given."""
    resolved, notes = choice.resolved()
    if metrics is None:
        metrics = measure_choice(model_name, resolved)
    recorded = {k: metrics[k] for k in RECORDED_METRICS if k in metrics}
    return Recipe.from_choice(model_name, resolved, provenance=provenance(recorded)), notes


def make_recipe(
    model: str,
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
    common = {
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
    example_input: torch.Tensor
    shrunk: nn.Module | None = None
    notes: list[str] = field(default_factory=list)


def apply_recipe(recipe: Recipe) -> AppliedRecipe:
    """Prune the recipe's sample model as it says (through ``apply_choice``, with the recipe's
    calibration samples), measure it, and shrink it when structured."""
    sample = sample_models.load_sample(recipe.model)
    applied = apply_choice(
        sample.model, sample.data, recipe.to_choice(), init_state=sample_models.initial_state(recipe.model)
    )
    result = AppliedRecipe(
        recipe=recipe,
        model=applied.model,
        masks=applied.masks,
        metrics=measure_choice(recipe.model, applied.choice),
        example_input=sample.data.X_test,
        notes=list(applied.notes),
    )
    if recipe.granularity == "structured":
        try:
            result.shrunk = shrink(applied.model, applied.masks)
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
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return buffer.getvalue()


def onnx_max_difference(onnx_model: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs on ``x``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    with torch.inference_mode():
        torch_out = model.eval()(x).numpy()
    return float(abs(onnx_out - torch_out).max())


def write_outputs(applied: AppliedRecipe, out_dir: str | Path) -> dict[str, Any]:
    """Write pruned.safetensors, report.json and, for structured methods, shrunk.safetensors and
    model.onnx into ``out_dir``; return the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}
    weights = state_dict_bytes(applied.model)
    (out / "pruned.safetensors").write_bytes(weights)
    files["pruned.safetensors"] = len(weights)
    report: dict[str, Any] = {
        "recipe": applied.recipe.to_dict(),
        "measured": applied.metrics,
        "pruned_safetensors_gzip_bytes": gzip_size(weights),
    }
    recorded = applied.recipe.provenance.get("metrics", {})
    if recorded:
        report["recorded"] = recorded
        report["matches_recorded"] = all(
            abs(float(applied.metrics[k]) - float(v)) <= 1e-9 * max(1.0, abs(float(v)))
            for k, v in recorded.items()
            if k in applied.metrics and isinstance(v, int | float)
        )
    if applied.shrunk is not None:
        small = state_dict_bytes(applied.shrunk)
        (out / "shrunk.safetensors").write_bytes(small)
        files["shrunk.safetensors"] = len(small)
        model_onnx = onnx_bytes(applied.shrunk, applied.example_input)
        (out / "model.onnx").write_bytes(model_onnx)
        files["model.onnx"] = len(model_onnx)
        report["shrunk_params"] = sum(p.numel() for p in applied.shrunk.parameters())
        report["shrunk_shapes"] = {
            name: list(module.weight.shape)
            for name, module in applied.shrunk.named_modules()
            if hasattr(module, "weight") and isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)
        }
        report["onnx_max_abs_difference"] = onnx_max_difference(model_onnx, applied.shrunk, applied.example_input)
    report["files_bytes"] = files
    report["notes"] = applied.notes
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
