"""Rules of the command line ``python -m pruning_core``: outputs, and one-line errors with exit status 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from core_helpers import REPO_ROOT, SAMPLES

from pruning_core import COLUMNS
from pruning_core.cli import main

SWEEP = ["sweep", "--model", "digits-mlp", "--methods", "magnitude,random", "--scope", "global"]
SWEEP_ARGS = [*SWEEP, "--sparsities", "0,0.5,0.9"]
EXPECTED_ROWS = {(m, s) for m in ("magnitude", "random") for s in (0.0, 0.5, 0.9)}


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pruning_core", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rows_of(table: pd.DataFrame) -> set[tuple[str, float]]:
    return set(zip(table["method"], table["target_sparsity"], strict=True))


# --- as a real subprocess ----------------------------------------------------------------------------


def test_python_m_pruning_core_models_lists_every_sample_and_exits_0():
    result = run_module("models")
    assert result.returncode == 0, result.stderr
    listed = list(pd.read_csv(io.StringIO(result.stdout))["name"])  # not a terminal: csv
    assert listed == SAMPLES
    assert result.stderr == ""


def test_python_m_pruning_core_sweep_prints_csv_with_one_row_per_method_and_sparsity():
    result = run_module(*SWEEP_ARGS)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(io.StringIO(result.stdout))
    assert len(table) == 6
    assert list(table.columns) == ["model", *COLUMNS]
    assert rows_of(table) == EXPECTED_ROWS


def test_python_m_pruning_core_error_is_one_line_exit_2_without_traceback():
    result = run_module("sweep", "--model", "no-such-model")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "no-such-model" in lines[0]
    assert "Traceback" not in result.stderr


# --- in process --------------------------------------------------------------------------------------


def test_models_lists_every_sample(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in SAMPLES:
        assert name in out


def test_methods_lists_every_registered_method(capsys):
    import pruning_core

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in pruning_core.method_names():
        assert name in out


def test_sweep_csv_has_a_row_per_method_and_sparsity_and_every_column(capsys):
    assert main(SWEEP_ARGS) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out))
    assert len(table) == 6
    assert list(table.columns) == ["model", *COLUMNS]
    assert (table["model"] == "digits-mlp").all()
    assert rows_of(table) == EXPECTED_ROWS
    # stderr holds only warnings (random at 90 % is near chance), never table rows
    assert all(line.startswith("warning: ") for line in captured.err.splitlines()), captured.err


def test_sweep_json_is_a_list_of_row_objects(capsys):
    assert main([*SWEEP_ARGS, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and len(rows) == 6
    for row in rows:
        assert isinstance(row, dict)
        assert set(row) == {"model", *COLUMNS}
    assert {(r["method"], r["target_sparsity"]) for r in rows} == EXPECTED_ROWS


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_sweep_output_writes_the_file_and_nothing_to_stdout(capsys, tmp_path, fmt):
    path = tmp_path / f"table.{fmt}"
    assert main([*SWEEP_ARGS, "--format", fmt, "--output", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert path.exists()
    table = pd.read_csv(path) if fmt == "csv" else pd.DataFrame(json.loads(path.read_text()))
    assert len(table) == 6
    assert rows_of(table) == EXPECTED_ROWS


ERRORS = [
    pytest.param(["sweep", "--model", "resnet-9000"], "resnet-9000", id="unknown model"),
    pytest.param([*SWEEP[:3], "--methods", "magnitude,bogus"], "bogus", id="unknown method"),
    pytest.param([*SWEEP[:3], "--methods", "nm-4:2"], "nm-4:2", id="invalid nm pattern"),
    pytest.param([*SWEEP, "--sparsities", "1.0"], "1.0", id="sparsity 1.0"),
    pytest.param([*SWEEP, "--sparsities", "-0.1"], "-0.1", id="sparsity -0.1"),
    pytest.param([*SWEEP, "--sparsities", "abc"], "abc", id="sparsity abc"),
    pytest.param([*SWEEP, "--sparsities", "0,0.5,1.0"], "1.0", id="sparsity 1.0 last in a list"),
    pytest.param([*SWEEP, "--sparsities", "nan"], "nan", id="sparsity nan"),
    pytest.param([*SWEEP, "--sparsities", "0,,0.5"], "0,,0.5", id="malformed list"),
    pytest.param([*SWEEP[:3], "--methods", ""], "''", id="empty method list"),
    pytest.param([*SWEEP[:3], "--scope", "everywhere"], "everywhere", id="bad scope"),
    pytest.param([*SWEEP[:3], "--scope", "per-layer"], "per-layer", id="per-layer scope"),
    pytest.param([*SWEEP, "--exclude", "fc9"], "fc9", id="unknown exclude"),
    pytest.param([*SWEEP, "--seed", "abc"], "abc", id="bad seed"),
    pytest.param([*SWEEP, "--format", "xml"], "xml", id="bad format"),
    pytest.param(
        [*SWEEP, "--sparsities", "0", "--output", "/nonexistent-dir/t.csv"],
        "/nonexistent-dir/t.csv",
        id="unwritable output",
    ),
    pytest.param(["prune"], "prune", id="unknown command"),
    pytest.param(
        [*SWEEP, "--sparsities", "-0.1,0.5"],
        "-0.1",
        id="negative sparsity first in a list",
    ),
]


@pytest.mark.parametrize("argv,bad", ERRORS)
def test_every_usage_error_is_one_stderr_line_naming_the_bad_value_with_exit_2(capsys, argv, bad):
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2
    assert captured.out == ""
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:"), lines[0]
    assert bad in lines[0], lines[0]
    assert "Traceback" not in captured.err
