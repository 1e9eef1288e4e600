"""A small workshop room through the protocol simulator: concurrent sessions must each get a chart
and never an exception, whatever the others are computing at the same moment."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from benchmarks.room import PageRun, Visit, distinct_queries, run_room

pytestmark = pytest.mark.e2e

DEFAULT_SESSIONS = 8
DISTINCT_SESSIONS = 8


def _problems(runs: list[PageRun]) -> str:
    counts = Counter()
    for run in runs:
        counts.update(f"{run.query or 'default'}: {text.splitlines()[0] if text else text}" for text in run.exceptions)
        counts.update(f"{run.query or 'default'}: error alert: {text}" for text in run.error_alerts)
        if run.status != "finished":
            counts[f"{run.query or 'default'}: run {run.status}"] += 1
    return "\n".join(f"{n} x {text}" for text, n in counts.most_common())


def test_concurrent_sessions_on_default_and_distinct_views_all_get_charts_and_no_errors(server):
    """Sessions run in threads of one process: one session's work (a trace, a seed, a hook) must
    never leak into another's. 8 sessions on the default view and 8 on different configurations
    all start at once; every one must finish with a chart, no exception and no error alert."""
    visits = [Visit()] * DEFAULT_SESSIONS + [Visit(query=q) for q in distinct_queries(DISTINCT_SESSIONS)]
    runs = [session[0] for session in asyncio.run(run_room(server, visits, timeout_s=120))]

    problems = _problems(runs)
    assert not problems, f"sessions saw exceptions, error alerts or unfinished runs (count x what):\n{problems}"
    assert all(run.charts >= 1 for run in runs), (
        f"no chart for: {[run.query or 'default' for run in runs if not run.charts]}"
    )
