"""Start the app ready for a room: heavy imports done and the default views computed first.

``streamlit run app.py`` imports nothing until the first visitor arrives, so that visitor pays for
importing torch, pandas and plotly, for the first sweep and for plotly's lazily loaded figure
validators (several seconds on two cores). ``python -m ui.serve [streamlit options]`` does all of
that in the server process: the imports and worker processes before it listens, the default views
as soon as Streamlit's runtime exists (it prints ``prunelab: warmed`` then). The caches it fills
(``st.cache_resource``, ``st.cache_data``, the shared result cache) are the ones sessions read.

Heavy engine work runs in ``PRUNELAB_WORKERS`` worker processes (default: one per core; 0 runs it
in the sessions' threads). ``PRUNELAB_WARM=0`` skips the warm-up (the room benchmark's cold
scenarios use it); ``PRUNELAB_WARM_LESSONS=0`` skips measuring the workshop lessons after it.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from pathlib import Path


def _find_app() -> Path:
    """The app's entry file: the checkout's (source tree, editable install), else the copy a built
    wheel installs under ``<prefix>/share/prunelab``."""
    for root in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "prunelab"):
        if (root / "app.py").is_file() and (root / "pages").is_dir():
            return root / "app.py"
    raise SystemExit("prunelab: cannot find app.py (neither in the source tree nor in <prefix>/share/prunelab)")


APP = _find_app()
log = logging.getLogger("prunelab")


def warm() -> float:
    """Compute what the default links open; returns the seconds it took."""
    start = time.perf_counter()
    # Outside a script run Streamlit warns once per cached call that there is no session; expected here.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    logging.getLogger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)
    from ui import compute, config, figures

    default = config.ExplorerConfig()
    compute.warm_views(default)
    figures.tradeoff_figure  # noqa: B018 - imported for its plotly validators, loaded by warm_views
    return time.perf_counter() - start


def warm_lessons() -> float:
    """Measure every workshop lesson (what a teacher's link opens), after the default views: some
    lessons train for tens of seconds, which a room should not wait for."""
    start = time.perf_counter()
    from ui import lessons

    for lesson in lessons.load_lessons():
        try:
            lessons.measured(lesson)
        except Exception as exc:  # noqa: BLE001 - a lesson that fails is reported, the others still warm
            print(f"prunelab: lesson {lesson.id} could not be warmed: {exc}", file=sys.stderr, flush=True)
    return time.perf_counter() - start


def _warm_once_running() -> None:
    """Warm the caches as soon as Streamlit's runtime exists: ``st.cache_data`` called before that
    fills a private store the sessions never read."""
    from streamlit.runtime import Runtime

    while not Runtime.exists():
        time.sleep(0.05)
    seconds = warm()
    print(f"prunelab: warmed the default views in {seconds:.1f} s", file=sys.stderr, flush=True)
    if os.environ.get("PRUNELAB_WARM_LESSONS", "1") != "0":
        seconds = warm_lessons()
        print(f"prunelab: warmed the workshop lessons in {seconds:.1f} s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    from pruning_core.allocator import release_large_blocks

    # Uploaded models run in this process's session threads (the samples in the worker processes):
    # blocks as big as an upload's weights go back to the system when freed.
    release_large_blocks()
    n_workers = int(os.environ.get("PRUNELAB_WORKERS", str(os.cpu_count() or 1)))
    if n_workers > 0:
        from ui import workers

        workers.start_pool(n_workers)
    import pandas  # noqa: F401 - the heavy imports every first page run would otherwise pay
    import plotly.graph_objects  # noqa: F401
    import torch  # noqa: F401

    import ui.compute  # noqa: F401

    # The modules and objects loaded so far live as long as the server: move them out of the
    # collector's view, so a full collection (automatic, now and then) walks only what requests made.
    gc.collect()
    gc.freeze()
    print(
        f"prunelab: imports and {n_workers} worker processes ready in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    if os.environ.get("PRUNELAB_WARM", "1") != "0":
        threading.Thread(target=_warm_once_running, name="prunelab-warm", daemon=True).start()
    from streamlit.web import cli

    os.chdir(APP.parent)  # where .streamlit/config.toml is, whatever directory prunelab was started from
    cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
