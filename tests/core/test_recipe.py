"""Recipes: the written file round-trips exactly, and every kind of bad recipe is refused with a
message naming the problem."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import sample_models
from pruning_core import recipe
from pruning_core.methods import method_names
from pruning_core.recipe import RECIPE_VERSION, Recipe, RecipeError, dumps, load, loads


def valid() -> dict:
    return yaml.safe_load(dumps(Recipe(model="digits-mlp", method="magnitude", scope="global", sparsity=0.8)))


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(sample_models.available()),
    method=st.sampled_from(method_names()),
    scope=st.sampled_from(["global", "layerwise"]),
    sparsity=st.floats(0, 0.999, allow_nan=False),
    seed=st.integers(0, 2**31),
    fmt=st.sampled_from(["yaml", "json"]),
)
def test_dump_then_load_gives_the_same_recipe(model, method, scope, sparsity, seed, fmt):
    recipe = Recipe(model=model, method=method, scope=scope, sparsity=sparsity, seed=seed, provenance={"a": 1})
    assert loads(dumps(recipe, fmt)) == recipe


def test_per_layer_recipes_round_trip():
    recipe = Recipe(
        model="digits-mlp", method="magnitude", scope="per-layer", layer_sparsities={"fc1": 0.9, "fc2": 0.5}
    )
    assert loads(dumps(recipe)) == recipe
    assert recipe.sparsity_argument == {"fc1": 0.9, "fc2": 0.5}


def test_recipe_records_version_granularity_and_nm_parameters():
    data = yaml.safe_load(dumps(Recipe(model="digits-cnn", method="nm-2:4", scope="layerwise", sparsity=0.5)))
    assert data["version"] == RECIPE_VERSION
    assert data["pruning"]["granularity"] == "n:m"
    assert data["pruning"]["n_m"] == {"n": 2, "m": 4}
    assert data["schedule"] is None and data["finetune"] is None


def mutate(path: str, value):
    data = valid()
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

BAD = [
    (mutate("extra", 1), "extra"),
    (mutate("pruning.speed", "fast"), "speed"),
    (mutate("model.weights", "x"), "weights"),
    (mutate("version", RECIPE_VERSION + 1), "newer"),
    (mutate("version", "one"), "version"),
    (mutate("version", _DELETE), "version"),
    (mutate("model.sample", "resnet-50"), "resnet-50"),
    (mutate("pruning.method", "taylor-magic"), "taylor-magic"),
    (mutate("pruning.method", 3), "method"),
    (mutate("pruning.scope", "everywhere"), "everywhere"),
    (mutate("pruning.sparsity", 1.5), "1.5"),
    (mutate("pruning.sparsity", -0.1), "-0.1"),
    (mutate("pruning.sparsity", "lots"), "lots"),
    (mutate("pruning.sparsity", True), "True"),
    (mutate("pruning.seed", -3), "-3"),
    (mutate("pruning.seed", 1.5), "1.5"),
    (mutate("pruning.exclude", "fc3"), "exclude"),
    (mutate("pruning.exclude", ["fc9"]), "fc9"),
    (mutate("pruning.granularity", "structured"), "granularity"),
    (mutate("schedule", "daily"), "schedule"),
    ([1, 2, 3], "mapping"),
]


@pytest.mark.parametrize("data, named", BAD, ids=[named for _, named in BAD])
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_each_kind_of_bad_recipe_is_refused_with_a_message_naming_it(data, named, fmt):
    text = json.dumps(data) if fmt == "json" else yaml.safe_dump(data)
    with pytest.raises(RecipeError) as info:
        loads(text)
    assert named in str(info.value)


def test_every_problem_is_reported_at_once():
    data = mutate("extra", 1)
    data["pruning"]["sparsity"] = 2.0
    data["pruning"]["method"] = "nope"
    data["model"]["sample"] = "nope-model"
    with pytest.raises(RecipeError) as info:
        loads(yaml.safe_dump(data))
    assert len(info.value.problems) == 4


@pytest.mark.parametrize(
    "text, named",
    [
        ("version: 1\nmodel: [unclosed", "YAML"),
        ('{"version": 1,', "JSON"),
        ("a: &anchor [1, 2]\nb: *anchor\n", "aliases"),
        ("!!python/object/apply:os.system ['echo hacked']", "YAML"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        ("x" * 1_000_001, "at most"),
        ("just a sentence", "mapping"),
    ],
    ids=["malformed yaml", "malformed json", "alias bomb", "python tag", "binary", "huge", "scalar"],
)
def test_malformed_or_hostile_files_are_refused_with_a_message(text, named):
    with pytest.raises(RecipeError) as info:
        loads(text)
    assert named in str(info.value)


def test_per_layer_recipe_checks_layer_names_and_values():
    data = valid()
    data["pruning"]["scope"] = "per-layer"
    del data["pruning"]["sparsity"]
    data["pruning"]["layer_sparsities"] = {"fc1": 0.5, "fc9": 0.5, "fc2": 2}
    with pytest.raises(RecipeError) as info:
        loads(yaml.safe_dump(data))
    assert "fc9" in str(info.value) and "'fc2'" in str(info.value)


def test_load_reads_files_and_reports_unreadable_paths(tmp_path):
    path = tmp_path / "r.json"
    recipe = Recipe(model="cancer-mlp", method="random", sparsity=0.3, seed=7)
    path.write_text(dumps(recipe, "json"))
    assert load(path) == recipe
    with pytest.raises(RecipeError, match="cannot read"):
        load(tmp_path / "missing.yaml")


# --- hostile input is refused before any parser sees it -----------------------------------------------

HOSTILE = {
    "deep flow brackets": "[" * 30_000 + "]" * 30_000,
    "deep flow mappings": "{a: " * 12_000 + "1" + "}" * 12_000,
    "deep JSON": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "deep block indentation": "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)),
    "deep block sequence": "- " * 20_000 + "x",
    "oversize": "a: 1\n" * 20_000,
    "alias bomb": "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_recipes_are_refused_with_one_clear_message(name):
    text = HOSTILE[name]
    with pytest.raises(recipe.RecipeError) as info:
        recipe.loads(text)
    message = str(info.value)
    assert any(word in message for word in ("levels deep", "at most", "anchors and aliases")), message
    assert len(message) < 200, message


def test_nesting_up_to_the_limit_reaches_validation_and_one_level_more_does_not():
    def nested(depth: int) -> str:  # the top mapping is one level
        return "x: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"

    with pytest.raises(recipe.RecipeError) as allowed:
        recipe.loads(nested(recipe.MAX_NESTING))
    assert "levels deep" not in str(allowed.value)  # refused for what it says, not for its depth
    with pytest.raises(recipe.RecipeError, match="levels deep"):
        recipe.loads(nested(recipe.MAX_NESTING + 1))


def test_a_recipe_for_an_own_model_records_identities_and_checks_them():
    from pruning_core.choice import PruningChoice
    from pruning_core.recipe import OWN_MODEL, Recipe, dumps, file_identity, loads, source_problems

    model_file = file_identity("onnx", "a" * 64)
    data_file = file_identity("csv", "b" * 64, label_column="label")
    recipe = Recipe.from_choice(OWN_MODEL, PruningChoice("magnitude", "global", 0.7), model_file=model_file,
                                data_file=data_file)  # fmt: skip
    text = dumps(recipe)
    assert "sha256: " + "a" * 64 in text and "/" not in text.split("pruning:")[0]  # no path recorded
    again = loads(text)
    assert again == recipe and again.is_own_model and again.model == OWN_MODEL
    assert source_problems(again, "a" * 64, "b" * 64) == []
    assert "not the same file" in source_problems(again, "c" * 64)[0]
    assert "not the same data" in source_problems(again, "a" * 64, "d" * 64)[0]
    assert "give it" in source_problems(again, None)[0]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"file": {"format": "exe", "sha256": "x"}}, "'model.file.format' is 'exe'"),
        ({"sample": "digits-mlp", "file": {"format": "onnx", "sha256": "a" * 64}}, "give one"),
        ({"sample": "digits-mlp", "data": {"format": "csv", "sha256": "a" * 64}}, "only for your own model"),
        ({"file": {"format": "pt", "sha256": "a" * 64, "factory": "os.system('rm')"}}, "package.module:function"),
        ({"file": {"format": "onnx", "sha256": "a" * 64, "path": "/home/me/m.onnx"}}, "unknown key(s) in 'model.file'"),
    ],
)
def test_a_bad_own_model_section_is_refused_by_name(model, expected):
    from pruning_core.recipe import RecipeError, from_dict

    data = {"version": 1, "model": model, "pruning": {"method": "magnitude", "sparsity": 0.5}}
    with pytest.raises(RecipeError) as info:
        from_dict(data)
    assert expected in str(info.value)
