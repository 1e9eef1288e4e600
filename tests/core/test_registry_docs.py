"""The README and the CLI agree with the registries: methods, scopes and schedules are declared
once (``METHODS``, ``SCOPES``, ``SCHEDULES``) and everything that lists them is checked here."""

from __future__ import annotations

import argparse
import re

import pytest
from core_helpers import REPO_ROOT

from pruning_core import cli
from pruning_core.masks import SCOPES
from pruning_core.methods import METHODS, methods_table_markdown
from pruning_core.schedules import SCHEDULES

README = (REPO_ROOT / "README.md").read_text()


def table_after(heading: str) -> list[list[str]]:
    """Cells of the Markdown table that follows the paragraph starting with ``heading``."""
    rest = README[README.index(heading) :]
    rows = []
    for line in rest.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # past the header and the --- row


def bullet(start: str) -> str:
    """The text of the README bullet starting with ``start``, continuation lines included."""
    lines = README[README.index(start) :].splitlines()
    text = [lines[0]]
    for line in lines[1:]:
        if not line.startswith("  "):
            break
        text.append(line)
    return " ".join(text)


def test_the_readme_method_table_is_the_registry_table():
    assert methods_table_markdown() in README


def test_the_method_table_lists_every_registered_method_with_its_attributes():
    rows = table_after("Methods (registry")
    assert [r[0].strip("`") for r in rows] == list(METHODS)
    for name, label, granularity, needs_data, scopes in rows:
        method = METHODS[name.strip("`")]
        assert (label, granularity) == (method.label, method.granularity)
        assert needs_data == ("yes" if method.needs_data else "no")
        assert scopes.split(", ") == list(method.scopes)


def test_the_readme_scope_list_is_the_registry():
    listed = re.sub(r"\([^)]*\)", "", bullet("- Scopes:"))  # names, not the remarks in parentheses
    assert set(re.findall(r"`([a-z-]+)`", listed)) == set(SCOPES)


def test_the_readme_schedule_table_names_every_schedule():
    assert {r[0].strip("`") for r in table_after("<!-- schedules table")} == set(SCHEDULES)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_cli_choice_list_comes_from_a_registry(command):
    opts = options(subcommands()[command])
    if "--scope" in opts:
        assert list(opts["--scope"].choices) == [s for s in SCOPES if s != "per-layer"]
    if "--schedule" in opts:
        assert list(opts["--schedule"].choices) == list(SCHEDULES)
    for flag in ("--method", "--methods"):
        if flag in opts:
            assert all(name in opts[flag].help for name in METHODS), flag


def test_the_cli_accepts_every_registered_method_and_nothing_else():
    """An unknown name fails with the usage message; the messages list every registered method."""
    assert cli.parse_methods(",".join(METHODS)) == list(METHODS)
    with pytest.raises(cli.UsageError, match="not-a-method") as refused:
        cli.parse_methods("not-a-method")
    assert all(name in str(refused.value) for name in METHODS)
