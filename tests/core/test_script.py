"""Rules of the standalone pruning script (``pruning_core.script.generate_script``).

The script reproduces the engine's masks element for element, runs without PruneLab (as a real
subprocess, and imported with PruneLab's packages blocked), leaves plain modules behind, passes
ruff, and fails with one ``error:`` line and exit status 2. For a recipe that trains, its
``apply_pruning`` runs the engine's schedule (masks on the current weights at every pruning step,
the masked fine-tuning loop) and ends with exactly the engine's weights.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from core_helpers import REPO_ROOT
from safetensors.torch import load_file, save_file
from torch import nn

import sample_models
from pruning_core import compute_masks
from pruning_core.export import make_recipe
from pruning_core.finetune import FineTuneConfig
from pruning_core.recipe import Recipe
from pruning_core.schedules import Schedule, run_schedule
from pruning_core.script import generate_script

# Every method/scope on the two digits models; magnitude and structured on the other samples.
ALL_METHODS = [
    ("magnitude", "global", 0.8),
    ("magnitude", "layerwise", 0.7),
    ("random", "global", 0.6),
    ("random", "layerwise", 0.75),
    ("structured-l1", "layerwise", 0.4),
    ("structured-l2", "global", 0.5),
    ("nm-2:4", "layerwise", 0.5),
]
MAGNITUDE_AND_STRUCTURED = [
    ("magnitude", "global", 0.9),
    ("structured-l1", "layerwise", 0.6),
    ("structured-l2", "global", 0.5),
]
FULLY_COVERED = ("digits-mlp", "digits-cnn")


def _cases() -> dict[str, Recipe]:
    cases = {}
    for name in sample_models.available():
        for method, scope, sparsity in ALL_METHODS if name in FULLY_COVERED else MAGNITUDE_AND_STRUCTURED:
            cases[f"{name}-{method}-{scope}"] = Recipe(
                model=name, method=method, scope=scope, sparsity=sparsity, seed=7
            )
    cases.update(
        {
            # per-layer: keys as layer or parameter names; unlisted layers (fc3) stay dense
            "digits-mlp-magnitude-per-layer": Recipe(
                model="digits-mlp",
                method="magnitude",
                scope="per-layer",
                layer_sparsities={"fc1": 0.95, "fc2.weight": 0.5},
            ),
            # exclude shifts the random draws: the excluded layer gets no scores
            "digits-mlp-random-global-exclude": Recipe(
                model="digits-mlp", method="random", scope="global", sparsity=0.8, exclude=("fc1",), seed=3
            ),
            # exclude in a structured global ranking: conv2 and bn2 stay whole
            "digits-cnn-structured-l2-global-exclude": Recipe(
                model="digits-cnn", method="structured-l2", scope="global", sparsity=0.6, exclude=("conv2",)
            ),
            # 0.15625 * 16 channels = 2.5: Python's round gives 2 (half to even), not 3
            "digits-cnn-structured-l1-per-layer": Recipe(
                model="digits-cnn",
                method="structured-l1",
                scope="per-layer",
                layer_sparsities={"conv1": 0.15625, "fc1": 0.5},
            ),
            # round(0.99 * 32) = 32 would empty fc2: every layer keeps one neuron
            "cancer-mlp-structured-l1-layerwise-cap": Recipe(
                model="cancer-mlp", method="structured-l1", scope="layerwise", sparsity=0.99
            ),
            # ERK: per-layer sparsities computed from the shapes, embedded as LAYER_SPARSITY
            "digits-mlp-random-erk": Recipe(model="digits-mlp", method="random", scope="erk", sparsity=0.7, seed=2),
        }
    )
    return cases


CASES = _cases()
# One recipe per distinct script shape (each method kind and scope), for the source-level rules.
VARIANTS = [
    "digits-cnn-magnitude-global",
    "digits-cnn-magnitude-layerwise",
    "digits-mlp-magnitude-per-layer",
    "digits-cnn-random-global",
    "digits-cnn-random-layerwise",
    "digits-cnn-structured-l1-layerwise",
    "digits-cnn-structured-l2-global",
    "digits-cnn-structured-l1-per-layer",
    "digits-cnn-nm-2:4-layerwise",
]


def _training(method: str, scope: str, sparsity, schedule: Schedule) -> Recipe:
    return make_recipe("digits-mlp", method, scope, sparsity, seed=5, metrics={}, schedule=schedule)


# Recipes that train, on digits-mlp (each runs in well under a second): every schedule, both
# optimisers, and each shape of masks_at (one sparsity, per-layer fractions, the fixed N:M pattern).
TRAINING = {
    "train-oneshot-structured-l2-global-sgd": _training(
        "structured-l2",
        "global",
        0.5,
        Schedule("oneshot", FineTuneConfig(epochs=2, optimizer="sgd", lr=0.01, weight_decay=1e-4)),
    ),
    "train-oneshot-magnitude-per-layer": _training(
        "magnitude", "per-layer", {"fc1": 0.9, "fc2": 0.5}, Schedule("oneshot", FineTuneConfig(epochs=2))
    ),
    "train-iterative-magnitude-global": _training(
        "magnitude", "global", 0.8, Schedule("iterative", FineTuneConfig(epochs=1), rounds=3)
    ),
    "train-iterative-random-layerwise": _training(
        "random", "layerwise", 0.7, Schedule("iterative", FineTuneConfig(epochs=1, seed=3), rounds=2)
    ),
    "train-gradual-magnitude-layerwise": _training(
        "magnitude",
        "layerwise",
        0.8,
        Schedule("gradual", FineTuneConfig(epochs=2, batch_size=50), pruning_steps=5, initial_sparsity=0.1),
    ),
    "train-gradual-nm-2:4": _training("nm-2:4", "layerwise", 0.5, Schedule("gradual", FineTuneConfig(epochs=1))),
    "train-lottery-magnitude-global": _training(
        "magnitude", "global", 0.8, Schedule("lottery", FineTuneConfig(epochs=2), rounds=2)
    ),
    "train-lottery-rewind-structured-l1-layerwise": _training(
        "structured-l1", "layerwise", 0.5, Schedule("lottery", FineTuneConfig(epochs=1), rounds=2, rewind_iteration=7)
    ),
}
RECIPES = {**CASES, **TRAINING}
# Every script shape for the source-level rules: the variants above and the training scripts.
SOURCE_VARIANTS = VARIANTS + list(TRAINING)
ALLOWED_IMPORTS = {"__future__", "argparse", "math", "sys", "pathlib", "torch", "safetensors"}


def engine_masks(recipe: Recipe) -> dict[str, torch.Tensor]:
    model = sample_models.load_sample(recipe.model).model
    return compute_masks(
        model, recipe.method, recipe.scope, recipe.sparsity_argument, exclude=recipe.exclude, seed=recipe.seed
    )


def dense_state(name: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sample_models.load_sample(name).model.state_dict().items()}


def expected_state(recipe: Recipe) -> dict[str, torch.Tensor]:
    """The sample's parameters with the engine's masks applied: what the script must produce."""
    masks = engine_masks(recipe)
    assert any(not bool(m.all()) for m in masks.values()), "the recipe prunes nothing: a vacuous case"
    return {k: v * masks[k] if k in masks else v for k, v in dense_state(recipe.model).items()}


def target_sparsity(recipe: Recipe) -> float:
    masks = engine_masks(recipe)
    weights = [m for k, m in masks.items() if k.endswith(".weight") and k[: -len(".weight")] in _layers(recipe)]
    return 1 - sum(int(m.sum()) for m in weights) / sum(m.numel() for m in weights)


def _layers(recipe: Recipe) -> list[str]:
    from pruning_core.targets import find_targets

    return [t.layer for t in find_targets(sample_models.get_spec(recipe.model).build(), recipe.exclude)]


def write_script(recipe: Recipe, directory: Path, stem: str = "prune_script") -> Path:
    path = directory / f"{stem}.py"
    path.write_text(generate_script(recipe))
    return path


def import_script(path: Path, monkeypatch):
    """Import a generated script with PruneLab's packages made unimportable, so it must stand alone."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    with monkeypatch.context() as patch:
        for blocked in ("pruning_core", "sample_models"):
            patch.setitem(sys.modules, blocked, None)  # "import pruning_core" now raises ImportError
        spec.loader.exec_module(module)
    return module


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    """The script as users run it: its own process, in its own directory, with no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_matches(result: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert not [k for k in result if k.endswith(("_orig", "_mask"))], "pruning was not made permanent"
    assert sorted(result) == sorted(expected), "the pruned state has different entries"
    wrong = [k for k, v in expected.items() if not torch.equal(result[k], v)]
    assert not wrong, f"differs from the engine's masks (or changed unmasked entries): {wrong}"


# --- the script as a command line, in subprocesses (run concurrently: each one imports torch) ---------


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    jobs = {}
    for case_id, recipe in CASES.items():
        directory = tmp_path_factory.mktemp(case_id.replace(":", "_"))
        script = write_script(recipe, directory)
        save_file(dense_state(recipe.model), directory / "dense.safetensors")
        jobs[case_id] = (script, directory)
    with ThreadPoolExecutor(max_workers=min(8, max(2, os.cpu_count() or 1))) as pool:
        futures = {
            case_id: pool.submit(run_script, script, "--weights", "dense.safetensors", "--out", "pruned.safetensors")
            for case_id, (script, _) in jobs.items()
        }
        return {case_id: (future.result(), jobs[case_id][1]) for case_id, future in futures.items()}


@pytest.mark.parametrize("case_id", list(CASES))
def test_script_command_line_writes_exactly_the_engines_pruned_weights(case_id, cli_runs):
    recipe = CASES[case_id]
    result, directory = cli_runs[case_id]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_matches(load_file(directory / "pruned.safetensors"), expected_state(recipe))
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected one summary line, got {lines}"
    assert f"{target_sparsity(recipe):.2%}" in lines[0], "the summary does not report the target weights' sparsity"


# --- the script imported as a module ------------------------------------------------------------------


@pytest.mark.parametrize("case_id", list(CASES))
def test_apply_pruning_prunes_a_fresh_model_in_place_into_a_plain_module(case_id, tmp_path, monkeypatch):
    recipe = CASES[case_id]
    script = import_script(write_script(recipe, tmp_path), monkeypatch)
    model = sample_models.load_sample(recipe.model).model
    keys = list(model.state_dict())
    assert script.apply_pruning(model) is model
    # (prune.remove re-registers each weight last in its module, so only the order of entries may change)
    assert sorted(model.state_dict()) == sorted(keys), "apply_pruning left weight_orig/weight_mask behind"
    assert not [n for n, _ in model.named_buffers() if n.endswith("_mask")]
    assert all(isinstance(p, nn.Parameter) for _, p in model.named_parameters())
    assert not [n for n, m in model.named_modules() if m._forward_pre_hooks], "pruning hooks left behind"
    assert_matches({k: v.detach() for k, v in model.state_dict().items()}, expected_state(recipe))


@pytest.mark.parametrize("case_id", VARIANTS)
def test_prune_state_dict_returns_a_new_dict_and_leaves_its_input_alone(case_id, tmp_path, monkeypatch):
    recipe = CASES[case_id]
    script = import_script(write_script(recipe, tmp_path), monkeypatch)
    state = dense_state(recipe.model)
    before = {k: v.clone() for k, v in state.items()}
    result = script.prune_state_dict(state)
    assert result is not state
    assert all(torch.equal(state[k], v) for k, v in before.items()), "prune_state_dict modified its input"
    assert not any(result[k] is state[k] for k in state), "the result shares tensors with the input"
    assert_matches(result, expected_state(recipe))


# --- the script's source ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def variant_scripts(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("variants")
    return {
        case_id: write_script(RECIPES[case_id], directory, "prune_" + case_id.replace("-", "_").replace(":", "_"))
        for case_id in SOURCE_VARIANTS
    }


@pytest.mark.parametrize("case_id", SOURCE_VARIANTS)
def test_script_imports_only_the_standard_library_torch_and_safetensors(case_id, variant_scripts):
    tree = ast.parse(variant_scripts[case_id].read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= ALLOWED_IMPORTS, f"the script imports {sorted(imported - ALLOWED_IMPORTS)}"
    assert "torch" in imported


@pytest.mark.parametrize("case_id", SOURCE_VARIANTS)
def test_script_docstring_states_the_recipe_and_how_to_use_it(case_id, variant_scripts):
    recipe = RECIPES[case_id]
    doc = ast.get_docstring(ast.parse(variant_scripts[case_id].read_text()))
    assert doc, "the script has no module docstring"
    for fact in (recipe.model, recipe.method, recipe.scope, "apply_pruning", "--weights", "--out"):
        assert fact in doc, f"the docstring does not mention {fact!r}"
    if recipe.scope != "per-layer" and not recipe.method.startswith("nm-"):
        assert f"sparsity {recipe.sparsity:g}" in doc


@pytest.mark.parametrize("case_id", list(TRAINING))
def test_training_script_docstring_states_the_schedule_and_the_fine_tuning(case_id, variant_scripts):
    recipe = TRAINING[case_id]
    schedule, ft = recipe.schedule_object, recipe.schedule_object.finetune
    doc = " ".join(ast.get_docstring(ast.parse(variant_scripts[case_id].read_text())).split())
    facts = [
        f"Schedule: {'one-shot' if schedule.kind == 'oneshot' else schedule.kind}",
        f"{ft.epochs} epoch",
        "SGD" if ft.optimizer == "sgd" else "Adam",
        f"lr {ft.lr:g}",
        f"weight decay {ft.weight_decay:g}",
        f"mini-batches of {ft.batch_size}",
        f"seed {ft.seed}",
        "apply_pruning(model, X_train, y_train",
        "--train-data",
    ]
    if schedule.kind in ("iterative", "lottery"):
        facts.append(f"{schedule.rounds} rounds")
    if schedule.kind == "gradual":
        facts.append(f"at optimiser steps t = 0, dt, ..., {schedule.pruning_steps} dt")
        if not recipe.method.startswith("nm-"):
            facts.append(f"rises from {schedule.initial_sparsity:g} to {recipe.sparsity:g}")
    if schedule.kind == "lottery":
        facts += ["init_state", "--init-weights"]
        if schedule.rewind_iteration:
            facts.append(f"after {schedule.rewind_iteration} steps of dense training")
    for fact in facts:
        assert fact in doc, f"the docstring does not mention {fact!r}"


TORCH_CALLS = {
    "digits-cnn-magnitude-global": ["prune.global_unstructured(", "prune.L1Unstructured", "amount=round("],
    "digits-cnn-magnitude-layerwise": ["prune.l1_unstructured(", "amount=round("],
    "digits-cnn-structured-l1-layerwise": ["prune.ln_structured(", "dim=0", "prune.custom_from_mask("],
    "digits-cnn-random-global": ["prune.custom_from_mask("],
    "digits-cnn-structured-l2-global": ["prune.custom_from_mask("],
    "digits-cnn-nm-2:4-layerwise": ["prune.custom_from_mask("],
}


@pytest.mark.parametrize("case_id", list(TORCH_CALLS))
def test_script_prunes_with_torch_nn_utils_prune_and_makes_it_permanent(case_id, variant_scripts):
    source = variant_scripts[case_id].read_text()
    for call in [*TORCH_CALLS[case_id], "prune.remove("]:
        assert call in source, f"the {case_id} script does not use {call}"


def test_every_script_variant_passes_ruff_check_and_is_ruff_formatted(variant_scripts):
    directory = next(iter(variant_scripts.values())).parent
    config = str(REPO_ROOT / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "--config", config, str(directory)],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}{result.stderr}"


# --- failures -----------------------------------------------------------------------------------------


def assert_one_error_line(result_code: int, stderr: str, *words: str) -> None:
    assert result_code == 2
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got {lines}"
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="module")
def mlp_script(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("errors")
    return write_script(CASES["digits-mlp-magnitude-global"], directory)


def test_script_command_line_with_a_missing_input_file_prints_one_error_and_exits_2(mlp_script):
    result = run_script(mlp_script, "--weights", "no-such-file.safetensors", "--out", "out.safetensors")
    assert_one_error_line(result.returncode, result.stderr, "no-such-file.safetensors")
    assert result.stdout == ""
    assert not (mlp_script.parent / "out.safetensors").exists()


def test_script_command_line_with_a_state_dict_lacking_a_target_layer_prints_one_error_and_exits_2(mlp_script):
    state = dense_state("digits-mlp")
    del state["fc2.weight"]
    save_file(state, mlp_script.parent / "partial.safetensors")
    result = run_script(mlp_script, "--weights", "partial.safetensors", "--out", "out.safetensors")
    assert_one_error_line(result.returncode, result.stderr, "fc2.weight")
    assert result.stdout == ""
    assert not (mlp_script.parent / "out.safetensors").exists()


def test_script_main_refuses_another_architecture_a_damaged_file_and_an_unwritable_output(
    mlp_script, tmp_path, monkeypatch, capsys
):
    script = import_script(mlp_script, monkeypatch)
    save_file(dense_state("moons-mlp"), tmp_path / "moons.safetensors")
    (tmp_path / "damaged.safetensors").write_bytes(b"not safetensors at all")
    save_file(dense_state("digits-mlp"), tmp_path / "dense.safetensors")
    attempts = [
        (tmp_path / "moons.safetensors", tmp_path / "out.safetensors", "expected (300, 64)"),
        (tmp_path / "damaged.safetensors", tmp_path / "out.safetensors", "damaged.safetensors"),
        (tmp_path / "dense.safetensors", tmp_path / "no-such-dir" / "out.safetensors", "cannot write"),
    ]
    for weights, out, word in attempts:
        code = script.main(["--weights", str(weights), "--out", str(out)])
        captured = capsys.readouterr()
        assert_one_error_line(code, captured.err, word)
        assert captured.out == ""
    assert not (tmp_path / "out.safetensors").exists()


def test_apply_pruning_refuses_a_model_of_another_architecture(mlp_script, monkeypatch):
    script = import_script(mlp_script, monkeypatch)
    other = sample_models.load_sample("cancer-mlp").model
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match="digits-mlp"):
        script.apply_pruning(other)
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items()), "a refused model was modified"


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
    generate_script(CASES["digits-cnn-structured-l2-global"])
    assert torch.equal(torch.rand(5), expected)


# --- recipes that train: the script runs the engine's schedule -------------------------------------------


def engine_schedule_state(recipe: Recipe, init_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sample = sample_models.load_sample(recipe.model)
    result = run_schedule(
        sample.model,
        sample.data.X_train,
        sample.data.y_train,
        recipe.method,
        recipe.scope,
        recipe.sparsity_argument,
        recipe.schedule_object,
        exclude=recipe.exclude,
        seed=recipe.seed,
        init_state=init_state,
    )
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


@pytest.fixture
def one_thread():
    """Training on one thread: small batches gain nothing from more, and a loaded machine's thread
    synchronisation can make them many times slower (results are the same either way)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case_id", list(TRAINING))
def test_apply_pruning_of_a_training_recipe_ends_with_exactly_the_engines_weights(
    case_id, tmp_path, monkeypatch, one_thread
):
    recipe = TRAINING[case_id]
    assert recipe.trains
    script = import_script(write_script(recipe, tmp_path), monkeypatch)
    data = sample_models.load_sample(recipe.model).data
    init_state = sample_models.initial_state(recipe.model)
    model = sample_models.load_sample(recipe.model).model
    keys = list(model.state_dict())
    assert script.apply_pruning(model, data.X_train, data.y_train, init_state) is model
    assert not model.training, "apply_pruning left the model in training mode"
    assert sorted(model.state_dict()) == sorted(keys), "apply_pruning left weight_orig/weight_mask behind"
    assert all(isinstance(p, nn.Parameter) for _, p in model.named_parameters())
    assert not [n for n, m in model.named_modules() if m._forward_pre_hooks], "pruning hooks left behind"
    result = {k: v.detach() for k, v in model.state_dict().items()}
    expected = engine_schedule_state(recipe, init_state)
    # Same float operations in the same order in one process: the weights agree bit for bit.
    assert_matches(result, expected)
    assert all(torch.equal(result[k] == 0, expected[k] == 0) for k in expected), "the zero patterns differ"
    assert int((result["fc1.weight"] == 0).sum()) > 0, "nothing was pruned: a vacuous case"
    dense = dense_state(recipe.model)
    assert not torch.equal(result["fc3.bias"], dense["fc3.bias"]), "the model was not trained"


def test_apply_pruning_of_a_training_recipe_needs_the_training_split_and_leaves_the_model_alone(tmp_path, monkeypatch):
    script = import_script(write_script(TRAINING["train-iterative-magnitude-global"], tmp_path), monkeypatch)
    data = sample_models.load_sample("digits-mlp").data
    model = sample_models.load_sample("digits-mlp").model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for args in [(), (data.X_train,), (None, data.y_train)]:
        with pytest.raises(ValueError, match="training split it was fine-tuned on"):
            script.apply_pruning(model, *args)
    with pytest.raises(ValueError, match="samples"):
        script.apply_pruning(model, data.X_train, data.y_train[:-1])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "a refused call modified the model"


def test_apply_pruning_of_a_lottery_recipe_needs_the_initial_weights(tmp_path, monkeypatch):
    script = import_script(write_script(TRAINING["train-lottery-magnitude-global"], tmp_path), monkeypatch)
    data = sample_models.load_sample("digits-mlp").data
    model = sample_models.load_sample("digits-mlp").model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="init_state"):
        script.apply_pruning(model, data.X_train, data.y_train)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "a refused call modified the model"


def test_training_script_command_line_explains_that_training_recipes_are_applied_from_python(
    tmp_path, monkeypatch, capsys
):
    script = import_script(write_script(TRAINING["train-lottery-magnitude-global"], tmp_path), monkeypatch)
    save_file(dense_state("digits-mlp"), tmp_path / "dense.safetensors")
    data = sample_models.load_sample("digits-mlp").data
    save_file({"X_train": data.X_train, "y_train": data.y_train}, tmp_path / "train.safetensors")
    save_file(sample_models.initial_state("digits-mlp"), tmp_path / "init.safetensors")
    out = tmp_path / "out.safetensors"
    for extra in ([], ["--train-data", str(tmp_path / "train.safetensors")]):
        code = script.main(
            ["--weights", str(tmp_path / "dense.safetensors"), "--out", str(out), *extra]
            + ["--init-weights", str(tmp_path / "init.safetensors")]
        )
        captured = capsys.readouterr()
        assert_one_error_line(code, captured.err, "apply_pruning(model, X_train, y_train, init_state)", "state dict")
        assert captured.out == ""
    assert not out.exists()
    with pytest.raises(ValueError, match="apply_pruning"):
        script.prune_state_dict(dense_state("digits-mlp"))


SCHEDULE_REFUSED = {
    # the engine's schedules take one overall sparsity
    "per-layer with an iterative schedule": (
        "per-layer",
        {"fc1": 0.5},
        Schedule("iterative", FineTuneConfig(epochs=1), rounds=2),
    ),
    # a script limit: the ERK allocation would have to be recomputed at every pruning step
    "erk with a gradual schedule": ("erk", 0.5, Schedule("gradual", FineTuneConfig(epochs=1))),
}


@pytest.mark.parametrize("what", list(SCHEDULE_REFUSED))
def test_generate_script_refuses_a_schedule_it_cannot_reproduce(what):
    scope, sparsity, schedule = SCHEDULE_REFUSED[what]
    recipe = Recipe(
        model="digits-mlp",
        method="magnitude",
        scope=scope,
        sparsity=0.0 if isinstance(sparsity, dict) else sparsity,
        layer_sparsities=sparsity if isinstance(sparsity, dict) else None,
        schedule={k: v for k, v in schedule.to_dict().items() if k != "finetune"},
        finetune=schedule.finetune.to_dict(),
    )
    with pytest.raises(ValueError, match=scope):
        generate_script(recipe)
