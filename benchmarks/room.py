"""The room simulator: a workshop of N people opening PruneLab on one server at the same moment.

Thirty headless browsers do not fit on two cores, so each attendee is a :class:`StreamlitSession`
that speaks the browser's own protocol: protobuf ``BackMsg``/``ForwardMsg`` over one websocket at
``/_stcore/stream`` (subprotocol ``streamlit``). The server never runs the script on connect; like
the frontend, the client sends a ``rerun_script`` with the URL's query string and path (or a page's
script hash when navigating) and reads deltas until ``script_finished``. It declares an empty
message cache, so every element arrives in full (no ``ref_hash`` references). Nothing is ever
acknowledged: the frontend does not ack ``script_finished`` either. What a session sees is checked
against a real Chromium session in ``tests/e2e/test_room_protocol.py``.

``python -m benchmarks.room`` runs the scenarios of :data:`SCENARIOS` and prints, per scenario, the
time to the first chart and to the end of the run (p50/p95/max), every exception and error alert,
how many shared results the server computed (lines ``prunelab: computed ...`` on its stderr), and
the server's CPU time and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.browser import ROOT, streamlit_process

# Shared results (sweeps); figures are built per process and not counted.
COMPUTED_LINE = re.compile(r"^prunelab: computed (sweep|schedule)", re.MULTILINE)
# Streamlit logs every exception a script raises this way: a cross-check of the exceptions received.
UNCAUGHT_LINE = re.compile(r"Uncaught app execution")
_TAG = re.compile(r"<[^>]+>")
# Widgets whose values the simulator reports back; buttons report nothing until clicked.
WIDGET_KINDS = ("selectbox", "radio", "multiselect", "slider", "number_input", "checkbox", "text_input")
_FINAL_STATUSES = (
    ForwardMsg.FINISHED_SUCCESSFULLY,
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
)


def widget_state(element: Element, previous: WidgetState | None) -> WidgetState | None:  # noqa: PLR0912 - one branch per widget kind of the protocol
    """The value the frontend would report for a widget element, or None for a non-widget.

    A mounted widget keeps its value unless the server sets one (``set_value``); a new one starts
    at its default. Values go in the field the frontend's widget manager uses for that widget.
    """
    kind = element.WhichOneof("type")
    if kind not in WIDGET_KINDS:
        return None
    widget = getattr(element, kind)
    if previous is not None and not widget.set_value:
        return previous
    state = WidgetState(id=widget.id)
    if kind in ("selectbox", "radio"):
        if widget.set_value:
            state.string_value = widget.raw_value
        elif 0 <= widget.default < len(widget.options):
            state.string_value = widget.options[widget.default]
    elif kind == "multiselect":
        values = widget.raw_values if widget.set_value else [widget.options[i] for i in widget.default]
        state.string_array_value.data.extend(values)
    elif kind == "slider" and widget.type == Slider.SELECT_SLIDER:
        values = widget.raw_value if widget.set_value else [widget.options[int(i)] for i in widget.default]
        state.string_array_value.data.extend(values)
    elif kind == "slider":
        state.double_array_value.data.extend(widget.value if widget.set_value else widget.default)
    elif kind == "number_input":
        number = widget.value if widget.set_value else widget.default
        if widget.data_type == NumberInput.INT:
            state.int_value = int(number)
        else:
            state.double_value = number
    elif kind == "checkbox":
        state.bool_value = widget.value if widget.set_value else widget.default
    else:
        state.string_value = widget.value if widget.set_value else widget.default
    return state


# --------------------------------------------------------------------------------------------------
# One attendee: a websocket session


@dataclass
class PageRun:
    """What one script run showed a session: timings from the request, elements, problems.

    Elements are kept per delta path, as the browser's element tree is: a progress bar later
    replaced by an empty slot is not an element of the finished page.
    """

    page: str
    query: str
    first_chart_s: float | None = None
    finished_s: float | None = None
    status: str = "running"  # finished | compile-error | timeout | closed
    page_script_hash: str = ""
    exceptions: list[str] = field(default_factory=list)
    error_alerts: list[str] = field(default_factory=list)
    elements: dict[tuple[int, ...], str] = field(default_factory=dict, repr=False)
    chart_specs: dict[tuple[int, ...], str] = field(default_factory=dict, repr=False)
    headings: dict[tuple[int, ...], str] = field(default_factory=dict, repr=False)

    @property
    def charts(self) -> int:
        """Plotly charts on the finished page."""
        return sum(1 for kind in self.elements.values() if kind == "plotly_chart")

    @property
    def chart_titles(self) -> list[str]:
        """Each chart's title as Plotly draws it (markup stripped), in page order."""
        titles = []
        for path in sorted(self.chart_specs):
            if self.elements.get(path) != "plotly_chart":
                continue
            title = json.loads(self.chart_specs[path]).get("layout", {}).get("title", {})
            text = title.get("text", "") if isinstance(title, dict) else str(title)
            titles.append(_TAG.sub("", text).strip())
        return titles

    @property
    def page_heading(self) -> str:
        """The first heading of the main area (the page's ``st.title``), '' if none."""
        main = [path for path in sorted(self.headings) if path[:1] == (0,) and self.elements.get(path) == "heading"]
        return self.headings[main[0]] if main else ""

    def count(self, kind: str) -> int:
        """How many elements of one kind (``metric``, ``dataframe``, ...) the finished page has."""
        return sum(1 for k in self.elements.values() if k == kind)


class StreamlitSession:
    """One browser tab's worth of Streamlit protocol: connect, run a page, switch pages, close.

    Times are seconds from the request (for :meth:`open`, from before the websocket connects, as a
    visitor would count). A run that does not finish within ``timeout_s`` is recorded as ``timeout``.
    """

    def __init__(self, url: str, timeout_s: float = 300) -> None:
        parts = urlsplit(url)
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.stream_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}/_stcore/stream"
        self.timeout_s = timeout_s
        self.pages: dict[str, str] = {}  # url path -> page script hash, from the last `navigation`
        self.query_string = ""
        self.main_script_hash = ""
        # Mounted widgets, as the frontend's widget manager holds them: id -> (value, script hash).
        self._widgets: dict[str, tuple[WidgetState, str]] = {}
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> StreamlitSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def open(self, page: str = "", query: str = "") -> PageRun:
        """Connect and run the app at URL path ``page`` ("" is the landing view) with ``query``."""
        start = time.perf_counter()
        run = PageRun(page=page, query=query)
        try:
            # No websocket pings: a server busy with 30 scripts answers late and the client would
            # drop the connection; the browser relies on Streamlit's own heartbeat instead.
            self._ws = await connect(
                self.stream_url,
                subprotocols=["streamlit"],  # type: ignore[list-item]
                max_size=None,
                open_timeout=self.timeout_s,
                ping_interval=None,
            )
        except (OSError, TimeoutError) as exc:
            run.status = "closed"
            run.exceptions.append(f"connect failed: {type(exc).__name__}: {exc}")
            return run
        self.query_string = query
        # The first request names the page by its URL path, with no hash, as the frontend does.
        return await self._run(run, start, page_script_hash="", page_name=page)

    async def switch_page(self, page: str, query: str = "") -> PageRun:
        """Navigate to URL path ``page`` in the same session, as a click in the sidebar does.

        The frontend sends the page's script hash, the values of the widgets the entry script drew
        (the sidebar), which stay mounted, and clears the query string (this app binds no widget to
        it); the server keeps the session's state, so the sidebar's config survives.
        """
        run = PageRun(page=page, query=query)
        if page not in self.pages:
            run.status = "no such page"
            run.exceptions.append(f"page {page!r} is not in the app's navigation: {', '.join(map(repr, self.pages))}")
            return run
        self.query_string = query
        kept = [state for state, script in self._widgets.values() if script == self.main_script_hash]
        return await self._run(run, time.perf_counter(), page_script_hash=self.pages[page], page_name="", widgets=kept)

    async def _run(
        self,
        run: PageRun,
        start: float,
        *,
        page_script_hash: str,
        page_name: str,
        widgets: Sequence[WidgetState] = (),
        fragment_id: str = "",
    ) -> PageRun:
        """Send one rerun request (of the whole page, or of one fragment as the browser does when a
        widget inside an ``st.fragment`` changes) and read the answer until the run finishes."""
        assert self._ws is not None, "open() first"
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = run.query
        state.page_script_hash = page_script_hash
        state.page_name = page_name
        state.widget_states.widgets.extend(widgets)
        state.fragment_id = fragment_id
        # No cached_message_hashes: the server then never answers with ref_hash references.
        context = state.context_info
        context.timezone, context.timezone_offset, context.locale = "UTC", 0, "en-US"
        context.url = f"{self.base_url}/{run.page}" + (f"?{run.query}" if run.query else "")
        context.is_embedded, context.color_scheme = False, "light"
        seen_widgets: set[str] = set()
        try:
            await self._ws.send(msg.SerializeToString())
            async with asyncio.timeout(self.timeout_s):
                while run.status == "running":
                    self._handle(ForwardMsg.FromString(await self._ws.recv()), run, start, seen_widgets)
            # Widgets the finished run did not draw are unmounted, as in the browser (a fragment's
            # run draws only the fragment: the page's other widgets stay).
            if not fragment_id:
                self._widgets = {k: v for k, v in self._widgets.items() if k in seen_widgets}
        except TimeoutError:
            run.status = "timeout"
        except ConnectionClosed as exc:
            run.status = "closed"
            run.exceptions.append(f"connection closed: {exc}")
        return run

    def _handle(  # noqa: C901, PLR0912 - one branch per ForwardMsg kind, read in protocol order
        self, msg: ForwardMsg, run: PageRun, start: float, seen_widgets: set[str]
    ) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            run.page_script_hash = msg.new_session.page_script_hash
            self.main_script_hash = msg.new_session.main_script_hash
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta":
            path = tuple(msg.metadata.delta_path)
            delta = msg.delta
            if delta.WhichOneof("type") == "add_block":
                run.elements[path] = "block"
            elif delta.WhichOneof("type") == "new_element":
                element = delta.new_element
                element_kind = element.WhichOneof("type") or ""
                run.elements[path] = element_kind
                if element_kind in WIDGET_KINDS:
                    widget_id = getattr(element, element_kind).id
                    value = widget_state(element, self._widgets.get(widget_id, (None, ""))[0])
                    if value is not None:
                        self._widgets[widget_id] = (value, msg.metadata.active_script_hash)
                        seen_widgets.add(widget_id)
                if element_kind == "plotly_chart":
                    run.chart_specs[path] = element.plotly_chart.spec
                    if run.first_chart_s is None:
                        run.first_chart_s = time.perf_counter() - start
                elif element_kind == "heading":
                    run.headings[path] = element.heading.body
                elif element_kind == "exception" and not element.exception.is_warning:
                    run.exceptions.append(f"{element.exception.type}: {element.exception.message}".strip())
                elif element_kind == "alert" and element.alert.format == element.alert.ERROR:
                    run.error_alerts.append(element.alert.body)
        elif kind == "ref_hash":
            run.exceptions.append("protocol: the server sent a cached-message reference to a client with no cache")
        elif kind == "script_finished" and msg.script_finished in _FINAL_STATUSES:
            # FINISHED_EARLY_FOR_RERUN (st.rerun) is followed by another run: keep reading.
            run.finished_s = time.perf_counter() - start
            failed = msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR
            run.status = "compile-error" if failed else "finished"


# --------------------------------------------------------------------------------------------------
# The room: many sessions at once


@dataclass(frozen=True)
class Visit:
    """What one attendee does: open ``page`` with ``query``, then navigate to each of ``then``."""

    query: str = ""
    page: str = ""
    then: tuple[str, ...] = ()


async def run_room(
    url: str,
    visits: Sequence[Visit],
    timeout_s: float = 300,
    before_leave: Callable[[], object] | None = None,
) -> list[list[PageRun]]:
    """Every visit in its own session, all started together; per session, its runs in order.

    Sessions stay connected until all are done (a room does not empty while others still wait);
    ``before_leave`` is called at that moment, then everyone disconnects.
    """
    sessions = [StreamlitSession(url, timeout_s) for _ in visits]

    async def attend(session: StreamlitSession, visit: Visit) -> list[PageRun]:
        runs = [await session.open(visit.page, visit.query)]
        for page in visit.then:
            if runs[-1].status != "finished":
                break
            runs.append(await session.switch_page(page))
        return runs

    try:
        results = await asyncio.gather(*(attend(s, v) for s, v in zip(sessions, visits)))
        if before_leave is not None:
            before_leave()
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return list(results)


SECOND_PAGES = ("layers", "size-speed")  # where second-page's sessions go after the landing view
SAMPLE_MODELS = ("digits-mlp", "digits-cnn", "mnist1d-cnn", "moons-mlp", "cancer-mlp")
_METHOD_SETS = (
    ("magnitude", "random"),
    ("structured-l1",),
    ("magnitude", "nm-2:4"),
    ("taylor", "wanda"),
    ("structured-l2", "magnitude"),
    ("random", "taylor", "structured-l1"),
    ("wanda",),
)
_SCOPES = ("global", "layerwise", "erk")
_LEVEL_LISTS = ("0,0.5,0.9", "0,0.3,0.6,0.9", "0.5,0.8,0.95", "0,0.25,0.5,0.75,0.9")


def distinct_queries(n: int) -> list[str]:
    """``n`` different sidebar configurations as query strings, the same list every time.

    Models cycle fastest, then scopes, so any 5 consecutive entries cover every sample model and
    any 15 every (model, scope) pair; method sets and level lists vary with other periods.
    """
    queries: list[str] = []
    i = 0
    while len(queries) < n:
        query = urlencode(
            {
                "model": SAMPLE_MODELS[i % len(SAMPLE_MODELS)],
                "methods": ",".join(_METHOD_SETS[i % len(_METHOD_SETS)]),
                "scope": _SCOPES[(i // len(SAMPLE_MODELS)) % len(_SCOPES)],
                "levels": _LEVEL_LISTS[i % len(_LEVEL_LISTS)],
            },
            safe=",:",
        )
        if query not in queries:
            queries.append(query)
        i += 1
    return queries


@dataclass(frozen=True)
class Scenario:
    """A named room: whether it needs a freshly started server or a landing view already cached, and
    each attendee's visit."""

    name: str
    cold: bool
    description: str
    visits: Callable[[int, Sequence[str]], list[Visit]]
    warm: bool = False
    server_warms: bool = False  # a fresh server computes the default views before anyone arrives


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "cold-default", True, "everyone on the default landing view, fresh server", lambda n, _: [Visit()] * n
        ),
        Scenario("cached-default", False, "the same again, results cached", lambda n, _: [Visit()] * n, warm=True),
        Scenario(
            "distinct",
            False,
            "everyone on a different configuration",
            lambda n, _: [Visit(query=q) for q in distinct_queries(n)],
        ),
        Scenario(
            "second-page",
            False,
            "landing view, then other pages in the same session",
            lambda n, pages: [Visit(then=tuple(pages))] * n,
            warm=True,
        ),
        Scenario(
            "alone",
            True,
            "one visitor on a fresh server (warmed at startup)",
            lambda n, _: [Visit()],
            server_warms=True,
        ),
    )
}


# --------------------------------------------------------------------------------------------------
# The server: CPU time, memory, log lines


class ProcessTree:
    """CPU seconds and resident memory of a process and its descendants, read from /proc."""

    _TICKS = os.sysconf("SC_CLK_TCK")
    _PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @staticmethod
    def _stat(pid: int) -> list[str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces

    def _members(self) -> list[list[str]]:
        stats = {pid: self._stat(pid) for pid in (int(p) for p in os.listdir("/proc") if p.isdigit())}
        children: dict[int, list[int]] = {}
        for pid, stat in stats.items():
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(pid)
        members, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            if stats.get(pid) is not None:
                members.append(stats[pid])
                todo += children.get(pid, [])
        return members

    def cpu_s(self) -> float:
        """utime + stime of every live member, plus the root's reaped children (cutime + cstime)."""
        members = self._members()
        ticks = sum(int(s[11]) + int(s[12]) for s in members)
        if members:
            ticks += int(members[0][13]) + int(members[0][14])
        return ticks / self._TICKS

    def rss_bytes(self) -> int:
        return sum(int(s[21]) for s in self._members()) * self._PAGE


def pid_listening_on(port: int) -> int | None:
    """The PID of a process of ours listening on TCP ``port`` (for ``--url``), None if not found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        with contextlib.suppress(OSError):
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
    return None


class ServerLog:
    """The server's stderr file, read from a byte offset: lines a scenario caused."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0

    def count_since(self, offset: int, pattern: re.Pattern[str] = COMPUTED_LINE) -> int | None:
        if self.path is None or not self.path.exists():
            return None
        with self.path.open("rb") as f:
            f.seek(offset)
            return len(pattern.findall(f.read().decode(errors="replace")))


# --------------------------------------------------------------------------------------------------
# Scenarios and their report


@dataclass
class ScenarioResult:
    """One scenario's sessions, grouped by stage (the landing page, then each page switched to)."""

    name: str
    sessions: int
    stages: dict[str, list[PageRun]]
    wall_s: float
    cpu_s: float | None = None  # server CPU while the room was busy
    idle_cpu_s: float | None = None  # server CPU during the wait after everyone left
    rss_before: int | None = None
    rss_after: int | None = None
    rss_after_wait: int | None = None
    computed: int | None = None  # `prunelab: computed` lines; None without a server log
    server_exceptions: int | None = None  # "Uncaught app execution" in the server log
    notes: list[str] = field(default_factory=list)


class RoomRunner:
    """Runs scenarios against a server it starts (a fresh one for each cold scenario) or at ``url``."""

    def __init__(
        self,
        *,
        sessions: int = 30,
        after_wait_s: float = 30,
        timeout_s: float = 300,
        second_pages: Sequence[str] = SECOND_PAGES,
        url: str | None = None,
        pid: int | None = None,
        server_log: Path | str | None = None,
        project_dir: Path | str = ROOT,
        log_dir: Path | str | None = None,
    ) -> None:
        self.sessions = sessions
        self.after_wait_s = after_wait_s
        self.timeout_s = timeout_s
        self.second_pages = tuple(second_pages)
        self.url = url
        self.pid = pid if pid is not None or url is None else pid_listening_on(urlsplit(url).port or 80)
        self.server_log = Path(server_log) if server_log is not None else None
        self.project_dir = Path(project_dir)
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="prunelab-room-"))
        self.log_paths: list[Path] = []
        self._warm_urls: set[str] = set()  # servers that have drawn the landing view once without error

    def run(self, names: Sequence[str]) -> list[ScenarioResult]:
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; valid: {', '.join(SCENARIOS)}")
        if self.url is not None:
            return [self._scenario(SCENARIOS[n], self.url, self.pid, self.server_log, fresh=False) for n in names]
        results: list[ScenarioResult] = []
        with contextlib.ExitStack() as stack:
            server = None
            for name in names:
                scenario = SCENARIOS[name]
                fresh = server is None or scenario.cold
                if fresh:
                    stack.close()  # stops the previous server: a cold scenario needs an empty one
                    log = self.log_dir / f"server-{len(self.log_paths) + 1}-{name}.stderr"
                    self.log_paths.append(log)
                    server = stack.enter_context(
                        streamlit_process(
                            project_dir=self.project_dir,
                            stderr_path=log,
                            warm=scenario.server_warms,
                            wait_for_warm=scenario.server_warms,
                        )
                    )
                assert server is not None
                results.append(self._scenario(scenario, server.url, server.pid, server.stderr_path, fresh=fresh))
        return results

    def _scenario(
        self, scenario: Scenario, url: str, pid: int | None, log_path: Path | None, *, fresh: bool
    ) -> ScenarioResult:
        notes = []
        if scenario.cold and not fresh:
            notes.append("server was not freshly started (--url): not a cold start")
        if scenario.warm and url not in self._warm_urls:
            # Nothing here has drawn the landing view yet (or it failed): warm it up, unmeasured.
            warm_up = asyncio.run(run_room(url, [Visit()], self.timeout_s))[0][0]
            problems = len(warm_up.exceptions) + len(warm_up.error_alerts)
            outcome = f"{warm_up.status}, {warm_up.charts} chart(s), {problems} exception(s)/error(s)"
            notes.append(f"warmed up with one unmeasured landing-page visit first ({outcome})")
        visits = scenario.visits(self.sessions, self.second_pages)
        tree = ProcessTree(pid) if pid is not None else None
        log = ServerLog(log_path)
        offset = log.mark()
        measured: dict[str, float | int] = {}

        def busy_done() -> None:
            if tree is not None:
                measured["cpu"] = tree.cpu_s()
                measured["rss"] = tree.rss_bytes()

        rss_before = tree.rss_bytes() if tree is not None else None
        cpu_before = tree.cpu_s() if tree is not None else 0.0
        start = time.perf_counter()
        runs = asyncio.run(run_room(url, visits, self.timeout_s, before_leave=busy_done))
        wall_s = time.perf_counter() - start
        time.sleep(self.after_wait_s)
        if any(r[0].query == r[0].page == "" and r[0].charts and not r[0].exceptions for r in runs):
            self._warm_urls.add(url)
        stages: dict[str, list[PageRun]] = {}
        for session_runs in runs:
            for i, run in enumerate(session_runs):
                stages.setdefault("landing" if i == 0 else run.page, []).append(run)
        result = ScenarioResult(scenario.name, len(visits), stages, wall_s, notes=notes)
        if tree is not None:
            result.cpu_s = float(measured["cpu"]) - cpu_before
            result.idle_cpu_s = tree.cpu_s() - float(measured["cpu"])
            result.rss_before, result.rss_after, result.rss_after_wait = (
                rss_before,
                int(measured["rss"]),
                tree.rss_bytes(),
            )
        else:
            notes.append("server PID unknown: no CPU or memory figures (give --pid)")
        result.computed = log.count_since(offset)
        result.server_exceptions = log.count_since(offset, UNCAUGHT_LINE)
        return result


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _spread(values: list[float]) -> str:
    if not values:
        return f"{'-':>20}"
    return f"{percentile(values, 50):6.2f}{percentile(values, 95):7.2f}{max(values):7.2f}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def report(  # noqa: C901 - one table row per stage and metric; splitting it scatters the layout
    results: Sequence[ScenarioResult], *, after_wait_s: float | None = None
) -> str:
    """A table per scenario and stage, then every distinct exception and error alert with its count."""
    lines = [
        "Room simulator: sessions at once over Streamlit's websocket protocol; seconds from each request",
        "(first chart: over the sessions that got one; exc/err: exceptions and error alerts received; "
        "srv exc: exceptions in the server's log; CPU s: server CPU while busy)",
        f"{'scenario':<15}{'page':<12}{'n':>4}  {'first chart p50/p95/max':>22}  {'script end p50/p95/max':>22}"
        f"{'no chart':>9}{'exc':>5}{'err':>5}{'srv exc':>8}{'computed':>9}{'CPU s':>8}{'idle CPU':>9}"
        "  RSS MB before/after/+wait",
    ]
    any_log_line = False
    for result in results:
        for i, (stage, runs) in enumerate(result.stages.items()):
            first = [r.first_chart_s for r in runs if r.first_chart_s is not None]
            end = [r.finished_s for r in runs if r.finished_s is not None]
            no_chart = sum(1 for r in runs if r.first_chart_s is None)
            exceptions = sum(len(r.exceptions) for r in runs)
            errors = sum(len(r.error_alerts) for r in runs)
            server = ""
            if i == 0:
                computed = "-" if result.computed is None else str(result.computed)
                uncaught = "-" if result.server_exceptions is None else str(result.server_exceptions)
                any_log_line |= bool(result.computed)
                cpu = "-" if result.cpu_s is None else f"{result.cpu_s:.1f}"
                idle = "-" if result.idle_cpu_s is None else f"{result.idle_cpu_s:.1f}"
                rss = "/".join(_mb(v) for v in (result.rss_before, result.rss_after, result.rss_after_wait))
                server = f"{uncaught:>8}{computed:>9}{cpu:>8}{idle:>9}  {rss}"
            lines.append(
                f"{result.name if i == 0 else '':<15}{stage or 'landing':<12}{len(runs):>4}  {_spread(first):>22}  "
                f"{_spread(end):>22}{no_chart:>9}{exceptions:>5}{errors:>5}{server}"
            )
    lines.append(f"(wall time per scenario: {', '.join(f'{r.name} {r.wall_s:.1f} s' for r in results)})")
    if after_wait_s is not None:
        lines.append(f"('idle CPU' and '+wait' RSS: {after_wait_s:g} s after every session disconnected)")
    if not any_log_line:
        lines.append(
            "computed: 0 everywhere, the app does not log 'prunelab: computed ...' lines yet, so how many "
            "sessions computed a shared result themselves is not measured."
        )
    for result in results:
        problems = Counter()
        for runs in result.stages.values():
            for run in runs:
                problems.update(f"exception: {text}" for text in run.exceptions)
                problems.update(f"error alert: {text}" for text in run.error_alerts)
                if run.status not in ("finished",):
                    problems[f"run {run.status} ({run.page or 'landing'})"] += 1
        for note in result.notes:
            lines.append(f"{result.name}: note: {note}")
        if problems:
            lines.append(f"{result.name}: problems (count x text)")
            for text, count in problems.most_common():
                lines.append(f"  {count:>3} x {_one_line(text)}")
    return "\n".join(lines)


def _one_line(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def run(
    sessions: int = 30,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    after_wait_s: float = 30,
    **runner_options: object,
) -> list[ScenarioResult]:
    """``make bench``'s entry: every scenario on a server started here."""
    return RoomRunner(sessions=sessions, after_wait_s=after_wait_s, **runner_options).run(scenarios)  # type: ignore[arg-type]


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.room", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="sessions at once (default 30)")
    parser.add_argument(
        "--scenarios", type=_csv, default=list(SCENARIOS), help=f"comma-separated: {','.join(SCENARIOS)}"
    )
    parser.add_argument("--after-wait", type=float, default=30, help="seconds to wait after everyone left (30)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one run may take (300)")
    parser.add_argument(
        "--second-pages",
        type=_csv,
        default=list(SECOND_PAGES),
        help=f"pages for second-page ({','.join(SECOND_PAGES)})",
    )
    parser.add_argument("--url", help="use this running server instead of starting one (no cold starts)")
    parser.add_argument("--pid", type=int, help="with --url: the server's PID (found from the port if omitted)")
    parser.add_argument("--server-log", type=Path, help="with --url: the server's stderr file, to count computations")
    parser.add_argument("--project-dir", type=Path, default=ROOT, help="where app.py is (this checkout)")
    args = parser.parse_args(argv)
    try:
        runner = RoomRunner(
            sessions=args.sessions,
            after_wait_s=args.after_wait,
            timeout_s=args.timeout,
            second_pages=args.second_pages,
            url=args.url,
            pid=args.pid,
            server_log=args.server_log,
            project_dir=args.project_dir,
        )
        results = runner.run(args.scenarios)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(results, after_wait_s=args.after_wait))
    if runner.log_paths:
        print(f"server stderr: {', '.join(map(str, runner.log_paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
