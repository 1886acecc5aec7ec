"""The read protocol (readers.SharedLog) on its own: a reader and a writer over an in-memory
shared index and a fake log, no files, no processes, no pager.

What is checked is the protocol's word: a read begins at the latest publication and locks
its mark; the writer's copy limit is the oldest mark held; a new commit tells the reader
only the pages it changed; a new log generation tells it every page may have; the writer
cannot start a new log while a read, or a snapshot's mark, holds a mark on the old one.
"""
from __future__ import annotations

from array import array
from typing import Dict, List, Optional, Set, Tuple

import pytest

from pagestore import format as fmt
from pagestore.readers import Marks, ReadMark, SharedLog
from pagestore.shm import LOCK_READ0, LOCK_RECOVER, LOCK_WRITE, READ_BASE, READ_SPAN, Header


class FakeIndex:
    """FakeIndex is the shared index in memory, shared by every SharedLog of a test (the processes):
    a header, the frame array, and the read-mark locks, each counted by holder."""

    def __init__(self) -> None:
        self.head: Optional[Header] = None
        self.array: List[Tuple[int, int]] = []  # (word, offset) per frame
        self.held: Dict[int, int] = {}  # mark -> readers holding it
        self.restarting = False  # the writer holds the whole mark range
        self.recovering = False
        self.writing = False  # LOCK_WRITE: a writer in its turn, or a rebuild (issue 26)
        self.change = 0
        self.file_id = 1
        self.on_read: List[Optional[Header]] = []  # headers to serve first (a writer racing the reader)

    def publish(self, generation: int, salt: int, frames: int, backfilled: int) -> Header:
        self.change += 1
        self.head = Header(512, self.file_id, generation, salt, frames, backfilled, self.change)
        return self.head

    def read_header(self) -> Optional[Header]:
        if self.on_read:
            return self.on_read.pop(0)
        return self.head

    def invalidate(self) -> None:
        self.head = None

    def unsynced(self) -> Optional[Tuple[int, int]]:
        return None  # every sync of the log returned (shm.py, "Unsynced")

    def busy_slots(self, mine: int = -1) -> List[int]:
        return []  # no sync of the log runs, none died in one (shm.py, "Unsynced")

    def set_frames(self, first: int, entries: "array[int]") -> None:
        del self.array[first:]
        for i in range(0, len(entries), 2):
            self.array.append((entries[i], entries[i + 1]))

    def frame_entries(self, lo: int, hi: int) -> "array[int]":
        out = array("Q")
        for word, off in self.array[lo:hi]:
            out.extend((word, off))
        return out

    def lock(self, start: int, length: int = 1, *, exclusive: bool = False) -> None:
        assert start == LOCK_RECOVER and not self.recovering
        self.recovering = True

    def lock_within(self, start: int, deadline: Optional[float], *, exclusive: bool = False) -> bool:
        self.lock(start, exclusive=exclusive)  # one process at a time here: never held by another
        return True

    def unlock(self, start: int, length: int = 1) -> None:
        if start == LOCK_RECOVER:
            self.recovering = False
        elif start == LOCK_WRITE:
            assert self.writing
            self.writing = False
        else:
            assert (start, length) == (READ_BASE, READ_SPAN) and self.restarting
            self.restarting = False

    def try_lock(self, start: int, length: int = 1, *, exclusive: bool = False) -> bool:
        if start == LOCK_WRITE:
            if self.writing:
                return False
            self.writing = True
            return True
        assert (start, length, exclusive) == (READ_BASE, READ_SPAN, True)
        if any(m >= 0 and n for m, n in self.held.items()):
            return False
        self.restarting = True
        return True

    def lock_mark(self, m: int) -> bool:
        if self.restarting and m >= 0:
            return False
        self.held[m] = self.held.get(m, 0) + 1
        return True

    def unlock_mark(self, m: int) -> None:
        assert self.held.get(m), f"mark {m} unlocked but not held"
        self.held[m] -= 1

    def held_by_others(self, start: int, length: int) -> Optional[int]:
        marks = sorted(m for m, n in self.held.items() if n)
        if start == LOCK_READ0:
            return LOCK_READ0 if -1 in marks else None
        for m in marks:
            if m >= 0 and start <= READ_BASE + m < start + length:
                return READ_BASE + m
        return None

    def oldest_mark(self, below: int) -> Optional[int]:
        if self.held.get(-1):
            return 0
        marks = [m for m, n in self.held.items() if n and 0 <= m <= below]
        return min(marks) if marks else None

    def close(self) -> None:
        pass


class FakeLog:
    """FakeLog is a log's frame index: the writer's frames (page numbers) and, for a reader, what
    ``follow`` told it. Offsets are frame numbers times 100."""

    def __init__(self) -> None:
        self.generation, self.salt = 1, 11
        self.frame_pgnos: List[int] = []
        self.committed_frames = 0
        self.index: Dict[int, int] = {}
        self.follows: List[Tuple[int, int]] = []  # (first, frames) per follow
        self.recorded: Optional[object] = None
        self.file: Optional[object] = object()

    # the writer's side
    def record_frames_in(self, shared: object, sole: object = None) -> None:
        self.recorded = shared

    def recover(self, generation: int) -> None:
        self.generation = generation

    def entries(self, first: int) -> "array[int]":
        out = array("Q")
        for k in range(first, len(self.frame_pgnos)):
            out.extend((self.frame_pgnos[k] | 100 << 32, 100 * k))
        return out

    def commit(self, index: FakeIndex, pgnos: List[int]) -> None:
        first = len(self.frame_pgnos)
        self.frame_pgnos += pgnos
        self.committed_frames = len(self.frame_pgnos)
        index.set_frames(first, self.entries(first))

    def restart(self) -> None:
        self.generation += 1
        self.salt += 1
        self.frame_pgnos = []
        self.committed_frames = 0

    # the reader's side
    def follow(self, generation: int, salt: int, frames: int, entries: "array[int]", first: int,
               *, verify: bool = True) -> List[int]:
        self.follows.append((first, frames))
        if first == 0:
            self.index = {}
        self.generation, self.salt, self.committed_frames = generation, salt, frames
        pgnos = []
        for i in range(0, len(entries), 2):
            pgno = entries[i] & 0xFFFFFFFF
            self.index[pgno] = entries[i + 1]
            pgnos.append(pgno)
        return pgnos

    def has_frames(self) -> bool:
        return bool(self.index)

    def forget_frames(self) -> None:
        self.index = {}

    def close(self) -> None:
        pass


class FakeSide:
    """FakeSide is the data file's owner as a rebuild sees it (readers.DataSide)."""

    def __init__(self, log: Optional[FakeLog] = None, writer: bool = False) -> None:
        self.log = log or FakeLog()
        self.writer = writer  # a writer holds the store: a rebuild must wait
        self.locked = False

    def lock_data_shared(self) -> bool:
        if self.writer:
            return False
        self.locked = True
        return True

    def unlock_data(self) -> None:
        self.locked = False

    def disk_meta(self) -> fmt.Meta:
        return fmt.Meta(512, page_count=10, file_id=1, checkpoint_seq=self.log.generation)

    def open_log(self, file_id: int) -> FakeLog:
        return self.log


Change = Tuple[Optional[Set[int]], bool, bool]


class Reader:
    """Reader is one reading process: its SharedLog, its log, its snapshot marks, what it was told."""

    def __init__(self, index: FakeIndex, side: Optional[FakeSide] = None) -> None:
        self.log = FakeLog()
        self.marks: List[ReadMark] = []
        self.share = SharedLog(index, side or FakeSide(), self.marks)  # type: ignore[arg-type]
        self.told: List[Change] = []

    def begin(self) -> None:
        self.share.begin_read(self.log, lambda pages, reset, new: self.told.append((pages, reset, new)))

    def end(self) -> None:
        self.share.end_read()

    def snapshot(self) -> ReadMark:
        """A snapshot taken during an operation keeps that operation's mark."""
        mark = ReadMark(fmt.Meta(512, page_count=10, file_id=1), {}, 0, 1, 0)
        mark.lock = self.share.mark
        self.marks.append(mark)
        return mark

    def release(self, mark: ReadMark) -> None:
        mark.live = False
        self.marks.remove(mark)
        self.share.reconcile()


@pytest.fixture
def world() -> Tuple[FakeIndex, FakeLog, SharedLog]:
    index = FakeIndex()
    wlog = FakeLog()
    writer = SharedLog(index, FakeSide(writer=True), [])  # type: ignore[arg-type]
    writer.attach(wlog)
    writer.recover(wlog, 1)
    assert wlog.recorded is index and not index.recovering
    return index, wlog, writer


def test_a_read_begins_at_the_latest_commit_and_holds_its_mark(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 4, 0])
    writer.publish(wlog, 0)
    r = Reader(index)
    r.begin()
    assert r.share.mark == 3 and index.held == {3: 1}
    assert r.told == [(None, True, True)]  # a first view: any page may have changed
    assert r.log.index == {3: 0, 4: 100, 0: 200}
    assert writer.oldest_mark(3) == 3 and not writer.readers_gone()
    r.end()
    assert r.share.mark is None and index.held == {3: 0}
    assert writer.oldest_mark(3) is None and writer.readers_gone()


def test_a_new_commit_names_only_its_pages_and_no_commit_names_none(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    writer.publish(wlog, 0)
    r = Reader(index)
    r.begin()
    r.end()
    r.begin()  # nothing published since: the same header, nothing to follow
    r.end()
    assert r.told == [(None, True, True)] and r.log.follows == [(0, 2)]
    wlog.commit(index, [5, 0])
    writer.publish(wlog, 0)
    r.begin()
    assert r.told[-1] == ({5, 0}, False, True) and r.log.follows[-1] == (2, 4)
    assert index.held == {2: 0, 4: 1}
    r.end()


def test_a_checkpoint_copies_no_further_than_the_oldest_mark(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    writer.publish(wlog, 0)
    old, new = Reader(index), Reader(index)
    old.begin()
    wlog.commit(index, [4, 0])
    writer.publish(wlog, 0)
    new.begin()
    assert writer.oldest_mark(4) == 2
    old.end()
    assert writer.oldest_mark(4) == 4
    new.end()
    assert writer.oldest_mark(4) is None


def test_a_log_copied_whole_is_read_from_the_data_file_under_read0(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    writer.publish(wlog, 0)
    r = Reader(index)
    r.begin()
    r.end()
    writer.publish(wlog, 2)  # the checkpoint copied every frame: the same state, in the data file
    r.begin()
    assert r.share.mark == -1 and index.held.get(-1) == 1
    assert r.told[-1] == (set(), True, False) and not r.log.has_frames()
    assert writer.oldest_mark(2) == 0  # LOCK_READ0: nothing more to copy, but the log may restart
    assert writer.lock_for_restart(0.0)
    writer.end_restart(wlog, 2)
    r.end()


def test_a_restart_waits_for_a_read_holding_a_mark_and_a_new_generation_names_every_page(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    writer.publish(wlog, 0)
    r = Reader(index)
    r.begin()
    writer.publish(wlog, 2)  # copied whole meanwhile, but the read holds mark 2 on the log
    assert not writer.lock_for_restart(0.0) and not index.restarting
    assert not writer.lock_for_restart(0.002)  # waited, and still held
    r.end()
    assert writer.lock_for_restart(0.0)
    writer.invalidate()
    assert index.read_header() is None
    r2 = Reader(index)
    assert not index.lock_mark(0)  # no reader takes a mark on the log while it starts over
    wlog.restart()
    writer.end_restart(wlog, 0)
    assert not index.restarting
    wlog.commit(index, [7, 0])
    writer.publish(wlog, 0)
    r.begin()
    r2.begin()
    assert r.told[-1] == (None, True, True) and r.log.follows[-1] == (0, 2)  # a new generation
    assert r.log.index == {7: 0, 0: 100} and r.log.generation == 2
    r.end()
    r2.end()


def test_a_snapshot_keeps_its_mark_after_the_operation_until_released(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    writer.publish(wlog, 0)
    r = Reader(index)
    r.begin()
    snap = r.snapshot()
    r.end()
    assert index.held == {2: 1} and r.share.locked == {2}
    wlog.commit(index, [4, 0])
    writer.publish(wlog, 2)
    assert writer.oldest_mark(4) == 2
    assert not writer.lock_for_restart(0.0)  # the snapshot reads the log's first frames
    r.begin()  # a later operation moves on; the snapshot's mark stays
    assert r.share.locked == {2, 4} and index.held == {2: 1, 4: 1}
    r.end()
    assert index.held == {2: 1, 4: 0}
    r.release(snap)
    assert index.held == {2: 0, 4: 0} and not r.share.locked
    assert writer.lock_for_restart(0.0)
    writer.end_restart(wlog, 4)


def test_a_header_that_changes_under_the_lock_is_read_again(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    stale = writer.index.publish(wlog.generation, wlog.salt, 2, 0)
    wlog.commit(index, [4, 0])
    writer.publish(wlog, 0)
    fresh = index.head
    # The reader reads the stale header, locks its mark, then sees the fresh one.
    index.on_read = [stale, fresh]
    r = Reader(index)
    r.begin()
    assert r.share.mark == 4 and r.share.view == fresh
    assert index.held == {2: 0, 4: 1}  # the stale mark was let go
    r.end()


def test_an_index_left_unreadable_is_rebuilt_from_the_log_when_no_writer_is_there():
    index = FakeIndex()  # a writer crashed after invalidating it: no header
    log = FakeLog()
    log.commit(index, [3, 5, 0])
    index.array = []  # and its frame array is not to be trusted either
    side = FakeSide(log)
    r = Reader(index, side)
    r.begin()
    assert index.head is not None and index.head.frames == 3 and not side.locked and not index.recovering
    assert not index.writing  # the rebuild's LOCK_WRITE is let go
    assert r.told == [(None, True, True)] and set(r.log.index) == {3, 5, 0}
    r.end()


def test_a_rebuild_waits_while_a_writer_is_in_its_turn():
    """Writers in several processes (issue 26) share the data file's lock: a rebuild waits on LOCK_WRITE."""
    index = FakeIndex()
    log = FakeLog()
    log.commit(index, [3, 0])
    side = FakeSide(log)
    index.writing = True  # another process's writer is in its turn
    r = Reader(index, side)
    assert r.share.rebuild(force=False) is False and index.head is None and not side.locked
    index.writing = False
    assert r.share.rebuild(force=False) is True and index.head is not None and not index.writing


def test_a_rebuild_waits_while_a_writer_holds_the_store():
    index = FakeIndex()
    r = Reader(index, FakeSide(writer=True))
    assert r.share.rebuild(force=True) is False and index.head is None and not index.recovering


def test_a_checkpoint_copies_up_to_the_oldest_mark_here_or_in_another_process(world):
    index, wlog, writer = world
    wlog.commit(index, [3, 0])
    marks = Marks()
    snap = marks.take(fmt.Meta(512, page_count=4, file_id=1), _ReaderLog(wlog), None)
    assert (snap.frames, snap.generation) == (2, 1)
    again = marks.take(fmt.Meta(512, page_count=4, file_id=1), _ReaderLog(wlog), None)
    assert again.index is snap.index  # no commit between: the index is shared, not copied
    wlog.commit(index, [4, 0])
    assert marks.copy_limit(4, 1, None) == 2 and marks.copy_limit(4, 2, None) == 0
    marks.release(snap)
    marks.release(again)
    marks.release(again)  # twice: harmless
    assert marks.copy_limit(4, 1, None) == 4 and marks.readers_gone(writer)
    writer.publish(wlog, 0)
    r = Reader(index)
    r.begin()
    assert marks.copy_limit(4, 1, writer) == 4 and not marks.readers_gone(writer)
    r.end()
    late = marks.take(fmt.Meta(512, page_count=5, file_id=1), _ReaderLog(wlog), None)
    assert late.frames == 4 and late.index is not snap.index
    marks.drop_all()
    assert not late.live and not marks.live and marks.readers_gone(writer)


class _ReaderLog:
    """_ReaderLog: what a mark copies of a log (its committed end, generation, frames and index)."""

    def __init__(self, log: FakeLog) -> None:
        self.committed_end = 100 * log.committed_frames
        self.generation = log.generation
        self.committed_frames = log.committed_frames
        self._index = {p: 100 * k for k, p in enumerate(log.frame_pgnos)}

    def index_copy(self) -> Dict[int, int]:
        return dict(self._index)
