"""A live room poll: how many attendees guessed what, per room and question. Counts only.

A teacher opens a room (an unguessable code from ``secrets``); attendees' links carry
``room=CODE``; each committed guess adds one to its answer's count. Nothing about a person is
stored: no names, no session ids, only ``{question: {answer: count}}``. Everything is bounded:
rooms, questions per room, distinct answers per question and answer length; a room expires
``ttl_s`` after its last use, and a closed room is forgotten at once.

One process keeps rooms in memory under a lock (the store is a ``st.cache_resource`` singleton).
With ``directory`` set (``PRUNELAB_CACHE_DIR``, the directory the multi-process deployment
shares), each room is a small JSON file changed under an exclusive ``flock``, so a room whose
attendees were spread over several app processes by the proxy is counted as one. JSON, not
pickle: nothing read back can run code. This module never imports Streamlit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed from a screen
CODE_LENGTH = 8  # 31^8 ~ 8.5e11 codes: rooms open at one time never meet by chance or by guessing
CODE_PATTERN = re.compile(rf"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
QUESTION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_ANSWER_CHARS = 80


class PollError(ValueError):
    """A bad room code, question or answer, or a room that is not open; the message says which."""


def check_code(code: object) -> str:
    """``code`` normalised (stripped, lowercase) if it is a well-formed room code, else PollError."""
    text = str(code).strip().lower() if isinstance(code, str) else ""
    if not CODE_PATTERN.match(text):
        shown = repr(code)[:40]
        raise PollError(
            f"room code {shown} is not {CODE_LENGTH} characters from {CODE_ALPHABET!r}; ask the teacher for the room link"
        )
    return text


def new_code() -> str:
    """A fresh room code from the operating system's random source (not the seeded RNGs)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class PollStore:
    """Counts of guesses per room and question, bounded and expiring; thread- and process-safe.

    ``max_rooms`` open rooms at once (the least recently used is dropped when a new one opens),
    ``max_questions`` per room, ``max_answers`` distinct answers per question (further new answers
    are refused with a message; existing ones still count).
    """

    def __init__(
        self,
        *,
        max_rooms: int = 200,
        max_questions: int = 40,
        max_answers: int = 120,
        ttl_s: float = 6 * 3600,
        directory: str | Path | None = None,
        clock=time.time,
    ) -> None:
        self.max_rooms, self.max_questions, self.max_answers, self.ttl_s = max_rooms, max_questions, max_answers, ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._rooms: dict[str, dict] = {}
        self.directory = None if not directory else self._own_directory(Path(directory) / "polls")

    # -- storage: memory, or one JSON file per room under a directory-wide flock ----------------

    @staticmethod
    def _own_directory(directory: Path) -> Path:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid():
            raise ValueError(f"poll directory {directory} belongs to another user (uid {info.st_uid})")
        if info.st_mode & 0o022:
            raise ValueError(f"poll directory {directory} is writable by others (mode {oct(info.st_mode & 0o777)})")
        return directory

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.directory is None:
                yield
                return
            with open(self.directory / ".lock", "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self, code: str) -> dict | None:
        if self.directory is None:
            return self._rooms.get(code)
        try:
            room = json.loads((self.directory / f"{code}.json").read_text())
        except (OSError, ValueError):
            return None
        return room if isinstance(room, dict) and isinstance(room.get("counts"), dict) else None

    def _save(self, code: str, room: dict) -> None:
        if self.directory is None:
            self._rooms[code] = room
            return
        tmp = self.directory / f".{code}.tmp"
        tmp.write_text(json.dumps(room))
        os.replace(tmp, self.directory / f"{code}.json")

    def _delete(self, code: str) -> None:
        if self.directory is None:
            self._rooms.pop(code, None)
        else:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{code}.json").unlink()

    def _codes(self) -> list[str]:
        if self.directory is None:
            return list(self._rooms)
        return [p.stem for p in self.directory.glob("*.json") if CODE_PATTERN.match(p.stem)]

    def _expire(self) -> None:
        now = self._clock()
        for code in self._codes():
            room = self._load(code)
            if room is None or now - room.get("touched", 0) > self.ttl_s:
                self._delete(code)

    def _open_room(self, code: str) -> dict:
        room = self._load(code)
        if room is None or self._clock() - room.get("touched", 0) > self.ttl_s:
            if room is not None:
                self._delete(code)
            raise PollError(f"room {code} is not open (it was closed, expired after inactivity, or never opened)")
        return room

    # -- the API ---------------------------------------------------------------------------------

    def open_room(self) -> str:
        """Open a new room and return its code; the oldest room goes if ``max_rooms`` are open."""
        with self._locked():
            self._expire()
            codes = self._codes()
            if len(codes) >= self.max_rooms:
                rooms = {c: self._load(c) or {} for c in codes}
                for code in sorted(codes, key=lambda c: rooms[c].get("touched", 0))[: len(codes) - self.max_rooms + 1]:
                    self._delete(code)
            code = new_code()
            while self._load(code) is not None:
                code = new_code()
            self._save(code, {"touched": self._clock(), "counts": {}})
            return code

    def is_open(self, code: str) -> bool:
        """Whether ``code`` names an open room (a malformed code is PollError)."""
        code = check_code(code)
        with self._locked():
            try:
                self._open_room(code)
            except PollError:
                return False
            return True

    def vote(self, code: str, question: str, answer: str) -> None:
        """Count one guess ``answer`` for ``question`` in room ``code``."""
        code = check_code(code)
        if not isinstance(question, str) or not QUESTION_PATTERN.match(question):
            raise PollError(f"question {question!r:.60} is not a lesson id")
        if not isinstance(answer, str) or not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
            raise PollError(f"a guess is a non-empty text of at most {MAX_ANSWER_CHARS} characters")
        with self._locked():
            room = self._open_room(code)
            counts = room["counts"]
            if question not in counts and len(counts) >= self.max_questions:
                raise PollError(f"room {code} already has {self.max_questions} questions; open a new room")
            answers = counts.setdefault(question, {})
            if answer not in answers and len(answers) >= self.max_answers:
                raise PollError(f"question {question} already has {self.max_answers} different answers")
            answers[answer] = answers.get(answer, 0) + 1
            room["touched"] = self._clock()
            self._save(code, room)

    def counts(self, code: str, question: str) -> dict[str, int]:
        """How many guesses each answer got for ``question`` in room ``code`` (a copy)."""
        code = check_code(code)
        with self._locked():
            return dict(self._open_room(code)["counts"].get(question, {}))

    def close_room(self, code: str) -> None:
        """Forget room ``code`` and everything counted in it."""
        code = check_code(code)
        with self._locked():
            self._delete(code)

    def __len__(self) -> int:
        with self._locked():
            self._expire()
            return len(self._codes())
