"""Running a study: cells computed locally (in this process or worker processes) or on Ray, each
result stored the moment its cell finishes, so an interrupted study resumes where it stopped.

Storage: ``OUT.parts/CELL_ID.parquet`` holds one cell's rows (written atomically: a temporary file,
then a rename). Only a part with status "ok" counts as done; a failed cell is tried again on the
next run. The output (``.parquet`` or ``.csv``) is rebuilt from the parts of the study's cells, in
the study's order, every few seconds while running and once at the end: a cell id can appear in it
at most once because each id has one part file.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pruning_core.study import Cell, ModelSpec, SampleBundle, Study, execute_cell

BACKENDS = ("local", "ray")
OUTPUT_FORMATS = (".parquet", ".csv")
CellFunction = Callable[[Cell, SampleBundle, int], pd.DataFrame]
BundleFunction = Callable[[ModelSpec], SampleBundle]


@dataclass
class StudyReport:
    """What a run did: cells in the study, found done before, computed now, and failed now."""

    cells: int
    already_done: int
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (cell id, error)


class ResultStore:
    """Per-cell part files next to the output, and the combined output file."""

    def __init__(self, output: str | Path):
        self.output = Path(output)
        if self.output.suffix.lower() not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {self.output.suffix!r}; valid: {', '.join(OUTPUT_FORMATS)}")
        self.parts = self.output.with_name(self.output.name + ".parts")
        self.parts.mkdir(parents=True, exist_ok=True)

    def _part(self, cell_id: str) -> Path:
        return self.parts / f"{cell_id}.parquet"

    def read(self, cell_id: str) -> pd.DataFrame | None:
        """A cell's stored rows, or None when there are none (a damaged part counts as none: recomputed)."""
        path = self._part(cell_id)
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path)
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            return None

    def done(self, cell_id: str) -> bool:
        rows = self.read(cell_id)
        return rows is not None and not rows.empty and bool((rows["status"] == "ok").all())

    def write(self, cell: Cell, rows: pd.DataFrame) -> None:
        """Store a cell's rows atomically (readers see the old part or the new one, never half).
        Parquet keeps the dtypes exactly (NaN stays a float), so the combined table equals the rows."""
        _write_atomic(self._part(cell.cell_id), rows.to_parquet(index=False))

    def combine(self, cells: Iterable[Cell]) -> pd.DataFrame:
        """The rows of the given cells that have a part, in the cells' order, written to the output."""
        frames = [rows for rows in map(self.read, (c.cell_id for c in cells)) if rows is not None and not rows.empty]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["cell_id", "status"])
        write_table(table, self.output)
        return table


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a results table as Parquet or CSV (by suffix), atomically."""
    path = Path(path)
    data = table.to_csv(index=False).encode() if path.suffix.lower() == ".csv" else table.to_parquet(index=False)
    _write_atomic(path, data)


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results file written by a study (Parquet or CSV)."""
    path = Path(path)
    return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)


class _Progress:
    """A tqdm bar on stderr: cells done, failed, and tqdm's estimate of the time left."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="cells", unit="cell", file=sys.stderr, smoothing=0.1)
        self.failed = 0

    def update(self, failed: bool) -> None:
        self.failed += failed
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_study(
    study: Study,
    output: str | Path,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
    cell_function: CellFunction = execute_cell,
    combine_every_s: float = 5.0,
    max_retries: int = 3,
) -> StudyReport:
    """Run the study's cells that are not done yet and write the combined results to ``output``.

    ``backend="local"`` runs cells in this process (``workers=1``, one torch thread meanwhile) or
    in that many spawned worker processes with one torch thread each; ``backend="ray"`` runs one
    Ray task per cell (``num_cpus=1``, retried up to ``max_retries`` times if its worker dies),
    against ``address`` (or ``RAY_ADDRESS``) or a local Ray started with ``workers`` CPUs. A cell
    that raises becomes a 'failed' record and the others go on. Ctrl-C stops the run (Ray tasks in
    flight are cancelled); what finished is kept.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    if backend == "ray":
        _check_cluster(address)  # before anything is written: a wrong address leaves no trace
    store = ResultStore(output)
    cells = study.cells()
    todo = [cell for cell in cells if not store.done(cell.cell_id)]
    report = StudyReport(cells=len(cells), already_done=len(cells) - len(todo))
    bar = _Progress(len(cells), report.already_done, progress)
    start = last_combine = time.perf_counter()

    def finished(cell: Cell, rows: pd.DataFrame) -> None:
        nonlocal last_combine
        store.write(cell, rows)
        failed = bool((rows["status"] == "failed").any())
        report.computed += 1
        if failed:
            report.failed += 1
            report.failures.append((cell.cell_id, str(rows["error"].iloc[0])))
        bar.update(failed)
        if time.perf_counter() - last_combine >= combine_every_s:
            store.combine(cells)
            last_combine = time.perf_counter()

    try:
        if todo and backend == "ray":
            _run_ray(todo, finished, workers, address, cell_function, max_retries, study.bundle)
        elif todo and workers > 1:
            _run_processes(todo, finished, workers, cell_function)
        elif todo:
            _run_here(todo, finished, cell_function, study.bundle)
    finally:
        bar.close()
        store.combine(cells)
        report.seconds = time.perf_counter() - start
    return report


def _run_here(todo: list[Cell], finished, cell_function: CellFunction, bundle_for: BundleFunction) -> None:
    """Cells one after the other in this process, with one torch thread (restored afterwards):
    torch's reductions add up in another order with two threads, and a study's results must not
    depend on where its cells ran. A study is not per-request code: it owns its process meanwhile."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        bundles: dict[str, SampleBundle] = {}
        for cell in todo:
            if cell.model not in bundles:
                bundles[cell.model] = bundle_for(cell.model_spec)
            finished(cell, cell_function(cell, bundles[cell.model], 0))
    finally:
        torch.set_num_threads(threads)


# --- local worker processes -------------------------------------------------------------------

_WORKER_BUNDLES: dict[str, SampleBundle] = {}


def _process_cell(cell: Cell, cell_function: CellFunction) -> pd.DataFrame:
    """In a worker process: load each model once per process (an own model from its file, checked
    against the SHA-256 it had when the study was validated), run the cell with one torch thread."""
    if cell.model not in _WORKER_BUNDLES:
        _WORKER_BUNDLES[cell.model] = cell.model_spec.load_bundle()
    return cell_function(cell, _WORKER_BUNDLES[cell.model], 1)


def _run_processes(todo: list[Cell], finished, workers: int, cell_function: CellFunction) -> None:
    # spawn, not fork: the caller may have threads (a fork would copy their locks mid-use)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_process_cell, cell, cell_function): cell for cell in todo}
        try:
            for future in concurrent.futures.as_completed(futures):
                cell = futures[future]
                try:
                    rows = future.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker breaks the pool: its cells are
                    # recorded failed and retried on the next run (Ray retries a dead worker's task at once)
                    from pruning_core.study import failed_rows

                    rows = failed_rows(cell, f"{type(exc).__name__}: {exc}")
                finished(cell, rows)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# --- Ray ---------------------------------------------------------------------------------------


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _check_cluster(address: str | None) -> None:
    """The cluster at ``address`` (or ``RAY_ADDRESS``) answers, unless Ray is already connected."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address and ray_available():
        import ray

        if not ray.is_initialized():
            check_reachable(address)


CONNECT_TIMEOUT_S = 5.0
RAY_CLIENT_PORT = 10001  # ``ray://HOST`` without a port
RAY_GCS_PORT = 6379  # ``HOST`` without a port


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` when nothing listens at a cluster address (``ray.init`` would
    retry for about two minutes): raise ConnectionError naming the address and what to check.
    ``auto`` and ``local`` are Ray's own words, not addresses: left to Ray."""
    import socket

    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    hostport = address.removeprefix("ray://").split("/", 1)[0]
    host, sep, port_text = hostport.rpartition(":")
    if not sep:
        host, port_text = hostport, str(RAY_CLIENT_PORT if client else RAY_GCS_PORT)
    host = host.strip("[]")  # an IPv6 literal
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConnectionError(
            f"{address!r} is not a Ray address: give HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:PORT"
        )
    what = "the Ray client server (port 10001 by default)" if client else "the head node's GCS port (6379 by default)"
    check = (
        f"check that the cluster is running (`ray status` on the head node), that {hostport} is {what} as printed "
        "by `ray start --head`, and that no firewall blocks it"
    )
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConnectionError(
            f"cannot reach a Ray cluster at {address} ({reason} within {timeout_s:g} s): {check}"
        ) from None
    if not client:
        _check_gcs(address, hostport, check)


def _check_gcs(address: str, hostport: str, check: str) -> None:
    """One request to the GCS, as ``ray.init`` makes first (it retries it for 20 s or more): something
    that accepts connections but is not a Ray GCS (a proxy, another server) answers it at once."""
    import importlib

    try:  # Ray's own client: what ray.init connects with (not in Ray's type stubs)
        GcsClient = getattr(importlib.import_module("ray._raylet"), "GcsClient", None)  # noqa: N806
    except ImportError:
        GcsClient = None  # noqa: N806
    if GcsClient is None:  # a Ray without it: ray.init will tell
        return
    try:
        GcsClient(address=hostport)
    except Exception as exc:  # noqa: BLE001 - Ray raises its own RpcError types; any failure means no cluster here
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(
            f"cannot reach a Ray cluster at {address}: something accepts connections there but does not answer as "
            f"a Ray GCS ({detail}); {check}; a cluster started with token authentication needs RAY_AUTH_MODE and "
            "its token set here too (see the README's studies section)"
        ) from None


def _ray_cell(cell: Cell, bundle: SampleBundle, cell_function: CellFunction) -> pd.DataFrame:
    """The body of a Ray task: one torch thread (the task was given one CPU)."""
    return cell_function(cell, bundle, 1)


def _run_ray(  # noqa: PLR0913 - the run's settings, passed through from run_study
    todo: list[Cell],
    finished,
    workers: int,
    address: str | None,
    cell_function: CellFunction,
    max_retries: int,
    bundle_for: BundleFunction,
) -> None:
    """One task per cell; each model and its data go into the object store once; a bounded number
    of tasks in flight (so Ctrl-C has little to cancel and results stream back in order of finishing)."""
    import ray

    started_here = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_ray_cell)
        specs = {c.model: c.model_spec for c in todo}
        bundle_refs = {name: ray.put(bundle_for(spec)) for name, spec in specs.items()}
        function_ref = ray.put(cell_function)
        cpus = max(1, int(ray.cluster_resources().get("CPU", workers)))
        window = max(2 * cpus, 4)
        pending = list(reversed(todo))
        in_flight: dict = {}
        try:
            while pending or in_flight:
                while pending and len(in_flight) < window:
                    cell = pending.pop()
                    in_flight[remote.remote(cell, bundle_refs[cell.model], function_ref)] = cell
                # a timeout, so that Ctrl-C (delivered between bytecodes) is seen within a second
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    cell = in_flight.pop(ref)
                    try:
                        rows = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died more than max_retries times
                        from pruning_core.study import failed_rows

                        rows = failed_rows(cell, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    finished(cell, rows)
        except BaseException:  # Ctrl-C (KeyboardInterrupt) or an error storing results
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()
