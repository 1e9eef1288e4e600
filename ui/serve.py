"""Start the app ready for a room: heavy imports done and the default views computed first.

``streamlit run app.py`` imports nothing until the first visitor arrives, so that visitor pays for
importing torch, pandas and plotly, for the first sweep and for plotly's lazily loaded figure
validators (several seconds on two cores). ``python -m ui.serve [streamlit options]`` does all of
that in the server process before it starts listening: the caches it fills (``st.cache_resource``,
``st.cache_data``, the shared result cache) are the ones every session then reads.

Heavy engine work runs in ``PRUNELAB_WORKERS`` worker processes (default: one per core; 0 runs it
in the sessions' threads). ``PRUNELAB_WARM=0`` skips the warm-up (the room benchmark's cold
scenarios use it).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"
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


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    n_workers = int(os.environ.get("PRUNELAB_WORKERS", str(os.cpu_count() or 1)))
    if n_workers > 0:
        from ui import workers

        start = time.perf_counter()
        workers.start_pool(n_workers)
        print(f"prunelab: {n_workers} worker processes ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if os.environ.get("PRUNELAB_WARM", "1") != "0":
        seconds = warm()
        print(f"prunelab: warmed the default views in {seconds:.1f} s", file=sys.stderr, flush=True)
    from streamlit.web import cli

    cli.main(["run", str(APP), *args], prog_name="streamlit")


if __name__ == "__main__":
    main()
