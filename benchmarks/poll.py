"""The live room poll under load: N attendees answer one question in a room at the same moment.

Each attendee is a websocket session of the room simulator (``benchmarks/room.py``): it opens the
lesson's link with the room code, then sends what the browser sends when someone moves the guess
slider and presses "Lock in my guess and reveal" (the widget states with the button's trigger). A
teacher session opens the room on the Teacher page and, once everyone has answered, reads the
count the page shows. A second room with a few attendees runs at the same time and must be
unaffected. Printed: the count each teacher sees, and the time from an answer to its reveal (the
chart with the guess beside the measurement) as p50/p95/max.

``python -m benchmarks.poll [--sessions 30] [--second 5] [--think 20] [--url http://host:port]``
``python -m benchmarks.poll --project-dir OLD_CHECKOUT --project-dir .`` measures two versions in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from benchmarks.browser import ROOT, streamlit_process
from benchmarks.room import PageRun, StreamlitSession, percentile

LESSON = "n-m-sparsity"  # a slider question with a cheap view: the poll, not the engine, is measured
ROOM_IN_LINK = re.compile(r"room=([a-z0-9]{8})")


class PollSession(StreamlitSession):
    """A session that also remembers widget ids by their user key, code blocks and metric values, and
    can send widget values and button clicks as the browser does."""

    def __init__(self, url: str, timeout_s: float = 300) -> None:
        super().__init__(url, timeout_s)
        self.ids: dict[str, str] = {}  # user key -> widget id (buttons included)
        self.fragment_of: dict[str, str] = {}  # user key -> the id of the fragment that drew it, if any
        self.codes: list[str] = []
        self.metrics: dict[str, str] = {}
        self.page_name = ""

    def _handle(self, msg: ForwardMsg, run: PageRun, start: float, seen_widgets: set[str]) -> None:
        super()._handle(msg, run, start, seen_widgets)
        if msg.WhichOneof("type") != "delta" or msg.delta.WhichOneof("type") != "new_element":
            return
        element = msg.delta.new_element
        kind = element.WhichOneof("type")
        widget = getattr(element, kind, None)
        widget_id = getattr(widget, "id", "") if widget is not None else ""
        if isinstance(widget_id, str) and widget_id.startswith("$$ID-"):
            user_key = widget_id.split("-", 2)[-1]
            self.ids[user_key] = widget_id
            self.fragment_of[user_key] = msg.delta.fragment_id
        if kind == "code":
            self.codes.append(element.code.code_text)
        elif kind == "metric":
            self.metrics[element.metric.label] = element.metric.body

    async def open(self, page: str = "", query: str = "") -> PageRun:
        self.page_name = page
        return await super().open(page, query)

    async def interact(self, values: dict[str, WidgetState] | None = None, click: str | None = None) -> PageRun:
        """Rerun the current page with widgets (by user key) set and a button (by key) pressed; a
        button inside a fragment reruns only that fragment, as in the browser."""
        widgets = {state.id: state for state, _ in self._widgets.values()}
        for key, state in (values or {}).items():
            state.id = self.ids[key]
            widgets[state.id] = state
        if click is not None:
            widgets[self.ids[click]] = WidgetState(id=self.ids[click], trigger_value=True)
        run = PageRun(page="", query=self.query_string)
        self.codes.clear()
        page_hash = self.pages[self.page_name]  # the router's hash for the page, from `navigation`
        return await self._run(
            run,
            time.perf_counter(),
            page_script_hash=page_hash,
            page_name="",
            widgets=list(widgets.values()),
            fragment_id=self.fragment_of.get(click, "") if click is not None else "",
        )


def slider_value(value: float) -> WidgetState:
    state = WidgetState()
    state.double_array_value.data.append(value)
    return state


@dataclass
class RoomResult:
    room: str
    attendees: int
    counted: str
    reveal_s: list[float]
    problems: list[str]


async def open_room(url: str) -> tuple[PollSession, str]:
    """A teacher session on the Teacher page with a freshly opened room; returns it and the code."""
    teacher = PollSession(url)
    await teacher.open("teacher", f"lesson={LESSON}")
    await teacher.interact(click="teacher_open")
    codes = [m.group(1) for text in teacher.codes for m in [ROOM_IN_LINK.search(text)] if m]
    if not codes:
        raise RuntimeError("the Teacher page showed no room link after 'Open a room'")
    return teacher, codes[-1]


async def attend(url: str, room: str, guess: float, think_s: float = 0.0) -> tuple[float | None, list[str]]:
    """Open the lesson in the room, think for ``think_s``, answer, and return the seconds from the
    answer to the reveal."""
    async with PollSession(url) as session:
        first = await session.open("workshop", f"lesson={LESSON}&room={room}&hide=sidebar")
        problems = first.exceptions + first.error_alerts
        if first.status != "finished":
            return None, [*problems, f"open: {first.status}"]
        await asyncio.sleep(think_s)
        run = await session.interact({f"ws_guess_{LESSON}": slider_value(guess)}, click=f"ws_reveal_{LESSON}")
        problems += run.exceptions + run.error_alerts
        if run.first_chart_s is None:
            problems.append(f"no chart after the answer ({run.status})")
        return run.first_chart_s, problems


async def measure(url: str, sessions: int, second: int, think_s: float = 0.0, seed: int = 0) -> list[RoomResult]:
    """Two rooms at once; everyone opens the lesson together, then each attendee answers after a
    think time drawn uniformly from [0, ``think_s``] (0: all answers in the same instant)."""
    import random

    teacher_a, room_a = await open_room(url)
    teacher_b, room_b = await open_room(url)
    rng = random.Random(seed)  # a private generator: the benchmark's draws are reproducible
    guesses = [50.0 + (i % 40) for i in range(sessions)]
    tasks = [attend(url, room_a, g, rng.uniform(0, think_s)) for g in guesses]
    tasks += [attend(url, room_b, 90.0, rng.uniform(0, think_s)) for _ in range(second)]
    outcomes = await asyncio.gather(*tasks)
    results = []
    for teacher, room, part in ((teacher_a, room_a, outcomes[:sessions]), (teacher_b, room_b, outcomes[sessions:])):
        await teacher.interact(click="teacher_refresh")
        results.append(
            RoomResult(
                room,
                len(part),
                teacher.metrics.get("Guesses in the room", "?"),
                [s for s, _ in part if s is not None],
                [p for _, ps in part for p in ps],
            )
        )
        await teacher.interact(click="teacher_close")
        await teacher.close()
    return results


def report(results: Sequence[RoomResult]) -> str:
    lines = []
    for r in results:
        times = r.reveal_s
        spread = (
            f"p50 {percentile(times, 50):.2f} s, p95 {percentile(times, 95):.2f} s, max {max(times):.2f} s"
            if times
            else "no reveals"
        )
        lines.append(f"room {r.room}: {r.attendees} attendees, teacher sees {r.counted}; answer -> reveal {spread}")
        lines.extend(f"  problem: {p}" for p in sorted(set(r.problems)))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30, help="attendees in the first room")
    parser.add_argument("--second", type=int, default=5, help="attendees in a second room at the same time")
    parser.add_argument(
        "--think",
        type=float,
        default=20.0,
        help="answers spread uniformly over this many seconds after the lesson opens (0: all at once)",
    )
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument(
        "--project-dir",
        action="append",
        default=[],
        help="start the server from this checkout (repeat to compare versions side by side in one run)",
    )
    args = parser.parse_args(argv)

    def run(url: str) -> list[RoomResult]:
        # The Teacher page measures the lesson's answer when the room opens (its live results), so
        # the room's reveals time the poll and the page, not a first computation.
        return asyncio.run(measure(url, args.sessions, args.second, args.think))

    print(f"{args.sessions} + {args.second} attendees, answers spread over {args.think:g} s; {_load()}")
    ok = True
    targets = [args.url] if args.url else (args.project_dir or [str(ROOT)])
    for target in targets:
        if args.url:
            results = run(target)
        else:
            with streamlit_process(warm=False, project_dir=target) as server:
                results = run(server.url)
        print(f"{target}:" if len(targets) > 1 else "", report(results), f"(then {_load()})", sep="\n")
        ok = ok and all(r.counted == str(r.attendees) and not r.problems for r in results)
    return 0 if ok else 1


def _load() -> str:
    """The machine's load average (the benchmark shares it with whatever else runs)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


if __name__ == "__main__":
    sys.exit(main())
