"""The Decision trees page's cached calls and figures (cost-complexity pruning in scikit-learn)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pruning_core import trees

NOISE_LEVELS = (0.0, 0.05, 0.1, 0.2, 0.3)


@st.cache_data(show_spinner=False, max_entries=16)
def pruning_path(noise: float, seed: int) -> pd.DataFrame:
    """The cost-complexity pruning path with train, test and CV accuracy and leaves per alpha."""
    return trees.pruning_path(trees.cancer_data(noise, seed), seed)


@st.cache_data(show_spinner=False, max_entries=128)
def pruned_tree(noise: float, seed: int, ccp_alpha: float) -> dict:
    """One pruned tree: its node layout for drawing, its text rules and its scores."""
    data = trees.cancer_data(noise, seed)
    tree = trees.fit_tree(data, ccp_alpha, seed)
    return {
        "layout": trees.tree_layout(tree, data),
        "text": trees.tree_text(tree, data),
        "leaves": int(tree.get_n_leaves()),
        "depth": int(tree.get_depth()),
        "train_accuracy": float(tree.score(data.X_train, data.y_train)),
        "test_accuracy": float(tree.score(data.X_test, data.y_test)),
        "flipped": data.flipped,
    }


def cv_choice(path: pd.DataFrame) -> dict:
    """The row cross-validation picks (largest alpha among the best mean CV accuracies)."""
    return trees.cv_choice(path).to_dict()


def tree_figure(layout: pd.DataFrame, title: str) -> go.Figure:
    """The tree drawn top-down: edges as lines, splits and leaves as markers with hover labels."""
    positions = layout.set_index("node")
    xs: list[float | None] = []
    ys: list[float | None] = []
    for _, row in layout[layout.parent >= 0].iterrows():
        parent = positions.loc[row.parent]
        xs += [parent.x, row.x, None]
        ys += [-parent.depth, -row.depth, None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#aaa", width=1), hoverinfo="skip",
                               showlegend=False))  # fmt: skip
    # Leaves are coloured by the class they predict, and the legend says which colour is which.
    kinds = (
        ("split", "square", "#555", ~layout.leaf),
        ("leaf: benign", "circle", "#2ca02c", layout.leaf & layout.label.str.contains("benign")),
        ("leaf: malignant", "circle", "#d62728", layout.leaf & ~layout.label.str.contains("benign")),
    )
    for name, symbol, colour, where in kinds:
        nodes = layout[where]
        fig.add_trace(go.Scatter(
            x=nodes.x, y=-nodes.depth, mode="markers", name=name, marker=dict(size=9, symbol=symbol, color=colour),
            text=[f"{label}<br>{samples} training samples" for label, samples in zip(nodes.label, nodes.samples)],
            hovertemplate="%{text}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(title_text=title, title_x=0, title_yref="container", title_y=1, title_yanchor="top",
                      title_pad_t=40, height=380, margin=dict(l=10, r=10, t=80, b=10),
                      legend=dict(orientation="h", y=-0.02, yanchor="top"))  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
