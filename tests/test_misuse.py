"""Misuse and hostile conditions: each must fail with the documented exception and leave the store whole.

Wrong types, oversized keys, a closed store, paths that are not stores,
files too new, read-only writes, a full disk (through tests/faultfs.py), a
second process, and eight threads sharing one Store.
"""
from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Dict, List

import pytest

import pagestore
from faultfs import Disk
from helpers import SMALL, fill
from pagestore.errors import (
    InvalidFileError,
    PageStoreError,
    ReadOnlyError,
    StoreClosedError,
    StoreLockedError,
    StorePoisonedError,
    TransactionClosedError,
    VersionMismatchError,
)
from pagestore.store import Store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digest(*paths: str) -> Dict[str, str]:
    out = {}
    for p in paths:
        if os.path.exists(p):
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


# ---- types and sizes ----


@pytest.mark.parametrize("bad", ["text", 12, None, 1.5, [1, 2], object()])
def test_non_bytes_key_or_value_is_a_type_error(tmp_path, bad):
    with pagestore.open(str(tmp_path / "db"), **SMALL) as db:
        db[b"k"] = b"v"
        for call in (
            lambda: db.__setitem__(bad, b"v"),
            lambda: db.__getitem__(bad),
            lambda: db.__delitem__(bad),
            lambda: db.get(bad),
        ):
            with pytest.raises(TypeError, match=r"key must be bytes-like"):
                call()
        assert (bad in db) is False  # as a dict answers for a key of a type it has none of
        with pytest.raises(TypeError, match=r"value must be bytes-like"):
            db[b"k"] = bad
        with db.transaction() as txn:
            with pytest.raises(TypeError, match=r"key must be bytes-like"):
                txn[bad] = b"v"
            with pytest.raises(TypeError, match=r"value must be bytes-like"):
                txn[b"k"] = bad
        assert dict(db.items()) == {b"k": b"v"}
        db.check()


def test_bytes_like_keys_and_values_are_accepted(tmp_path):
    with pagestore.open(str(tmp_path / "db"), **SMALL) as db:
        db[bytearray(b"a")] = memoryview(b"1")
        db[memoryview(b"b")] = bytearray(b"2")
        assert db[b"a"] == b"1" and db[bytearray(b"b")] == b"2"
        assert type(db[b"a"]) is bytes


@pytest.mark.parametrize("page_size", [512, 4096])
def test_key_over_max_key_is_a_value_error(tmp_path, page_size):
    with pagestore.open(str(tmp_path / "db"), page_size=page_size) as db:
        assert 0 < db.max_key < page_size
        db[b"k" * db.max_key] = b"fits"
        too_long = b"k" * (db.max_key + 1)
        for call in (
            lambda: db.__setitem__(too_long, b"v"),
            lambda: db.__getitem__(too_long),
            lambda: db.__delitem__(too_long),
        ):
            with pytest.raises(ValueError, match=str(db.max_key)):
                call()
        with pytest.raises(ValueError):
            with db.transaction() as txn:
                txn[too_long] = b"v"
        assert list(db.items()) == [(b"k" * db.max_key, b"fits")]
        db.check()


def test_invalid_page_size_is_a_value_error(tmp_path):
    for size in (0, 100, 1000, 256, 131072):
        with pytest.raises(ValueError, match="page_size"):
            pagestore.open(str(tmp_path / f"db{size}"), page_size=size)


# ---- lifecycle ----


def test_closed_store_raises_store_closed(tmp_path):
    db = pagestore.open(str(tmp_path / "db"))
    db[b"a"] = b"1"
    txn = db.transaction()
    txn[b"b"] = b"2"
    db.close()
    db.close()  # twice is harmless
    assert db.closed
    for call in (
        lambda: db[b"a"],
        lambda: db.__setitem__(b"a", b"2"),
        lambda: db.__delitem__(b"a"),
        lambda: b"a" in db,
        lambda: len(db),
        lambda: list(db.items()),
        lambda: list(db),
        lambda: db.transaction(),
        lambda: db.check(),
        lambda: db.stats(),
        lambda: db.compact(),
        lambda: txn.commit(),
    ):
        with pytest.raises(StoreClosedError):
            call()
    with pagestore.open(str(tmp_path / "db")) as again:
        assert dict(again.items()) == {b"a": b"1"}


def test_transaction_used_after_commit(tmp_path):
    with pagestore.open(str(tmp_path / "db")) as db:
        with db.transaction() as txn:
            txn[b"a"] = b"1"
        for call in (lambda: txn[b"a"], lambda: txn.__setitem__(b"b", b"2"), lambda: txn.commit(), lambda: txn.rollback()):
            with pytest.raises(TransactionClosedError):
                call()
        with pytest.raises(RuntimeError):
            with db.transaction() as txn2:
                txn2[b"c"] = b"3"
                raise RuntimeError("abandon")
        assert dict(db.items()) == {b"a": b"1"}


# ---- paths that are not stores ----


def test_directory_path_is_a_pagestore_error(tmp_path):
    with pytest.raises(PageStoreError, match="directory"):
        pagestore.open(str(tmp_path))
    with pytest.raises(PageStoreError):
        pagestore.open(str(tmp_path), readonly=True)


def test_missing_file_without_create(tmp_path):
    path = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        pagestore.open(path, create=False)
    with pytest.raises(FileNotFoundError):
        pagestore.open(path, readonly=True)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize(
    "content",
    [b"hello, world\n" * 100, os.urandom(8192), b"\x00" * 4096, b"pagestore", b"SQLite format 3\x00" + bytes(4080)],
    ids=["text", "random", "zeros", "short", "sqlite"],
)
def test_foreign_file_is_invalid(tmp_path, content):
    path = str(tmp_path / "foreign")
    with open(path, "wb") as f:
        f.write(content)
    for readonly in (False, True):
        with pytest.raises(InvalidFileError):
            pagestore.open(path, readonly=readonly)
    with open(path, "rb") as f:
        assert f.read() == content  # untouched
    assert not os.path.exists(path + "-wal")


def test_empty_file_read_only_is_invalid(tmp_path):
    path = str(tmp_path / "empty")
    open(path, "wb").close()
    with pytest.raises(InvalidFileError):
        pagestore.open(path, readonly=True)


def test_newer_format_version(tmp_path):
    path = str(tmp_path / "db")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    with open(path, "r+b") as f:
        head = bytearray(f.read(4096))
        head[16:20] = (pagestore.format.FORMAT_VERSION + 1).to_bytes(4, "little")  # the version field
        head[24:28] = pagestore.format.header_checksum(head).to_bytes(4, "little")  # summed as every version sums it
        f.seek(0)
        f.write(head)
    before = digest(path)
    for readonly in (False, True):
        with pytest.raises(VersionMismatchError, match="version"):
            pagestore.open(path, readonly=readonly)
    assert digest(path) == before


# ---- read-only ----


def test_read_only_writes_fail_and_change_nothing(tmp_path):
    path = str(tmp_path / "db")
    with pagestore.open(path, **SMALL) as db:
        for i in range(200):
            db[b"%04d" % i] = bytes(i * 5)
    before = digest(path, path + "-wal")
    with pagestore.open(path, readonly=True) as db:
        for call in (
            lambda: db.__setitem__(b"0001", b"x"),
            lambda: db.__setitem__(b"new", b"x"),
            lambda: db.__delitem__(b"0001"),
            lambda: db.update({b"a": b"b"}),
            lambda: db.pop(b"0002"),
            lambda: db.compact(),
        ):
            with pytest.raises(ReadOnlyError):
                call()
        with pytest.raises(ReadOnlyError):
            with db.transaction() as txn:
                txn[b"0003"] = b"y"
        assert db[b"0001"] == bytes(5) and len(db) == 200
        db.check()
    assert digest(path, path + "-wal") == before


# ---- a full disk ----


def _poisoned_then_reopened(root: str, disk: Disk, db: Store, model: Dict[bytes, bytes]) -> Store:
    """After a failed write or sync the store refuses writes (StorePoisonedError) until it is
    opened again, even with room on the disk again; reads go on; close writes nothing. Returns
    the store opened again, which holds ``model`` and takes writes."""
    disk.limit = None
    with pytest.raises(StorePoisonedError):
        db[b"after-the-failure"] = b"refused"
    assert dict(db.items()) == model
    db.check()
    events = disk.events
    db.close()
    assert disk.events == events  # no checkpoint, no write
    again = Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL)
    assert dict(again.items()) == model
    return again


def _committed_state_survives(root: str, disk: Disk, db: Store, committed: Dict[bytes, bytes], maybe=None) -> None:
    """After a failed write: the open store shows committed data, and so does the durable state after a power cut."""
    now = dict(db.items())
    assert now == committed or (maybe is not None and now == maybe)
    db.check()
    disk.crash("drop")
    with Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL) as again:
        again.check()
        assert dict(again.items()) == now


def _fill(db: Store, model: Dict[bytes, bytes], n: int, size: int, prefix: bytes = b"k") -> None:
    fill(db, n, lambda i: bytes([i % 251]) * size, key=prefix + b"%05d", model=model)


def test_full_disk_during_commit(tmp_path):
    root = str(tmp_path)
    disk = Disk(root)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL)
    committed: Dict[bytes, bytes] = {}
    _fill(db, committed, 20, 50)
    disk.limit = disk.total_bytes() + 2000  # the log has room for a few frames only
    with pytest.raises((OSError, PageStoreError)) as exc:
        _fill(db, {}, 400, 700, b"z")
    assert not isinstance(exc.value, OSError) or exc.value.errno == errno.ENOSPC
    _committed_state_survives(root, disk, db, committed)


def test_full_disk_during_cache_spill(tmp_path):
    """A transaction bigger than the cache spills pages to the log as it goes; the disk fills mid-spill.

    Regression: Pager._evict dropped the page from the cache before the
    spill's log write, so when that write failed, rollback raised KeyError,
    left the half-applied transaction in memory, and the next commit made it
    durable.
    """
    root = str(tmp_path)
    disk = Disk(root)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL)
    committed = {b"a": b"x"}
    db[b"a"] = b"x"
    disk.limit = disk.total_bytes() + 1000
    with pytest.raises(OSError) as exc:
        with db.transaction() as txn:
            for i in range(60):
                txn[b"big%d" % i] = b"y" * 5000
    assert exc.value.errno == errno.ENOSPC
    assert len(db) == 1 and dict(db.items()) == committed
    db.check()
    db = _poisoned_then_reopened(root, disk, db, committed)
    db[b"b"] = b"2"  # must not carry any of the failed transaction with it
    committed[b"b"] = b"2"
    _committed_state_survives(root, disk, db, committed)


def test_full_disk_during_checkpoint(tmp_path):
    """For commits of fewer than DIRECT_PAGES new pages, the data file grows only at a checkpoint,
    which runs after the commit is durable in the log.

    A checkpoint that runs out of space must not make that commit raise: the
    write is saved (the log redoes it). The store is poisoned: the next write
    raises StorePoisonedError, and opening it again recovers the commit.
    """
    root = str(tmp_path)
    disk = Disk(root)
    opts = dict(SMALL, wal_limit=64 * 1024)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, **opts)
    before: Dict[bytes, bytes] = {}
    _fill(db, before, 10, 30)
    disk.limit = disk.total_bytes() + 1024  # the pre-extended log has room; the data file has not
    pager = db._pager
    failed = []
    real_checkpoint = pager.checkpoint

    def watched_checkpoint(**kwargs: float) -> None:
        try:
            real_checkpoint(**kwargs)
        except OSError as e:
            failed.append(e)
            raise

    pager.checkpoint = watched_checkpoint  # type: ignore[method-assign]
    after = dict(before)
    for t in range(5):  # 30 records, about 35 new pages each: through the log
        _fill(db, after, 30, 400, b"z%d" % t)  # must return: the commit is in the log
        if failed:
            break
    assert failed, "expected the checkpoint to run out of space"
    assert all(getattr(e, "errno", None) == errno.ENOSPC for e in failed)
    db = _poisoned_then_reopened(root, disk, db, after)
    _committed_state_survives(root, disk, db, after)


def test_full_disk_during_a_large_commit(tmp_path):
    """A commit of many new pages writes them into the data file (Pager._write_direct), so a full
    disk fails it: it raises ENOSPC, nothing of it is visible or durable, and the store goes on
    once opened again."""
    root = str(tmp_path)
    disk = Disk(root)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, **dict(SMALL, wal_limit=64 * 1024))
    before: Dict[bytes, bytes] = {}
    _fill(db, before, 10, 30)
    disk.limit = disk.total_bytes() + 1024
    with pytest.raises(OSError) as exc:
        _fill(db, {}, 150, 400, b"z")
    assert exc.value.errno == errno.ENOSPC
    assert dict(db.items()) == before
    db.check()
    db = _poisoned_then_reopened(root, disk, db, before)
    _fill(db, before, 150, 400, b"y")
    db.check()
    _committed_state_survives(root, disk, db, before)


@pytest.mark.parametrize("keys", [100, 1000])
def test_full_disk_then_space_freed(tmp_path, keys):
    """After ENOSPC the store refuses writes until opened again; opened again with room, it goes on.
    (With 1000 keys the commits are large enough to write pages past the map's end; the
    rollback of a failed one forgot them: see the test after this one.)"""
    root = str(tmp_path)
    disk = Disk(root)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL)
    model: Dict[bytes, bytes] = {}
    _fill(db, model, 30, 100)
    rng = random.Random(5)
    failures = 0
    for round_ in range(60):
        # The log logs a page's later changes as deltas, and a freed page is not written at
        # all, so a transaction often fits in space the files already hold: values up to 3000
        # bytes (spills and overflow chains on freed pages) to meet a full disk more than 3
        # times in 60 rounds. (With 2000, twice only; with 3000, a spill failing inside
        # Pager.fresh left a blank page cached, which this test caught.)
        disk.limit = disk.total_bytes() + rng.choice([0, 0, 600, 5000, 300_000])
        trial = dict(model)
        try:
            with db.transaction() as txn:
                for i in range(rng.randint(1, 40)):
                    k = b"r%03d" % rng.randrange(keys)
                    if rng.random() < 0.2 and k in trial:
                        del txn[k]
                        del trial[k]
                    else:
                        v = rng.randbytes(rng.choice([10, 300, 2000, 3000]))
                        txn[k] = v
                        trial[k] = v
        except (OSError, PageStoreError):
            failures += 1
            got = dict(db.items())
            assert got in (model, trial)  # a failed checkpoint follows a durable commit
            model = got
            db = _poisoned_then_reopened(root, disk, db, model)
        else:
            if db._pager.poisoned is not None:  # the commit stood, its checkpoint failed
                db = _poisoned_then_reopened(root, disk, db, trial)
            model = trial
        disk.limit = None
        db.check()
        assert dict(db.items()) == model
    assert failures > 3
    db.close()
    with Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL) as again:
        again.check()
        assert dict(again.items()) == model


def test_full_disk_after_a_large_commit_keeps_its_pages_readable(tmp_path):
    """A large commit writes its new pages past the map's end (Pager._write_direct), where the
    map cannot read them until the next remap: the pager reads them itself (``overlaid``). A
    failed transaction's rollback forgot that, and the map refused those committed pages,
    "page number outside the mapped file", until the store was opened again: a false alarm
    of ``check`` and a failed read of acknowledged keys, not damage on the disk."""
    root = str(tmp_path)
    disk = Disk(root)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL)
    model: Dict[bytes, bytes] = {}
    _fill(db, model, 30, 100)
    db.checkpoint()  # the data file holds pages now: the map reads them
    mapped = len(db._pager.map)
    _fill(db, model, 3000, 20, b"w")  # one transaction, pages past the map's end
    # the commit remapped, so the map reads the pages it wrote into the file (Pager._map_direct)
    assert db._pager.meta.page_count * 512 > mapped and len(db._pager.map) > mapped
    disk.limit = disk.total_bytes()
    with pytest.raises(OSError) as exc:
        _fill(db, {}, 400, 400, b"z")
    assert exc.value.errno == errno.ENOSPC
    assert {k: db[k] for k in model} == model  # every acknowledged key, from the poisoned store
    db.check()
    db = _poisoned_then_reopened(root, disk, db, model)
    assert {k: db[k] for k in model} == model
    db.check()
    _fill(db, model, 50, 300, b"y")
    db.check()
    _committed_state_survives(root, disk, db, model)


def _io_error_run(root: str, k: int):
    """_io_error_run: a base commit, then a transaction larger than the cache whose I/O event k fails with EIO."""
    disk = Disk(root)
    db = Store(os.path.join(root, "db"), _opener=disk.opener, wal_limit=40 * 1024, **SMALL)
    before: Dict[bytes, bytes] = {}
    _fill(db, before, 40, 150)
    after = dict(before)
    disk.eio_at = disk.events + k
    raised = None
    try:
        with db.transaction() as txn:
            for i in range(0, 40, 3):
                del txn[b"k%05d" % i]
                del after[b"k%05d" % i]
            for i in range(40):  # past the cache, even with the tree's unused share lent to the pager
                k2, v = b"n%03d" % i, bytes([i]) * (100 + 97 * i)
                txn[k2] = v
                after[k2] = v
    except OSError as exc:
        raised = exc
    return disk, db, before, after, raised


def test_io_error_at_every_event_of_a_transaction(tmp_path):
    """Fail each I/O event of a large transaction (spills, commit, checkpoint) with EIO, as
    Linux fails it (tests/faultfs.py: a failed fsync forgets the pages it did not write).

    The commit raises; the transaction is whole or absent in the open store
    (a failed write rolls it back; its deferred sync failing, after its frames
    were written, leaves it visible until a reopen, as for single writes); the
    open store goes on reading, refuses writes (StorePoisonedError), and a
    power cut afterwards leaves the state before the transaction or after it:
    the failed commit was never acknowledged, nothing acknowledged is lost,
    and a failed fsync may have written all of it or none.

    Regression: Pager.rollback dropped only dirty pages from the cache, so a
    page spilled to the log and read back clean kept the rolled-back
    transaction's image, and reads saw dangling record ids.
    """
    tried = failed = 0
    for k in range(1, 1000):
        root = str(tmp_path / f"k{k}")
        os.makedirs(root)
        disk, db, before, after, raised = _io_error_run(root, k)
        if raised is None:
            assert dict(db.items()) == after
            break
        tried += 1
        now = dict(db.items())
        assert now == before or now == after, f"EIO at event {k}: a partial transaction is visible"
        failed += now == before
        db.check()
        with pytest.raises(StorePoisonedError):
            db[b"later"] = b"refused"
        db.close()
        disk.crash("drop")
        with Store(os.path.join(root, "db"), _opener=disk.opener, **SMALL) as again:
            again.check()
            durable = dict(again.items())
            assert durable in (before, after), f"EIO at event {k}: durable state is neither"
    print(f"\nEIO injected at {tried} I/O events; {failed} rolled the transaction back")
    assert tried > 10


# ---- other processes ----


def _child(script: str, path: str) -> str:
    code = textwrap.dedent(
        """
        import sys
        import pagestore
        path = sys.argv[1]
        try:
        %s
        except Exception as exc:
            print(type(exc).__name__)
        else:
            print("ok")
        """
    ) % textwrap.indent(textwrap.dedent(script), "    ")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_second_writer_process_takes_turns(tmp_path):
    """Writers in several processes take turns (issue 26): a second writer process writes beside the first."""
    path = str(tmp_path / "db")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        assert _child("db = pagestore.open(path); db[b'a'] = b'2'; db.close()", path) == "ok"
        assert db[b"a"] == b"2"
        db[b"b"] = b"2"
    assert _child("db = pagestore.open(path); db[b'c'] = b'3'; db.close()", path) == "ok"
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"a": b"2", b"b": b"2", b"c": b"3"}


def test_read_only_open_while_a_writer_has_it(tmp_path):
    """Readers in other processes read beside the writer (the shared index); so do other writers."""
    path = str(tmp_path / "db")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        assert _child("r = pagestore.open(path, readonly=True); assert r[b'a'] == b'1'; r.close()", path) == "ok"
        assert _child("pagestore.open(path).close()", path) == "ok"
    with pagestore.open(path, readonly=True) as reader:
        assert _child("w = pagestore.open(path); w[b'a'] = b'2'; w.close()", path) == "ok"
        assert reader[b"a"] == b"2"


def test_two_read_only_opens_work_together(tmp_path):
    path = str(tmp_path / "db")
    with pagestore.open(path) as db:
        db.update({b"%03d" % i: b"v%d" % i for i in range(100)})
    r1 = pagestore.open(path, readonly=True)
    r2 = pagestore.open(path, readonly=True)
    try:
        assert _child("r = pagestore.open(path, readonly=True); assert len(r) == 100; r.close()", path) == "ok"
        assert dict(r1.items()) == dict(r2.items())
        assert len(r1) == 100
        r1.check()
        r2.check()
    finally:
        r1.close()
        r2.close()


# ---- threads ----


def test_eight_threads_share_one_store(tmp_path):
    _eight_threads(str(tmp_path / "db"), steps=250)


@pytest.mark.slow
def test_eight_threads_share_one_store_long(tmp_path):
    _eight_threads(str(tmp_path / "db"), steps=5000)


def _eight_threads(path: str, steps: int) -> None:
    """Each thread owns a key prefix and checks its own model, while the others write around it."""
    db = pagestore.open(path, page_size=512, cache_size=512 * 64, sync=False)
    errors: List[BaseException] = []
    models: List[Dict[bytes, bytes]] = [{} for _ in range(8)]
    start = threading.Barrier(8)

    def worker(t: int) -> None:
        rng = random.Random(t)
        model = models[t]
        prefix = b"t%d/" % t
        try:
            start.wait()
            for step in range(steps):
                k = prefix + b"%03d" % rng.randrange(60)
                r = rng.random()
                if r < 0.35:
                    v = rng.randbytes(rng.choice([1, 40, 300, 900]))
                    db[k] = v
                    model[k] = v
                elif r < 0.45:
                    if k in model:
                        del db[k]
                        del model[k]
                    else:
                        with pytest.raises(KeyError):
                            del db[k]
                elif r < 0.65:
                    assert db.get(k) == model.get(k)
                elif r < 0.8:
                    with db.transaction() as txn:
                        for _ in range(rng.randint(1, 6)):
                            kk = prefix + b"%03d" % rng.randrange(60)
                            if rng.random() < 0.3 and kk in model:
                                del txn[kk]
                                del model[kk]
                            else:
                                vv = rng.randbytes(rng.choice([5, 200, 1200]))
                                txn[kk] = vv
                                model[kk] = vv
                elif r < 0.85:
                    try:
                        with db.transaction() as txn:
                            txn[prefix + b"rolled-back"] = b"x"
                            raise LookupError("abandon")
                    except LookupError:
                        pass
                else:
                    assert list(db.items(prefix=prefix)) == sorted(model.items())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[0]
    expected = {}
    for m in models:
        expected.update(m)
    assert dict(db.items()) == expected
    assert len(db) == len(expected)
    db.check()
    db.close()
    with pagestore.open(path) as again:
        assert dict(again.items()) == expected
        again.check()


# ---- arguments checked before the disk is touched (issue 15) ----


def test_bytes_and_path_like_paths_work(tmp_path):
    import pathlib

    raw = os.fsencode(str(tmp_path / "bytes.ps"))
    with pagestore.open(raw) as db:
        db[b"a"] = b"1"
        assert db.path == os.fsdecode(raw)
    with pagestore.open(pathlib.Path(os.fsdecode(raw)), readonly=True) as db:
        assert db[b"a"] == b"1"
    with Store(tmp_path / "path.ps") as db:
        db[b"b"] = b"2"
    assert sorted(os.listdir(str(tmp_path))) == ["bytes.ps", "path.ps"]


@pytest.mark.parametrize("bad", [12, 1.5, None, ["x"]])
def test_path_of_a_wrong_type_is_a_type_error(tmp_path, bad, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="path"):
        pagestore.open(bad)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize(
    "option, bad, exc",
    [
        ("cache_size", "big", TypeError),
        ("cache_size", -1, ValueError),
        ("cache_size", 1.5, TypeError),
        ("cache_size", True, TypeError),
        ("page_size", "4096", TypeError),
        ("page_size", None, TypeError),
        ("wal_limit", "16M", TypeError),
        ("wal_limit", -5, ValueError),
        ("mmap", "no", TypeError),  # a truthy string once meant mmap on
        ("sync", 0, TypeError),
        ("strict", "yes", TypeError),
        ("readonly", None, TypeError),
        ("create", 1, TypeError),
    ],
)
def test_size_options_are_checked(tmp_path, option, bad, exc):
    path = str(tmp_path / "db")
    with pytest.raises(exc, match=option):
        Store(path, **{option: bad})
    assert os.listdir(str(tmp_path)) == []  # refused before touching the disk
    if option != "wal_limit":  # open() has no wal_limit
        with pytest.raises(exc, match=option):
            pagestore.open(path, **{option: bad})
        assert os.listdir(str(tmp_path)) == []


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
@pytest.mark.parametrize("readonly", [False, True])
def test_device_is_not_a_pagestore_file(readonly):
    with pytest.raises(InvalidFileError, match="not a regular file"):
        pagestore.open("/dev/null", readonly=readonly)
    assert not os.path.exists("/dev/null-wal")


def test_missing_directory_says_so(tmp_path):
    path = str(tmp_path / "nowhere" / "db")
    for kwargs in ({}, {"create": False}, {"readonly": True}):
        with pytest.raises(FileNotFoundError) as info:
            pagestore.open(path, **kwargs)
        assert "directory" in str(info.value) and "does not exist" in str(info.value), str(info.value)
        assert "create=True" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="create=True"):
        pagestore.open(str(tmp_path / "db"), create=False)  # here the hint is right


def test_empty_file_without_create_is_invalid_and_untouched(tmp_path):
    path = str(tmp_path / "empty")
    open(path, "wb").close()
    with pytest.raises(InvalidFileError, match="empty"):
        pagestore.open(path, create=False)
    assert os.path.getsize(path) == 0
    assert os.listdir(str(tmp_path)) == ["empty"]
    # create=True (the default) makes a new store in an empty file, as in a mkstemp() file
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    with pagestore.open(path, create=False) as db:
        assert db[b"a"] == b"1"


def test_failed_open_leaves_no_new_file(tmp_path):
    from pagestore import fileio

    def opener(path, **kw):
        if path.endswith("-wal"):
            raise OSError(errno.EIO, "injected", path)
        return fileio.open_file(path, **kw)

    path = str(tmp_path / "db")
    with pytest.raises(OSError):
        Store(path, _opener=opener)
    assert os.listdir(str(tmp_path)) == []


def test_enter_on_a_closed_store_raises(tmp_path):
    db = pagestore.open(str(tmp_path / "db"))
    db.close()
    with pytest.raises(StoreClosedError):
        with db:
            pass


# ---- one process, one open; fork() (issue 15, from issue 13) ----


def test_second_open_in_the_same_process_says_so(tmp_path):
    path = str(tmp_path / "db")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        os.link(path, str(tmp_path / "alias"))
        for other, kwargs in ((path, {}), (str(tmp_path / "alias"), {})):
            with pytest.raises(StoreLockedError, match="already open in this process"):
                pagestore.open(other, **kwargs)
        with pagestore.open(path, readonly=True) as r:  # a reader beside the writer, as from another process
            assert r[b"a"] == b"1"
        assert db[b"a"] == b"1"
        db.compact()  # a new file under the same name: still recognised
        with pytest.raises(StoreLockedError, match="already open in this process"):
            pagestore.open(path)
    r1 = pagestore.open(path, readonly=True)
    try:
        with pagestore.open(path, readonly=True) as r2:  # readers share
            assert r2[b"a"] == b"1"
        with pagestore.open(path) as w:  # and a writer opens beside them
            w[b"a"] = b"2"
            assert r1[b"a"] == b"2"
    finally:
        r1.close()
    with pagestore.open(path) as db:  # closed everywhere: opens again
        assert db[b"a"] == b"2"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_store_used_after_fork_refuses_and_parent_is_unharmed(tmp_path):
    # In a separate interpreter, so that the child can exit normally (running
    # its interpreter's finalisation) without running pytest's.
    script = textwrap.dedent(
        """
        import os, sys
        import pagestore
        from pagestore.errors import PageStoreError

        path = sys.argv[1]
        db = pagestore.open(path)
        db[b"before"] = b"1"
        pid = os.fork()
        if pid == 0:
            failures = []
            ops = {
                "get": lambda: db[b"before"],
                "put": lambda: db.__setitem__(b"child", b"x"),
                "delete": lambda: db.__delitem__(b"before"),
                "contains": lambda: b"before" in db,
                "len": lambda: len(db),
                "items": lambda: list(db.items()),
                "keys": lambda: list(db.keys()),
                "transaction": lambda: db.transaction(),
                "stats": lambda: db.stats(),
                "check": lambda: db.check(),
                "compact": lambda: db.compact(),
            }
            for name, op in ops.items():
                try:
                    op()
                except PageStoreError as exc:
                    if "opened in process %d" % os.getppid() not in str(exc) or "open it again in the child" not in str(exc):
                        failures.append("%s: %s" % (name, exc))
                else:
                    failures.append(name + ": no error")
            db.close()  # must not checkpoint, unlink the log or unlock
            with db:
                pass
            if failures:
                print("\\n".join(failures))
                sys.exit(1)
            sys.exit(0)  # a normal exit: finalisation, garbage collection
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert os.path.exists(path + "-wal")  # the child left the parent's log alone
        db[b"after"] = b"2"  # the parent still writes, under its lock
        db.check()
        # the parent's store is whole: another process writes beside it, taking turns
        import subprocess
        code = "import pagestore,sys\\nwith pagestore.open(sys.argv[1]) as o: o[b'other'] = b'3'\\nprint('wrote')"
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
        assert out.stdout.strip() == "wrote", out
        assert db[b"other"] == b"3"
        db.close()
        with pagestore.open(path) as again:
            assert dict(again.items()) == {b"after": b"2", b"before": b"1", b"other": b"3"}
            again.check()
        print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


_KILLED_IN_COMPACT = """
import os, signal, sys
import pagestore
from pagestore import store as store_mod
path = sys.argv[1]
db = pagestore.open(path)
db.update((b"%06d" % i, b"v" * 300) for i in range(3000))
real_extend = store_mod.Builder.extend
def extend(self, pairs, *args):
    def records():
        for key, value in pairs:
            if key == b"002000":
                os.kill(os.getpid(), signal.SIGKILL)  # killed while the copy is being built
            yield key, value
    return real_extend(self, records(), *args)
store_mod.Builder.extend = extend  # compact() builds its copy with bulk.Builder
db.compact()
"""


def test_writer_open_removes_the_copy_a_killed_compaction_left(tmp_path):
    # A compaction killed before its rename leaves its half-built copy (and the copy's
    # log) beside the store; nothing removed it but the next compact(), so a store of
    # N bytes could keep up to N more on disk, unseen, for good.
    path = str(tmp_path / "db")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _KILLED_IN_COMPACT, path], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert os.path.exists(path + ".compact")
    with pagestore.open(path, readonly=True) as db:  # a reader leaves files alone
        assert len(db) == 3000
    assert os.path.exists(path + ".compact")
    with pagestore.open(path) as db:
        assert len(db) == 3000 and db.check()["records"] == 3000
        assert not os.path.exists(path + ".compact")
        assert not os.path.exists(path + ".compact-wal")


def test_writer_open_leaves_a_copy_some_process_has_open(tmp_path):
    # "<store>.compact" may be a store in its own right that another open holds: not ours.
    path = str(tmp_path / "db")
    pagestore.open(path).close()
    with pagestore.open(path + ".compact") as other:
        other[b"k"] = b"v"
        with pagestore.open(path):
            pass
        assert other[b"k"] == b"v"
    assert os.path.exists(path + ".compact")


def test_a_store_cannot_be_copied_or_pickled(tmp_path):
    # copy.copy made a second Store over the same pager: closing the copy left the
    # original saying it was open while every operation failed with a bare AssertionError.
    import copy
    import pickle

    with pagestore.open(str(tmp_path / "db")) as db:
        db[b"a"] = b"1"
        for attempt in (lambda: copy.copy(db), lambda: copy.deepcopy(db), lambda: pickle.dumps(db)):
            with pytest.raises(TypeError, match="open the file"):
                attempt()
        assert db[b"a"] == b"1" and not db.closed
        db[b"b"] = b"2"
        assert db.check()["records"] == 2
