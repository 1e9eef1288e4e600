"""Rules of ``prunelab layers``, ``recipe --schema``, ``apply --force`` and every command's --help."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

import sample_models
from pruning_core import cli_help
from pruning_core.cli import build_parser, main
from pruning_core.graph import output_layers
from pruning_core.masks import SCOPES
from pruning_core.methods import METHODS
from pruning_core.recipe_schema import recipe_schema
from pruning_core.schedules import SCHEDULES
from pruning_core.targets import prunable_layers

COMMANDS = ["models", "methods", "schedules", "layers", "sweep", "recipe", "apply", "sensitivity", "script", "study"]


def run_json(capsys, argv: list[str]):
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_layers_lists_every_prunable_layer_with_its_shape_parameters_and_output_flag(capsys):
    rows = run_json(capsys, ["layers", "digits-cnn", "--format", "json"])
    sample = sample_models.load_sample("digits-cnn")
    modules = dict(sample.model.named_modules())
    assert [r["layer"] for r in rows] == prunable_layers(sample.model)
    outputs = output_layers(sample.model, sample.data.X_test[:1])
    for row in rows:
        weight = modules[row["layer"]].weight
        assert row["weight_shape"] == "x".join(map(str, weight.shape))
        assert row["weight_params"] == weight.numel()
        assert row["output_layer"] == (row["layer"] in outputs)
    assert sum(r["output_layer"] for r in rows) >= 1


def test_layers_of_an_unknown_model_is_one_error_naming_the_valid_ones(capsys):
    assert main(["layers", "resnet-9000"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "resnet-9000" in line and "digits-mlp" in line


def test_the_schema_enums_come_from_the_registries(capsys):
    schema = run_json(capsys, ["recipe", "--schema"])
    pruning = schema["properties"]["pruning"]["properties"]
    assert pruning["method"]["anyOf"][0]["enum"] == list(METHODS)
    assert pruning["scope"]["enum"] == list(SCOPES)
    assert schema["properties"]["schedule"]["anyOf"][1]["properties"]["kind"]["enum"] == list(SCHEDULES)
    sample, own = schema["properties"]["model"]["oneOf"]
    assert sample["properties"]["sample"]["enum"] == sample_models.available()
    assert own["properties"]["file"]["properties"]["format"]["enum"] == ["onnx", "safetensors", "pt"]
    assert set(pruning["calibration"]["properties"]) == {"split", "samples", "order", "seed"}


ONE_EPOCH = ["--finetune-epochs", "1"]
TRAIN_ITERATIVE = ["--schedule", "iterative", *ONE_EPOCH]
RECIPES = [
    ["--model", "digits-mlp", "--method", "magnitude", "--sparsity", "0.5"],
    ["--model", "digits-mlp", "--method", "random", "--sparsity", "0.8", "--scope", "layerwise", "--seed", "3"],
    ["--model", "digits-mlp", "--method", "nm-2:4", "--sparsity", "0.5"],
    ["--model", "digits-cnn", "--method", "structured-l1", "--sparsity", "0.5", "--exclude", "fc2"],
    ["--model", "digits-mlp", "--method", "magnitude", "--sparsity", "0.5", "--scope", "erk"],
    ["--model", "digits-mlp", "--method", "magnitude", "--sparsity", "0.5", *TRAIN_ITERATIVE],
    ["--model", "moons-mlp", "--method", "magnitude", "--sparsity", "0.5", "--schedule", "gradual", *ONE_EPOCH],
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("argv", RECIPES, ids=lambda a: "-".join(a[1::2]))
def test_every_written_recipe_follows_the_schema(capsys, argv, fmt):
    schema = run_json(capsys, ["recipe", "--schema"])
    assert main(["recipe", *argv, "--format", fmt]) == 0
    text = capsys.readouterr().out
    recipe = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    jsonschema.validate(recipe, schema)


@pytest.mark.parametrize(
    "path,value",
    [
        (("pruning", "method"), "bogus"),
        (("pruning", "scope"), "everywhere"),
        (("pruning", "sparsity"), 1.0),
        (("pruning", "colour"), "red"),
        (("model", "sample"), "resnet-9000"),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(capsys, path, value):
    from pruning_core.recipe import RecipeError, from_dict

    schema = recipe_schema()
    assert main(["recipe", *RECIPES[0], "--format", "json"]) == 0
    recipe = json.loads(capsys.readouterr().out)
    recipe[path[0]][path[1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(recipe, schema)
    with pytest.raises(RecipeError):
        from_dict(recipe)


def test_recipe_without_model_method_sparsity_names_what_is_missing(capsys):
    assert main(["recipe", "--model", "digits-mlp"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--method" in line and "--sparsity" in line and "--schema" in line


def test_apply_refuses_a_non_empty_out_unless_forced(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    assert main(["recipe", *RECIPES[0], "--output", str(recipe)]) == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["apply", str(recipe), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--force" in line and str(out) in line
    assert not (out / "pruned.safetensors").exists()
    assert main(["apply", str(recipe), "--out", str(out), "--force"]) == 0
    assert (out / "pruned.safetensors").exists()


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_every_command_shows_examples(command):
    sub = _subparsers()[command]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        if action.default not in (None, False, "", "==SUPPRESS==") and action.option_strings:
            assert "default" in action.help, f"{command} {action.option_strings} does not show its default"
    text = sub.format_help()
    assert "examples:" in text
    for example in cli_help.EXAMPLES[command]:
        assert example in text  # printed as written (RawDescriptionHelpFormatter)


def test_a_recipe_with_several_problems_lists_each_on_its_own_line_exit_2(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\nmodel: {sample: digits-mlp}\n"
        "pruning: {method: bogus, scope: everywhere, colour: red, sparsity: 0.5}\n"
    )
    assert main(["script", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"error: invalid recipe {str(path)!r}:"
    assert len(lines) == 4 and all(line.startswith("  - ") for line in lines[1:])
    for named in ("bogus", "everywhere", "colour"):
        assert sum(named in line for line in lines[1:]) == 1


def test_sweep_flags_a_recipe_overrides_are_noted_on_stderr(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    assert main(["recipe", *RECIPES[0], "--output", str(recipe)]) == 0
    capsys.readouterr()
    argv = ["sweep", "--recipe", str(recipe), "--methods", "random", "--seed", "4", "--sparsities", "0.5", "--quiet"]
    assert main([*argv, "--format", "csv"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2
    assert "--methods 'random' is ignored" in notes[0] and "--seed 4 is ignored" in notes[1]


def test_apply_warns_when_fine_tuning_is_far_below_the_samples_training(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    assert main(["recipe", *RECIPES[-1], "--output", str(recipe)]) == 0  # 1 epoch; moons-mlp trained for more
    capsys.readouterr()
    assert main(["apply", str(recipe), "--out", str(tmp_path / "out")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert any("far below" in line for line in warnings), warnings


def test_apply_reports_the_numbers_of_report_json_with_the_apps_names(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    assert main(["recipe", *RECIPES[0], "--output", str(recipe)]) == 0
    assert main(["apply", str(recipe), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    measured = json.loads((tmp_path / "out" / "report.json").read_text())["measured"]
    assert f"test accuracy {measured['accuracy']:.2%}" in out
    assert f"effective sparsity {measured['effective_sparsity']:.1%}" in out
    assert f"(direct {measured['actual_sparsity']:.1%})" in out


@pytest.mark.parametrize(
    "schedule,warned",
    [
        (["--schedule", "gradual", "--finetune-epochs", "1"], True),
        (["--schedule", "iterative", "--rounds", "3", "--finetune-epochs", "2"], False),
    ],
)
def test_recipe_warns_when_the_total_fine_tuning_is_below_a_tenth_of_the_samples(capsys, schedule, warned):
    argv = ["recipe", "--model", "moons-mlp", "--method", "magnitude", "--sparsity", "0.5", *schedule]
    assert main(argv) == 0  # moons-mlp trained for 60 epochs: 1 is far below, 3 rounds x 2 = 6 is not
    assert ("far below the 60" in capsys.readouterr().err) == warned
