"""Your own model on the command line and in the Python API: everywhere a sample works.

Rules checked here:
- ``sweep``/``recipe``/``apply``/``sensitivity``/``layers`` take ``--model-file`` (ONNX, or a
  safetensors state dict with ``--model-factory``: a sample's architecture or ``pkg.mod:fn`` from the
  working directory) with ``--data`` (NPZ or CSV with ``--label-column``);
- the accuracy at 0 % equals what onnxruntime (ONNX) or PyTorch (state dicts) computes on the same
  test data, independently of PruneLab;
- a recipe records format and SHA-256, never a path or file name; ``apply`` refuses another file
  (both digests named) and writes the pruned model in the user's format: ``pruned.onnx`` runs in
  onnxruntime and computes what the pruned PyTorch module computes, and the shrunk ``model.onnx``
  computes the same;
- exactly one of ``--model``/``--model-file``; without data, data-free commands work and the others
  say why not and what to pass; a hostile file is one ``error:`` line, exit status 2, no traceback,
  and its payload does not run;
- the README's Python example runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from core_helpers import REPO_ROOT
from own_model_helpers import fit_readout, onnxruntime_outputs, residual_net, to_onnx, write_own_files

import pruning_core
import sample_models
from pruning_core.cli import main
from pruning_core.loaders import load_data, load_model, load_own
from pruning_core.recipe import load as load_recipe

FACTORY = "own_cli_factory:build"  # a module of the user's, in the working directory
FACTORY_TEXT = """import torch
from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The user's files (see ``write_own_files``) plus ``mlp.safetensors`` for FACTORY, fitted."""
    from safetensors.torch import save

    directory = tmp_path_factory.mktemp("user")
    write_own_files(directory)
    (directory / "own_cli_factory.py").write_text(FACTORY_TEXT)
    digits = sample_models.datasets.digits_images()
    namespace: dict = {}
    exec(FACTORY_TEXT, namespace)  # the same architecture, built here to compute torch's accuracy
    mlp = namespace["build"]()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for p in mlp.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    mlp = fit_readout(mlp, digits.X_train, digits.y_train)
    (directory / "mlp.safetensors").write_bytes(save({k: v.contiguous() for k, v in mlp.state_dict().items()}))
    return directory, digits, mlp


def run(capsys, argv: list) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sweep_json(capsys, argv: list) -> list[dict]:
    code, out, err = run(capsys, ["sweep", *argv, "--format", "json", "--quiet"])
    assert code == 0, err
    return json.loads(out)


def accuracy(logits, labels) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


# --- sweep: the accuracy at 0 % is the runtime's --------------------------------------------------


def test_sweep_of_onnx_with_npz_reports_onnxruntimes_accuracy_at_0(files, capsys):
    directory, digits, _ = files
    rows = sweep_json(capsys, ["--model-file", directory / "net.onnx", "--data", directory / "data.npz",
                               "--sparsities", "0,0.5"])  # fmt: skip
    (reference,) = onnxruntime_outputs((directory / "net.onnx").read_bytes(), digits.X_test)
    assert rows[0]["target_sparsity"] == 0 and rows[0]["accuracy"] == accuracy(reference, digits.y_test)
    assert rows[0]["accuracy"] > 0.8 and rows[1]["actual_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert {r["model"] for r in rows} == {"net.onnx"}  # the table names the file; recipes never do


def test_sweep_of_onnx_with_csv_and_a_named_label_column_matches_onnxruntime(files, capsys):
    directory, _, _ = files
    rows = sweep_json(capsys, ["--model-file", directory / "net.onnx", "--data", directory / "data.csv",
                               "--label-column", "digit", "--sparsities", "0"])  # fmt: skip
    loaded = load_model(directory / "net.onnx", filename="net.onnx")
    split = load_data(directory / "data.csv", filename="data.csv", model=loaded, label_column="digit").split
    (reference,) = onnxruntime_outputs((directory / "net.onnx").read_bytes(), split.X_test)
    assert rows[0]["accuracy"] == accuracy(reference, split.y_test)
    rows_in_file = len((directory / "data.csv").read_text().splitlines()) - 1
    assert rows[0]["test_samples"] == len(split.y_test) == -(-rows_in_file // 5)  # 20 %, stratified


def test_state_dicts_for_a_sample_architecture_and_a_factory_match_torch(files, capsys, monkeypatch):
    directory, digits, mlp = files
    rows = sweep_json(capsys, ["--model-file", directory / "weights.safetensors", "--model-factory", "digits-cnn",
                               "--data", directory / "data.npz", "--sparsities", "0"])  # fmt: skip
    with torch.inference_mode():
        cnn = sample_models.load_sample("digits-cnn").model
        assert rows[0]["accuracy"] == accuracy(cnn(digits.X_test), digits.y_test)
        expected = accuracy(mlp(digits.X_test), digits.y_test)
    monkeypatch.chdir(directory)  # FACTORY imports from the working directory, as `python -m` would
    monkeypatch.delitem(sys.modules, FACTORY.split(":")[0], raising=False)
    rows = sweep_json(capsys, ["--model-file", "mlp.safetensors", "--model-factory", FACTORY, "--data", "data.npz",
                               "--sparsities", "0"])  # fmt: skip
    assert rows[0]["accuracy"] == expected and expected > 0.5
    assert str(directory) not in sys.path  # the working directory was on sys.path for the import only
    sys.modules.pop(FACTORY.split(":")[0], None)


# --- recipe and apply -----------------------------------------------------------------------------


def test_recipe_records_format_and_sha256_never_a_path(files, capsys, tmp_path):
    directory, _, _ = files
    path = tmp_path / "own.yaml"
    argv = ["recipe", "--model-file", directory / "weights.safetensors", "--model-factory", "digits-cnn",
            "--data", directory / "data.csv", "--label-column", "digit", "--method", "taylor",
            "--sparsity", "0.5"]  # fmt: skip
    code, _, err = run(capsys, [*argv, "--output", path])
    assert code == 0, err
    text = path.read_text()
    assert str(directory) not in text and str(tmp_path) not in text
    assert not re.search(r"weights\.safetensors|data\.csv|/", text.split("provenance:")[0]), text
    model = yaml.safe_load(text)["model"]
    digest = hashlib.sha256((directory / "weights.safetensors").read_bytes()).hexdigest()
    assert model["file"] == {"format": "safetensors", "sha256": digest, "factory": "digits-cnn"}
    csv_digest = hashlib.sha256((directory / "data.csv").read_bytes()).hexdigest()
    assert model["data"] == {"format": "csv", "sha256": csv_digest, "label_column": "digit"}
    assert "accuracy" in yaml.safe_load(text)["provenance"]["metrics"]


def test_apply_writes_pruned_onnx_that_onnxruntime_runs_as_the_pruned_module(files, capsys, tmp_path):
    directory, digits, _ = files
    model, data = directory / "net.onnx", directory / "data.npz"
    recipe = tmp_path / "r.yaml"
    argv = ["--model-file", model, "--data", data]
    assert run(capsys, ["recipe", *argv, "--method", "structured-l1", "--sparsity", "0.4", "--output", recipe])[0] == 0
    code, out, err = run(capsys, ["apply", recipe, *argv, "--out", tmp_path / "out"])
    assert code == 0, err
    assert "net.onnx · structured-l1" in out and "pruned.onnx" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["files_bytes"].keys() == {"pruned.onnx", "shrunk.safetensors", "model.onnx"}
    assert report["matches_recorded"] is True
    assert report["pruned_onnx_max_abs_difference"] < 1e-4 and report["onnx_max_abs_difference"] < 1e-4
    # Independently: the same choice applied in Python, against onnxruntime on the written file.
    own = load_own(model, data=data)
    pruned = pruning_core.apply_choice(own.model, own.split, load_recipe(recipe).to_choice()).model
    (written,) = onnxruntime_outputs((tmp_path / "out" / "pruned.onnx").read_bytes(), digits.X_test)
    with torch.inference_mode():
        np.testing.assert_allclose(written, pruned(digits.X_test).numpy(), atol=1e-4, rtol=1e-4)
    (dense,) = onnxruntime_outputs(model.read_bytes(), digits.X_test)
    assert np.abs(written - dense).max() > 0.1  # the biases of removed filters were written too
    assert report["measured"]["accuracy"] == accuracy(written, digits.y_test)
    (smaller,) = onnxruntime_outputs((tmp_path / "out" / "model.onnx").read_bytes(), digits.X_test)
    np.testing.assert_allclose(smaller, written, atol=1e-4, rtol=1e-4)  # the shrunk model computes the same


def test_apply_of_a_data_free_recipe_needs_no_data_and_keeps_the_users_keys(files, capsys, tmp_path):
    from safetensors.torch import load_file

    directory, _, _ = files
    recipe, out = tmp_path / "r.json", tmp_path / "out"
    argv = ["recipe", "--model-file", directory / "weights.safetensors", "--model-factory", "digits-cnn",
            "--method", "magnitude", "--sparsity", "0.6", "--format", "json", "--output", recipe]  # fmt: skip
    code, _, err = run(capsys, argv)
    assert code == 0 and "not accuracy" in err
    assert json.loads(recipe.read_text())["model"]["file"]["factory"] == "digits-cnn"
    argv = ["apply", recipe, "--model-file", directory / "weights.safetensors", "--out", out]
    code, out_text, err = run(capsys, argv)
    assert code == 0, err  # the factory came from the recipe
    assert "accuracy not measured (no --data)" in out_text
    weights = load_file(out / "pruned.safetensors")
    sample = sample_models.load_sample("digits-cnn").model
    expected = pruning_core.apply_masks(sample, pruning_core.compute_masks(sample, "magnitude", "global", 0.6))
    assert weights.keys() == sample.state_dict().keys()
    for name, tensor in expected.state_dict().items():
        assert torch.equal(weights[name], tensor), name


def test_apply_refuses_another_model_file_naming_both_digests(files, capsys, tmp_path):
    directory, digits, _ = files
    recipe, other = tmp_path / "r.yaml", tmp_path / "other.onnx"
    argv = ["recipe", "--model-file", directory / "net.onnx", "--method", "magnitude", "--sparsity", "0.5"]
    assert run(capsys, [*argv, "--output", recipe])[0] == 0
    net = load_model(directory / "net.onnx", filename="net.onnx").model
    other.write_bytes(to_onnx(net, digits.X_test))  # the same weights, another file
    code, _, err = run(capsys, ["apply", recipe, "--model-file", other, "--out", tmp_path / "out"])
    (line,) = err.splitlines()
    assert code == 2 and "not the same file" in line
    for path in (other, directory / "net.onnx"):
        assert hashlib.sha256(path.read_bytes()).hexdigest()[:12] in line
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsys, ["apply", recipe, "--out", tmp_path / "out"])
    assert code == 2 and "--model-file PATH" in err and hashlib.sha256(other.read_bytes()).hexdigest() not in err


def test_sweep_of_a_recipe_for_an_own_model_checks_the_file_and_measures_it(files, capsys, tmp_path):
    directory, _, _ = files
    recipe = tmp_path / "r.yaml"
    model = ["--model-file", directory / "net.onnx"]
    assert run(capsys, ["recipe", *model, "--method", "magnitude", "--sparsity", "0.7", "--output", recipe])[0] == 0
    rows = sweep_json(capsys, ["--recipe", recipe, *model, "--data", directory / "data.npz"])
    assert [r["target_sparsity"] for r in rows] == [0.0, 0.7]
    code, _, err = run(capsys, ["sweep", "--recipe", recipe, "--model", "digits-mlp"])
    assert code == 2 and "contradicts the recipe, which is for your own onnx model file" in err


def test_a_recipe_that_reads_data_needs_it_and_refuses_other_data(files, capsys, tmp_path):
    directory, _, _ = files
    recipe = tmp_path / "r.yaml"
    model = ["--model-file", directory / "net.onnx"]
    argv = ["recipe", *model, "--data", directory / "data.npz", "--method", "wanda", "--sparsity", "0.5"]
    assert run(capsys, [*argv, "--output", recipe])[0] == 0
    code, _, err = run(capsys, ["apply", recipe, *model, "--out", tmp_path / "a"])
    assert code == 2 and "wanda scores weights on calibration samples" in err and "--data PATH" in err
    other = ["--data", directory / "data.csv", "--label-column", "digit"]
    code, _, err = run(capsys, ["apply", recipe, *model, *other, "--out", tmp_path / "b"])
    assert code == 2 and "not the same data" in err and "prunes differently" in err


# --- sensitivity, layers, lottery ----------------------------------------------------------------


def test_sensitivity_and_layers_of_an_onnx_model(files, capsys):
    directory, _, _ = files
    model = ["--model-file", directory / "net.onnx"]
    code, out, err = run(capsys, ["sensitivity", *model, "--data", directory / "data.npz", "--sparsities", "0.5",
                                  "--format", "json", "--quiet"])  # fmt: skip
    assert code == 0, err
    layers = ["stem", "depthwise", "pointwise", "branch_a", "branch_b", "fc1", "fc2"]
    assert [r["layer"] for r in json.loads(out)] == layers
    code, out, err = run(capsys, ["layers", *model, "--format", "json"])  # no data needed
    assert code == 0 and [r["layer"] for r in json.loads(out)] == layers


def test_lottery_is_refused_for_an_own_model_as_in_the_app_and_studies(files, capsys, tmp_path):
    directory, _, _ = files
    data = ["--model-file", directory / "net.onnx", "--data", directory / "data.npz"]
    lottery = ["--schedule", "lottery", "--finetune-epochs", "1", "--rounds", "2"]
    for argv in (["sweep", *data, "--sparsities", "0.5", *lottery],
                 ["recipe", *data, "--method", "magnitude", "--sparsity", "0.5", *lottery]):  # fmt: skip
        code, _, err = run(capsys, argv)
        (line,) = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and "lottery schedule rewinds to the weights a model was trained from" in line
        assert "oneshot, iterative or gradual" in line


# --- usage errors and refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["sweep", "--model", "digits-mlp", "--model-file", "x.onnx"], "not both"),
        (["sweep", "--sparsities", "0"], "give --model NAME, --model-file PATH or --recipe FILE"),
        (["sweep", "--model", "digits-mlp", "--data", "d.npz"], "--data goes with --model-file"),
        (["sensitivity", "--model", "digits-mlp", "--label-column", "y"], "--label-column goes with --model-file"),
        (["recipe", "--method", "magnitude", "--sparsity", "0.5"], "--model NAME (or --model-file PATH)"),
        (["layers", "digits-mlp", "--model-file", "x.onnx"], "not both"),
    ],
)
def test_exactly_one_of_model_and_model_file(argv, fragment, capsys):
    code, _, err = run(capsys, argv)
    (line,) = err.splitlines()
    assert code == 2 and fragment in line, line


@pytest.mark.parametrize(
    ("command", "why"),
    [
        (["sweep"], "sweep measures accuracy"),
        (["sensitivity"], "sensitivity measures each layer's accuracy drop"),
        (["recipe", "--method", "taylor", "--sparsity", "0.5"], "taylor scores weights on calibration samples"),
    ],
)
def test_without_data_what_needs_accuracy_says_why_and_what_to_pass(command, why, files, capsys):
    directory, _, _ = files
    code, _, err = run(capsys, [*command, "--model-file", directory / "net.onnx"])
    (line,) = err.splitlines()
    assert code == 2 and why in line and "add --data PATH" in line


def test_a_state_dict_without_an_architecture_says_to_name_one(files, capsys):
    directory, _, _ = files
    code, _, err = run(capsys, ["layers", "--model-file", directory / "weights.safetensors"])
    (line,) = err.splitlines()
    assert code == 2 and "--model-factory" in line and "digits-cnn" in line


def test_a_command_running_pickle_is_refused_in_one_line_and_never_runs(files, tmp_path):
    from tests.hostile.make_hostile import RunsCommand

    directory, _, _ = files
    marker = tmp_path / "PAYLOAD_RAN"
    weights = tmp_path / "weights.pt"
    torch.save({"fc1.weight": torch.zeros(2, 2), "payload": RunsCommand(marker)}, weights)
    result = subprocess.run(
        [sys.executable, "-m", "pruning_core", "sweep", "--model-file", str(weights), "--model-factory", "digits-cnn",
         "--data", str(directory / "data.npz")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: --model-file") and "posix.system" in line and "Traceback" not in line
    assert not marker.exists()


def test_data_that_does_not_fit_the_model_is_refused_in_one_line(files, capsys, tmp_path):
    directory, _, _ = files
    bad = tmp_path / "labels.csv"
    bad.write_text("p0,p1,digit\n" + "".join(f"{i}.0,{i}.5,{i % 3}\n" for i in range(30)))
    code, _, err = run(capsys, ["sweep", "--model-file", directory / "net.onnx", "--data", bad])
    (line,) = err.splitlines()
    assert code == 2 and line.startswith(f"error: --data {str(bad)!r} refused:")


def test_script_refuses_a_recipe_for_an_own_model(files, capsys, tmp_path):
    directory, _, _ = files
    recipe = tmp_path / "r.yaml"
    argv = ["recipe", "--model-file", directory / "net.onnx", "--method", "magnitude", "--sparsity", "0.5"]
    assert run(capsys, [*argv, "--output", recipe])[0] == 0
    code, _, err = run(capsys, ["script", recipe])
    assert code == 2 and "sample models only" in err and "apply RECIPE --model-file" in err


# --- the Python API -------------------------------------------------------------------------------


def test_the_readmes_python_example_for_your_own_model_runs(files, monkeypatch, tmp_path):
    import shutil

    directory, _, _ = files
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n### Your own model and data\n", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)[:1]
    for name in ("net.onnx", "data.npz", "weights.safetensors"):
        shutil.copy(directory / name, tmp_path / name)
    lines = (directory / "data.csv").read_text().splitlines()
    (tmp_path / "data.csv").write_text("\n".join(lines[:401]) + "\n")  # 400 digits: a quicker example
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"print": lambda *args: None}
    exec(compile(code, "README.md", "exec"), namespace)
    assert set(namespace["table"]["method"]) == {"magnitude", "structured-l1"}
    assert (tmp_path / "pruned.onnx").exists() and (tmp_path / "pruned" / "pruned.onnx").exists()
    assert namespace["recipe"].model_file["sha256"] == namespace["own"].loaded.sha256
    assert pruning_core.load_own is load_own


def test_a_fine_tuned_model_with_batchnorm_is_written_back_whole(files):
    """Fine-tuning changes biases and BatchNorm's tensors too: all go back into the user's graph."""
    from pruning_core.finetune import FineTuneConfig
    from pruning_core.schedules import Schedule

    _, digits, _ = files
    onnx_bytes = to_onnx(residual_net(), digits.X_test, keep_batchnorm=True)
    own = load_own(onnx_bytes, model_filename="bn.onnx")
    assert "stem_bn.running_var" in own.loaded.conversion.param_sources
    choice = pruning_core.PruningChoice("structured-l1", sparsity=0.3, schedule=Schedule("oneshot", FineTuneConfig(1)))
    tuned = pruning_core.apply_choice(own.model, (digits.X_train[:200], digits.y_train[:200]), choice).model
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, own.model.state_dict()[k])]
    assert {"stem_bn.running_mean", "fc2.bias"} <= set(changed)
    (written,) = onnxruntime_outputs(own.loaded.pruned_onnx(tuned), digits.X_test)
    with torch.inference_mode():
        np.testing.assert_allclose(written, tuned.eval()(digits.X_test).numpy(), atol=1e-4, rtol=1e-4)
