"""A writer's catch-up at the start of its turn (issue 26): nothing stale is ever written.

Two (or three) opens of one store take turns on LOCK_WRITE as writers in separate processes
do: each has its own caches (the pager's pages, the tree's nodes, the heap's free-space map,
the free list, the header), and the files are shared through tests/faultfs.py's ``Disk`` (one
process, so the order of the turns is exact). In each test B's caches hold a page A then
changes: a leaf, a heap page, a free-space map page, a free-list trunk, page 0. B then writes
with no read in between (a read would bring B up to date through its read mark: the catch-up
is what is under test), and B's commit must be built on A's version of that page: A's change
is still there afterwards, every page is accounted for once (``check()``), and a fresh open
reads both.
"""
from __future__ import annotations

import random
import time
from typing import Any, Dict, List

import pytest

from pagestore import shm
from pagestore import store as store_mod
from pagestore.store import Store

from faultfs import Disk

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="writers in several processes need open-file-description locks")


def _opens(tmp_path, monkeypatch, n: int = 2, page_size: int = 512, **kwargs: Any) -> List[Store]:
    """_opens: ``n`` writers of one fresh store, each taking a turn per write (none keeps it)."""
    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)  # a turn per write: a catch-up per write
    disk = Disk(str(tmp_path), seed=7)
    path = str(tmp_path / "c.ps")
    dbs = [Store(path, _opener=disk.opener, sync=False, page_size=page_size, **kwargs) for _ in range(n)]
    for db in dbs:
        with db._lock:
            if db._turns.kept:
                db._turns._give_up()  # the open's turn
        db._turns._given = time.monotonic()
    return dbs


def _reopen_reads(dbs: List[Store], expected: Dict[bytes, bytes]) -> None:
    """_reopen_reads: every open checks clean and reads ``expected`` whole, and so does a fresh one."""
    for db in dbs:
        db.check()
        assert dict(db.items()) == expected
    opener, path = dbs[0]._opener, dbs[0].path
    for db in dbs:
        db.close()
    fresh = Store(path, _opener=opener)
    try:
        fresh.check()
        assert dict(fresh.items()) == expected
    finally:
        fresh.close()


def test_a_leaf_another_writer_changed_is_not_written_stale(tmp_path, monkeypatch):
    """B holds a leaf (it read a key of it); A updates a key of that leaf and inserts beside it;
    B's put into the same leaf keeps A's update and A's insert."""
    a, b = _opens(tmp_path, monkeypatch)
    expected = {b"k%03d" % i: b"v" for i in range(0, 20, 2)}
    a.update(expected.items())
    assert b[b"k004"] == b"v"  # B's node cache now holds the leaf
    a[b"k004"] = b"from a"
    a[b"k005"] = b"a's insert"
    b[b"k007"] = b"b's insert"  # no read in between: B's turn catches up first
    expected.update({b"k004": b"from a", b"k005": b"a's insert", b"k007": b"b's insert"})
    _reopen_reads([a, b], expected)


def test_a_heap_page_another_writer_changed_is_not_written_stale(tmp_path, monkeypatch):
    """B placed a record in a heap page (it holds the page); A places records in the same page;
    B's next record goes in beside them and overwrites none (their record ids stay A's)."""
    a, b = _opens(tmp_path, monkeypatch)
    b[b"b0"] = b"y" * 40
    assert b[b"b0"] == b"y" * 40
    a[b"a0"] = b"x" * 40
    a[b"a1"] = b"z" * 40
    b[b"b1"] = b"w" * 40
    _reopen_reads([a, b], {b"b0": b"y" * 40, b"a0": b"x" * 40, b"a1": b"z" * 40, b"b1": b"w" * 40})


def test_a_free_space_map_page_another_writer_changed_is_not_written_stale(tmp_path, monkeypatch):
    """B's free-space map offers a heap page with room; A fills that page (and deletes from
    another one): B's map must be A's before B places a record and writes its map page back,
    else B places by a stale entry or writes the stale entries over A's (check() compares the
    map with the pages)."""
    a, b = _opens(tmp_path, monkeypatch)
    a.update((b"p%03d" % i, b"v" * 60) for i in range(30))
    b[b"b0"] = b"y" * 30  # B's map as of now
    a.update((b"q%03d" % i, b"w" * 100) for i in range(3))  # fills the pages B's map offers
    del a[b"p001"], a[b"p002"], a[b"p003"]  # frees room elsewhere
    b[b"b1"] = b"u" * 100
    expected = {b"p%03d" % i: b"v" * 60 for i in range(30) if i not in (1, 2, 3)}
    expected.update({b"q%03d" % i: b"w" * 100 for i in range(3)})
    expected.update({b"b0": b"y" * 30, b"b1": b"u" * 100})
    _reopen_reads([a, b], expected)


def test_the_free_list_another_writer_changed_is_not_written_stale(tmp_path, monkeypatch):
    """A frees many pages (its free list grows), B (which loaded the list before) allocates: B's
    commit must take pages from A's list, not hand out a page twice or lose a free one; then B
    frees and A allocates the other way round."""
    a, b = _opens(tmp_path, monkeypatch)
    a.update((b"r%04d" % i, b"v" * 200) for i in range(300))
    b[b"b0"] = b"y"  # B's free list as of now
    a.delete_range(b"r0000", b"r0250")  # pages to A's free list
    b.update((b"s%04d" % i, b"w" * 200) for i in range(100))  # B allocates from it
    b.delete_range(b"s0000", b"s0050")
    a.update((b"t%04d" % i, b"z" * 200) for i in range(60))
    expected = {b"r%04d" % i: b"v" * 200 for i in range(250, 300)}
    expected.update({b"s%04d" % i: b"w" * 200 for i in range(50, 100)})
    expected.update({b"t%04d" % i: b"z" * 200 for i in range(60)})
    expected[b"b0"] = b"y"
    _reopen_reads([a, b], expected)


def test_the_header_another_writer_changed_is_not_written_stale(tmp_path, monkeypatch):
    """A's commits change page 0 (the record count, the root and the tree's height as the tree
    grows a level, the page count); B's next commit must carry A's header forward, not the one
    B last read: the counts stay right and the tree reachable."""
    a, b = _opens(tmp_path, monkeypatch)
    b[b"b0"] = b"y"
    height = a._pager.meta.tree_height
    a.update((b"g%04d" % i, b"v" * 50) for i in range(400))  # the tree grows: a new root
    assert a._pager.meta.tree_height > height
    b[b"b1"] = b"y"
    assert len(b) == 402 and b._pager.meta.root == a._pager.meta.root
    expected = {b"g%04d" % i: b"v" * 50 for i in range(400)}
    expected.update({b"b0": b"y", b"b1": b"y"})
    _reopen_reads([a, b], expected)


def test_three_writers_in_random_turns_agree_with_a_dict(tmp_path, monkeypatch):
    """Three writers make random puts, deletes, range deletes and batches in random turns, each
    reading a key now and then (so its caches hold pages the next writer changes): the store
    is a dict's replay of the same operations, check() clean along the way."""
    dbs = _opens(tmp_path, monkeypatch, n=3)
    rng = random.Random(26)
    model: Dict[bytes, bytes] = {}
    for step in range(300):
        db = dbs[rng.randrange(3)]
        op = rng.random()
        key = b"%04d" % rng.randrange(400)
        if op < 0.5:
            value = bytes([97 + step % 26]) * rng.choice((10, 60, 300, 700))
            db[key] = value
            model[key] = value
        elif op < 0.7:
            db.pop(key, None)
            model.pop(key, None)
        elif op < 0.75:
            hi = b"%04d" % (int(key) + rng.randrange(30))
            db.delete_range(key, hi)
            for k in [k for k in model if key <= k < hi]:
                del model[k]
        elif op < 0.85:
            batch = {b"%04d" % rng.randrange(400): b"b%d" % step * rng.randrange(1, 40) for _ in range(20)}
            db.update(batch.items())
            model.update(batch)
        else:
            assert db.get(key) == model.get(key)
        if step % 60 == 59:
            for d in dbs:
                d.check()
    _reopen_reads(dbs, model)


# ---- pages a writer holds, brought up to date from the frames its turn took (WAL.advance) ----


def _cache_is_the_log(db: Store) -> int:
    """_cache_is_the_log: every clean page in ``db``'s page cache is the page's newest committed
    image (its newest frame read down its chain of deltas, else the data file's bytes);
    returns how many there are."""
    pager = db._pager
    n = 0
    for pgno, f in list(pager.cache.items()):
        if not f.dirty:
            assert bytes(f.buf) == bytes(pager._load(pgno)), f"page {pgno}: the cached image is not the newest"
            n += 1
    return n


def test_pages_a_writer_holds_are_brought_up_to_date_from_the_frames_it_took(tmp_path, monkeypatch):
    """A holds the heap page, the map page and the header its put wrote; B's put changes exactly
    those; A's next operation takes B's frames from the shared index and applies them to the
    images it holds (the same cached frames, not dropped and read down their chains): each is
    then B's image, byte for byte, and A's next put is built on it."""
    a, b = _opens(tmp_path, monkeypatch)
    a[b"a0"] = b"x" * 40
    before = dict(a._pager.cache)
    index = dict(a._pager.wal.index)
    b[b"b0"] = b"y" * 40  # into the page A's put used: the map offers it to B
    assert a[b"b0"] == b"y" * 40  # A catches up between its turns
    moved = {p for p, off in a._pager.wal.index.items() if index.get(p) != off}
    kept = {p for p, f in before.items() if p in moved and a._pager.cache.get(p) is f}
    heap_page = a._heap.fsm.held_pgno or max(kept, default=0)
    assert len(kept) >= 2 and heap_page in kept, (kept, moved)  # the heap page and the map's, not dropped
    assert _cache_is_the_log(a) >= len(kept)
    assert a._pager._logged_header is not None
    assert bytes(a._pager._logged_header[1]) == bytes(a._pager.wal.read_frame(a._pager.wal.index[0], 0))
    a[b"a1"] = b"z" * 40
    b[b"b1"] = b"w" * 40  # B's turn: the same, the other way round
    assert _cache_is_the_log(b) > 0
    _reopen_reads([a, b], {b"a0": b"x" * 40, b"b0": b"y" * 40, b"a1": b"z" * 40, b"b1": b"w" * 40})


def test_three_writers_in_random_turns_hold_only_the_newest_images(tmp_path, monkeypatch):
    """Three writers in random turns (puts into shared heap pages, deletes, batches that split
    leaves and grow the map): after each operation the writer that made it holds, in its page
    cache, only pages' newest images, most of them brought up to date in place."""
    from pagestore import wal as wal_mod

    advanced = [0, 0]
    real = wal_mod.WAL.advance

    def counted(self, pgno, image, known=-1):  # type: ignore[no-untyped-def]
        ok = real(self, pgno, image, known)
        advanced[ok] += 1
        return ok

    monkeypatch.setattr(wal_mod.WAL, "advance", counted)
    dbs = _opens(tmp_path, monkeypatch, n=3)
    rng = random.Random(7)
    model: Dict[bytes, bytes] = {}
    for step in range(240):
        db = dbs[rng.randrange(3)]
        op = rng.random()
        key = b"%04d" % rng.randrange(300)
        if op < 0.6:
            value = bytes([97 + step % 26]) * rng.choice((20, 90, 400))
            db[key] = value
            model[key] = value
        elif op < 0.75:
            db.pop(key, None)
            model.pop(key, None)
        elif op < 0.85:
            batch = {b"%04d" % rng.randrange(300): b"b%d" % step * rng.randrange(1, 30) for _ in range(15)}
            db.update(batch.items())
            model.update(batch)
        else:
            assert db.get(key) == model.get(key)
        _cache_is_the_log(db)
    assert advanced[True] > 100, advanced
    _reopen_reads(dbs, model)


def test_a_turn_after_another_writer_grew_the_log_and_committed_nothing(tmp_path, monkeypatch):
    """B's update spills its pages to the log past the committed end (the file grows) and is
    rolled back (its iterator raises): nothing committed, so A's next turn takes nothing and does not look at the log's
    size again (WAL.catch_up); A's commits then go over B's abandoned frames, and every commit
    reads back, a fresh open recovers them and check() is clean."""
    a, b = _opens(tmp_path, monkeypatch, cache_size=64 * 512)
    a[b"a0"] = b"x" * 40
    b[b"b0"] = b"y" * 40
    assert a[b"b0"] == b"y" * 40  # A has taken B's commit: its next turn takes nothing
    size = b._pager.wal.file.size()
    spilled = []

    def pairs():  # type: ignore[no-untyped-def]
        for i in range(1500):
            yield b"t%04d" % i, b"z" * 300
        spilled.append(b._pager.wal.end > b._pager.wal.committed_end and b._pager.wal.file.size() > size)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        b.update(pairs())
    assert spilled == [True]  # its pages spilled to the log past the committed end, the file grown
    assert b._pager.wal.end == b._pager.wal.committed_end and b.get(b"t0001") is None
    for i in range(20):
        a[b"a%d" % (i + 1)] = b"w" * 300
    expected = {b"a0": b"x" * 40, b"b0": b"y" * 40}
    expected.update({b"a%d" % (i + 1): b"w" * 300 for i in range(20)})
    _reopen_reads([a, b], expected)
