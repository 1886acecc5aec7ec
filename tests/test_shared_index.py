"""The shared index (pagestore/shm.py) and read marks, exercised in one process.

A read-only Store opened beside a writer in the same process uses the same
files and locks as a reader in another process (the locks belong to each
open, not to the process), so the protocol can be driven step by step here;
tests/test_readers.py runs it across real processes.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pagestore
from helpers import fill
from pagestore import shm
from pagestore.errors import PageStoreError, StoreClosedError
from pagestore.store import Store

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="no open-file-description locks here")


def _fill(db, n, start=0, size=300):
    fill(db, n, lambda i: b"%d:" % i + b"v" * size, key=b"k%06d", start=start)


def test_reader_sees_each_commit_and_its_snapshot_stays(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db, pagestore.open(path, readonly=True) as r:
        assert len(r) == 0
        db[b"a"] = b"1"
        assert r[b"a"] == b"1" and len(r) == 1
        with r.snapshot() as snap:
            db[b"a"] = b"2"
            db[b"b"] = b"3"
            assert r[b"a"] == b"2" and r[b"b"] == b"3" and len(r) == 2
            assert snap[b"a"] == b"1" and b"b" not in snap and len(snap) == 1
            assert list(snap.items()) == [(b"a", b"1")]
        del db[b"a"]
        assert b"a" not in r and list(r.items()) == [(b"b", b"3")]
        assert r.check()["records"] == 1


def test_checkpoint_stops_at_a_readers_mark_and_the_log_restarts_after(tmp_path):
    path = str(tmp_path / "s.ps")
    with Store(path, wal_limit=64 * 1024) as db, pagestore.open(path, readonly=True) as r:
        _fill(db, 50)
        snap = r.snapshot()
        mark = db.stats()["log_frames"]
        assert db.stats()["oldest_mark"] == mark
        for round_ in range(6):
            _fill(db, 60, start=100 * (round_ + 1))
        st_ = db.stats()
        # the data file holds nothing past the reader's mark; the log grew past its limit
        assert st_["backfilled_frames"] <= mark
        assert st_["log_size"] > 2 * 64 * 1024  # kept past its limit: it could not restart
        assert snap[b"k000001"].startswith(b"1:") and len(snap) == 50
        assert b"k000100" not in snap
        grown = st_["log_size"]
        assert len(r) == 50 + 6 * 60
        snap.close()
        assert db.stats()["oldest_mark"] is None  # nothing held between operations
        for round_ in range(3):
            _fill(db, 60, start=1000 + 100 * round_)
        st_ = db.stats()
        assert st_["log_size"] < grown
        assert r.check()["records"] == 50 + 9 * 60
        assert db.check()["records"] == 50 + 9 * 60


def test_no_mark_is_held_between_operations(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db, pagestore.open(path, readonly=True) as r:
        db[b"a"] = b"1"
        assert r[b"a"] == b"1"
        assert db.stats()["oldest_mark"] is None
        it = iter(r.items())
        next(it)  # an unfinished scan holds its snapshot's mark
        assert db.stats()["oldest_mark"] is not None
        it.close()
        assert r[b"a"] == b"1"  # the next operation lets go of what closed iterators held
        assert db.stats()["oldest_mark"] is None


def test_writer_close_leaves_the_log_to_readers_then_the_next_writer_recovers(tmp_path):
    path = str(tmp_path / "s.ps")
    db = pagestore.open(path)
    r = pagestore.open(path, readonly=True)
    _fill(db, 200)
    snap = r.snapshot()
    _fill(db, 10, start=500)
    db.close()
    assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
    assert len(r) == 210 and len(snap) == 200 and r.check()["records"] == 210
    snap.close()
    db = pagestore.open(path)
    _fill(db, 10, start=900)
    assert len(r) == 220
    r.close()
    db.close()
    assert sorted(os.listdir(tmp_path)) == ["s.ps"]  # the last one out removes the log and index
    with pagestore.open(path, readonly=True) as r:
        assert len(r) == 220 and r.check()["records"] == 220
    assert sorted(os.listdir(tmp_path)) == ["s.ps"]


def test_a_damaged_shared_index_is_rebuilt_from_the_log(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        _fill(db, 100)
        db.close  # keep open: the log has frames
        with open(path + "-shm", "r+b") as f:
            f.write(b"\xff" * 200)  # both header copies garbage
        # no other process: a reader that finds the index unreadable with no writer rebuilds it,
        # but here the writer is alive, so it republishes at its next commit
        db[b"x"] = b"y"
        with pagestore.open(path, readonly=True) as r:
            assert r[b"x"] == b"y" and len(r) == 101
    # nobody has the store open: garbage in the index must not matter to the next opener
    with pagestore.open(path) as db:
        _fill(db, 5, start=300)
    with open(path + "-shm", "wb") as f:
        f.write(os.urandom(5000))
    with pagestore.open(path, readonly=True) as r:
        assert len(r) == 106 and r.check()["records"] == 106


def test_compact_is_refused_while_another_open_reads(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        _fill(db, 100)
        with pagestore.open(path, readonly=True) as r:
            assert len(r) == 100
            with pytest.raises(PageStoreError, match="this process also has the store open"):
                db.compact()
            assert len(r) == 100
        db.compact()
        assert len(db) == 100 and db.check()["records"] == 100


def test_a_second_writer_is_still_refused(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        with pytest.raises(pagestore.StoreLockedError):
            pagestore.open(path)
        with pagestore.open(path, readonly=True) as r:
            with pytest.raises(pagestore.ReadOnlyError):
                r[b"b"] = b"2"
            assert r[b"a"] == b"1"


def test_reader_closed_store_says_so(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        r = pagestore.open(path, readonly=True)
        snap = r.snapshot()
        r.close()
        with pytest.raises(StoreClosedError):
            r[b"a"]
        with pytest.raises(StoreClosedError):
            snap[b"a"]
        assert db.stats()["oldest_mark"] is None


class ReaderBesideWriter(RuleBasedStateMachine):
    """A writer and a reader of one store against a dict: the reader's reads see the last commit;
    its snapshots see the commit they were taken at, whatever the writer (and its checkpoints,
    with a tiny log limit) does after."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "m.ps")
        self.db = Store(self.path, wal_limit=16 * 1024, page_size=512)
        self.reader = pagestore.open(self.path, readonly=True)
        self.model: dict = {}
        self.snaps: list = []

    keys = st.binary(min_size=1, max_size=6)
    values = st.binary(max_size=900)

    @rule(k=keys, v=values)
    def put(self, k, v):
        self.db[k] = v
        self.model[k] = v

    @rule(k=keys)
    def delete(self, k):
        self.db.pop(k, None)
        self.model.pop(k, None)

    @rule(items=st.lists(st.tuples(keys, values), max_size=30))
    def transaction(self, items):
        with self.db.transaction() as txn:
            for k, v in items:
                txn[k] = v
        self.model.update(items)

    @rule(k=keys)
    def reader_get(self, k):
        assert self.reader.get(k) == self.model.get(k)

    @precondition(lambda self: len(self.snaps) < 4)
    @rule()
    def take_snapshot(self):
        self.snaps.append((self.reader.snapshot(), dict(self.model)))

    @precondition(lambda self: self.snaps)
    @rule(i=st.integers(min_value=0, max_value=3))
    def close_snapshot(self, i):
        snap, _ = self.snaps.pop(i % len(self.snaps))
        snap.close()

    @invariant()
    def reader_matches(self):
        assert len(self.reader) == len(self.model)
        for snap, model in self.snaps:
            assert dict(snap.items()) == model

    def teardown(self):
        for snap, _ in self.snaps:
            snap.close()
        try:
            assert dict(self.reader.items()) == self.model
            self.reader.check()
            self.db.check()
        finally:
            self.reader.close()
            self.db.close()
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)


TestReaderBesideWriter = ReaderBesideWriter.TestCase
TestReaderBesideWriter.settings = settings(max_examples=25, stateful_step_count=40, deadline=None)


def test_format_doc_matches_the_shared_index():
    """docs/format.md's shared-index tables say what shm.py does."""
    import re
    import struct
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text(encoding="utf-8")
    section = doc.split("## Shared index", 1)[1].split("\n## ", 1)[0]
    head, entry = section.split("Frame entry (", 1)
    entry, unsynced = entry.split("**Unsynced**", 1)
    layout, header = [re.findall(r"^\| (\d+) \| ([\d *n]+) \|", t, re.M) for t in head.split("Header (", 1)]
    assert 2 * shm.COPY_SIZE == shm.UNSYNCED_OFFSET
    assert shm.TURNS_OFFSET == shm.UNSYNCED_OFFSET + 16 and shm.ASKS_OFFSET == shm.TURNS_OFFSET + 4
    assert shm.FAILURES_OFFSET == shm.ASKS_OFFSET + 4
    assert [int(o) for o, _ in layout] == [0, shm.COPY_SIZE, shm.UNSYNCED_OFFSET, shm.TURNS_OFFSET,
                                           shm.ASKS_OFFSET, shm.FAILURES_OFFSET, shm.FAILURES_OFFSET + 4,
                                           shm.DURABLE_OFFSET, shm.DURABLE_OFFSET + 16, shm.SLOTS_OFFSET,
                                           shm.COVERS_OFFSET, shm.COVERS_OFFSET + 8 * shm.SLOTS, shm.ARRAY_OFFSET]
    assert shm.COVERS_OFFSET == shm.SLOTS_OFFSET + shm.SLOTS * shm.SLOT_SIZE
    # the rows of the layout follow each other, each as long as it says
    rows = [(int(o), z) for o, z in layout[:-1]]
    assert all(o + int(z) == nxt for (o, z), (nxt, _) in zip(rows, rows[1:] + [(shm.ARRAY_OFFSET, "")]))
    assert layout[-1][1] == f"{shm.ENTRY_SIZE} * n"
    words = re.findall(r"^\| (\d+) \| (\d+) \|", unsynced.split("**Locks**", 1)[0], re.M)
    # the unsynced word, then a sync slot's record (``SLOT_SIZE``)
    assert [int(o) for o, _ in words] == [0, 8, 12, 0, 8, 12] and sum(int(z) for _, z in words) == 16 + shm.SLOT_SIZE
    fields = re.findall(r"^\| (\d+) \| (\d+) \|", entry, re.M)
    assert [int(o) for o, _ in fields] == [0, 4, 8] and sum(int(z) for _, z in fields) == shm.ENTRY_SIZE
    offsets = [int(o) for o, _ in header]
    sizes = [int(z) for _, z in header]
    assert offsets[-1] + sizes[-1] == shm.HEADER_SIZE
    assert all(a + z == b for a, z, b in zip(offsets, sizes, offsets[1:]))  # contiguous
    assert struct.calcsize("<" + "".join({4: "I", 8: "Q"}[z] for z in sizes[1:-1])) + 8 == 52
    assert shm.LOCK_DMS == 2**40 and shm.LOCK_RECOVER == 2**40 + 1 and shm.READ_BASE == 2**40 + 16
    assert "psSHM\\r\\n\\0" in section and shm.SHM_MAGIC == b"psSHM\r\n\x00"


def test_a_writer_that_died_mid_restart_leaves_readers_a_rebuild(tmp_path):
    """The writer zeroes the index header before it starts a new log and publishes after; a writer
    that dies in between (simulated: its files closed, nothing cleaned up) leaves an unreadable
    header. With no writer left, a reader rebuilds the index from the log and reads on."""
    path = str(tmp_path / "s.ps")
    db = Store(path)
    r = pagestore.open(path, readonly=True)
    try:
        _fill(db, 100)
        assert len(r) == 100
        with db._lock:
            db._pager.sharing.index.invalidate()
            db._pager._close_files()  # the process is gone: its locks with it
        db._closed = True
        assert len(r) == 100 and r[b"k000007"].startswith(b"7:")
        assert r.check()["records"] == 100
    finally:
        r.close()
    with pagestore.open(path) as db2:  # the next writer recovers as usual
        assert len(db2) == 100 and db2.check()["records"] == 100


def test_without_a_writable_index_a_reader_falls_back_to_one_process_at_a_time(tmp_path, monkeypatch):
    """Where the index cannot be made (a read-only directory), a read-only open works as before
    the index existed: it reads alone, refused beside a writer, and refusing writers meanwhile."""
    from pagestore import readers as readers_mod

    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", path + "-shm")

    monkeypatch.setattr(readers_mod, "SharedIndex", refuse)
    with pagestore.open(path, readonly=True) as r:
        assert r[b"a"] == b"1" and r._pager.sharing is None and not r._pager.shared
        with pytest.raises(pagestore.StoreLockedError):
            Store(path)
    monkeypatch.undo()
    with pagestore.open(path) as db:
        with pytest.raises(pagestore.StoreLockedError):
            monkeypatch.setattr(readers_mod, "SharedIndex", refuse)
            pagestore.open(path, readonly=True)


@pytest.mark.parametrize("snapshot_first", [False, True])
def test_a_reader_maps_what_a_checkpoint_copied_past_the_files_old_end(tmp_path, snapshot_first):
    """Regression (found by the bank test with a 4 KiB log, about 1 run in 5): a checkpoint copied
    new pages past the data file's old end, another reader kept the log from restarting, and the
    reader under test, moving to read the data file only for the same commit, still had the old,
    shorter map: 'page number outside the mapped file'."""
    path = str(tmp_path / "s.ps")
    db = Store(path)
    r = pagestore.open(path, readonly=True)
    other = pagestore.open(path, readonly=True)
    try:
        _fill(db, 20)
        with db._lock:
            db._pager.checkpoint()  # no reader holds a mark: copied, and a new log
        with db.transaction() as txn:  # new pages, fewer than a direct write's: they go to the log
            for i in range(12):
                txn[b"n%03d" % i] = bytes([i]) * 3000
            for i in range(600):  # and new leaves (split), which the tree reads through the map
                txn[b"m%05d" % i] = b"s"
        assert r[b"n000"] == bytes(3000)  # r's view: the new pages in the log, past its map
        snap = other.snapshot()  # holds a mark on the log: it cannot restart
        if snapshot_first:
            rs = r.snapshot()
        with db._lock:
            db._pager.checkpoint()  # copies everything (up to the marks, which are the last commit)
        assert db.stats()["backfilled_frames"] == db.stats()["log_frames"] > 0
        for i in range(12):  # r now reads the data file only, for the same commit
            assert r[b"n%03d" % i] == bytes([i]) * 3000
        assert r.get_many([b"n%03d" % i for i in range(12)]) == [bytes([i]) * 3000 for i in range(12)]
        assert r.get_many([b"m%05d" % i for i in range(0, 600, 7)]) == [b"s"] * len(range(0, 600, 7))
        assert r.check()["records"] == 632
        if snapshot_first:
            assert dict(rs.items()) == dict(r.items())
            rs.close()
        snap.close()
    finally:
        other.close()
        r.close()
        db.close()


def test_a_writer_that_cannot_open_the_index_says_which_file(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    os.mkdir(path + "-shm")
    with pytest.raises(PageStoreError, match="s.ps-shm: cannot open the store's shared index"):
        pagestore.open(path)
    with pagestore.open(path, readonly=True) as r:  # a reader falls back to reading alone
        assert r[b"a"] == b"1"
    os.rmdir(path + "-shm")
    with pagestore.open(path) as db:
        assert db[b"a"] == b"1"


def test_the_data_lock_goes_through_the_stores_opener(tmp_path):
    """LOCK_DMS is taken on a File the store's opener made (shm.DataLock), so the fault double sees
    it: while the store is open the double holds it, and a crash lets go of it with the process,
    so that the next open, alone, removes the log and the shared index when it closes."""
    from faultfs import Disk
    from pagestore.wal import log_path

    disk = Disk(str(tmp_path))
    path = os.path.join(str(tmp_path), "db")
    db = Store(path, _opener=disk.opener)
    db[b"a"] = b"1"
    st = os.stat(path)
    held = disk.ranges.get((st.st_dev, st.st_ino), {})
    # LOCK_DMS, LOCK_WRITERS (a writer taking turns with writers in other processes, issue 26) and
    # its shared index's byte of LOCK_NAMES (two names of one file told apart)
    ix = os.stat(shm.shm_path(path))
    name = (shm.name_byte(ix.st_dev, ix.st_ino), 1, False)
    assert sorted(r for locks in held.values() for r in locks) == sorted(
        [(shm.LOCK_DMS, 1, False), (shm.LOCK_WRITERS, 1, False), name])
    disk.crash("kill")  # the process is gone, and its locks with it (db is never closed)
    again = Store(path, _opener=disk.opener)
    assert again[b"a"] == b"1"
    again.close()
    assert not os.path.exists(log_path(path)) and not os.path.exists(shm.shm_path(path))
    del db


def test_a_get_inside_a_held_operation_keeps_its_read_mark_until_the_outer_hold_ends(tmp_path):
    """A get takes the operation lock's RLock directly (store.__getitem__): when it is the
    outermost hold it ends the operation's read mark as the lock's exit does; nested inside
    another hold it leaves the mark to that one's end."""
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db, pagestore.open(path, readonly=True) as r:
        db[b"a"] = b"1"
        assert r[b"a"] == b"1"
        assert db.stats()["oldest_mark"] is None  # the get's mark ended with it
        with r._lock:
            assert r[b"a"] == b"1"
            assert db.stats()["oldest_mark"] is not None  # still inside the outer hold
            with pytest.raises(KeyError):
                r[b"missing"]
            assert db.stats()["oldest_mark"] is not None
        assert db.stats()["oldest_mark"] is None
        with pytest.raises(KeyError):
            r[b"missing"]
        assert db.stats()["oldest_mark"] is None  # ended on the way out of a failed get too


def test_the_durable_word_keeps_the_largest_end_of_one_log_and_starts_over_for_another(tmp_path):
    """shm.py's "durable" word: a sync's claim that the log of a salt is durable up to an end. A
    smaller end of the same log never lowers it; another log's claim replaces it whole, and a
    salt's end is never read with another salt (the end is cleared before the salt changes)."""
    index = shm.SharedIndex(str(tmp_path / "d-shm"), 4096, 7)
    try:
        assert index.durable() is None
        index.set_durable(11, 1_000_000)
        index.set_durable(11, 5_000)
        assert index.durable() == (11, 1_000_000)
        seen = []
        real = index.map

        class Watch(bytearray):  # a copy of the map that records every state the word passes through
            def __setitem__(self, key, value):
                super().__setitem__(key, value)
                end = int.from_bytes(self[shm.DURABLE_OFFSET:shm.DURABLE_OFFSET + 8], "little")
                salt = int.from_bytes(self[shm.DURABLE_OFFSET + 8:shm.DURABLE_OFFSET + 12], "little")
                seen.append((salt, end) if end else None)

        watch = Watch(real[:4096])
        index.map = watch  # type: ignore[assignment]
        try:
            index.set_durable(12, 5_000)
        finally:
            index.map = real
        real[:4096] = bytes(watch)
        assert index.durable() == (12, 5_000)
        assert (12, 1_000_000) not in seen and (11, 5_000) not in seen
    finally:
        index.close()


@pytest.mark.skipif(not shm.FUTEXES, reason="the futex sleep needs Linux futexes")
def test_a_sleep_racing_the_close_of_the_index_ends_with_what_the_watcher_takes_as_the_end(tmp_path):
    """The turn watcher sleeps on a futex word (``sleep``) while the store's close may unmap the
    index: the sleep reads the map once, so a close landing between its look at the map and its
    use gives ValueError (the watcher's sign to end) or a plain wake-up, never a TypeError from a
    map that became None in between (seen as a thread's traceback in the slow suite)."""

    class Racing(shm.SharedIndex):
        closing = False

        @property
        def map(self):  # type: ignore[override]
            m = self.__dict__.get("_m")
            if self.closing:  # the close lands right after this read
                self.__dict__["_m"] = None
            return m

        @map.setter
        def map(self, value):  # type: ignore[override]
            self.__dict__["_m"] = value

    index = Racing(str(tmp_path / "r-shm"), 4096, 7)
    try:
        seen = index.word(shm.TURNS_OFFSET)
        index.closing = True
        try:
            index.sleep(shm.TURNS_OFFSET, seen + 1, 0.01)  # the word differs: returns at once
        except ValueError:
            pass
        index.__dict__["_m"] = None
        index.closing = False
        index.sleep(shm.TURNS_OFFSET, seen, 0.01)  # closed: a plain sleep
        index.bump(shm.TURNS_OFFSET, 1)  # closed: nothing to wake
    finally:
        index.close()
