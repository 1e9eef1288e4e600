"""A result cache shared by every session of a server, and optionally by several server processes.

A workshop room is thirty people pressing the same button at the same moment. Without care, the
same sweep is computed thirty times. ``ResultCache.get_or_compute`` computes each distinct key once:

- **In memory** (one process): a bounded LRU, guarded by a lock. Values are shared between
  sessions and treated as immutable; pandas objects are handed out as copies because callers add
  columns to what they get.
- **Single-flight in a process**: the first caller of a key computes it in its own thread; callers
  arriving meanwhile wait on an ``Event`` and receive the computation's progress through their own
  callback, called from their own thread (Streamlit elements may only be updated from the session's
  script thread). If the computation fails, every waiter gets the same exception and nothing is
  cached. If only the *caller* of the computation goes away (its progress callback raises, as
  Streamlit does when a session reruns or stops), the computation stops like it did before and one
  of the waiters takes it over, so one person pressing Stop never cancels the work of the room.
- **On disk** (optional, several processes): with ``directory`` set, results are also written
  there atomically and read from there on a memory miss; an exclusive ``flock`` on
  ``<digest>.lock`` makes one process compute while the others poll for the result and read its
  progress from ``<digest>.progress``. A holder that dies releases its lock, and a waiter takes over.

Files are pickles (protocol 5). ``pickle.load`` runs code chosen by whoever wrote the file, so the
directory must be the server's own: it is created with mode 0o700, and an existing directory that
belongs to another user or that others can write to is refused. Nothing else is ever loaded from
it, and nothing from it is served as a download. Pickle keeps DataFrames, dicts of arrays and
dataclasses exactly, with no schema to maintain for every result type.

This module never imports Streamlit: ``ui/compute.py`` holds one ``ResultCache`` in
``st.cache_resource``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import numbers
import os
import pickle
import stat
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from pruning_core.deadline import without_time_limit

T = TypeVar("T")
Progress = Callable[[float, str], None]

POLL_S = 0.15
PROGRESS_WRITE_INTERVAL_S = 0.2  # at most 5 progress files a second per computation
PICKLE_PROTOCOL = 5
RESULT_SUFFIX = ".pkl"

logger = logging.getLogger("prunelab")
_logging_configured = False
_logging_lock = threading.Lock()


def configure_logging() -> logging.Logger:
    """Send the ``prunelab`` logger's INFO lines to stderr, once per process.

    ``propagate`` is turned off so a root handler (pytest's, or one an app adds) never prints the
    line twice: the room simulator counts ``prunelab: computed`` lines to tell who computed what.
    """
    global _logging_configured
    with _logging_lock:
        if not _logging_configured:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
            _logging_configured = True
    return logger


def _canonical(value: Any) -> str:
    """A text form of a key that is the same in every process and for equal plain values.

    ``repr`` of a float round-trips exactly; numpy scalars become their Python equivalents;
    set elements and dict items are sorted by their own canonical form, since set iteration order
    depends on the per-process string hash seed.
    """
    if value is None or isinstance(value, bool | str | bytes):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, tuple | list):
        return "(" + ",".join(_canonical(v) for v in value) + ",)"
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        items = sorted(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items())
        return "dict{" + ",".join(items) + "}"
    raise TypeError(
        f"a cache key must be made of str, int, float, bool, None, bytes, tuples, frozensets or dicts; "
        f"got {type(value).__name__}: {value!r}"
    )


def key_digest(key: Hashable) -> str:
    """A stable, file-safe name for a key: the sha256 of its canonical form, in hex."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()


def _copy_out(value: Any) -> Any:
    """What a caller receives: pandas objects copied (callers modify them), everything else shared."""
    copy = getattr(value, "copy", None)
    if type(value).__module__.startswith("pandas") and callable(copy):
        return copy()
    return value


class _Flight:
    """One computation in progress in this process, and what its waiters need to follow it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.progress: tuple[float, str] | None = None
        self.version = 0
        self.value: Any = None
        self.error: BaseException | None = None
        self.retry = False  # the computing caller went away: a waiter must take over
        self.owner = threading.get_ident()

    def report(self, fraction: float, message: str) -> None:
        with self.lock:
            self.progress = (float(fraction), str(message))
            self.version += 1

    def latest(self) -> tuple[int, tuple[float, str] | None]:
        with self.lock:
            return self.version, self.progress


class _CallerGone(BaseException):
    """Raised inside a computation when the caller's own progress callback raised.

    A BaseException, like Streamlit's own rerun and stop signals, so that a computation's
    ``except Exception`` cannot swallow it.
    """

    def __init__(self, original: BaseException):
        super().__init__(repr(original))
        self.original = original


class ResultCache:
    """Results keyed by plain values, computed once per key by one caller while the others wait.

    ``max_entries`` bounds the in-memory LRU; ``directory`` (optional) is shared by processes and
    bounded by ``max_files`` and ``max_bytes`` (oldest files removed first). ``stats`` counts
    ``computed`` (calls that ran ``compute``), ``memory_hits``, ``disk_hits`` (results read from the
    directory, including ones another process computed while this one waited) and ``waited`` (calls
    that waited for a computation by another thread or process).

    ``generation`` (e.g. a digest of the code that computes the results) is part of every file's
    name: files of other generations of the same ``name`` are never read, and are removed once no
    process has used them for ``retire_after`` seconds (a server still running older code keeps
    its files while it touches them).
    """

    def __init__(
        self,
        max_entries: int = 512,
        directory: str | Path | None = None,
        name: str = "results",
        max_files: int = 4096,
        max_bytes: int = 1 << 30,
        generation: str = "",
        retire_after: float = 24 * 3600,
    ):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.family = name
        self.name = f"{name}-{generation}" if generation else name
        self.retire_after = retire_after
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.directory = None if directory in (None, "") else self._own_directory(Path(directory))
        self.stats = {"computed": 0, "memory_hits": 0, "disk_hits": 0, "waited": 0}
        self._values: OrderedDict[str, Any] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        configure_logging()

    # -- the directory -------------------------------------------------------------------------

    @staticmethod
    def _own_directory(directory: Path) -> Path:
        """Create ``directory`` (0o700) or check that an existing one is this user's alone.

        Loading a pickle runs code, so a directory another user could write to must not be used.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid():
            raise ValueError(f"cache directory {directory} belongs to another user (uid {info.st_uid})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ValueError(f"cache directory {directory} is writable by others (mode {oct(info.st_mode & 0o777)})")
        return directory

    def _path(self, digest: str, suffix: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.name}-{digest}{suffix}"

    def _read_file(self, digest: str, canonical: str) -> tuple[bool, Any]:
        """(found, value) from the directory; a missing, truncated or foreign file is a miss."""
        if self.directory is None:
            return False, None
        path = self._path(digest, RESULT_SUFFIX)
        try:
            with open(path, "rb") as f:
                stored_key, value = pickle.load(f)
        except FileNotFoundError:
            return False, None
        except Exception as exc:  # a file cut short by a full disk must not break the app
            logger.warning("unreadable cache file %s (%s); computing again", path.name, exc)
            return False, None
        if stored_key != canonical:
            return False, None
        with contextlib.suppress(OSError):
            os.utime(path)  # eviction removes the least recently used files first
        return True, value

    def _write_file(self, digest: str, canonical: str, value: Any) -> None:
        """Write the result atomically: a temporary file in the same directory, fsync, rename."""
        assert self.directory is not None
        try:
            data = pickle.dumps((canonical, value), protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            logger.warning("result of key=%s cannot be pickled (%s); kept in memory only", digest[:12], exc)
            return
        self._atomic_write(self._path(digest, RESULT_SUFFIX), data)
        self._evict_files()

    def _atomic_write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("could not write %s (%s)", path.name, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _evict_files(self) -> None:
        """Remove the least recently used result files beyond ``max_files`` or ``max_bytes``.

        A result's lock and progress files go with it, and only when no process holds the lock.
        """
        assert self.directory is not None
        entries = []
        for path in self.directory.glob(f"{self.name}-*{RESULT_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                entries.append((info.st_mtime, info.st_size, path))
        entries.sort(reverse=True)
        self._retire_other_generations()
        stale = time.time() - 3600
        for tmp in self.directory.glob(".tmp-*"):  # left by a process killed while writing
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < stale:
                    tmp.unlink()
        total = 0
        for index, (_, size, path) in enumerate(entries):
            total += size
            if index < self.max_files and total <= self.max_bytes:
                continue
            digest = path.name[len(self.name) + 1 : -len(RESULT_SUFFIX)]
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            lock_path = self._path(digest, ".lock")
            with contextlib.suppress(OSError), open(lock_path, "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock_path.unlink()
                self._path(digest, ".progress").unlink(missing_ok=True)

    def _retire_other_generations(self) -> None:
        """Remove result files of this cache's other generations not used for ``retire_after`` s."""
        assert self.directory is not None
        if self.name == self.family:
            return
        retired = time.time() - self.retire_after
        for path in self.directory.glob(f"{self.family}-*"):
            if path.name.startswith(self.name + "-"):
                continue
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < retired:
                    path.unlink()

    def _read_progress(self, digest: str) -> tuple[float, str] | None:
        try:
            data = json.loads(self._path(digest, ".progress").read_text())
            return float(data["fraction"]), str(data["message"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- memory --------------------------------------------------------------------------------

    def _remember(self, digest: str, value: Any) -> None:
        with self._lock:
            self._values[digest] = value
            self._values.move_to_end(digest)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)

    def _count(self, stat_name: str) -> None:
        with self._lock:
            self.stats[stat_name] += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def get(self, key: Hashable) -> Any | None:
        """The stored result for ``key`` (memory, then the directory), or None; never computes."""
        canonical = _canonical(key)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        with self._lock:
            if digest in self._values:
                self._values.move_to_end(digest)
                self.stats["memory_hits"] += 1
                return _copy_out(self._values[digest])
        found, value = self._read_file(digest, canonical)
        if not found:
            return None
        self._count("disk_hits")
        self._remember(digest, value)
        return _copy_out(value)

    # -- single flight -------------------------------------------------------------------------

    def get_or_compute(
        self, key: Hashable, compute: Callable[[Progress], T], progress: Progress | None = None, what: str = ""
    ) -> T:
        """The result for ``key``, computing it with ``compute(progress)`` only if nobody has.

        ``compute`` receives a progress function to call with (fraction 0..1, message); this
        caller's ``progress`` sees the updates, and so does every caller waiting for the same key.
        """
        canonical = _canonical(key)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        while True:
            with self._lock:
                if digest in self._values:
                    self._values.move_to_end(digest)
                    self.stats["memory_hits"] += 1
                    return _copy_out(self._values[digest])
                flight = self._flights.get(digest)
                leader = flight is None
                if leader:
                    flight = self._flights[digest] = _Flight()
            assert flight is not None
            if not leader and flight.owner == threading.get_ident():
                raise RuntimeError(f"computing {what or self.name} key={digest[:12]} needs its own result")
            if leader:
                return _copy_out(self._lead(digest, canonical, flight, compute, progress, what))
            self._count("waited")
            self._follow(flight, progress)
            if flight.retry:
                continue  # the caller who was computing left; one of the waiters computes now
            if flight.error is not None:
                raise flight.error
            return _copy_out(flight.value)

    @staticmethod
    def _follow(flight: _Flight, progress: Progress | None) -> None:
        """Wait in this caller's own thread for ``flight``, passing on each new progress value."""
        seen = 0
        while True:
            finished = flight.done.wait(POLL_S)
            version, latest = flight.latest()
            if progress is not None and version != seen and latest is not None and not finished:
                seen = version
                progress(*latest)
            if finished:
                return

    def _lead(
        self,
        digest: str,
        canonical: str,
        flight: _Flight,
        compute: Callable[[Progress], T],
        progress: Progress | None,
        what: str,
    ) -> T:
        """Obtain the value as this process's one caller for ``digest``; always ends the flight."""
        try:
            found, value = self._read_file(digest, canonical)
            if found:
                self._count("disk_hits")
            elif self.directory is None:
                value = self._compute(digest, flight, compute, progress, what, lock_fd=None)
            else:
                value = self._lead_across_processes(digest, canonical, flight, compute, progress, what)
        except _CallerGone as gone:
            flight.retry = True
            raise gone.original from None
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            self._remember(digest, value)
            flight.value = value
            return value
        finally:
            with self._lock:
                self._flights.pop(digest, None)
            flight.done.set()

    def _lead_across_processes(
        self,
        digest: str,
        canonical: str,
        flight: _Flight,
        compute: Callable[[Progress], T],
        progress: Progress | None,
        what: str,
    ) -> T:
        """Compute under the key's file lock, or wait for the process that holds it.

        The lock is taken without blocking: while another process holds it, this one polls for the
        result file and relays that process's progress. A released lock with no result means the
        holder died or failed: this process takes over.
        """
        lock_path = self._path(digest, ".lock")
        seen_progress: tuple[float, str] | None = None
        waited = False
        while True:
            lock = open(lock_path, "a+b")  # noqa: SIM115 (closed below, or by _compute's caller)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                if not waited:
                    waited = True
                    self._count("waited")
                found, value = self._read_file(digest, canonical)
                if found:
                    self._count("disk_hits")
                    return value
                latest = self._read_progress(digest)
                if latest is not None and latest != seen_progress:
                    seen_progress = latest
                    flight.report(*latest)
                    if progress is not None:
                        try:
                            progress(*latest)
                        except BaseException as exc:
                            raise _CallerGone(exc) from exc
                time.sleep(POLL_S)
                continue
            try:
                # The holder may have finished between our first look and our lock.
                found, value = self._read_file(digest, canonical)
                if found:
                    self._count("disk_hits")
                    return value
                value = self._compute(digest, flight, compute, progress, what, lock_fd=lock.fileno())
                self._write_file(digest, canonical, value)
                return value
            finally:
                self._path(digest, ".progress").unlink(missing_ok=True)
                fcntl.flock(lock, fcntl.LOCK_UN)
                lock.close()

    def _compute(
        self,
        digest: str,
        flight: _Flight,
        compute: Callable[[Progress], T],
        progress: Progress | None,
        what: str,
        lock_fd: int | None,
    ) -> T:
        """Run ``compute``, relaying its progress to the flight, the caller and the progress file."""
        last_write = -math.inf

        def report(fraction: float, message: str) -> None:
            nonlocal last_write
            flight.report(fraction, message)
            if lock_fd is not None and time.monotonic() - last_write >= PROGRESS_WRITE_INTERVAL_S:
                last_write = time.monotonic()
                payload = {"fraction": float(fraction), "message": str(message), "pid": os.getpid()}
                self._atomic_write(self._path(digest, ".progress"), json.dumps(payload).encode())
            if progress is not None:
                try:
                    progress(fraction, message)
                except BaseException as exc:
                    raise _CallerGone(exc) from exc

        self._count("computed")
        started = time.perf_counter()
        with without_time_limit():  # shared by every session: never cut short by one session's limit
            value = compute(report)
        logger.info("computed %s key=%s in %.2f s", what or self.name, digest[:12], time.perf_counter() - started)
        return value
