"""The code keeps its shape: no function runs over MAX_FUNCTION_LINES lines, and every waiver of
a complexity rule says why.

Ruff's C901/PLR0912/PLR0915 limit branches and statements (pyproject.toml); length is checked
here. A longer function states its reason on its ``def`` line(s) as ``# noqa: C901 - <why>``
(or PLR0912/PLR0915), or sits in a file pyproject.toml waives C901/PLR0915 for.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
SHAPE_CODES = ("C901", "PLR0912", "PLR0915")
WAIVER = re.compile(r"#\s*noqa:\s*((?:C901|PLR09\d\d)(?:\s*,\s*(?:C901|PLR09\d\d))*)(\s*-\s*\S.*)?")


def python_files() -> list[Path]:
    skip = {".venv", ".git", "node_modules"}
    return sorted(p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


def waived_files() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ignores = config["tool"]["ruff"]["lint"].get("per-file-ignores", {})
    return {path for path, codes in ignores.items() if {"C901", "PLR0915"} & set(codes)}


def long_functions(path: Path) -> list[tuple[str, int, int, str]]:
    """(name, first line, length, text of its signature lines) of every function over the limit."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            body_start = node.body[0].lineno
            if length > MAX_FUNCTION_LINES:
                found.append((node.name, node.lineno, length, "\n".join(lines[node.lineno - 1 : body_start])))
    return found


def test_no_function_is_longer_than_the_limit_without_a_stated_reason():
    waived, offenders = waived_files(), []
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in waived:
            continue
        for name, line, length, signature in long_functions(path):
            match = WAIVER.search(signature)
            if not (match and match.group(2)):
                offenders.append(f"{relative}:{line} {name} ({length} lines)")
    assert not offenders, f"over {MAX_FUNCTION_LINES} lines with no `# noqa: C901 - <why>`: {offenders}"


def test_every_complexity_waiver_states_why():
    bare = []
    for path in python_files():
        for number, text in enumerate(path.read_text().splitlines(), 1):
            match = WAIVER.search(text)
            if match and not match.group(2):
                bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert not bare, f"complexity waivers without ' - <why>': {bare}"


@pytest.mark.parametrize("code", SHAPE_CODES)
def test_the_complexity_rules_are_enabled(code):
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert any(code.startswith(prefix) for prefix in lint["select"])
    assert code not in lint.get("ignore", [])
