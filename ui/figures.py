"""Figure builders: results in, Plotly figure out. No Streamlit here, so they are tested directly."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pruning_core.methods import METHODS, get_method

# Okabe-Ito, then Tol's muted colours: distinguishable for colour-blind viewers and on a projector.
PALETTE = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255",
    "#44AA99", "#999933", "#AA4499", "#332288", "#DDCC77", "#117733", "#661100", "#6699CC",
]  # fmt: skip
KEPT_COLOUR, PRUNED_COLOUR = "#0072B2", "#D55E00"
FONT = {"size": 16}


def method_colour(name: str) -> str:
    """The same colour for a method on every page: its position in the registry."""
    names = list(METHODS)
    index = names.index(name) if name in names else len(names) + sum(map(ord, name))
    return PALETTE[index % len(PALETTE)]


def method_label(name: str) -> str:
    try:
        return get_method(name).label
    except ValueError:
        return name


# x axis key -> (column, title, multiplier, axis type). "Effective" counts what is still needed once
# dead neurons are removed with what they feed (pruning_core.effective); "direct" counts zeros only.
# The first is the trade-off chart's default.
X_AXES: dict[str, tuple[str, str, float, str]] = {
    "params": ("effective_params", "Parameters still needed, effective (count)", 1.0, "linear"),
    "effective-sparsity": ("effective_sparsity", "Sparsity of prunable weights, effective (%)", 100.0, "linear"),
    "effective-size": (
        "effective_sparse_bytes",
        "Stored size, effective: dead neurons removed (KB)",
        1 / 1024,
        "linear",
    ),
    "compression": ("compression_ratio", "Compression ratio, effective (× fewer parameters, log scale)", 1.0, "log"),
    "speedup": ("theoretical_speedup", "Theoretical speedup, effective (× fewer multiply-adds)", 1.0, "linear"),
    "sparsity": ("actual_sparsity", "Sparsity of prunable weights, direct: zeros only (%)", 100.0, "linear"),
    "nonzero": ("nonzero_params", "Nonzero parameters, direct (count)", 1.0, "linear"),
    "size": ("sparse_bytes", "Stored size, direct: sparse encoding of the zeros (KB)", 1 / 1024, "linear"),
    "direct-compression": (
        "direct_compression_ratio",
        "Compression ratio, direct (× fewer nonzero parameters, log scale)",
        1.0,
        "log",
    ),
    "direct-speedup": ("direct_speedup", "Theoretical speedup, direct (× fewer nonzero multiply-adds)", 1.0, "linear"),
}
# The trade-off page's defaults (also what the server computes before the first visitor).
TRADEOFF_X_DEFAULT, TRADEOFF_Y_DEFAULT, TRADEOFF_TOLERANCE_DEFAULT = "params", "accuracy", 1.0
# y metric -> (title, multiplier)
Y_METRICS: dict[str, tuple[str, float]] = {
    "accuracy": ("Test accuracy (%)", 100.0),
    "loss": ("Test loss (cross-entropy)", 1.0),
    "precision": ("Macro precision (%)", 100.0),
    "recall": ("Macro recall (%)", 100.0),
    "f1": ("Macro F1 (%)", 100.0),
}

_HOVER_COLUMNS = [
    ("target_sparsity", "target sparsity", "{:.1%}"),
    ("actual_sparsity", "sparsity, direct", "{:.2%}"),
    ("effective_sparsity", "sparsity, effective", "{:.2%}"),
    ("accuracy", "accuracy", "{:.2%}"),
    ("loss", "loss", "{:.3f}"),
    ("precision", "precision", "{:.2%}"),
    ("recall", "recall", "{:.2%}"),
    ("f1", "F1", "{:.2%}"),
    ("nonzero_params", "nonzero params, direct", "{:,}"),
    ("effective_params", "params needed, effective", "{:,}"),
    ("sparse_bytes", "sparse size, direct", "{:,} B"),
    ("effective_sparse_bytes", "size, effective", "{:,} B"),
    ("compression_ratio", "compression, effective", "{:.2f}×"),
    ("direct_macs", "MACs, direct", "{:,.0f}"),
    ("effective_macs", "MACs, effective", "{:,.0f}"),
    ("theoretical_speedup", "theoretical speedup, effective", "{:.2f}×"),
    ("direct_speedup", "theoretical speedup, direct", "{:.2f}×"),
]


def _hover_text(row: pd.Series, method: str) -> str:
    lines = [f"<b>{method_label(method)}</b>"]
    for column, label, fmt in _HOVER_COLUMNS:
        value = row[column]
        value = int(value) if "{:," in fmt and "f" not in fmt else value
        lines.append(f"{label}: {fmt.format(value)}")
    return "<br>".join(lines)


TITLE_LINE_CHARS = 44  # a title line that still fits a 390 px phone at the title's font size


def wrap_title(title: str, width: int = TITLE_LINE_CHARS) -> str:
    """A chart title broken into lines (Plotly never wraps a title, so a long one is cut on a phone)."""
    return "<br>".join(textwrap.wrap(title, width)) or title


def _style(fig: go.Figure, title: str, height: int = 520) -> go.Figure:
    """Shared layout: the title (wrapped) in the top margin, the legend under the x axis title, where
    neither the title nor Plotly's toolbar can collide with it however many rows it takes on a phone."""
    top, bottom = 110, 70
    plot_px = max(100, height - top - bottom)
    # The title starts below Plotly's toolbar (top right, over the chart's first 30 px).
    title_layout = {"x": 0.01, "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 36}}
    fig.update_layout(
        title={"text": wrap_title(title), **title_layout},
        font=FONT,
        height=height,
        template="plotly_white",
        legend={"orientation": "h", "yanchor": "top", "y": -62 / plot_px, "xanchor": "left", "x": 0},
        margin={"l": 70, "r": 30, "t": top, "b": bottom},
        hoverlabel={"font_size": 14},
    )
    return fig


def tradeoff_figure(
    table: pd.DataFrame,
    x: str = "sparsity",
    y: str = "accuracy",
    dense: float | None = None,
    knees: pd.DataFrame | None = None,
    title: str = "",
    intervals: bool = False,
    spread: pd.DataFrame | None = None,
) -> go.Figure:
    """Metric ``y`` against axis ``x``: one line per method, the dense value dashed, knees starred.

    ``intervals`` draws each accuracy's Wilson 95 % interval (columns ``accuracy_low``/``_high``) as
    error bars; other metrics have none. ``spread`` (from ``pruning_core.stats.seed_spread``) draws,
    for each method in it, the band between the lowest and highest value over its seeds.
    """
    column, x_title, x_scale, x_type = X_AXES[x]
    y_title, y_scale = Y_METRICS[y]
    fig = go.Figure()
    if spread is not None and not spread.empty:
        _add_seed_bands(fig, table, spread, column, x_scale, y, y_scale)
    show_intervals = intervals and y == "accuracy" and {"accuracy_low", "accuracy_high"} <= set(table.columns)
    for method, rows in table.groupby("method", sort=False):
        rows = rows.sort_values(column)
        fixed = len(rows) == 1
        error = _interval_bars(rows, y, y_scale) if show_intervals else None
        fig.add_trace(
            go.Scatter(
                x=rows[column] * x_scale,
                y=rows[y] * y_scale,
                mode="markers" if fixed else "lines+markers",
                name=method_label(method),
                legendgroup=method,
                line={"color": method_colour(method), "width": 3},
                marker={"size": 14 if fixed else 8, "symbol": "diamond" if fixed else "circle"},
                hovertext=[_hover_text(r, method) for _, r in rows.iterrows()],
                hoverinfo="text",
                error_y=error,
            )
        )
    if dense is not None:
        fig.add_hline(
            y=dense * y_scale,
            line={"dash": "dash", "color": "#555555", "width": 2},
            annotation_text=f"dense model: {dense * y_scale:.2f}",
            annotation_position="bottom left",
        )
    if knees is not None and not knees.empty:
        _add_knees(fig, knees, column, x_scale, y, y_scale)
    fig.update_xaxes(title_text=x_title, type=x_type, showgrid=True)
    fig.update_yaxes(title_text=y_title, showgrid=True)
    return _style(fig, title or f"{y_title.split(' (')[0]} vs {x_title.split(' (')[0].lower()}")


def _interval_bars(rows: pd.DataFrame, y: str, y_scale: float) -> dict:
    """Error bars from each row's Wilson interval (``accuracy_low``/``accuracy_high``)."""
    return {
        "type": "data",
        "array": (rows["accuracy_high"] - rows[y]) * y_scale,
        "arrayminus": (rows[y] - rows["accuracy_low"]) * y_scale,
        "thickness": 1.5,
        "width": 4,
    }


def _add_knees(fig: go.Figure, knees: pd.DataFrame, column: str, x_scale: float, y: str, y_scale: float) -> None:
    """A star at each method's knee, in the method's colour."""
    fig.add_trace(
        go.Scatter(
            x=knees[column] * x_scale,
            y=knees[y] * y_scale,
            mode="markers",
            name="knee (within tolerance of dense)",
            marker={
                "symbol": "star",
                "size": 22,
                "color": [method_colour(m) for m in knees["method"]],
                "line": {"color": "black", "width": 1.5},
            },
            hovertext=[
                f"<b>knee of {method_label(m)}</b><br>{_hover_text(r, m)}"
                for m, (_, r) in zip(knees["method"], knees.iterrows())
            ],
            hoverinfo="text",
        )
    )


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def _add_seed_bands(
    fig: go.Figure, table: pd.DataFrame, spread: pd.DataFrame, column: str, x_scale: float, y: str, y_scale: float
) -> None:
    """A shaded band from the lowest to the highest ``y`` over seeds, per method in ``spread``;
    x positions come from the table's own rows (the seeds prune the same counts)."""
    if f"{y}_min" not in spread.columns:
        return
    positions = table[["method", "target_sparsity", column]].drop_duplicates(["method", "target_sparsity"])
    merged = spread.drop(columns=[column], errors="ignore").merge(positions, on=["method", "target_sparsity"])
    for method, rows in merged.groupby("method", sort=False):
        rows = rows.sort_values(column)
        x_values = list(rows[column] * x_scale)
        n_seeds = int(rows["n_seeds"].max())
        fig.add_trace(
            go.Scatter(
                x=x_values + x_values[::-1],
                y=list(rows[f"{y}_max"] * y_scale) + list(rows[f"{y}_min"] * y_scale)[::-1],
                fill="toself",
                fillcolor=_rgba(method_colour(method), 0.18),
                line={"width": 0},
                mode="lines",
                name=f"{method_label(method)}: range over {n_seeds} seeds",
                legendgroup=method,
                hoverinfo="skip",
            )
        )


def layer_histograms(
    weights: Mapping[str, np.ndarray],
    kept: Mapping[str, np.ndarray],
    threshold: float | None = None,
    log_count: bool = False,
    bins: int = 60,
) -> go.Figure:
    """Per-layer histograms of weight values, kept and pruned in two colours, the |w| threshold marked."""
    layers = list(weights)
    cols = len(layers) if len(layers) <= 3 else (2 if len(layers) == 4 else 3)
    rows = -(-len(layers) // cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=layers, vertical_spacing=min(0.3, 0.5 / rows) if rows > 1 else 0.2
    )
    for i, layer in enumerate(layers):
        w, k = np.asarray(weights[layer]).ravel(), np.asarray(kept[layer]).ravel().astype(bool)
        edges = np.histogram_bin_edges(w, bins=bins)
        r, c = i // cols + 1, i % cols + 1
        for values, name, colour in ((w[k], "kept", KEPT_COLOUR), (w[~k], "pruned", PRUNED_COLOUR)):
            counts, _ = np.histogram(values, bins=edges)
            fig.add_trace(
                go.Bar(
                    x=(edges[:-1] + edges[1:]) / 2,
                    y=counts,
                    width=np.diff(edges),
                    name=name,
                    legendgroup=name,
                    showlegend=i == 0,
                    marker={"color": colour, "line": {"width": 0}},
                    hovertemplate=f"{layer} {name}<br>w ≈ %{{x:.3f}}<br>count %{{y}}<extra></extra>",
                ),
                row=r,
                col=c,
            )
        if threshold is not None:
            for t in (-threshold, threshold):
                fig.add_vline(x=t, line={"dash": "dot", "color": "black", "width": 1.5}, row=r, col=c)
        fig.update_xaxes(title_text="weight value", row=r, col=c)
        # Only the first column names the axis: a title beside every panel lands on its neighbour
        # when the panels are narrow (a phone).
        fig.update_yaxes(
            title_text=("count (log)" if log_count else "count") if c == 1 else None,
            type="log" if log_count else "linear",
            row=r,
            col=c,
        )
    # Stacked bars read as totals on a linear axis but mislead on a log one: overlay them there.
    fig.update_layout(barmode="overlay" if log_count else "stack", bargap=0)
    if log_count:
        fig.update_traces(opacity=0.7)
    title = "Weight histograms per layer"
    if threshold is not None:
        title += f" (dotted: |w| threshold {threshold:.4f})"
    height = max(420, 300 * rows + 140)
    return _style(fig, title, height=height)


def layer_sparsity_bars(layer_table: pd.DataFrame, colour: str = PRUNED_COLOUR) -> go.Figure:
    """Sparsity per layer as bars, labelled with nonzero / total parameters; in the pruned colour, as a
    bar is the pruned share (the histograms beside it draw kept weights in the kept colour)."""
    fig = go.Figure(
        go.Bar(
            x=layer_table["layer"],
            y=layer_table["sparsity"] * 100,
            marker_color=colour,
            text=[f"{nz:,} / {n:,}" for nz, n in zip(layer_table["nonzero"], layer_table["params"])],
            textposition="outside",
            hovertemplate="%{x}<br>sparsity %{y:.1f}%<br>nonzero / params: %{text}<extra></extra>",
            name="sparsity",
        )
    )
    fig.update_yaxes(title_text="Sparsity (%)", range=[0, 110])
    fig.update_xaxes(title_text="Layer (labels: nonzero / total weights)")
    return _style(fig, "Sparsity per layer", height=420)


VARIANT_COLOURS = {
    "dense": "#777777",
    "pruned": PRUNED_COLOUR,
    "masked": PRUNED_COLOUR,
    "sparse kernel": "#56B4E9",
    "neurons removed": "#009E73",
    "removed": "#009E73",
}


def variant_colour(label: str) -> str:
    """Grey for dense files, orange for pruned-with-zeros, green for physically smaller; lighter
    for their compressed/ONNX forms."""
    family = next((k for k in VARIANT_COLOURS if label.startswith(k)), None)
    colour = VARIANT_COLOURS.get(family, "#CC79A7") if family is not None else "#CC79A7"
    return colour + ("99" if "," in label else "")


def mask_heatmap(mask: np.ndarray, layer: str) -> go.Figure:
    """A layer's keep-mask as an image: rows are output neurons, columns inputs (kernels flattened)."""
    grid = np.asarray(mask).reshape(mask.shape[0], -1).astype(int)
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            colorscale=[[0, PRUNED_COLOUR], [0.5, PRUNED_COLOUR], [0.5, KEPT_COLOUR], [1, KEPT_COLOUR]],
            zmin=0,
            zmax=1,
            colorbar={"tickvals": [0.25, 0.75], "ticktext": ["pruned", "kept"], "title": ""},
            hovertemplate="output %{y}, input %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="input (flattened)")
    fig.update_yaxes(title_text="output neuron / filter", autorange="reversed")
    return _style(fig, f"Mask of {layer}: {grid.mean():.1%} kept", height=460)


def pixel_map(counts: np.ndarray, total: int) -> go.Figure:
    """An 8x8 map of how many first-layer connections each input pixel keeps."""
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            colorscale="Blues",
            zmin=0,
            zmax=max(int(np.max(counts)), 1),  # the data's own maximum: a scale to `total` washes the map out
            colorbar={"title": "kept"},
            text=counts,
            texttemplate="%{text}",
            hovertemplate="pixel (row %{y}, col %{x}): %{z} connections kept<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="pixel column", dtick=1, range=[-0.5, 7.5], constrain="domain")
    fig.update_yaxes(title_text="pixel row", dtick=1, range=[7.5, -0.5], scaleanchor="x", constrain="domain")
    return _style(fig, f"First-layer connections kept per input pixel (of {total})", height=520)


def pixel_map_caption(counts: np.ndarray) -> str:
    """What the pixel map shows, read from its own data: border pixels against the centre."""
    counts = np.asarray(counts, dtype=float)
    border = np.ones_like(counts, dtype=bool)
    border[1:-1, 1:-1] = False
    edge, centre = counts[border].mean(), counts[~border].mean()
    if edge < centre:
        return (
            f"Border pixels keep {edge:.1f} connections on average, the centre {centre:.1f}: the digits' borders are "
            "almost always blank, so their weights stay small and magnitude pruning removes them first."
        )
    return (
        f"Border pixels keep {edge:.1f} connections on average, the centre {centre:.1f}: this method and sparsity "
        "do not remove the (mostly blank) border first."
    )


def bar_comparison(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    y_title: str,
    fmt: str = "{:,.0f}",
    x_title: str = "model variant",
    colours: Sequence[str] | None = None,
) -> go.Figure:
    """A plain labelled bar chart comparing a few variants (dense, masked, shrunk)."""
    base = ["#777777", PRUNED_COLOUR, "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    colours = list(colours) if colours is not None else [base[i % len(base)] for i in range(len(labels))]
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=list(values),
            marker_color=colours,
            text=[fmt.format(v) for v in values],
            textposition="outside",
        )
    )
    fig.update_yaxes(title_text=y_title, range=[0, max(values) * 1.2 if len(values) and max(values) > 0 else 1])
    fig.update_xaxes(title_text=x_title)
    fig.update_layout(showlegend=False)
    return _style(fig, title, height=420)


def sparse_kernel_figure(break_even) -> go.Figure:
    """Dense time over CSR time of one Linear layer at each measured sparsity (evenly spaced, log
    speedup), a line at 1 (as fast as dense), and where the sparse kernel starts to pay."""
    positions = list(range(len(break_even.sparsities)))
    speedups = list(break_even.speedups)
    fig = go.Figure(
        go.Scatter(
            x=positions,
            y=speedups,
            mode="lines+markers+text",
            text=[f"{v:.2f}×" for v in speedups],
            textposition="top center",
            marker={"size": 11, "color": [KEPT_COLOUR if v > 1 else PRUNED_COLOUR for v in speedups]},
            line={"color": "#777777"},
            customdata=np.column_stack([break_even.dense_ms, break_even.csr_ms]),
            hovertemplate="dense %{customdata[0]:.3f} ms<br>CSR %{customdata[1]:.3f} ms"
            "<br>dense / CSR %{y:.2f}×<extra></extra>",
            name="dense / CSR",
        )
    )
    fig.add_hline(
        y=1.0,
        line_dash="dash",
        line_color="#777777",
        annotation_text="as fast as dense",
        annotation_position="top left",
    )
    crossing = break_even.crossing
    if crossing is not None:
        i = break_even.sparsities.index(break_even.pays_from)
        x = (
            0.0
            if i == 0
            else i
            - 1
            + (crossing - break_even.sparsities[i - 1]) / (break_even.sparsities[i] - break_even.sparsities[i - 1])
        )
        fig.add_vline(
            x=x,
            line_dash="dot",
            line_color=KEPT_COLOUR,
            annotation_text=f"pays from ~{crossing:.0%}",
            annotation_position="bottom right",
        )
    low, high = min(speedups + [1.0]), max(speedups + [1.0])
    fig.update_yaxes(title_text="dense time / CSR time (log)", type="log")
    fig.update_yaxes(range=[np.log10(low) - 0.2, np.log10(high) + 0.3])
    fig.update_xaxes(
        title_text="Sparsity of the layer (measured levels)",
        tickvals=positions,
        ticktext=[f"{s:.0%}" for s in break_even.sparsities],
        range=[-0.5, len(positions) - 0.5],
    )
    fig.update_layout(showlegend=False)
    title = (
        f"Sparse (CSR) vs dense kernel: one {break_even.out_features}×{break_even.in_features} layer, "
        f"batch {break_even.batch}; above 1 the sparse kernel is faster"
    )
    return _style(fig, title, height=420)


SCHEDULE_STYLES = {
    "oneshot": ("One-shot, no fine-tuning", "#777777", "dot"),
    "oneshot+ft": ("One-shot + fine-tuning", "#0072B2", "solid"),
    "iterative": ("Iterative prune + fine-tune", "#009E73", "solid"),
    "gradual": ("Gradual (Zhu & Gupta)", "#E69F00", "solid"),
    "lottery": ("Lottery ticket (rewind)", "#D55E00", "solid"),
    "lottery-reinit": ("Lottery mask, random re-init", "#D55E00", "dash"),
}


def schedules_figure(table: pd.DataFrame, dense: float | None = None, metric: str = "accuracy") -> go.Figure:
    """Test accuracy against sparsity, one line per schedule (column ``curve``), dense dashed."""
    fig = go.Figure()
    for curve, rows in table.groupby("curve", sort=False):
        label, colour, dash = SCHEDULE_STYLES.get(curve, (curve, "#CC79A7", "solid"))
        rows = rows.sort_values("actual_sparsity")
        fig.add_trace(
            go.Scatter(
                x=rows["actual_sparsity"] * 100,
                y=rows[metric] * 100,
                name=label,
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 3},
                hovertemplate=f"{label}<br>sparsity %{{x:.1f}}%<br>{metric} %{{y:.2f}}%<extra></extra>",
            )
        )
    if dense is not None:
        fig.add_hline(y=dense * 100, line={"dash": "dash", "color": "#555555", "width": 2},
                      annotation_text=f"dense model: {dense * 100:.2f}", annotation_position="bottom left")  # fmt: skip
    fig.update_xaxes(title_text="Sparsity of prunable weights (%)")
    fig.update_yaxes(title_text=Y_METRICS.get(metric, (metric, 1))[0])
    return _style(fig, "Test accuracy after each schedule")


def schedule_curves_figure(curves: dict[str, list[tuple[int, float]]]) -> go.Figure:
    """Sparsity against optimiser step for each schedule."""
    fig = go.Figure()
    for curve, points in curves.items():
        label, colour, dash = SCHEDULE_STYLES.get(curve, (curve, "#CC79A7", "solid"))
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] * 100 for p in points],
                name=label,
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 3, "shape": "linear"},
            )
        )
    fig.update_xaxes(title_text="Training step (optimiser updates)")
    fig.update_yaxes(title_text="Sparsity (%)", range=[0, 100])
    return _style(fig, "The schedules: sparsity during training", height=420)


def generalisation_figure(table: pd.DataFrame) -> go.Figure:
    """Train (dotted) and test (solid) accuracy against sparsity for each schedule."""
    fig = go.Figure()
    for curve, rows in table.groupby("curve", sort=False):
        label, colour, _ = SCHEDULE_STYLES.get(curve, (curve, "#CC79A7", "solid"))
        rows = rows.sort_values("actual_sparsity")
        for column, dash, suffix in (
            ("accuracy", "solid", "test"),
            ("train_accuracy", "dot", "train"),
            ("noisy_accuracy", "dashdot", "noisy test"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=rows["actual_sparsity"] * 100, y=rows[column] * 100, name=f"{label}: {suffix}",
                    mode="lines", line={"color": colour, "dash": dash, "width": 2}, legendgroup=curve,
                )
            )  # fmt: skip
    fig.update_xaxes(title_text="Sparsity of prunable weights (%)")
    fig.update_yaxes(title_text="Accuracy (%)")
    return _style(fig, "Train vs test vs noisy-test accuracy (the generalisation gap)", height=520)


def sensitivity_figure(table: pd.DataFrame) -> go.Figure:
    """Accuracy drop against sparsity when each layer is pruned alone."""
    fig = go.Figure()
    for i, (layer, rows) in enumerate(table.groupby("layer", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=rows["sparsity"] * 100, y=rows["accuracy_drop"] * 100,
                name=f"{layer} ({int(rows['params'].iloc[0]):,} weights)",
                mode="lines+markers", line={"color": PALETTE[i % len(PALETTE)], "width": 3},
            )
        )  # fmt: skip
    fig.update_xaxes(title_text="Sparsity of that layer alone (%)")
    fig.update_yaxes(title_text="Accuracy drop (points)")
    return _style(fig, "Sensitivity: accuracy drop with one layer pruned at a time")


def sensitivity_heatmap(table: pd.DataFrame) -> go.Figure:
    wide = table.pivot(index="layer", columns="sparsity", values="accuracy_drop").reindex(table["layer"].unique())
    fig = go.Figure(
        go.Heatmap(
            z=wide.values * 100, x=[f"{c:.0%}" for c in wide.columns], y=list(wide.index), colorscale="Reds",
            colorbar={"title": "drop (points)"}, texttemplate="%{z:.1f}",
            hovertemplate="%{y} at %{x}: drop %{z:.2f} points<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="Sparsity of that layer alone")
    fig.update_yaxes(title_text="Layer", autorange="reversed")
    return _style(fig, "Sensitivity heatmap", height=max(320, 60 * len(wide) + 180))


def allocation_figure(allocation: dict[str, float], params: dict[str, int]) -> go.Figure:
    layers = list(allocation)
    fig = go.Figure(
        go.Bar(
            x=layers, y=[allocation[k] * 100 for k in layers], marker_color="#009E73",
            text=[f"{allocation[k]:.0%} of {params[k]:,}" for k in layers], textposition="outside",
        )
    )  # fmt: skip
    fig.update_yaxes(title_text="Proposed sparsity (%)", range=[0, 110])
    fig.update_xaxes(title_text="Layer")
    return _style(fig, "Proposed per-layer sparsities", height=420)


def study_bands_figure(summary: pd.DataFrame, metric: str = "accuracy", title: str = "") -> go.Figure:
    """Mean ``metric`` against target sparsity across seeds, one line per (method, schedule) with
    its 95 % interval as a shaded band (from ``study_stats.summarise``: METRIC_mean/_ci_low/_ci_high).
    Points with one seed have no band."""
    title_text, scale = Y_METRICS.get(metric, (metric, 1.0))
    fig = go.Figure()
    for (method, schedule), rows in summary.groupby(["method", "schedule_name"], sort=False):
        rows = rows.sort_values("target_sparsity")
        colour = method_colour(method)
        dash = "dot" if schedule == "oneshot" else "solid"
        label = f"{method_label(method)} · {schedule}"
        x = rows["target_sparsity"] * 100
        low, high = rows[f"{metric}_ci_low"] * scale, rows[f"{metric}_ci_high"] * scale
        banded = low.notna() & high.notna()
        if banded.any():
            fig.add_trace(
                go.Scatter(
                    x=list(x[banded]) + list(x[banded])[::-1],
                    y=list(high[banded]) + list(low[banded])[::-1],
                    fill="toself",
                    fillcolor=colour,
                    opacity=0.18,
                    line={"width": 0},
                    hoverinfo="skip",
                    name=f"{label} (95 % CI)",
                    legendgroup=label,
                    showlegend=False,
                )  # fmt: skip
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows[f"{metric}_mean"] * scale,
                name=label,
                legendgroup=label,
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 3},
                customdata=np.stack([rows[f"{metric}_std"] * scale, rows[f"{metric}_n"], low, high], axis=-1),
                hovertemplate=(
                    f"{label}<br>target sparsity %{{x:.0f}}%<br>mean %{{y:.2f}} (sd %{{customdata[0]:.2f}}, "
                    "n %{customdata[1]:.0f})<br>95 % CI [%{customdata[2]:.2f}, %{customdata[3]:.2f}]<extra></extra>"
                ),
            )  # fmt: skip
        )
    fig.update_xaxes(title_text="Target sparsity (%)")
    fig.update_yaxes(title_text=title_text)
    return _style(fig, title or f"Mean {metric} across seeds, with 95 % intervals")
