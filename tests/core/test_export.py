"""Export: a recipe taken from the app's state reproduces the same masks and metrics; `apply`
writes weights with the recipe's sparsity that give the reported accuracy; ONNX matches PyTorch."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import pruning_core
import sample_models
from pruning_core.cli import main
from pruning_core.export import apply_recipe, make_recipe, measure, onnx_bytes, onnx_max_difference, write_outputs
from pruning_core.recipe import dumps, load, loads
from ui.config import ExplorerConfig

CHOICES = [
    ("digits-mlp", "magnitude", "global", 0.9, ()),
    ("digits-cnn", "structured-l1", "layerwise", 0.5, ()),
    ("mnist1d-cnn", "random", "layerwise", 0.6, ("fc1",)),
    ("cancer-mlp", "nm-2:4", "layerwise", 0.5, ()),
    ("moons-mlp", "structured-l2", "global", 0.7, ()),
]


@pytest.mark.parametrize("model, method, scope, sparsity, exclude", CHOICES)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_recipe_from_app_state_round_trips_to_identical_masks_and_metrics(model, method, scope, sparsity, exclude, fmt):
    config = ExplorerConfig(model=model, methods=(method,), scope=scope, exclude=exclude, seed=3)
    exported = make_recipe(config.model, method, config.scope, sparsity, config.exclude, config.seed)
    imported = loads(dumps(exported, fmt))
    assert imported == exported
    sample = sample_models.load_sample(model)
    before = pruning_core.compute_masks(
        sample.model,
        exported.method,
        exported.scope,
        exported.sparsity_argument,
        exclude=exported.exclude,
        seed=exported.seed,
    )
    after = pruning_core.compute_masks(
        sample.model,
        imported.method,
        imported.scope,
        imported.sparsity_argument,
        exclude=imported.exclude,
        seed=imported.seed,
    )
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert measure(imported) == exported.provenance["metrics"]


def test_recipe_records_provenance():
    recipe = make_recipe("digits-mlp", "magnitude", "global", 0.5)
    prov = recipe.provenance
    assert prov["torch_version"] == torch.__version__.split("+")[0]
    assert prov["prunelab_version"] == pruning_core.__version__
    assert 0.49 < prov["metrics"]["actual_sparsity"] < 0.51


@pytest.mark.parametrize("model, method, scope, sparsity, exclude", CHOICES)
def test_apply_writes_weights_with_the_recipes_sparsity_and_reported_accuracy(
    tmp_path, model, method, scope, sparsity, exclude
):
    recipe = make_recipe(model, method, scope, sparsity, exclude)
    report = write_outputs(apply_recipe(recipe), tmp_path)
    saved = load_file(tmp_path / "pruned.safetensors")
    assert not any(k.endswith(("_orig", "_mask")) for k in saved)
    sample = sample_models.load_sample(model)
    layers = pruning_core.prunable_layers(sample.model)
    zeros = sum(int((saved[f"{layer}.weight"] == 0).sum()) for layer in layers)
    total = sum(saved[f"{layer}.weight"].numel() for layer in layers)
    assert zeros / total == pytest.approx(report["measured"]["actual_sparsity"], abs=1e-12)
    fresh = sample_models.get_spec(model).build()
    fresh.load_state_dict(saved)
    accuracy = pruning_core.evaluate(fresh.eval(), sample.data.X_test, sample.data.y_test)["accuracy"]
    assert accuracy == pytest.approx(report["measured"]["accuracy"], abs=1e-12)
    assert report["matches_recorded"] is True
    assert json.loads((tmp_path / "report.json").read_text())["measured"] == report["measured"]
    structured = recipe.granularity == "structured"
    assert (tmp_path / "model.onnx").exists() == structured
    assert (tmp_path / "shrunk.safetensors").exists() == structured


@pytest.mark.parametrize("model", ["digits-mlp", "digits-cnn", "mnist1d-cnn"])
def test_onnx_of_the_shrunk_model_matches_pytorch_to_1e_4(model):
    recipe = make_recipe(model, "structured-l1", "layerwise", 0.5, metrics={})
    applied = apply_recipe(recipe)
    assert applied.shrunk is not None
    x = sample_models.load_sample(model).data.X_test
    assert onnx_max_difference(onnx_bytes(applied.shrunk, x), applied.shrunk, x) <= 1e-4


def test_cli_recipe_apply_and_sweep_from_recipe(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    assert (
        main(
            [
                "recipe",
                "--model",
                "digits-cnn",
                "--method",
                "structured-l2",
                "--scope",
                "layerwise",
                "--sparsity",
                "0.25",
                "--output",
                str(path),
            ]
        )
        == 0
    )
    recipe = load(path)
    assert (recipe.model, recipe.method, recipe.scope, recipe.sparsity) == (
        "digits-cnn",
        "structured-l2",
        "layerwise",
        0.25,
    )
    assert main(["apply", str(path), "--out", str(tmp_path / "out")]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "pruned.safetensors",
        "shrunk.safetensors",
        "model.onnx",
        "report.json",
    }
    capsys.readouterr()
    assert main(["sweep", "--recipe", str(path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["target_sparsity"] for r in rows] == [0.0, 0.25]
    assert {r["method"] for r in rows} == {"structured-l2"}


@pytest.mark.parametrize(
    "argv, named",
    [
        (["apply", "missing.yaml", "--out", "x"], "missing.yaml"),
        (["script", "missing.yaml"], "missing.yaml"),
        (["sweep", "--recipe", "missing.yaml"], "missing.yaml"),
        (["recipe", "--model", "digits-mlp", "--method", "magnitude", "--sparsity", "1.2"], "1.2"),
        (["recipe", "--model", "digits-mlp", "--method", "magnitude,random", "--sparsity", "0.5"], "one method"),
        (["recipe", "--model", "nope", "--method", "magnitude", "--sparsity", "0.5"], "nope"),
        (["recipe", "--model", "digits-mlp", "--method", "magnitude", "--sparsity", "0.5", "--format", "xml"], "xml"),
    ],
)
def test_cli_export_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, named):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and named in err[0]


def test_cli_refuses_a_bad_recipe_file_listing_its_problems(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 9\nmodel: {sample: nope}\npruning: {method: magnitude, sparsity: 3}\n")
    assert main(["apply", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "newer" in err and "nope" in err and "3" in err and "Traceback" not in err


def test_cli_recipe_records_the_schedule_and_apply_reproduces_it(tmp_path):
    path = tmp_path / "r.yaml"
    assert main(["recipe", "--model", "digits-mlp", "--method", "magnitude", "--sparsity", "0.8", "--schedule",
                 "iterative", "--finetune-epochs", "1", "--rounds", "2", "--output", str(path)]) == 0  # fmt: skip
    recipe = load(path)
    assert recipe.schedule["kind"] == "iterative" and recipe.finetune["epochs"] == 1
    assert main(["apply", str(path), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["matches_recorded"] is True
