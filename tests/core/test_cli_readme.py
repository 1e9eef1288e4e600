"""Every command line in the README's "Command line" section runs and exits 0.

Placeholders become temporary files: ``RECIPE`` a recipe written by ``prunelab recipe``, ``DIR``
a new directory (already holding a file when the line passes ``--force``), ``FILE`` a path,
``STUDY`` a one-cell study. A line naming one of the user's files (``net.onnx``, ``data.csv``, ...)
runs in a directory holding them (``own_model_helpers.write_own_files``, and ``own.yaml``: a recipe
for ``net.onnx``). A line whose comment says ``(long)`` is skipped (it serves or runs for a long
time); every other line must be cheap enough to run here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys

import pytest
from core_helpers import REPO_ROOT
from own_model_helpers import write_own_files

from pruning_core.cli import main

COMMAND = ".venv/bin/prunelab"
LONG_MARKER = "(long)"
STUDY_TEXT = """version: 1
name: readme
model: {sample: moons-mlp}
methods: [magnitude]
scopes: [global]
sparsities: [0, 0.5]
schedules: [{kind: oneshot}]
seeds: [0]
"""


def readme_command_lines() -> list[str]:
    """The command lines of the fenced bash blocks in the README's "Command line" section,
    continuations joined, comment-only lines dropped, trailing comments kept for the marker."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        joined = block.replace("\\\n", " ")
        lines += [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return lines


LINES = readme_command_lines()
OWN_FILES = ("net.onnx", "data.csv", "data.npz", "weights.safetensors", "mymodels.py", "own.yaml")


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("own")
    write_own_files(directory)
    recipe = ["recipe", "--model-file", str(directory / "net.onnx"), "--method", "magnitude", "--sparsity", "0.5"]
    assert main([*recipe, "--output", str(directory / "own.yaml")]) == 0
    return directory


def test_the_readme_shows_command_lines_and_each_uses_the_installed_command():
    assert len(LINES) >= 10
    for line in LINES:
        assert line.startswith(f"{COMMAND} "), line


def _argv(line: str, tmp_path) -> list[str]:
    command = line.split(" # ", 1)[0].split("  #", 1)[0]
    recipe = tmp_path / "recipe.yaml"
    assert (
        main(["recipe", "--model", "moons-mlp", "--method", "magnitude", "--sparsity", "0.5", "--output", str(recipe)])
        == 0
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if "--force" in command:
        (out_dir / "earlier.txt").write_text("an earlier run")
    study = tmp_path / "study.yaml"
    study.write_text(STUDY_TEXT)
    places = {"RECIPE": recipe, "DIR": out_dir, "FILE": tmp_path / "file", "STUDY": study}
    argv = []
    for word in shlex.split(command)[1:]:
        for placeholder, path in places.items():
            word = re.sub(rf"\b{placeholder}\b", str(path), word)
        argv.append(word)
    return argv


@pytest.mark.parametrize("line", LINES)
def test_every_readme_command_line_runs(line, tmp_path, capsys, monkeypatch, request):
    if LONG_MARKER in line:
        pytest.skip("marked (long) in the README")
    monkeypatch.chdir(tmp_path)
    if any(name in line for name in OWN_FILES):
        for path in request.getfixturevalue("own_files").iterdir():
            shutil.copy(path, tmp_path / path.name)
        request.addfinalizer(lambda: sys.modules.pop("mymodels", None))  # imported from tmp_path
    argv = _argv(line, tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, f"{line}\n{captured.err}"
    assert "error:" not in captured.err
