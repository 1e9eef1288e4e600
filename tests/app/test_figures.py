"""Rules of ui.figures: what each figure shows, checked on a real (small) sweep and real masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import pruning_core
import sample_models
from pruning_core.analysis import knee_points
from ui.figures import (
    PALETTE,
    X_AXES,
    Y_METRICS,
    bar_comparison,
    layer_histograms,
    layer_sparsity_bars,
    mask_heatmap,
    method_colour,
    method_label,
    pixel_map,
    pixel_map_caption,
    tradeoff_figure,
)

SWEEP_METHODS = ["magnitude", "random", "structured-l1", "nm-2:4"]


@pytest.fixture(scope="module")
def sample():
    return sample_models.load_sample("digits-mlp")


@pytest.fixture(scope="module")
def table(sample):
    return pruning_core.sweep(sample.model, sample.data, SWEEP_METHODS, [0, 0.5, 0.9])


@pytest.fixture(scope="module")
def dense(table):
    return table.loc[table["actual_sparsity"].idxmin()]


@pytest.fixture(scope="module")
def layer_data(sample):
    """Weights and keep-masks per layer of digits-mlp at 90 % global magnitude sparsity."""
    masks = pruning_core.compute_masks(sample.model, "magnitude", "global", 0.9)
    modules = dict(sample.model.named_modules())
    weights, kept = {}, {}
    for layer in pruning_core.prunable_layers(sample.model):
        weights[layer] = modules[layer].weight.detach().numpy().copy()
        kept[layer] = masks[f"{layer}.weight"].numpy().copy()
    return weights, kept


def axis_objects(fig: go.Figure, letter: str) -> list:
    return [fig.layout[name] for name in fig.layout if name.startswith(f"{letter}axis")]


def used_axes(fig: go.Figure, letter: str) -> list:
    """The layout axes that host at least one trace."""
    refs = {getattr(t, f"{letter}axis") or letter for t in fig.data}
    return [fig.layout[f"{letter}axis{ref[1:]}"] for ref in refs]


def assert_titled(fig: go.Figure) -> None:
    assert fig.layout.title.text
    for axis in used_axes(fig, "x") + used_axes(fig, "y"):
        assert axis.title.text


def method_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if not t.name.startswith("knee")]


# --- tradeoff_figure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_knees", [False, True])
def test_tradeoff_has_one_trace_per_method_plus_knees(table, dense, with_knees):
    knees = knee_points(table, dense=dense["val_accuracy"]) if with_knees else None
    assert knees is None or not knees.empty
    fig = tradeoff_figure(table, dense=dense["accuracy"], knees=knees)
    assert len(fig.data) == len(SWEEP_METHODS) + with_knees
    assert [t.legendgroup for t in method_traces(fig)] == SWEEP_METHODS
    assert [t.name for t in method_traces(fig)] == [method_label(m) for m in SWEEP_METHODS]
    if with_knees:
        (knee,) = (t for t in fig.data if t.name.startswith("knee"))
        assert len(knee.x) == len(knees)
        assert list(knee.marker.color) == [method_colour(m) for m in knees["method"]]


def test_tradeoff_seed_band_spans_min_to_max_at_the_tables_x_positions(sample, table):
    from pruning_core.stats import seed_spread

    def run(seed: int) -> pd.DataFrame:
        return pruning_core.sweep(sample.model, sample.data, ["random"], [0, 0.5, 0.9], seed=seed)

    spread = seed_spread(run, [0, 1, 2])
    fig = tradeoff_figure(table, spread=spread, intervals=True)
    (band,) = (t for t in fig.data if "range over 3 seeds" in t.name)
    assert band.legendgroup == "random" and band.fill == "toself"
    n = len(spread)
    xs = sorted(table[table["method"] == "random"]["actual_sparsity"] * 100)
    assert list(band.x[:n]) == pytest.approx(xs)
    assert list(band.y[:n]) == pytest.approx(list(spread.sort_values("actual_sparsity")["accuracy_max"] * 100))
    assert list(band.y[n:]) == pytest.approx(list(spread.sort_values("actual_sparsity")["accuracy_min"] * 100)[::-1])
    # error bars only where the metric is accuracy
    assert all(t.error_y.array is not None for t in method_traces(fig) if t is not band)
    assert all(t.error_y.array is None for t in method_traces(tradeoff_figure(table, y="loss", intervals=True)))


def test_tradeoff_has_no_knee_trace_for_empty_knees(table):
    fig = tradeoff_figure(table, knees=table.iloc[0:0])
    assert len(fig.data) == len(SWEEP_METHODS)


@pytest.mark.parametrize("x", list(X_AXES))
@pytest.mark.parametrize("y", list(Y_METRICS))
def test_tradeoff_axes_and_points(table, x, y):
    column, x_title, x_scale, x_type = X_AXES[x]
    y_title, y_scale = Y_METRICS[y]
    fig = tradeoff_figure(table, x=x, y=y)
    assert fig.layout.xaxis.title.text == x_title
    assert fig.layout.yaxis.title.text == y_title
    assert fig.layout.xaxis.type == ("log" if x.endswith("compression") else "linear")
    assert x_type == fig.layout.xaxis.type
    assert_titled(fig)
    for trace, method in zip(method_traces(fig), SWEEP_METHODS):
        rows = table[table["method"] == method].sort_values(column)
        assert len(trace.x) == len(trace.y) == len(rows)
        np.testing.assert_allclose(trace.x, rows[column] * x_scale)
        np.testing.assert_allclose(trace.y, rows[y] * y_scale)


def test_tradeoff_fixed_pattern_is_a_single_marker(table):
    fig = tradeoff_figure(table)
    for trace, method in zip(method_traces(fig), SWEEP_METHODS):
        if method == "nm-2:4":
            assert len(trace.x) == 1
            assert trace.mode == "markers"
        else:
            assert len(trace.x) == 3
            assert "lines" in trace.mode and "markers" in trace.mode


def test_tradeoff_compression_axis_is_log(table):
    assert tradeoff_figure(table, x="compression").layout.xaxis.type == "log"


@pytest.mark.parametrize("y", list(Y_METRICS))
def test_tradeoff_dense_line_is_a_shape_at_the_dense_value(table, dense, y):
    fig = tradeoff_figure(table, y=y, dense=dense[y])
    (line,) = fig.layout.shapes
    expected = dense[y] * Y_METRICS[y][1]
    assert line.y0 == pytest.approx(expected) and line.y1 == pytest.approx(expected)
    assert line.yref == "y"
    if y == "accuracy":
        assert expected == pytest.approx(dense["accuracy"] * 100)


def test_tradeoff_without_dense_has_no_line(table):
    assert not tradeoff_figure(table).layout.shapes


def test_method_colour_is_stable_across_figures_and_distinct_between_methods(table):
    first = tradeoff_figure(table[table["method"].isin(["magnitude", "random"])])
    second = tradeoff_figure(table[table["method"].isin(["random", "nm-2:4", "structured-l1"])].iloc[::-1])
    colours_first = {t.legendgroup: t.line.color for t in first.data}
    colours_second = {t.legendgroup: t.line.color for t in second.data}
    assert colours_first["random"] == colours_second["random"]
    colours = {**colours_first, **colours_second}
    assert len(set(colours.values())) == len(colours) == 4


def test_every_registered_method_has_its_own_palette_colour():
    colours = [method_colour(m) for m in pruning_core.METHODS]
    assert all(c in PALETTE for c in colours)
    assert len(set(colours)) == len(colours)
    assert method_colour("not-registered") == method_colour("not-registered") in PALETTE


def test_tradeoff_hover_text_holds_every_metric_of_its_row(table):
    fig = tradeoff_figure(table)
    column = X_AXES["sparsity"][0]
    for trace, method in zip(method_traces(fig), SWEEP_METHODS):
        rows = table[table["method"] == method].sort_values(column)
        assert len(trace.hovertext) == len(rows)
        for text, (_, row) in zip(trace.hovertext, rows.iterrows()):
            assert method_label(method) in text
            for metric in ("accuracy", "precision", "recall", "f1"):
                label = "F1" if metric == "f1" else metric
                assert f"{label}: {row[metric]:.2%}" in text
            assert f"loss: {row['loss']:.3f}" in text
            assert f"sparsity, direct: {row['actual_sparsity']:.2%}" in text
            assert f"sparsity, effective: {row['effective_sparsity']:.2%}" in text
            assert f"nonzero params, direct: {int(row['nonzero_params']):,}" in text
            assert f"params needed, effective: {int(row['effective_params']):,}" in text
            assert f"compression, effective: {row['compression_ratio']:.2f}" in text
            assert f"theoretical speedup, effective: {row['theoretical_speedup']:.2f}" in text
            assert f"theoretical speedup, direct: {row['direct_speedup']:.2f}" in text


def test_tradeoff_title_is_given_or_derived(table):
    assert tradeoff_figure(table, title="My title").layout.title.text == "My title"
    assert tradeoff_figure(table, x="size", y="loss").layout.title.text


# --- layer_histograms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_count", [False, True])
@pytest.mark.parametrize("threshold", [None, 0.05])
def test_histograms_count_every_kept_and_pruned_weight(layer_data, log_count, threshold):
    weights, kept = layer_data
    fig = layer_histograms(weights, kept, threshold=threshold, log_count=log_count)
    assert len(fig.data) == 2 * len(weights)
    for i, layer in enumerate(weights):
        kept_trace, pruned_trace = fig.data[2 * i], fig.data[2 * i + 1]
        assert (kept_trace.name, pruned_trace.name) == ("kept", "pruned")
        assert kept_trace.xaxis == pruned_trace.xaxis
        n_kept = int(kept[layer].sum())
        assert sum(kept_trace.y) == n_kept
        assert sum(pruned_trace.y) == kept[layer].size - n_kept
    assert {t.xaxis for t in fig.data} == {t.xaxis for t in fig.data[::2]}
    assert len({t.xaxis for t in fig.data}) == len(weights)
    y_types = {axis.type for axis in used_axes(fig, "y")}
    assert y_types == ({"log"} if log_count else {"linear"})
    n_lines = len([s for s in fig.layout.shapes if s.type == "line"])
    assert n_lines == (2 * len(weights) if threshold is not None else 0)
    if threshold is not None:
        assert {abs(s.x0) for s in fig.layout.shapes} == {threshold}
    assert_panels_titled(fig)


def assert_panels_titled(fig: go.Figure) -> None:
    """Every panel names its x axis; the first panel of each row names the y axis the row shares
    (a y title beside every narrow panel lands on its left neighbour on a phone)."""
    assert fig.layout.title.text
    assert all(axis.title.text for axis in axis_objects(fig, "x"))
    for axis in axis_objects(fig, "y"):
        first_column = fig.layout[f"xaxis{axis.anchor[1:]}"].domain[0] == 0
        assert bool(axis.title.text) == first_column


def test_histograms_of_an_unpruned_and_a_fully_pruned_layer():
    rng = np.random.default_rng(0)
    weights = {"a": rng.normal(size=(5, 7)), "b": np.full((3, 3), 0.25)}
    kept = {"a": np.ones((5, 7), bool), "b": np.zeros((3, 3), bool)}
    fig = layer_histograms(weights, kept)
    assert [sum(t.y) for t in fig.data] == [35, 0, 0, 9]


def test_histograms_leave_no_empty_untitled_panel(layer_data):
    weights, kept = layer_data
    fig = layer_histograms(weights, kept)
    assert_panels_titled(fig)


# --- layer_sparsity_bars ---------------------------------------------------------------------------------


def test_sparsity_bars_one_bar_per_layer(layer_data):
    weights, kept = layer_data
    layer_table = pd.DataFrame(
        {
            "layer": list(weights),
            "params": [w.size for w in weights.values()],
            "nonzero": [int(k.sum()) for k in kept.values()],
        }
    )
    layer_table["sparsity"] = 1 - layer_table["nonzero"] / layer_table["params"]
    fig = layer_sparsity_bars(layer_table, colour=method_colour("magnitude"))
    (bars,) = fig.data
    assert list(bars.x) == list(weights)
    np.testing.assert_allclose(bars.y, layer_table["sparsity"] * 100)
    assert list(bars.text) == [f"{nz:,} / {n:,}" for nz, n in zip(layer_table["nonzero"], layer_table["params"])]
    assert bars.marker.color == method_colour("magnitude")
    assert_titled(fig)


# --- mask_heatmap / pixel_map / bar_comparison ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 10), (4, 3, 3, 3), (5, 2, 7), (1, 1)])
def test_mask_heatmap_is_the_mask_as_2d_ints(shape):
    mask = np.random.default_rng(1).random(shape) < 0.3
    fig = mask_heatmap(mask, "conv9")
    (heat,) = fig.data
    z = np.asarray(heat.z)
    assert z.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(z, mask.reshape(shape[0], -1).astype(int))
    assert np.issubdtype(z.dtype, np.integer)
    assert "conv9" in fig.layout.title.text
    assert_titled(fig)


def test_mask_heatmap_of_a_real_torch_mask(layer_data):
    _, kept = layer_data
    fig = mask_heatmap(kept["fc2"], "fc2")
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), kept["fc2"].astype(int))
    assert f"{kept['fc2'].mean():.1%}" in fig.layout.title.text


def test_pixel_map_shows_the_counts(layer_data):
    _, kept = layer_data
    first = kept["fc1"]  # (300, 64): columns are the 8x8 pixels
    counts = first.reshape(first.shape[0], 8, 8).sum(0).astype(int)
    fig = pixel_map(counts, first.shape[0])
    (heat,) = fig.data
    np.testing.assert_array_equal(np.asarray(heat.z), counts)
    assert heat.zmax == counts.max(), "the colour scale ends at the data's maximum"
    assert tuple(fig.layout.xaxis.range) == (-0.5, 7.5), "the axes cover the 8 pixels and nothing else"
    assert str(first.shape[0]) in fig.layout.title.text
    caption = pixel_map_caption(counts)
    border = np.ones((8, 8), bool)
    border[1:-1, 1:-1] = False
    assert ("removes them first" in caption) == (counts[border].mean() < counts[~border].mean())
    assert_titled(fig)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bar_comparison_one_bar_per_label(n):
    labels = ["dense", "masked", "shrunk", "gzip"][:n]
    values = [1000.0, 250.0, 120.0, 80.0][:n]
    fig = bar_comparison(labels, values, "Parameters", "Count")
    (bars,) = fig.data
    assert list(bars.x) == labels
    assert list(bars.y) == values
    assert len(bars.text) == n
    assert fig.layout.title.text == "Parameters"
    assert fig.layout.yaxis.title.text == "Count"
    assert fig.layout.yaxis.range[1] >= max(values)


def test_bar_comparison_has_axis_titles():
    assert_titled(bar_comparison(["dense", "masked"], [10, 5], "Parameters", "Count"))
