"""Rules of ui.config: the explorer's choice survives the URL round trip, and bad links never raise."""

from __future__ import annotations

import functools
from dataclasses import fields, replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import sample_models
from pruning_core import method_names, prunable_layers
from ui.config import MAX_LEVELS, QUERY_KEYS, SWEEP_SCOPES, URL_FIELDS, ExplorerConfig, from_query, widget_values

DEFAULT = ExplorerConfig()
MODELS = sample_models.available()
METHODS = method_names()
# config field -> query key
FIELD_KEYS = {
    "model": "model",
    "methods": "methods",
    "scope": "scope",
    "s_min": "smin",
    "s_max": "smax",
    "n_levels": "n",
    "explicit_levels": "levels",
    "exclude": "exclude",
    "seed": "seed",
}


@functools.cache
def layers_of(model: str) -> tuple[str, ...]:
    """The prunable layers of a sample model (built untrained: only the layer names matter)."""
    return tuple(prunable_layers(sample_models.get_spec(model).build()))


def mlp_layers(_model: str) -> list[str]:
    return ["fc1", "fc2", "fc3"]


# The sidebar's range slider moves in steps of 0.01 over [0, 0.99].
slider_sparsity = st.integers(0, 99).map(lambda k: k / 100)
# A typed-in sparsity with up to 4 decimals.
typed_sparsity = st.integers(0, 9999).map(lambda k: k / 10000)


@st.composite
def configs(draw, sparsity=typed_sparsity, explicit: bool = True) -> ExplorerConfig:
    model = draw(st.sampled_from(MODELS))
    lo, hi = sorted((draw(sparsity), draw(sparsity)))
    levels: tuple[float, ...] = ()
    if explicit and draw(st.booleans()):
        levels = tuple(sorted(draw(st.lists(typed_sparsity, min_size=1, max_size=MAX_LEVELS, unique=True))))
    return ExplorerConfig(
        model=model,
        methods=tuple(draw(st.lists(st.sampled_from(METHODS), min_size=1, unique=True))),
        scope=draw(st.sampled_from(SWEEP_SCOPES)),
        s_min=lo,
        s_max=hi,
        n_levels=draw(st.integers(1, MAX_LEVELS)),
        explicit_levels=levels,
        exclude=tuple(draw(st.lists(st.sampled_from(layers_of(model)), unique=True))),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def assert_valid(config: ExplorerConfig) -> None:
    """What every parsed config satisfies, whatever the link said."""
    assert config.model in MODELS
    assert config.methods and all(m in METHODS for m in config.methods)
    assert config.scope in SWEEP_SCOPES
    assert 0 <= config.s_min <= config.s_max < 1
    assert 1 <= config.n_levels <= MAX_LEVELS
    assert len(config.explicit_levels) <= MAX_LEVELS
    assert all(0 <= s < 1 for s in config.explicit_levels)
    assert isinstance(config.seed, int)


# --- round trip -------------------------------------------------------------------------------------


def test_default_config_has_an_empty_query():
    assert DEFAULT.to_query() == {}


def test_empty_query_gives_the_default_without_notices():
    assert from_query({}) == (DEFAULT, [])


NON_DEFAULT = [
    ExplorerConfig(model="digits-cnn"),
    ExplorerConfig(methods=("nm-2:4",)),
    ExplorerConfig(methods=("random", "magnitude")),  # same set as a default subset, other order
    ExplorerConfig(scope="layerwise"),
    ExplorerConfig(s_min=0.5, s_max=0.99, n_levels=5),
    ExplorerConfig(s_min=0.3, s_max=0.3, n_levels=1),
    ExplorerConfig(n_levels=40),
    ExplorerConfig(explicit_levels=(0.0, 0.5, 0.9, 0.95)),
    ExplorerConfig(exclude=("fc3",)),
    ExplorerConfig(exclude=("fc1", "fc3")),
    ExplorerConfig(seed=2**31 - 1),
    ExplorerConfig(
        model="moons-mlp",
        methods=("structured-l2", "nm-1:4", "magnitude"),
        scope="layerwise",
        s_min=0.01,
        s_max=0.02,
        n_levels=2,
        explicit_levels=(0.0001, 0.25),
        exclude=("fc2",),
        seed=7,
    ),
]


@pytest.mark.parametrize("config", [DEFAULT, *NON_DEFAULT], ids=lambda c: ",".join(sorted(c.to_query())) or "default")
def test_round_trip_of_chosen_configs(config):
    assert from_query(config.to_query(), layers_of=layers_of) == (config, [])


@settings(max_examples=200, deadline=None)
@given(configs())
def test_round_trip_of_any_config(config):
    parsed, notices = from_query(config.to_query(), layers_of=layers_of)
    assert parsed == config
    assert notices == []


@settings(max_examples=100, deadline=None)
@given(configs())
def test_query_holds_exactly_the_fields_that_differ_from_the_default(config):
    query = config.to_query()
    differing = {
        FIELD_KEYS[f.name] for f in fields(ExplorerConfig) if getattr(config, f.name) != getattr(DEFAULT, f.name)
    }
    assert set(query) == differing
    assert set(query) <= set(QUERY_KEYS)
    assert all(isinstance(v, str) for v in query.values())


@pytest.mark.parametrize(
    "config",
    [ExplorerConfig(s_min=0.1234567, s_max=0.5), ExplorerConfig(explicit_levels=(0.5, 0.87654321))],
    ids=["smin", "levels"],
)
def test_round_trip_keeps_full_precision(config):
    # both parse back without a notice, so nothing tells the user the link changed the choice
    assert from_query(config.to_query()) == (config, [])


# --- levels ------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(configs(sparsity=slider_sparsity, explicit=False))
def test_range_levels_are_ascending_unique_within_range_and_n_long(config):
    levels = config.levels
    assert list(levels) == sorted(set(levels))
    assert all(config.s_min <= s <= config.s_max for s in levels)
    assert levels[0] == config.s_min
    if config.s_min < config.s_max:
        assert len(levels) == config.n_levels
        if config.n_levels > 1:
            assert levels[-1] == config.s_max
    else:  # a zero-width range holds a single level
        assert levels == (config.s_min,)


@pytest.mark.parametrize(
    ("s_min", "s_max", "n", "expected"),
    [
        (0.0, 0.9, 4, (0.0, 0.3, 0.6, 0.9)),
        (0.5, 0.9, 1, (0.5,)),
        (0.0, 0.95, 20, tuple(round(i * 0.05, 2) for i in range(20))),
        (0.1, 0.2, 3, (0.1, 0.15, 0.2)),
    ],
)
def test_range_levels_examples(s_min, s_max, n, expected):
    levels = ExplorerConfig(s_min=s_min, s_max=s_max, n_levels=n).levels
    assert levels == pytest.approx(expected, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(typed_sparsity, min_size=1, max_size=MAX_LEVELS), configs(explicit=False))
def test_explicit_levels_override_the_range(values, config):
    config = replace(config, explicit_levels=tuple(values))
    assert config.levels == tuple(sorted(set(values)))


# --- bad links -----------------------------------------------------------------------------------------

BAD = [
    # (query, fields that must keep their default, text the notice must mention)
    ({"model": "resnet-50"}, ["model"], "resnet-50"),
    ({"methods": "bogus"}, ["methods"], "bogus"),
    ({"methods": "bogus,also-bogus"}, ["methods"], "also-bogus"),
    ({"scope": "per-layer"}, ["scope"], "per-layer"),
    ({"scope": "GLOBAL"}, ["scope"], "GLOBAL"),
    ({"smin": "abc"}, ["s_min"], "abc"),
    ({"smin": "1.5"}, ["s_min"], "1.5"),
    ({"smin": "-0.1"}, ["s_min"], "-0.1"),
    ({"smin": "nan"}, ["s_min"], "nan"),
    ({"smax": "1"}, ["s_max"], "1"),
    ({"smax": "xyz"}, ["s_max"], "xyz"),
    ({"n": "0"}, ["n_levels"], "0"),
    ({"n": "41"}, ["n_levels"], "41"),
    ({"n": "x"}, ["n_levels"], "x"),
    ({"n": "2.5"}, ["n_levels"], "2.5"),
    ({"levels": "a,b"}, ["explicit_levels"], "a,b"),
    ({"levels": "0.5,2"}, ["explicit_levels"], "0.5,2"),
    ({"levels": ",".join(["0.5"] * (MAX_LEVELS + 1))}, ["explicit_levels"], "0.5,0.5"),
    ({"exclude": "fc9"}, ["exclude"], "fc9"),
    ({"seed": "x"}, ["seed"], "x"),
    ({"seed": "1.5"}, ["seed"], "1.5"),
]


@pytest.mark.parametrize(("query", "defaulted", "mentioned"), BAD, ids=[str(q) for q, _, _ in BAD])
def test_bad_value_gives_default_and_a_notice_naming_it(query, defaulted, mentioned):
    config, notices = from_query(query, layers_of=mlp_layers)
    for name in defaulted:
        assert getattr(config, name) == getattr(DEFAULT, name)
    assert notices
    assert all(isinstance(n, str) and n for n in notices)
    assert any(mentioned in n for n in notices), notices


@pytest.mark.parametrize(("query", "defaulted", "mentioned"), BAD, ids=[str(q) for q, _, _ in BAD])
def test_bad_value_leaves_the_other_fields_alone(query, defaulted, mentioned):
    others = {"model": "digits-cnn", "scope": "layerwise", "seed": "7", "n": "5"}
    config, _ = from_query({**{k: v for k, v in others.items() if k not in query}, **query})
    expected = from_query({k: v for k, v in others.items() if k not in query})[0]
    for f in fields(ExplorerConfig):
        if f.name not in defaulted:
            assert getattr(config, f.name) == getattr(expected, f.name), f.name


def test_smin_above_smax_gives_the_default_range():
    config, notices = from_query({"smin": "0.8", "smax": "0.3"})
    assert (config.s_min, config.s_max) == (DEFAULT.s_min, DEFAULT.s_max)
    assert notices


def test_smin_above_default_smax_gives_the_default_range():
    config, notices = from_query({"smin": "0.97"})
    assert (config.s_min, config.s_max) == (DEFAULT.s_min, DEFAULT.s_max)
    assert notices


def test_smin_above_smax_notice_names_the_values():
    _, notices = from_query({"smin": "0.8", "smax": "0.3"})
    assert any("0.8" in n and "0.3" in n for n in notices), notices


def test_valid_methods_are_kept_when_mixed_with_unknown_ones():
    config, notices = from_query({"methods": "magnitude, bogus,nm-2:4,magnitude"})
    assert config.methods == ("magnitude", "nm-2:4")
    assert len(notices) == 1 and "bogus" in notices[0]


def test_only_unknown_methods_give_the_default_methods():
    config, notices = from_query({"methods": "bogus"})
    assert config.methods == DEFAULT.methods
    assert any("bogus" in n for n in notices)


def test_unknown_excluded_layer_is_dropped_and_known_ones_kept():
    config, notices = from_query({"exclude": "fc1,fc9"}, layers_of=mlp_layers)
    assert config.exclude == ("fc1",)
    assert len(notices) == 1 and "fc9" in notices[0]


def test_exclude_is_checked_against_the_linked_model():
    # conv1 exists in digits-cnn but not in the default digits-mlp
    config, notices = from_query({"model": "digits-cnn", "exclude": "conv1,fc3"}, layers_of=layers_of)
    assert config.exclude == ("conv1",)
    assert len(notices) == 1 and "fc3" in notices[0]


def test_many_bad_values_at_once_give_the_default_and_one_notice_each():
    query = {"model": "m?", "methods": "x", "scope": "s?", "smin": "a", "n": "0", "levels": "b", "seed": "c"}
    config, notices = from_query(query, layers_of=mlp_layers)
    assert config == DEFAULT
    for bad in ("m?", "'x'", "s?", "'a'", "'0'", "'b'", "'c'"):
        assert any(bad in n for n in notices), bad


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=30)))
def test_any_query_parses_to_a_valid_config_without_raising(query):
    config, notices = from_query(query, layers_of=mlp_layers)
    assert_valid(config)
    assert all(isinstance(n, str) for n in notices)
    assert set(config.exclude) <= set(mlp_layers(config.model))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(QUERY_KEYS),
        st.one_of(
            st.sampled_from(["", "0", "1", "-1", "0.5", "0.99", "1e-3", "inf", "nan", "40", "41", "fc1", "global"]),
            st.sampled_from(MODELS + METHODS),
            st.lists(st.sampled_from(METHODS + ["bogus", "0.2", " "]), max_size=4).map(",".join),
        ),
    )
)
def test_plausible_queries_parse_to_a_valid_config(query):
    config, _ = from_query(query, layers_of=mlp_layers)
    assert_valid(config)


@pytest.mark.parametrize("key", ["model", "methods", "levels", "exclude", "alloc", "seed"])
def test_an_oversize_link_value_is_dropped_unread_with_a_short_notice(key):
    huge = "0," * 50_000
    config, notices = from_query({key: huge, "scope": "layerwise"})
    assert config.scope == "layerwise"  # the other fields are still read
    assert len(notices) == 1 and key in notices[0] and "at most" in notices[0]
    assert len(notices[0]) < 120  # the value itself is not echoed


# --- the table of URL fields ----------------------------------------------------------------------------


def test_every_explorer_config_field_is_held_by_exactly_one_url_field():
    held = [attr for url_field in URL_FIELDS for attr in url_field.attrs]
    assert sorted(held) == sorted(f.name for f in fields(ExplorerConfig))
    assert len(set(QUERY_KEYS)) == len(QUERY_KEYS) == len(URL_FIELDS)


def allocations(model: str):
    """A per-layer proposal for ``model``: a method and some of its layers with sparsities."""
    pairs = st.lists(st.sampled_from(layers_of(model)), min_size=1, unique=True).flatmap(
        lambda names: st.tuples(*[st.tuples(st.just(n), typed_sparsity) for n in names])
    )
    return st.tuples(pairs, st.sampled_from(METHODS))


# One strategy per query key for the values its field may hold (given the model of the link).
FIELD_VALUES = {
    "model": lambda model: st.just(model),
    "methods": lambda model: st.lists(st.sampled_from(METHODS), min_size=1, unique=True).map(tuple),
    "scope": lambda model: st.sampled_from(SWEEP_SCOPES),
    "smin": lambda model: st.floats(0, 1, exclude_max=True, allow_nan=False),
    "smax": lambda model: st.floats(0, 1, exclude_max=True, allow_nan=False),
    "n": lambda model: st.integers(1, MAX_LEVELS),
    "levels": lambda model: st.lists(typed_sparsity, max_size=MAX_LEVELS, unique=True).map(lambda v: tuple(sorted(v))),
    "exclude": lambda model: st.lists(st.sampled_from(layers_of(model)), unique=True).map(tuple),
    "seed": lambda model: st.integers(-(2**63), 2**63),
    "alloc": allocations,
}


def test_the_round_trip_strategies_cover_every_url_field():
    assert set(FIELD_VALUES) == set(QUERY_KEYS)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(URL_FIELDS), st.sampled_from(MODELS))
def test_every_url_field_reads_back_what_it_writes(data, url_field, model):
    value = data.draw(FIELD_VALUES[url_field.key](model))
    base = ExplorerConfig(model=model, s_max=0.0 if url_field.key == "smin" else 0.95)
    if url_field.key == "smax":
        base = replace(base, s_min=0.0)
    config = replace(base, **url_field.changes(value))
    assume(config.s_min <= config.s_max)  # an unordered range is a bad link, tested above
    text = url_field.format(url_field.get(config))
    assert isinstance(text, str)
    query = config.to_query()
    # the field is in the link exactly when it differs from its default
    assert (url_field.key in query) == (url_field.get(config) != url_field.default())
    parsed, notices = from_query(query, layers_of=layers_of)
    assert notices == []
    assert url_field.get(parsed) == url_field.get(config)
    assert parsed == config


@settings(max_examples=100, deadline=None)
@given(configs())
def test_the_sidebar_widgets_show_the_config(config):
    values = widget_values(config)
    assert values["w_model"] == config.model and values["w_methods"] == list(config.methods)
    assert values["w_mode"] == ("List" if config.explicit_levels else "Range")
    assert values["w_range"] == (config.s_min, config.s_max)
    if config.explicit_levels:
        assert tuple(float(v) for v in values["w_list"].split(",")) == pytest.approx(config.explicit_levels, abs=1e-6)
