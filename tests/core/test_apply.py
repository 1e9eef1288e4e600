"""One choice, one path: every method on every sample model goes recipe -> apply -> the same weights
the engine computes, with the recipe's calibration samples; adjustments come back as notes."""

from __future__ import annotations

import copy

import pytest
import torch

import pruning_core
import sample_models
from pruning_core.apply import apply_choice, masks_for
from pruning_core.choice import Calibration, PruningChoice
from pruning_core.cli import main
from pruning_core.export import apply_recipe, recipe_for
from pruning_core.methods import get_method, method_names
from pruning_core.metrics import evaluate
from pruning_core.recipe import Recipe, RecipeError, dumps, loads
from pruning_core.sweep import sweep

METHODS = [*method_names(), "nm-2:4", "nm-1:4"]
MODELS = sample_models.available()
SPARSITY = 0.5


def independent_masks(sample, choice: PruningChoice, X_calib, y_calib):
    """The masks computed directly by the engine's mask function, with the calibration given
    explicitly (not through ``Calibration.select``)."""
    return pruning_core.compute_masks(
        sample.model,
        choice.method,
        choice.scope,
        choice.sparsity_argument,
        exclude=choice.exclude,
        seed=choice.seed,
        X_calib=X_calib,
        y_calib=y_calib,
    )


def first(sample, n: int = 256):
    return sample.data.X_train[:n], sample.data.y_train[:n]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_applies_from_its_recipe_exactly_as_the_engine_prunes(model, method):
    """Recipe (through YAML) -> apply gives bit for bit the weights of the engine's own masks on the
    first 256 train samples, and the metrics recorded by the sweep are those of these weights."""
    sample = sample_models.load_sample(model)
    choice = PruningChoice(method=method, scope="layerwise", sparsity=SPARSITY, seed=1)
    recipe, _ = recipe_for(model, choice, metrics={})
    loaded = loads(dumps(recipe, "yaml"))
    assert loaded.to_choice() == choice.resolved()[0]

    applied = apply_recipe(loaded)
    resolved = choice.resolved()[0]
    expected = pruning_core.apply_masks(sample.model, independent_masks(sample, resolved, *first(sample)))
    got, want = applied.model.state_dict(), expected.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), f"{model} {method}: {name} differs from the engine's"

    with torch.inference_mode():
        direct = evaluate(expected.eval(), sample.data.X_test, sample.data.y_test, batch_size=512)
    assert applied.metrics["accuracy"] == direct["accuracy"]
    assert applied.metrics["loss"] == direct["loss"]
    weights = [p for n, p in expected.named_parameters() if n.removesuffix(".weight") in sample_prunable(sample)]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert applied.metrics["actual_sparsity"] == pytest.approx(zeros, abs=1e-12)


def sample_prunable(sample) -> set[str]:
    return set(pruning_core.prunable_layers(sample.model))


@pytest.mark.parametrize("method", METHODS)
def test_a_choice_survives_the_recipe_round_trip(method):
    """Recipe.from_choice then to_choice is the identity on resolved choices, calibration included."""
    calibration = Calibration(samples=48, order="shuffled", seed=7)
    for scope in ("global", "layerwise", "erk"):
        choice, _ = PruningChoice(method, scope, 0.3, ("fc1",), 4, calibration=calibration).resolved()
        recipe = Recipe.from_choice("digits-mlp", choice)
        assert loads(dumps(recipe, "json")).to_choice() == choice
        assert loads(dumps(recipe, "yaml")).to_choice() == choice
    per_layer = PruningChoice.per_layer(method, {"fc1": 0.6, "fc2": 0.2}).resolved()[0]
    assert loads(dumps(Recipe.from_choice("digits-mlp", per_layer))).to_choice() == per_layer


def test_every_recipe_writes_its_calibration_and_an_old_recipe_loads_with_the_default():
    recipe = Recipe.from_choice("digits-mlp", PruningChoice("taylor", "global", 0.5))
    assert recipe.to_dict()["pruning"]["calibration"] == Calibration().to_dict()
    old = recipe.to_dict()
    del old["pruning"]["calibration"]
    assert loads(dumps_dict(old)).calibration_object == Calibration()


def dumps_dict(data: dict) -> str:
    import json

    return json.dumps(data)


def test_a_bad_calibration_is_refused_with_every_problem_listed():
    data = Recipe.from_choice("digits-mlp", PruningChoice("taylor", "global", 0.5)).to_dict()
    data["pruning"]["calibration"] = {"split": "test", "samples": 0, "order": "random", "seed": -1, "rows": 3}
    data["pruning"]["seed"] = -2
    with pytest.raises(RecipeError) as caught:
        loads(dumps_dict(data))
    problems = " ".join(caught.value.problems)
    for word in ("'test'", "samples", "'random'", "calibration.seed", "rows", "'pruning.seed'"):
        assert word in problems
    assert len(caught.value.problems) == 6


@pytest.mark.parametrize("method", [m for m in METHODS if get_method(m).needs_data])
def test_the_recipes_calibration_decides_which_samples_a_data_driven_method_reads(method):
    """A shuffled calibration of 40 samples gives the masks of exactly those 40 samples (drawn here
    with the same generator), and they differ from the first 256's."""
    sample = sample_models.load_sample("digits-cnn")
    calibration = Calibration(samples=40, order="shuffled", seed=3)
    choice = PruningChoice(method, "layerwise", 0.5, calibration=calibration)
    recipe = loads(dumps(Recipe.from_choice("digits-cnn", choice)))
    index = torch.randperm(len(sample.data.X_train), generator=torch.Generator().manual_seed(3))[:40]
    expected = independent_masks(sample, choice, sample.data.X_train[index], sample.data.y_train[index])
    got = masks_for(sample.model, sample.data, recipe.to_choice())
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    default = masks_for(sample.model, sample.data, PruningChoice(method, "layerwise", 0.5))
    assert any(not torch.equal(default[k], got[k]) for k in got)


def test_sweep_rows_are_the_resolved_choices():
    """A fixed pattern asked at other sparsities and an unsupported scope: the sweep gives one row,
    at the scope and sparsity resolved() chooses."""
    sample = sample_models.load_sample("cancer-mlp")
    table = sweep(sample.model, sample.data, ["nm-2:4", "magnitude"], [0.2, 0.7], scope="global")
    resolved, notes = PruningChoice("nm-2:4", "global", 0.7).resolved()
    nm = table[table["method"] == "nm-2:4"]
    assert len(nm) == 1 and notes
    assert (nm["scope"].item(), nm["target_sparsity"].item()) == (resolved.scope, resolved.sparsity)
    assert len(table[table["method"] == "magnitude"]) == 2


def test_apply_choice_leaves_the_model_alone_and_reports_adjustments():
    sample = sample_models.load_sample("digits-cnn")
    before = copy.deepcopy(sample.model.state_dict())
    applied = apply_choice(sample.model, sample.data, PruningChoice("nm-2:4", "global", 0.8))
    assert all(torch.equal(before[k], v) for k, v in sample.model.state_dict().items())
    assert applied.choice == PruningChoice("nm-2:4", "global", 0.8).resolved()[0]
    assert applied.notes == PruningChoice("nm-2:4", "global", 0.8).resolved()[1]
    assert applied.model is not sample.model


def test_synflow_without_data_reads_the_models_input_shape():
    """Data-free: synflow needs only an input shape, which the sample models declare."""
    sample = sample_models.load_sample("digits-cnn")
    choice = PruningChoice("synflow", "global", 0.5)
    without = masks_for(sample.model, None, choice)
    with_data = masks_for(sample.model, sample.data, choice)
    assert all(torch.equal(without[k], with_data[k]) for k in with_data)


def test_cli_apply_works_for_a_data_driven_method_and_recipe_prints_the_notes(tmp_path, capsys):
    recipe_path = tmp_path / "r.yaml"
    assert main(["recipe", "--model", "digits-cnn", "--method", "nm-2:4", "--scope", "global", "--sparsity", "0.7",
                 "--output", str(recipe_path)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    for note in PruningChoice("nm-2:4", "global", 0.7).resolved()[1]:
        assert f"note: {note}" in err
    taylor = tmp_path / "taylor.yaml"
    recipe_path.write_text(dumps(Recipe.from_choice("digits-cnn", PruningChoice("taylor", "layerwise", 0.5))))
    taylor.write_text(recipe_path.read_text())
    assert main(["apply", str(taylor), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "pruned.safetensors").exists()
