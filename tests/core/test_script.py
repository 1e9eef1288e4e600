"""Rules of the standalone pruning script (``pruning_core.script.generate_script``).

The script embeds the engine's kernels unmodified, runs without PruneLab, reproduces every
registered method on every sample model and every registered schedule (masks element for element,
trained weights bit for bit), applies a masks file instead when asked and says which it did,
passes ruff, and fails with one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import inspect
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from core_helpers import REPO_ROOT
from safetensors.torch import load, load_file, save_file
from torch import nn

import sample_models
from pruning_core import apply_masks, compute_masks, kernels, script_driver
from pruning_core.choice import Calibration
from pruning_core.export import make_recipe
from pruning_core.finetune import FineTuneConfig
from pruning_core.methods import SynFlow, get_method, method_names
from pruning_core.recipe import Recipe
from pruning_core.schedules import SCHEDULES, Schedule, run_schedule
from pruning_core.script import generate_mask_file, generate_script

SYNFLOW_ROUNDS = 3  # the engine's 100 rounds are slow; the rule is the same with 3 (both sides read it)


@pytest.fixture(autouse=True)
def few_synflow_rounds(monkeypatch):
    monkeypatch.setattr(SynFlow, "rounds", SYNFLOW_ROUNDS)


@pytest.fixture
def one_thread():
    """Small models gain nothing from more threads, and a loaded machine's thread synchronisation
    can make them many times slower (results are the same either way)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def calibration_of(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = sample_models.load_sample(name).data
    X, y = Calibration().select(data.X_train, data.y_train)
    return X, y


def engine_masks(recipe: Recipe) -> dict[str, torch.Tensor]:
    model = sample_models.load_sample(recipe.model).model
    X, y = calibration_of(recipe.model)
    return compute_masks(
        model, recipe.method, recipe.scope, recipe.sparsity_argument, recipe.exclude, recipe.seed, X, y
    )


def write_script(recipe: Recipe, directory: Path, stem: str = "prune_it") -> Path:
    path = directory / f"{stem}.py"
    path.write_text(generate_script(recipe))
    return path


def load_script(path: Path, monkeypatch) -> dict:
    """Run a generated script's file as a module with PruneLab's packages made unimportable."""
    with monkeypatch.context() as patch:
        for blocked in ("pruning_core", "sample_models"):
            patch.setitem(sys.modules, blocked, None)  # "import pruning_core" now raises ImportError
        return runpy.run_path(str(path), run_name="prune_it")


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    """The script as users run it: its own process, in its own directory, with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=script.parent, env=env, capture_output=True, text=True, timeout=300
    )


def _fresh_copy(name: str) -> nn.Module:
    import copy

    return copy.deepcopy(sample_models.load_sample(name).model)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(result: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert not [k for k in result if k.endswith(("_orig", "_mask"))], "pruning was not made permanent"
    assert sorted(result) == sorted(expected), "the pruned state has different entries"
    wrong = [k for k, v in expected.items() if not torch.equal(result[k], v)]
    assert not wrong, f"differs from the engine (bit for bit): {wrong}"


def default_scope(method: str) -> str:
    scopes = get_method(method).scopes
    return "global" if "global" in scopes else scopes[0]


# --- every registered method on every sample model ---------------------------------------------------------

METHOD_CASES = [(model, method) for model in sample_models.available() for method in method_names()]


@pytest.mark.parametrize(("model_name", "method"), METHOD_CASES)
def test_script_reproduces_every_registered_method_on_every_sample_model(
    model_name, method, tmp_path, monkeypatch, one_thread
):
    recipe = Recipe(model=model_name, method=method, scope=default_scope(method), sparsity=0.6, seed=7)
    script = load_script(write_script(recipe, tmp_path), monkeypatch)
    data = sample_models.load_sample(model_name).data
    expected_masks = engine_masks(recipe)
    assert any(not bool(m.all()) for m in expected_masks.values()), "the recipe prunes nothing: a vacuous case"
    model = _fresh_copy(model_name)
    lines: list[str] = []
    assert script["apply_pruning"](model, data.X_train, data.y_train, report=lines.append) is model
    expected = state(apply_masks(sample_models.load_sample(model_name).model, expected_masks))
    assert_same_state(state(model), expected)
    assert lines == [f"{model_name}: computed the masks with {method} ({recipe.scope})"]
    assert all(isinstance(p, nn.Parameter) for _, p in model.named_parameters())
    assert not [n for n, m in model.named_modules() if m._forward_pre_hooks], "pruning hooks left behind"


SCOPE_CASES = {
    "magnitude-layerwise": Recipe(model="digits-cnn", method="magnitude", scope="layerwise", sparsity=0.7),
    "magnitude-per-layer": Recipe(
        model="digits-mlp", method="magnitude", scope="per-layer", layer_sparsities={"fc1": 0.95, "fc2.weight": 0.5}
    ),
    "random-erk": Recipe(model="digits-mlp", method="random", scope="erk", sparsity=0.7, seed=2),
    "random-global-exclude": Recipe(
        model="digits-mlp", method="random", scope="global", sparsity=0.8, exclude=("fc1",), seed=3
    ),
    "structured-l2-global-exclude": Recipe(
        model="digits-cnn", method="structured-l2", scope="global", sparsity=0.6, exclude=("conv2",)
    ),
    # 0.15625 * 16 channels = 2.5: Python's round gives 2 (half to even), not 3
    "structured-l1-per-layer-half-to-even": Recipe(
        model="digits-cnn", method="structured-l1", scope="per-layer", layer_sparsities={"conv1": 0.15625, "fc1": 0.5}
    ),
    # round(0.99 * 32) = 32 would empty fc2: every layer keeps one neuron
    "structured-l1-layerwise-cap": Recipe(model="cancer-mlp", method="structured-l1", scope="layerwise", sparsity=0.99),
    "wanda-layerwise-rows": Recipe(model="digits-cnn", method="wanda", scope="layerwise", sparsity=0.5),
    "synflow-layerwise": Recipe(model="digits-mlp", method="synflow", scope="layerwise", sparsity=0.8),
    "apoz-layerwise": Recipe(model="digits-cnn", method="apoz", scope="layerwise", sparsity=0.5),
    "bn-scale-erk": Recipe(model="digits-cnn", method="bn-scale", scope="erk", sparsity=0.5),
    "taylor-erk": Recipe(model="digits-cnn", method="taylor", scope="erk", sparsity=0.8),
    "random-matched-layerwise": Recipe(model="digits-cnn", method="random-matched", scope="layerwise", sparsity=0.6),
}


@pytest.mark.parametrize("case_id", list(SCOPE_CASES))
def test_script_masks_equal_the_engines_in_every_scope(case_id, tmp_path, monkeypatch, one_thread):
    recipe = SCOPE_CASES[case_id]
    script = load_script(write_script(recipe, tmp_path), monkeypatch)
    X, y = calibration_of(recipe.model)
    expected = engine_masks(recipe)
    got = script["compute_masks"](sample_models.load_sample(recipe.model).model, None, X, y)
    assert sorted(got) == sorted(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected), "masks differ from the engine's"


def test_a_method_the_driver_does_not_know_fails_instead_of_falling_back(monkeypatch):
    monkeypatch.setitem(script_driver.SPEC, "method", "no-such-criterion")
    monkeypatch.setitem(script_driver.SPEC, "granularity", "unstructured")
    monkeypatch.setitem(script_driver.SPEC, "pruned", [])
    with pytest.raises(ValueError, match="no-such-criterion"):
        script_driver._scores(nn.Linear(2, 2), None, None)


# --- every registered schedule ----------------------------------------------------------------------------


def _schedule_for(kind: str) -> Schedule:
    settings = {
        "oneshot": Schedule("oneshot", FineTuneConfig(epochs=1, optimizer="sgd", lr=0.01, weight_decay=1e-4)),
        "iterative": Schedule("iterative", FineTuneConfig(epochs=1), rounds=2),
        "gradual": Schedule("gradual", FineTuneConfig(epochs=1, batch_size=50), pruning_steps=4, initial_sparsity=0.1),
        "lottery": Schedule("lottery", FineTuneConfig(epochs=1), rounds=2, rewind_iteration=3),
    }
    return settings[kind]  # a schedule registered without settings here fails: add them


SCHEDULE_METHODS = {"magnitude": "global", "taylor": "layerwise", "structured-l1": "global"}


@pytest.mark.parametrize("method", list(SCHEDULE_METHODS))
@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_script_runs_every_registered_schedule_and_ends_with_exactly_the_engines_weights(
    kind, method, tmp_path, monkeypatch, one_thread
):
    schedule = _schedule_for(kind)
    recipe = make_recipe("digits-mlp", method, SCHEDULE_METHODS[method], 0.7, seed=5, metrics={}, schedule=schedule)
    assert recipe.trains
    script = load_script(write_script(recipe, tmp_path), monkeypatch)
    sample = sample_models.load_sample("digits-mlp")
    init_state = sample_models.initial_state("digits-mlp")
    model = _fresh_copy("digits-mlp")
    script["apply_pruning"](model, sample.data.X_train, sample.data.y_train, init_state, report=None)
    assert not model.training, "apply_pruning left the model in training mode"
    expected = run_schedule(
        sample.model,
        sample.data.X_train,
        sample.data.y_train,
        method,
        recipe.scope,
        recipe.sparsity,
        schedule,
        seed=recipe.seed,
        init_state=init_state,
    )
    assert_same_state(state(model), state(expected.model))
    assert int((model.fc1.weight == 0).sum()) > 0, "nothing was pruned: a vacuous case"
    assert not torch.equal(model.fc3.bias, sample.model.fc3.bias), "the model was not trained"


def test_a_training_recipe_needs_its_training_split_and_a_refused_call_leaves_the_model_alone(tmp_path, monkeypatch):
    recipe = make_recipe("digits-mlp", "magnitude", "global", 0.8, metrics={}, schedule=_schedule_for("lottery"))
    script = load_script(write_script(recipe, tmp_path), monkeypatch)
    data = sample_models.load_sample("digits-mlp").data
    model = _fresh_copy("digits-mlp")
    before = state(model)
    for args, words in [
        ((), "apply_pruning(model, X_train, y_train)"),
        ((data.X_train,), "apply_pruning(model, X_train, y_train)"),
        ((data.X_train, data.y_train[:-1]), "samples"),
        ((data.X_train[:, :10], data.y_train), "expected (64,)"),
        ((data.X_train, data.y_train), "init_state"),
    ]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            script["apply_pruning"](model, *args, report=None)
    assert_same_state(state(model), before)


# --- masks files, the command line, standing alone ---------------------------------------------------------


def assert_one_error_line(result_code: int, stderr: str, *words: str) -> None:
    assert result_code == 2
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got {lines}"
    for word in words:
        assert word in lines[0]


def test_masks_file_holds_the_engines_masks_as_bool_tensors():
    recipe = Recipe(model="digits-cnn", method="taylor", scope="global", sparsity=0.7)
    masks = load(generate_mask_file(recipe))
    expected = engine_masks(recipe)
    assert sorted(masks) == sorted(expected)
    assert all(m.dtype == torch.bool and torch.equal(m, expected[k]) for k, m in masks.items())


def test_command_line_computes_or_applies_a_masks_file_and_prints_which(tmp_path):
    sample = sample_models.load_sample("digits-cnn")
    save_file(state(sample.model), tmp_path / "dense.safetensors")
    magnitude = Recipe(model="digits-cnn", method="magnitude", scope="global", sparsity=0.8)
    taylor = Recipe(model="digits-cnn", method="taylor", scope="global", sparsity=0.7)
    (tmp_path / "masks.safetensors").write_bytes(generate_mask_file(taylor))
    runs = {
        "magnitude": (write_script(magnitude, tmp_path, "prune_magnitude"), []),
        "taylor": (write_script(taylor, tmp_path, "prune_taylor"), ["--masks", "masks.safetensors"]),
        "taylor-no-masks": (tmp_path / "prune_taylor.py", []),
    }
    results = {
        key: run_script(script, "--weights", "dense.safetensors", "--out", f"{key}.safetensors", *extra)
        for key, (script, extra) in runs.items()
    }
    for key, recipe in (("magnitude", magnitude), ("taylor", taylor)):
        assert results[key].returncode == 0, results[key].stderr
        expected = state(apply_masks(sample.model, engine_masks(recipe)))
        assert_same_state(load_file(tmp_path / f"{key}.safetensors"), expected)
    assert "computed the masks with magnitude" in results["magnitude"].stdout
    assert "applied the masks in masks.safetensors" in results["taylor"].stdout
    assert_one_error_line(results["taylor-no-masks"].returncode, results["taylor-no-masks"].stderr, "--masks")
    assert not (tmp_path / "taylor-no-masks.safetensors").exists()


def test_apply_pruning_with_masks_applies_them_and_says_so(tmp_path, monkeypatch):
    recipe = Recipe(model="digits-mlp", method="wanda", scope="layerwise", sparsity=0.5)
    script = load_script(write_script(recipe, tmp_path), monkeypatch)
    masks = load(generate_mask_file(recipe))
    model, lines = _fresh_copy("digits-mlp"), []
    script["apply_pruning"](model, masks=masks, report=lines.append)
    assert lines == [f"digits-mlp: applied the {len(masks)} masks given (not recomputed)"]
    assert_same_state(state(model), state(apply_masks(sample_models.load_sample("digits-mlp").model, masks)))
    wrong = dict(masks, **{"fc1.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="expected"):
        script["apply_pruning"](_fresh_copy("digits-mlp"), masks=wrong, report=None)


def test_command_line_errors_are_one_line_with_exit_status_2(tmp_path):
    script = write_script(Recipe(model="digits-mlp", method="magnitude"), tmp_path)
    save_file(state(sample_models.load_sample("moons-mlp").model), tmp_path / "moons.safetensors")
    (tmp_path / "damaged.safetensors").write_bytes(b"not safetensors at all")
    attempts = [
        (["--weights", "missing.safetensors", "--out", "out.safetensors"], "missing.safetensors"),
        (["--weights", "moons.safetensors", "--out", "out.safetensors"], "expected (300, 64)"),
        (["--weights", "damaged.safetensors", "--out", "out.safetensors"], "damaged.safetensors"),
    ]
    for args, word in attempts:
        result = run_script(script, *args)
        assert_one_error_line(result.returncode, result.stderr, word)
        assert result.stdout == ""
    assert not (tmp_path / "out.safetensors").exists()


def test_script_embeds_the_kernels_unmodified_and_seeds_only_generators():
    source = generate_script(Recipe(model="digits-cnn", method="synflow", scope="global", sparsity=0.5))
    assert inspect.getsource(kernels).strip("\n") in source
    assert "torch.manual_seed" not in source and "torch.random.manual_seed" not in source
    assert "prune.custom_from_mask(" in source and "prune.remove(" in source
    assert "from pruning_core" not in source and "import sample_models" not in source


def test_generated_scripts_pass_ruff_check_and_format(tmp_path):
    for i, method in enumerate(("magnitude", "structured-l2", "taylor", "nm-2:4")):
        write_script(Recipe(model="digits-cnn", method=method, scope=default_scope(method)), tmp_path, f"s{i}")
    write_script(
        make_recipe("digits-mlp", "magnitude", "global", 0.5, metrics={}, schedule=_schedule_for("gradual")),
        tmp_path,
        "s_train",
    )
    config = str(REPO_ROOT / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "--config", config, str(tmp_path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"


REFUSED = {
    "unknown excluded layer": Recipe(model="digits-mlp", method="magnitude", exclude=("fc9",)),
    "sparsity 1": Recipe(model="digits-mlp", method="magnitude", sparsity=1.0),
    "unknown scope": Recipe(model="digits-mlp", method="magnitude", scope="sideways"),
    "structured per-layer naming the output layer": Recipe(
        model="digits-mlp", method="structured-l1", scope="per-layer", layer_sparsities={"fc3": 0.5}
    ),
    "per-layer naming an unknown layer": Recipe(
        model="digits-cnn", method="random", scope="per-layer", layer_sparsities={"bn1": 0.5}
    ),
}


@pytest.mark.parametrize("what", list(REFUSED))
def test_generate_script_refuses_what_the_engine_refuses(what):
    recipe = REFUSED[what]
    with pytest.raises(ValueError):
        engine_masks(recipe)
    with pytest.raises(ValueError):
        generate_script(recipe)


def test_generate_script_refuses_a_model_that_is_not_a_sample():
    with pytest.raises(ValueError, match="sample"):
        generate_script(Recipe(model="my-own-model", method="magnitude"))


def test_generate_script_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    generate_script(Recipe(model="digits-cnn", method="structured-l2", scope="global"))
    assert torch.equal(torch.rand(5), expected)
