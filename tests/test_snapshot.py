"""Snapshots, iteration on snapshots, and backup (issue 13, in one process).

The store's state machine (test_store.py) checks snapshots against a model
step by step; here: the promises one at a time, threads, and backups.
"""
from __future__ import annotations

import gc
import os
import random
import threading
import time

import pytest

import helpers
import pagestore
from pagestore.errors import PageStoreError, StoreClosedError
from pagestore.store import Store

SMALL = dict(helpers.SMALL, cache_size=512 * 40, sync=False, wal_limit=8 * 1024)


@pytest.fixture(params=[True, False], ids=["mmap", "no-mmap"])
def mmap(request):
    return request.param


def test_writing_while_iterating_copies_each_key_once(tmp_path, mmap):
    """The issue's loop: it copies a, b and c once each and stops (it ran 269 times)."""
    with pagestore.open(tmp_path / "db", mmap=mmap) as db:
        for k in (b"a", b"b", b"c"):
            db[k] = k.upper()
        seen = []
        for k in db:
            seen.append(k)
            db[k + b"-copy"] = db[k]
        assert seen == [b"a", b"b", b"c"]
        assert dict(db.items()) == {b"a": b"A", b"a-copy": b"A", b"b": b"B", b"b-copy": b"B",
                                    b"c": b"C", b"c-copy": b"C"}
        # the same the other way, with deletes, and over items() and values()
        seen = []
        for k in reversed(db):
            seen.append(k)
            del db[k]
            db[b"z" + k] = b""
        assert seen == [b"c-copy", b"c", b"b-copy", b"b", b"a-copy", b"a"]
        assert len(db) == 6 and all(k.startswith(b"z") for k in db)
        n = 0
        for k, v in db.items():
            db[k + b"!"] = v
            n += 1
        assert n == 6 and len(db) == 12
        assert db.stats()["snapshots"] == 0
        db.check()


def test_each_iteration_of_a_view_takes_its_own_snapshot(tmp_path, mmap):
    with pagestore.open(tmp_path / "db", mmap=mmap) as db:
        db.update({b"a": b"1", b"b": b"2"})
        keys, items, values = db.keys(), db.items(), db.values()
        it1 = iter(items)
        assert next(it1) == (b"a", b"1")
        db[b"c"] = b"3"
        db[b"b"] = b"changed"
        assert list(it1) == [(b"b", b"2")]  # the snapshot of its start
        assert list(items) == [(b"a", b"1"), (b"b", b"changed"), (b"c", b"3")]  # a new one
        assert list(keys) == [b"a", b"b", b"c"] and list(values) == [b"1", b"changed", b"3"]
        assert list(reversed(keys)) == [b"c", b"b", b"a"]


def test_an_abandoned_iterator_releases_its_snapshot(tmp_path):
    with pagestore.open(tmp_path / "db") as db:
        db.update({b"%03d" % i: b"v" for i in range(100)})
        it = iter(db.items())
        next(it)
        assert db.stats()["snapshots"] == 1
        it2 = iter(db.keys())
        next(it2)
        it2.close()  # closed
        assert db.stats()["snapshots"] == 1
        del it  # collected
        gc.collect()
        assert db.stats()["snapshots"] == 0
        assert list(db.keys()) and db.stats()["snapshots"] == 0  # exhausted
        never = iter(db.items())  # not started: took nothing
        assert db.stats()["snapshots"] == 0
        del never


def test_snapshot_api(tmp_path, mmap):
    with pagestore.open(tmp_path / "db", mmap=mmap) as db:
        db.update({b"a": b"1", b"b": b"2", b"ab": b"3"})
        with db.snapshot() as snap:
            db[b"c"] = b"4"
            del db[b"a"]
            db[b"b"] = b"22"
            with db.transaction() as txn:
                txn[b"d"] = b"5"
                # inside an open transaction: its writes are not the snapshot's, nor the store's
                with db.snapshot() as inner:
                    assert b"d" not in inner and inner[b"b"] == b"22"
            assert snap[b"a"] == b"1" and snap.get(b"b") == b"2" and snap.get(b"c") is None
            assert snap.get(b"c", b"-") == b"-"
            with pytest.raises(KeyError):
                snap[b"c"]
            assert b"a" in snap and b"c" not in snap and len(snap) == 3
            assert list(snap) == [b"a", b"ab", b"b"] and list(reversed(snap)) == [b"b", b"ab", b"a"]
            assert list(snap.items(prefix=b"a")) == [(b"a", b"1"), (b"ab", b"3")]
            assert list(snap.keys(b"ab", b"c", reverse=True)) == [b"b", b"ab"]
            assert list(snap.values(start=b"ab")) == [b"3", b"2"]
            assert len(snap.keys(prefix=b"a")) == 2 and (b"ab", b"3") in snap.items()
            assert dict(snap) == {b"a": b"1", b"ab": b"3", b"b": b"2"}
            assert snap.lsn < db.snapshot().lsn
            with pytest.raises(TypeError):
                snap[b"x"] = b"y"  # type: ignore[index]
            assert "3 records" in repr(snap)
        assert snap.closed
        with pytest.raises(StoreClosedError, match="snapshot is closed"):
            snap[b"a"]
        with pytest.raises(StoreClosedError):
            list(snap.items())
        snap.close()  # twice: harmless
        assert db.stats()["snapshots"] == 0


def test_snapshot_with_codecs(tmp_path):
    with pagestore.open(tmp_path / "db", keys="tuple", values="json") as db:
        db[("user", 2)] = {"name": "bob"}
        db[("user", 10)] = {"name": "carol"}
        with db.snapshot() as snap:
            db[("user", 3)] = {"name": "dan"}
            assert snap[("user", 2)] == {"name": "bob"}
            assert list(snap.keys(prefix=("user",))) == [("user", 2), ("user", 10)]
            assert list(snap.items(reverse=True))[0] == (("user", 10), {"name": "carol"})
            assert ("user", 3) not in snap


def test_closing_the_store_ends_its_snapshots(tmp_path):
    db = pagestore.open(tmp_path / "db")
    db[b"a"] = b"1"
    snap = db.snapshot()
    it = iter(db.items())
    next(it)
    db.close()
    with pytest.raises(StoreClosedError, match="store is closed"):
        snap[b"a"]
    with pytest.raises(StoreClosedError):
        next(it)
    snap.close()


def test_compact_waits_for_no_snapshot(tmp_path):
    with pagestore.open(tmp_path / "db") as db:
        db.update({b"%03d" % i: b"v" * 100 for i in range(200)})
        with db.snapshot():
            with pytest.raises(PageStoreError, match="snapshots"):
                db.compact()
        db.compact()
        it = iter(db)
        next(it)
        with pytest.raises(PageStoreError, match="snapshots"):
            db.compact()
        del it
        db.compact()
        db.check()


def test_log_grows_under_a_snapshot_and_shrinks_after(tmp_path, mmap):
    """A snapshot defers checkpoints: the log holds every commit made meanwhile. Once it
    is closed, the next commit checkpoints, and the log is back to its usual size."""
    with Store(str(tmp_path / "db"), mmap=mmap, **SMALL) as db:
        for i in range(300):
            db[b"k%04d" % i] = b"v%d" % i
        normal = db.stats()["log_size"]
        taken = time.monotonic()
        snap = db.snapshot()
        want = dict(snap.items())
        time.sleep(0.05)
        for r in range(4):
            for i in range(300):
                db[b"k%04d" % i] = b"r%d-%d" % (r, i)
        s = db.stats()
        age = time.monotonic() - taken
        assert s["log_size"] > 20 * 8 * 1024 > normal
        assert s["snapshots"] == 1 and s["oldest_snapshot"]["commits"] == 1200
        assert 0.05 <= s["oldest_snapshot"]["seconds"] <= age  # the snapshot's age: not 0, not the store's
        assert dict(snap.items()) == want
        db.check()
        snap.close()
        assert db.stats()["oldest_snapshot"] is None
        db[b"x"] = b"1"  # the first commit after: checkpoints
        assert db.stats()["log_size"] <= 8 * 1024
        assert db[b"k0001"] == b"r3-1"
        db.check()


def test_snapshot_survives_reading_pages_from_the_log_and_the_file(tmp_path, mmap, monkeypatch):
    """With no snapshot cache to hide behind, every read goes to the log frame or the data
    file page of the mark, while the writer rewrites, frees and reuses those pages."""
    from pagestore import snapshot as snapshot_mod
    from pagestore import store as store_mod

    monkeypatch.setattr(snapshot_mod, "SNAPSHOT_CACHE_PAGES", 1)
    monkeypatch.setattr(store_mod, "_VIEW_NODE_CACHE", 1)
    rng = random.Random(5)
    with Store(str(tmp_path / "db"), mmap=mmap, **SMALL) as db:
        model = {}
        snaps = []
        for step in range(6):
            for _ in range(150):
                k = b"%04d" % rng.randrange(400)
                if k in model and rng.random() < 0.3:
                    del db[k]
                    del model[k]
                else:
                    v = rng.randbytes(rng.choice([5, 60, 300, 1500]))
                    db[k] = v
                    model[k] = v
            snaps.append((db.snapshot(), dict(model)))
            for snap, then in snaps:
                assert dict(snap.items()) == then
                assert dict(snap.items(reverse=True)) == then
                for k in list(then)[:20]:
                    assert snap[k] == then[k]
        for snap, _ in snaps:
            snap.close()
        db[b"end"] = b""
        db.check()


@pytest.mark.parametrize("readers", [1, 3])
def test_readers_sum_accounts_while_a_writer_moves_money(tmp_path, mmap, readers):
    """One thread moves amounts between accounts in transactions (the total stays 1,000,000);
    reader threads sum every account in snapshots, again and again, while the writer commits
    and checkpoints. Every sum is the total; the log shrinks again once the readers are done."""
    accounts = 200
    total = accounts * 5000
    with Store(str(tmp_path / "db"), keys="int", values="json", mmap=mmap, sync=False,
               page_size=512, wal_limit=16 * 1024) as db:
        db.put_many({i: 5000 for i in range(accounts)})
        stop = threading.Event()
        errors = []
        sums = [0] * readers
        commits = [0]

        def writer():
            rng = random.Random(1)
            try:
                while not stop.is_set():
                    a, b = rng.sample(range(accounts), 2)
                    amount = rng.randrange(1, 100)
                    with db.transaction() as txn:
                        txn[a] = txn[a] - amount
                        txn[b] = txn[b] + amount
                    commits[0] += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def reader(n):
            try:
                while not stop.is_set():
                    with db.snapshot() as snap:
                        got = sum(snap.values())
                        assert len(snap) == accounts
                        assert snap[0] + sum(v for k, v in snap.items(start=1)) == total
                    if got != total:
                        errors.append(AssertionError(f"reader {n} summed {got}"))
                    sums[n] += 1
                    assert sum(db.values()) == total  # an iteration is a snapshot too
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(n,)) for n in range(readers)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not errors and (min(sums) < 20 or commits[0] < 300):
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert min(sums) > 0 and commits[0] > 0
        assert db.stats()["snapshots"] == 0
        db[0] = db[0]  # the next commit checkpoints the log the readers kept
        assert db.stats()["log_size"] <= 16 * 1024
        assert sum(db.values()) == total
        db.check()


# ---- backup ----


def test_backup_holds_exactly_the_snapshot(tmp_path, mmap):
    src, dest = tmp_path / "db", tmp_path / "copy.ps"
    with Store(str(src), mmap=mmap, keys="str", values="json", **SMALL) as db:
        model = {f"k{i:04d}": {"i": i, "pad": "x" * (i % 7 * 300)} for i in range(500)}
        db.update(model)
        for i in range(0, 500, 3):
            del db[f"k{i:04d}"]
            del model[f"k{i:04d}"]
        assert db.stats()["log_size"] > 40  # some pages are newest in the log
        db.backup(dest)
        assert not os.path.exists(str(dest) + "-wal")
        with pytest.raises(FileExistsError):
            db.backup(dest)
        with pytest.raises(PageStoreError, match="store itself"):
            db.backup(src, overwrite=True)
        db["new"] = 1
        db.backup(dest, overwrite=True)
        model["new"] = 1
        assert db.stats()["snapshots"] == 0
        assert not [p for p in os.listdir(tmp_path) if "backup-" in p]
    with pagestore.open(dest) as copy:  # the codecs come from the copy's header
        assert copy.key_codec.name == "str"
        copy.check()
        assert dict(copy.items()) == model
    with pagestore.open(src) as db:
        assert dict(db.items()) == model


def test_backup_while_a_writer_writes(tmp_path):
    dest = tmp_path / "copy.ps"
    with pagestore.open(tmp_path / "db", sync=False, page_size=512) as db:
        db.update({b"%05d" % i: b"v%d" % i * 20 for i in range(3000)})
        stop = threading.Event()
        written = [0]

        def writer():
            i = 0
            while not stop.is_set():
                db[b"%05d" % (i % 3000)] = b"w%d" % i
                db[b"new%06d" % i] = b"n"
                i += 1
                written[0] = i

        t = threading.Thread(target=writer)
        t.start()
        try:
            while written[0] < 50:
                time.sleep(0.01)
            with db.snapshot() as snap:  # the state the backup starts from
                want = dict(snap.items())
                db.backup(dest)  # takes its own snapshot, at the same commit unless one slipped in
                lsn = snap.lsn
        finally:
            stop.set()
            t.join()
        assert written[0] > 50
    with pagestore.open(dest) as copy:
        copy.check()
        got = dict(copy.items())
        # the copy is one commit's state: the snapshot's, or a later one (a write between the two)
        assert copy._pager.meta.lsn >= lsn
        if copy._pager.meta.lsn == lsn:
            assert got == want
        assert all(k in got for k in want if not k.startswith(b"new"))


def test_backup_refuses_bad_destinations(tmp_path):
    with pagestore.open(tmp_path / "db") as db:
        db[b"a"] = b"1"
        with pytest.raises(IsADirectoryError):
            db.backup(tmp_path)
        with pytest.raises(FileNotFoundError):
            db.backup(tmp_path / "missing" / "x.ps")
        with pytest.raises(TypeError):
            db.backup(5)  # type: ignore[arg-type]
    with pytest.raises(StoreClosedError):
        db.backup(tmp_path / "late.ps")
    assert not os.path.exists(tmp_path / "late.ps")


def test_backup_of_a_damaged_store_leaves_nothing(tmp_path):
    path = str(tmp_path / "db")
    with pagestore.open(path, page_size=512) as db:
        db.update({b"%04d" % i: b"v" * 50 for i in range(300)})
        heap_pgno = db._tree.get(b"0150")[0]
    with open(path, "r+b") as f:  # damage a heap page
        f.seek(512 * heap_pgno + 100)
        f.write(b"\xff" * 20)
    with pagestore.open(path) as db:
        with pytest.raises(pagestore.CorruptionError):
            db.backup(tmp_path / "copy.ps")
        assert not db._pager.readers
    assert sorted(os.listdir(tmp_path)) == ["db"]


def test_a_map_replaced_under_a_snapshot_does_not_keep_the_store_locked(tmp_path, mmap):
    """Regression (test_store's state machine, seed 1): a checkpoint that grew the file replaced
    the map while a snapshot still read the old one; the old map, left to the garbage
    collector, held a duplicate of the file's descriptor and with it the writer's flock, so
    the next open after close() said another process had the store."""
    path = str(tmp_path / "db")
    db = Store(path, mmap=mmap, **SMALL)
    for i in range(50):
        db[b"k%04d" % i] = b"v" * 200
    snap = db.snapshot()
    view = snap._view  # the snapshot's pages keep the old map alive
    with db.transaction() as txn:
        for i in range(3000):
            txn[b"n%05d" % i] = b"w" * 300
    db[b"x"] = b"1"  # after the snapshot: checkpoints, grows the file, replaces the map
    assert dict(snap.items())[b"k0001"] == b"v" * 200
    db.close()
    again = Store(path, mmap=mmap)  # not StoreLockedError
    assert len(again) == 3051 and again.check()["records"] == 3051
    again.close()
    del view, snap


def test_a_backup_is_written_through_the_stores_opener(tmp_path):
    """The backup's copy is made, written and synced through the store's opener (Pager.create_copy),
    so the fault double holds it: after a power cut that drops every unsynced write, the
    installed copy is whole (it was synced before its rename) and opens with the same records."""
    from faultfs import Disk

    root = str(tmp_path)
    disk = Disk(root)
    path, dest = os.path.join(root, "db"), os.path.join(root, "copy")
    db = Store(path, _opener=disk.opener, **dict(SMALL, sync=True))
    model = {b"k%04d" % i: bytes([i % 251]) * (i % 700) for i in range(300)}
    db.update(model)
    before = disk.writes
    assert db.backup(dest) == len(model)
    assert disk.writes > before and not [n for n in os.listdir(root) if ".backup-" in n]
    disk.crash("drop")
    assert "copy" in disk.durable_files()
    out = os.path.join(root, "out")
    disk.materialise(out)
    with Store(os.path.join(out, "copy"), create=False) as copy:
        assert dict(copy.items()) == model
        copy.check()


def test_a_scan_across_many_leaves_sees_its_snapshot_whatever_lands_between_them(tmp_path, mmap):
    """A scan reads through the store's own tree and heap while they hold its snapshot's state,
    and through the snapshot's once a commit (or a rolled-back write) lands between two of its
    leaves: its items are the snapshot's, each once, in order, either way."""
    with pagestore.open(tmp_path / "db", mmap=mmap, **SMALL) as db:
        model = {b"%05d" % i: b"v%d" % i * (1 + i % 7) for i in range(0, 3000, 3)}
        db.update(model)
        for reverse in (False, True):
            want = sorted(model.items(), reverse=reverse)
            it = iter(db.items(reverse=reverse))
            got = [next(it) for _ in range(5)]
            db[b"%05d" % 1] = b"new"  # a commit between leaves: the rest comes from the snapshot
            del db[want[-1][0]]
            got += [next(it) for _ in range(400)]
            with pytest.raises(RuntimeError):
                with db.transaction() as txn:  # rolled back: the store's tree is the committed one again
                    txn[b"%05d" % 2] = b"gone"
                    raise RuntimeError
            got += list(it)
            assert got == want
            db[want[-1][0]] = want[-1][1]
            del db[b"%05d" % 1]
        assert dict(db.items()) == model
        db.check()


def test_a_scan_fed_into_a_write_of_the_same_store_reads_its_snapshot(tmp_path, mmap):
    """update() reads its input inside the write: a scan of the same store then finds the
    store's tree and pages half changed (dirty nodes and pages, uncommitted) and reads its
    snapshot's instead; the copy holds every key of the snapshot once."""
    with pagestore.open(tmp_path / "db", mmap=mmap, **SMALL) as db:
        model = {b"k%05d" % i: b"v%d" % i * (1 + i % 5) for i in range(2000)}
        db.update(model)
        db.update((b"x" + k, v) for k, v in db.items())
        assert dict(db.items()) == {**model, **{b"x" + k: v for k, v in model.items()}}
        db.update((b"a" + k, v) for k, v in db.items(reverse=True) if k.startswith(b"k"))
        assert len(db) == 3 * len(model)
        db.check()
