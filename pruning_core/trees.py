"""Decision trees are pruned too: scikit-learn's minimal cost-complexity pruning, measured.

A tree grown until its leaves are pure memorises its training set, label noise included. Cost-
complexity pruning (Breiman et al. 1984) removes the subtrees whose impurity reduction per leaf is
below ``ccp_alpha``; ``cost_complexity_pruning_path`` lists the alphas at which the tree changes.
Everything here is seeded (``random_state``, a numpy ``Generator``): no global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.tree import DecisionTreeClassifier, export_text

MAX_NOISE = 0.45  # flipping half the labels of a two-class problem leaves nothing to learn
MAX_PATH_POINTS = 60  # the path has one alpha per pruned subtree; the chart needs no more than this


@dataclass(frozen=True)
class TreeData:
    """Breast cancer split into train and test (stratified, seeded); ``flipped`` train labels were
    replaced by the other class to show how a deep tree memorises noise."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    flipped: int


def cancer_data(noise: float = 0.0, seed: int = 0) -> TreeData:
    """Breast cancer (569 samples, 30 features), 70/30 split; ``noise`` is the fraction of train
    labels flipped with a generator seeded by ``seed``."""
    if not 0 <= noise <= MAX_NOISE:
        raise ValueError(f"label noise must be a fraction from 0 to {MAX_NOISE}, not {noise!r}")
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, stratify=data.target, random_state=0
    )
    y_train = y_train.copy()
    flipped = int(round(noise * len(y_train)))
    if flipped:
        rows = np.random.default_rng(seed).choice(len(y_train), size=flipped, replace=False)
        y_train[rows] = 1 - y_train[rows]
    return TreeData(X_train, y_train, X_test, y_test, tuple(data.feature_names), tuple(data.target_names), flipped)


def fit_tree(data: TreeData, ccp_alpha: float, seed: int = 0) -> DecisionTreeClassifier:
    """A tree grown on the train split and pruned with ``ccp_alpha`` (0 = unpruned)."""
    if not np.isfinite(ccp_alpha) or ccp_alpha < 0:
        raise ValueError(f"ccp_alpha must be a finite number >= 0, not {ccp_alpha!r}")
    return DecisionTreeClassifier(random_state=seed, ccp_alpha=float(ccp_alpha)).fit(data.X_train, data.y_train)


def pruning_path(data: TreeData, seed: int = 0, folds: int = 5) -> pd.DataFrame:
    """One row per effective alpha of the pruning path (thinned to ``MAX_PATH_POINTS``): train and
    test accuracy, leaves, depth, and the mean cross-validated accuracy on the train split."""
    path = DecisionTreeClassifier(random_state=seed).cost_complexity_pruning_path(data.X_train, data.y_train)
    alphas = np.unique(np.clip(path.ccp_alphas, 0, None))
    if len(alphas) > MAX_PATH_POINTS:
        alphas = alphas[np.unique(np.linspace(0, len(alphas) - 1, MAX_PATH_POINTS).round().astype(int))]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    rows = []
    for alpha in alphas:
        tree = fit_tree(data, alpha, seed)
        cv = cross_val_score(
            DecisionTreeClassifier(random_state=seed, ccp_alpha=float(alpha)), data.X_train, data.y_train, cv=splitter
        )
        rows.append(
            {
                "ccp_alpha": float(alpha),
                "train_accuracy": float(tree.score(data.X_train, data.y_train)),
                "test_accuracy": float(tree.score(data.X_test, data.y_test)),
                "cv_accuracy": float(cv.mean()),
                "leaves": int(tree.get_n_leaves()),
                "depth": int(tree.get_depth()),
            }
        )
    return pd.DataFrame(rows)


def cv_choice(path: pd.DataFrame) -> pd.Series:
    """The row cross-validation picks: the best mean CV accuracy, the largest alpha among ties
    (the simplest tree that does as well). Chosen on train folds only; the test column reports."""
    best = path["cv_accuracy"].max()
    return path[path["cv_accuracy"] >= best - 1e-12].iloc[-1]


def tree_text(tree: DecisionTreeClassifier, data: TreeData, max_depth: int = 6) -> str:
    """The tree as indented text rules (``export_text``)."""
    return export_text(tree, feature_names=list(data.feature_names), max_depth=max_depth)


def tree_layout(tree: DecisionTreeClassifier, data: TreeData) -> pd.DataFrame:
    """Node positions for drawing: one row per node with x (leaves spread evenly), depth, parent,
    a label (the split, or the leaf's class) and the number of training samples."""
    t = tree.tree_
    rows: dict[int, dict] = {}
    next_leaf = [0]

    def place(node: int, depth: int, parent: int) -> float:
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            x = float(next_leaf[0])
            next_leaf[0] += 1
            label = data.class_names[int(np.argmax(t.value[node][0]))]
        else:
            x = (place(left, depth + 1, node) + place(right, depth + 1, node)) / 2
            label = f"{data.feature_names[t.feature[node]]} <= {t.threshold[node]:.3g}"
        rows[node] = {"node": node, "x": x, "depth": depth, "parent": parent, "label": label,
                      "leaf": left == -1, "samples": int(t.n_node_samples[node])}  # fmt: skip
        return x

    place(0, 0, -1)
    return pd.DataFrame([rows[k] for k in sorted(rows)])
