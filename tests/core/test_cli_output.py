"""Rules of the command line's output: a rounded table for people, full-precision CSV/JSON for
programs, chosen columns, progress and warnings on stderr only."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from pruning_core import cli_output
from pruning_core.cli import main
from pruning_core.sweep import progress_message

SWEEP = ["sweep", "--model", "moons-mlp", "--methods", "magnitude", "--sparsities", "0,0.5"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_default_format_is_table_on_a_terminal_and_csv_in_a_pipe():
    assert cli_output.default_format(_Tty()) == "table"
    assert cli_output.default_format(io.StringIO()) == "csv"
    assert cli_output.default_format(_Tty(), output="sweep.csv") == "csv"  # a file is for programs
    assert cli_output.default_format(_Tty(), output="sweep.JSON") == "json"


def test_table_rounds_but_csv_and_json_keep_full_precision():
    table = pd.DataFrame({"method": ["magnitude"], "accuracy": [0.123456789]})
    assert "0.1235" in cli_output.render(table, "table")
    assert "0.123456789" not in cli_output.render(table, "table")
    assert pd.read_csv(io.StringIO(cli_output.render(table, "csv")))["accuracy"][0] == 0.123456789
    assert json.loads(cli_output.render(table, "json"))[0]["accuracy"] == 0.123456789


def test_columns_keeps_the_named_columns_in_order():
    table = pd.DataFrame({"a": [1], "b": [2], "c": [3]})
    assert list(cli_output.select_columns(table, "c,a").columns) == ["c", "a"]


def test_an_unknown_column_is_one_error_listing_the_valid_ones_exit_2(capsys):
    assert main(["models", "--columns", "name,colour"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("error:") and "'colour'" in line
    for valid in ("name", "n_classes", "description"):
        assert valid in line
    assert captured.out == ""


@pytest.mark.parametrize("command", ["models", "methods"])
@pytest.mark.parametrize("fmt", cli_output.FORMATS)
def test_listings_print_every_format(capsys, command, fmt):
    assert main([command, "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert all("name" in row for row in json.loads(out))
    elif fmt == "csv":
        assert "name" in pd.read_csv(io.StringIO(out)).columns
    else:
        assert out.splitlines()[0].split()[0] == "name"


def test_sweep_prints_a_table_with_the_chosen_columns_and_progress_only_on_stderr(capsys, monkeypatch):
    monkeypatch.setenv(cli_output.PROGRESS_ENV, "1")
    assert main([*SWEEP, "--format", "table", "--columns", "method,target_sparsity,accuracy"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["method", "target_sparsity", "accuracy"]
    assert len(lines) == 3
    assert "Magnitude at 50 % sparsity (2/2)" in captured.err  # the progress bar's last message
    assert "%" not in captured.out


def test_quiet_or_a_pipe_shows_no_progress(monkeypatch):
    monkeypatch.delenv(cli_output.PROGRESS_ENV, raising=False)
    assert not cli_output.progress_enabled(quiet=False, stream=io.StringIO())
    assert not cli_output.progress_enabled(quiet=True, stream=_Tty())
    assert cli_output.progress_enabled(quiet=False, stream=_Tty())
    monkeypatch.setenv(cli_output.PROGRESS_ENV, "0")
    assert not cli_output.progress_enabled(quiet=False, stream=_Tty())


def test_the_sweep_progress_message_reads_on_its_own():
    assert progress_message("Magnitude", 0.9, 3, 20) == "Magnitude at 90 % sparsity (3/20)"
    assert progress_message("Random", 0.975, 1, 2) == "Random at 97.5 % sparsity (1/2)"


def test_near_chance_or_below_majority_rows_are_warned_about():
    table = pd.DataFrame(
        {"method": ["magnitude", "random", "snip"], "target_sparsity": [0.5, 0.9, 0.8], "accuracy": [0.95, 0.11, 0.6]}
    )
    warnings = cli_output.chance_warnings(table, n_classes=10, majority_rate=0.62)
    assert len(warnings) == 2
    assert "random at 90%" in warnings[0] and "chance" in warnings[0]
    assert "snip" in warnings[1] and "majority" in warnings[1]
    assert cli_output.chance_warnings(table.iloc[:1], n_classes=10) == []


def test_a_fine_tuning_budget_far_below_the_samples_own_training_is_warned_about():
    assert cli_output.budget_warning(1, 30, trains=True) is not None
    assert cli_output.budget_warning(3, 30, trains=True) is None
    assert cli_output.budget_warning(0, 30, trains=False) is None


def test_sensitivity_shows_progress_on_stderr_and_csv_only_on_stdout(capsys, monkeypatch):
    monkeypatch.setenv(cli_output.PROGRESS_ENV, "1")
    argv = ["sensitivity", "--model", "moons-mlp", "--sparsities", "0.5", "--format", "csv"]
    assert main([*argv, "--columns", "layer,sparsity,accuracy_drop"]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out))
    assert list(table.columns) == ["layer", "sparsity", "accuracy_drop"]
    assert f"at 50 % sparsity ({len(table)}/{len(table)})" in captured.err


def test_a_sweep_table_shows_the_summary_columns_and_csv_every_column():
    table = pd.DataFrame({name: [0.5] for name in [*cli_output.SWEEP_TABLE_COLUMNS, "dense_macs", "f1"]})
    view = cli_output.table_view(table, "table", None, cli_output.SWEEP_TABLE_COLUMNS)
    assert list(view.columns) == list(cli_output.SWEEP_TABLE_COLUMNS)
    assert list(cli_output.table_view(table, "csv", None, cli_output.SWEEP_TABLE_COLUMNS).columns) == list(
        table.columns
    )
    assert list(cli_output.table_view(table, "table", "f1,model", cli_output.SWEEP_TABLE_COLUMNS).columns) == [
        "f1",
        "model",
    ]


def test_the_table_aligns_text_left_numbers_right_and_cuts_long_text():
    table = pd.DataFrame({"name": ["a", "bbbb"], "count": [5, 1234], "note": ["x" * 200, "short"]})
    lines = cli_output.render(table, "table").splitlines()
    assert lines[1].startswith("a    ") and lines[2].startswith("bbbb ")
    assert lines[1].split()[1] == "5" and lines[1].index("5") == lines[2].index("1234") + 3
    assert len(lines[1]) < 100 and lines[1].endswith("...")
    assert "x" * 200 in cli_output.render(table, "csv")


def test_excluding_an_output_layer_is_noted_only_for_structured_methods():
    both = {"magnitude": "unstructured", "structured-l1": "structured"}
    (note,) = cli_output.ignored_exclude_notes(both, ["fc1", "fc3"], outputs={"fc3"})
    assert "fc3" in note and "structured-l1" in note and "magnitude" not in note
    assert cli_output.ignored_exclude_notes({"magnitude": "unstructured"}, ["fc3"], outputs={"fc3"}) == []
    assert cli_output.ignored_exclude_notes(both, ["fc1"], outputs={"fc3"}) == []


def test_sweep_notes_an_ignored_exclude_on_stderr(capsys):
    argv = ["sweep", "--model", "digits-mlp", "--methods", "structured-l1", "--exclude", "fc3", "--sparsities", "0"]
    assert main([*argv, "--format", "csv", "--quiet"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: --exclude fc3 changes nothing for structured-l1: structured methods keep output layers whole"
    ]
