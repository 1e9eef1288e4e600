"""Studies on Ray: the same results as the local backend cell for cell, and a worker killed in the
middle of a cell is retried so the study completes with no cell lost or duplicated.

Ray is started once for the session with 2 CPUs. Without Ray these tests skip locally and fail in CI.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from pruning_core.study import Cell, SampleBundle, execute_cell, from_dict
from pruning_core.study_runner import read_results, run_study

pytestmark = pytest.mark.slow

STUDY = {
    "version": 1,
    "model": {"sample": "cancer-mlp"},
    "methods": ["magnitude", "random"],
    "sparsities": [0.0, 0.5, 0.9],
    "schedules": [{"kind": "oneshot"}, {"kind": "oneshot", "finetune": {"epochs": 1}}],
    "seeds": [0, 1],
}


@pytest.fixture(scope="session")
def ray_session():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed but CI is set: pip install -r requirements.txt")
        pytest.skip("Ray is not installed: pip install 'ray>=2.60,<3' to run the Ray study tests")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    # workers unpickle this module's helpers by value: they cannot import the test directory
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_results_cell_for_cell(ray_session, tmp_path):
    study = from_dict(STUDY)
    local = run_study(study, tmp_path / "local.parquet", progress=False)
    remote = run_study(study, tmp_path / "ray.parquet", backend="ray", progress=False)
    assert local.computed == remote.computed == len(study.cells()) and not remote.failed
    a, b = read_results(tmp_path / "local.parquet"), read_results(tmp_path / "ray.parquet")
    assert len(a) == len(b) == 2 * 2 * (1 * 3 + 3)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)


class KilledOnce:
    """Runs cells normally, except that the first attempt at ``cell_id`` writes its worker's PID to
    ``pid_file`` and waits there to be killed from outside."""

    def __init__(self, cell_id: str, pid_file: Path):
        self.cell_id, self.pid_file = cell_id, pid_file

    def __call__(self, cell: Cell, bundle, threads: int) -> pd.DataFrame:
        if cell.cell_id == self.cell_id and not self.pid_file.exists():
            self.pid_file.write_text(str(os.getpid()))
            time.sleep(120)  # killed long before this ends
        return execute_cell(cell, bundle, threads)


def test_a_worker_killed_mid_cell_is_retried_and_no_cell_is_lost_or_duplicated(ray_session, tmp_path):
    study = from_dict(STUDY)
    cells = study.cells()
    victim = cells[5]
    pid_file = tmp_path / "pid"
    outcome: dict = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            report=run_study(
                study,
                tmp_path / "r.parquet",
                backend="ray",
                progress=False,
                cell_function=KilledOnce(victim.cell_id, pid_file),
            )  # fmt: skip
        )
    )
    runner.start()
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)  # let the writer finish the file
    pid = int(pid_file.read_text())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    report = outcome["report"]
    assert report.computed == len(cells) and report.failed == 0
    table = read_results(tmp_path / "r.parquet")
    assert (table["status"] == "ok").all()
    assert list(table["cell_id"].drop_duplicates()) == [c.cell_id for c in cells]
    assert table.groupby("cell_id").size().to_dict() == {c.cell_id: len(c.sparsities) for c in cells}
    threads = torch.get_num_threads()
    try:  # the cell as the local backend computes it: one torch thread
        expected = execute_cell(victim, SampleBundle.load("cancer-mlp"), 1)
    finally:
        torch.set_num_threads(threads)
    got = table[table["cell_id"] == victim.cell_id].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got.drop(columns="seconds")[expected.columns.drop("seconds")],
        expected.drop(columns="seconds"),
        check_dtype=False,
    )


class Sleeper:
    """Records its worker's PID per cell, then sleeps far longer than the test waits."""

    def __init__(self, pid_dir: Path):
        self.pid_dir = pid_dir

    def __call__(self, cell: Cell, bundle, threads: int) -> pd.DataFrame:
        (self.pid_dir / cell.cell_id).write_text(str(os.getpid()))
        time.sleep(120)
        return execute_cell(cell, bundle, threads)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_ctrl_c_cancels_the_tasks_in_flight(ray_session, tmp_path):
    study = from_dict({**STUDY, "schedules": [{"kind": "oneshot"}]})
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()

    def interrupt_once_two_cells_run() -> None:
        deadline = time.monotonic() + 60
        while len(list(pid_dir.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        _thread.interrupt_main()  # what Ctrl-C does to the main thread

    threading.Thread(target=interrupt_once_two_cells_run, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_study(study, tmp_path / "r.parquet", backend="ray", progress=False, cell_function=Sleeper(pid_dir))
    assert time.monotonic() - start < 60
    pids = [int(p.read_text()) for p in pid_dir.iterdir()]
    assert len(pids) == 2
    deadline = time.monotonic() + 20
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, pids)), "the cancelled tasks' workers still run"
    assert read_results(tmp_path / "r.parquet").empty


def test_an_own_onnx_model_study_gives_the_local_results_on_ray(ray_session, tmp_path):
    from test_study import OWN, own_files

    from pruning_core.study_runner import check_reachable

    check_reachable(ray_session.get_runtime_context().gcs_address)  # a live cluster passes the probe
    study = from_dict({**OWN, "model": own_files(tmp_path)}, base_dir=tmp_path)
    local = run_study(study, tmp_path / "local.parquet", progress=False)
    remote = run_study(study, tmp_path / "ray.parquet", backend="ray", progress=False)
    assert local.computed == remote.computed == 4 and not remote.failed and not local.failed
    a, b = read_results(tmp_path / "local.parquet"), read_results(tmp_path / "ray.parquet")
    assert len(a) == 8 and a["model_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)
