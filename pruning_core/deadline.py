"""Cooperative wall-clock limits: ``with time_limit(60, "sweeping your model"):`` and long loops call
:func:`check_deadline`, which raises :class:`TimeLimitExceeded` once the limit has passed.

Python threads cannot be killed, so nothing is interrupted from outside: the engine checks the
deadline at natural points (between ONNX graph steps, evaluation batches, sweep levels, training
batches, calibration batches) and stops there. The deadline lives in a ``contextvars.ContextVar``:
it applies to the thread (or asyncio task, or ``contextvars.Context``) that set it and to nothing
else, so one Streamlit session's limit never touches another session running beside it. With no
limit set, :func:`check_deadline` is one ``ContextVar.get`` and a comparison with None.

Limits nest: inside an outer limit, an inner ``time_limit`` cannot extend it; the earliest deadline
wins and its message is the one raised. ``time_limit(None, ...)`` adds no limit; a limit of 0 (or
less) has already passed, so the first check raises (what a test uses instead of a timer).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from pruning_core.errors import UntrustedFileError

__all__ = ["TimeLimitExceeded", "check_deadline", "remaining_seconds", "time_limit", "without_time_limit"]


class TimeLimitExceeded(UntrustedFileError):
    """A computation under :func:`time_limit` ran past its deadline; the message names what took too
    long, the limit, and what to do instead. A refusal like a file that is too large (a subclass of
    ``UntrustedFileError``), so code that shows refusals shows this one too."""


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic() value after which checks raise
    seconds: float  # the limit as it was given, for the message
    what: str  # what is being limited, e.g. "sweeping your model"
    advice: str  # what to do instead, appended to the message


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("prunelab_deadline", default=None)


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str, advice: str = "") -> Iterator[None]:
    """Limit the code inside to ``seconds`` of wall-clock time from now, in this context only.

    ``what`` names the work in the message ("converting your model"); ``advice`` follows the limit
    in it, e.g. "(this server's limit): use a smaller file". ``None`` sets no limit (an outer one
    still applies); an outer limit that ends earlier wins."""
    if seconds is None:
        yield
        return
    outer = _DEADLINE.get()
    inner = _Deadline(time.monotonic() + float(seconds), float(seconds), what, advice)
    token = _DEADLINE.set(outer if outer is not None and outer.at <= inner.at else inner)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@contextlib.contextmanager
def without_time_limit() -> Iterator[None]:
    """Run the code inside with no limit, whatever the caller set: for work done on behalf of others
    (a result shared by every session must not be cut short by one session's limit)."""
    token = _DEADLINE.set(None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_deadline() -> None:
    """Raise :class:`TimeLimitExceeded` when this context's deadline has passed; else do nothing."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline.at:
        raise TimeLimitExceeded(_message(deadline))


def remaining_seconds() -> float | None:
    """Seconds left before this context's deadline (negative once passed), or None without a limit."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline.at - time.monotonic()


def _message(deadline: _Deadline) -> str:
    text = f"{deadline.what} took longer than {deadline.seconds:g} s"
    return f"{text} {deadline.advice}" if deadline.advice else f"{text}, its time limit"
