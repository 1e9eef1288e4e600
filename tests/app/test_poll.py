"""The room poll: counts only, bounded, expiring, shared by threads and by processes via files."""

from __future__ import annotations

import threading

import pytest

from ui.poll import CODE_LENGTH, PollError, PollStore, check_code, new_code


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "files"])
def store(request, tmp_path) -> PollStore:
    return PollStore(directory=tmp_path / "cache" if request.param == "files" else None)


def test_codes_are_unguessable_and_well_formed():
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000, "no two rooms share a code"
    assert all(len(code) == CODE_LENGTH and check_code(code) == code for code in codes)


@pytest.mark.parametrize("bad", ["", "short", "abcdefgh1", "ABCDEFG!", "abcdefgI", None, 12345678, "a" * 10_000])
def test_a_malformed_room_code_is_refused_with_a_message(bad):
    with pytest.raises(PollError, match="room code"):
        check_code(bad)


def test_votes_are_counted_per_room_and_rooms_do_not_mix(store: PollStore):
    first, second = store.open_room(), store.open_room()
    for answer in ["80", "80", "90"]:
        store.vote(first, "lesson-a", answer)
    store.vote(second, "lesson-a", "10")
    assert store.counts(first, "lesson-a") == {"80": 2, "90": 1}
    assert store.counts(second, "lesson-a") == {"10": 1}
    assert store.counts(first, "lesson-b") == {}


def test_a_closed_room_is_forgotten(store: PollStore):
    room = store.open_room()
    store.vote(room, "q", "yes")
    store.close_room(room)
    assert not store.is_open(room)
    with pytest.raises(PollError, match="not open"):
        store.vote(room, "q", "yes")
    with pytest.raises(PollError, match="not open"):
        store.counts(room, "q")


def test_rooms_expire_after_inactivity_and_the_oldest_goes_when_full(tmp_path):
    clock = Clock()
    store = PollStore(max_rooms=3, ttl_s=60, clock=clock, directory=tmp_path)
    rooms = []
    for _ in range(3):
        rooms.append(store.open_room())
        clock.now += 1
    clock.now += 30
    store.vote(rooms[1], "q", "a")
    newest = store.open_room()
    assert not store.is_open(rooms[0]), "the least recently used room made way"
    assert store.is_open(rooms[1]) and store.is_open(rooms[2]) and store.is_open(newest)
    assert len(store) == 3
    clock.now += 61
    assert not store.is_open(rooms[1])
    assert len(store) == 0


def test_answers_and_questions_are_bounded(store: PollStore):
    small = PollStore(max_questions=2, max_answers=2, directory=store.directory.parent if store.directory else None)
    room = small.open_room()
    small.vote(room, "q1", "a")
    small.vote(room, "q1", "b")
    with pytest.raises(PollError, match="different answers"):
        small.vote(room, "q1", "c")
    small.vote(room, "q1", "a")  # an existing answer still counts
    small.vote(room, "q2", "a")
    with pytest.raises(PollError, match="questions"):
        small.vote(room, "q3", "a")
    with pytest.raises(PollError, match="at most"):
        small.vote(room, "q1", "x" * 1000)
    with pytest.raises(PollError, match="lesson id"):
        small.vote(room, "../../etc", "a")


def test_thirty_threads_voting_at_once_are_all_counted(store: PollStore):
    room = store.open_room()
    barrier = threading.Barrier(30)

    def attendee(i: int) -> None:
        barrier.wait()
        store.vote(room, "q", str(i % 3))

    threads = [threading.Thread(target=attendee, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.counts(room, "q") == {"0": 10, "1": 10, "2": 10}


def test_two_processes_sharing_the_directory_count_one_room(tmp_path):
    """Two stores on one directory stand for two app processes behind the proxy."""
    import multiprocessing

    left = PollStore(directory=tmp_path)
    room = left.open_room()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.starmap(_vote_in_other_process, [(str(tmp_path), room, i) for i in range(20)])
    left.vote(room, "q", "yes")
    assert left.counts(room, "q") == {"yes": 21}


def _vote_in_other_process(directory: str, room: str, _: int) -> None:
    PollStore(directory=directory).vote(room, "q", "yes")


def test_a_directory_others_can_write_to_is_refused(tmp_path):
    shared = tmp_path / "polls"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(ValueError, match="writable by others"):
        PollStore(directory=tmp_path)
