"""PruneLab installs as a package: a wheel carries the engine, the zoo's weights, the app and the
``prunelab`` command, and works from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=out,
    )
    (found,) = out.glob("prunelab-*.whl")
    return found


def test_the_wheel_carries_the_engine_the_weights_the_app_and_the_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pruning_core/cli.py" in names and "ui/serve.py" in names
    for sample in ("digits-mlp", "digits-cnn", "mnist1d-cnn", "moons-mlp", "cancer-mlp"):
        assert f"sample_models/weights/{sample}.safetensors" in names
        assert f"sample_models/weights/{sample}.json" in names
    data = [n for n in names if ".data/data/share/prunelab/" in n]
    assert any(n.endswith("share/prunelab/app.py") for n in data)
    assert any(n.endswith("share/prunelab/pages/tradeoff.py") for n in data)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "prunelab = pruning_core.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith("tests/") for n in names)


def test_the_installed_package_runs_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    version = subprocess.run(
        [sys.executable, "-m", "pruning_core", "--version"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("prunelab ")
    models = subprocess.run(
        [sys.executable, "-c", "import sample_models, pruning_core; print(pruning_core.__file__); "
         "print(sample_models.load_sample('digits-mlp').recorded_accuracy)"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert models.returncode == 0, models.stderr
    assert models.stdout.splitlines()[0].startswith(str(target))  # the installed copy, not the checkout
