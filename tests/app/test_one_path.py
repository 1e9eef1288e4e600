"""The app's side of one choice, one path: pages reach the engine only through ``ui``, and the
sidebar's config yields the same choices every view and export applies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pruning_core.choice import PruningChoice
from ui.config import ExplorerConfig

PAGES = sorted((Path(__file__).resolve().parents[2] / "pages").glob("*.py"))
ENGINE = ("pruning_core", "sample_models")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_import_only_ui(page):
    imported = set()
    for node in ast.walk(ast.parse(page.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    engine = sorted(name for name in imported if name.split(".")[0] in ENGINE)
    assert not engine, f"{page.name} imports {engine}; re-export what it needs through ui/"
    assert "pruning_core." not in page.read_text(), f"{page.name} reaches the engine through a ui module's import"


def test_config_choices_are_one_per_method_and_level_with_the_sidebars_settings():
    config = ExplorerConfig(
        methods=("magnitude", "nm-2:4"), scope="erk", explicit_levels=(0.2, 0.6), exclude=("fc3",), seed=4
    )
    choices = config.choices()
    assert [(c.method, c.sparsity) for c in choices] == [(m, s) for m in config.methods for s in config.levels]
    assert all(c.scope == "erk" and c.exclude == ("fc3",) and c.seed == 4 for c in choices)
    assert config.choice("magnitude", 0.6) in choices
    assert ExplorerConfig().allocation_choice() is None
    allocated = ExplorerConfig(allocation=(("fc1", 0.5), ("fc2", 0.1)), allocation_method="magnitude")
    assert allocated.allocation_choice() == PruningChoice.per_layer("magnitude", {"fc1": 0.5, "fc2": 0.1})
