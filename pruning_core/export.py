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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

import sample_models
from pruning_core.masks import apply_masks, compute_masks
from pruning_core.recipe import Recipe, provenance
from pruning_core.schedules import run_schedule
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


def measure(recipe: Recipe) -> dict[str, Any]:
    """The sweep row of exactly this recipe (schedule and fine-tuning included): accuracy,
    sparsity, sizes, multiply-adds."""
    sample = sample_models.load_sample(recipe.model)
    table = sweep(
        sample.model,
        sample.data,
        [recipe.method],
        [recipe.sparsity_argument],
        scope=recipe.scope,
        exclude=recipe.exclude,
        seed=recipe.seed,
        schedule=recipe.schedule_object if recipe.trains else None,
        init_state=sample_models.initial_state(recipe.model),
    )
    row = table.iloc[0]
    return {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in RECORDED_METRICS}


def make_recipe(
    model: str,
    method: str,
    scope: str = "global",
    sparsity: float | dict[str, float] = 0.5,
    exclude: tuple[str, ...] | list[str] = (),
    seed: int = 0,
    metrics: dict[str, Any] | None = None,
    schedule=None,
) -> Recipe:
    """A recipe for this choice (a ``Schedule`` optional) with provenance; the metrics are
    measured unless given."""
    from pruning_core.methods import get_method

    method_obj = get_method(method)
    if method_obj.fixed_sparsity is not None:
        scope, sparsity = "layerwise", method_obj.fixed_sparsity
    per_layer = isinstance(sparsity, dict)
    recipe = Recipe(
        model=model,
        method=method_obj.name,
        scope="per-layer" if per_layer else scope,
        sparsity=0.0 if per_layer else float(sparsity),
        layer_sparsities=dict(sparsity) if per_layer else None,
        exclude=tuple(exclude),
        seed=int(seed),
        schedule=None if schedule is None else {k: v for k, v in schedule.to_dict().items() if k != "finetune"},
        finetune=None if schedule is None or schedule.finetune is None else schedule.finetune.to_dict(),
    )
    if metrics is None:
        metrics = measure(recipe)
    return Recipe(
        **{**recipe.__dict__, "provenance": provenance({k: metrics[k] for k in RECORDED_METRICS if k in metrics})}
    )


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
    """Prune the recipe's sample model as it says, measure it, and shrink it when structured."""
    sample = sample_models.load_sample(recipe.model)
    if recipe.trains:
        result = run_schedule(
            sample.model, sample.data.X_train, sample.data.y_train, recipe.method, recipe.scope,
            recipe.sparsity_argument, recipe.schedule_object, exclude=recipe.exclude, seed=recipe.seed,
            init_state=sample_models.initial_state(recipe.model),
        )  # fmt: skip
        pruned, masks = result.model, result.masks
    else:
        masks = compute_masks(
            sample.model,
            recipe.method,
            recipe.scope,
            recipe.sparsity_argument,
            exclude=recipe.exclude,
            seed=recipe.seed,
        )
        pruned = apply_masks(sample.model, masks).eval()
    applied = AppliedRecipe(
        recipe=recipe,
        model=pruned,
        masks=masks,
        metrics=measure(recipe),
        example_input=sample.data.X_test,
    )
    if recipe.granularity == "structured":
        try:
            applied.shrunk = shrink(pruned, masks)
        except ValueError as exc:
            applied.notes.append(f"not shrunk physically: {exc}")
    return applied


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
