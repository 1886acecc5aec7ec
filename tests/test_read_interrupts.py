"""Ctrl-C on the read path: a KeyboardInterrupt at any point a read reaches, once or twice, leaves
the store's operation lock free for every other thread (``_OpLock.settle``, ``let_go_inline``).

The store's operation lock is an ``_OpLock`` for a reader beside a writer and for a writer taking
turns with other processes (a plain open here, where the locks exist): its ``__enter__`` and
``__exit__`` are Python functions, and CPython may run a signal's handler at the start of each
(and as a call into C returns), before any of their lines runs.
"""
from __future__ import annotations

import os
import threading

import pytest

import pagestore
from pagestore import shm

from helpers import interrupt_at

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="the operation lock is an _OpLock only where writers take turns")


def _within(fn, seconds: float) -> str:
    """_within runs ``fn`` on another thread: "" if it returned within ``seconds``, else what went wrong."""
    box: list = []

    def run() -> None:
        try:
            fn()
            box.append("")
        except Exception as exc:  # noqa: BLE001 - reported
            box.append(repr(exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return "hung" if t.is_alive() else box[0]


PKG = os.path.dirname(pagestore.__file__)

READS = {
    "getitem": lambda db: db[b"k0005"],
    "get_missing": lambda db: db.get(b"nope"),
    "contains": lambda db: b"k0007" in db,
    "len": len,
    "get_many": lambda db: db.get_many([b"k0001", b"k0009", b"nope"]),
    "items": lambda db: list(db.items()),
    "keys_few": lambda db: list(db.keys(limit=3)),
    "count": lambda db: len(db.keys(b"k0002", b"k0008")),
    "snapshot": lambda db: db.snapshot().close(),
}


def _read_sweep(tmp_path, read, files: tuple, gaps: tuple) -> list:
    """_read_sweep: for n = 1, 2, ... until ``read`` reaches fewer such points than n, and for each
    gap k (0: one interrupt), a KeyboardInterrupt lands at the read's n-th point in code of
    ``files`` where CPython runs a SIGINT's handler (a Python function's start, the return of a
    call into C), and with a gap a second one at the start of the k-th Python function called
    after it in pagestore's code. Then a read and a put from another thread must return within 5 s, a read and a put
    from this thread too, and ``check()`` pass. Returns the failures as (n, k, where, error); after
    one, the sweep goes on with a fresh store."""
    failures = []
    count = [0]

    def fresh():
        count[0] += 1
        db = pagestore.open(str(tmp_path / f"r{count[0]}.ps"))
        for i in range(10):
            db[b"k%04d" % i] = b"v%d" % i
        return db

    db = fresh()
    stores = [db]
    assert type(db._lock).__name__ == "_OpLock"
    n = 0
    while True:
        n += 1
        reached = 0
        for k in gaps:
            # the second in pagestore's code only (not in pytest's hook for a finalizer's error)
            hit = interrupt_at(lambda: read(db), n, k, files, second_in=PKG)
            where = hit.where
            reached = max(reached, hit.points)
            key = b"o-%d" % k  # the same keys each round: a scan's points stay as many
            err = _within(lambda: db.get(b"k0003"), 5.0) or _within(lambda: db.__setitem__(key, key), 5.0)
            if not err:
                try:
                    assert db[b"k0004"] == b"v4" and db[key] == key
                    db[b"m"] = b"%d" % n
                    db.check()
                except Exception as exc:  # noqa: BLE001 - reported
                    err = repr(exc)
            if err:
                failures.append((n, k, where, err[:160]))
                db = fresh()  # the broken store is left as it is (a thread may hang in it)
                stores.append(db)
        if reached < n:
            break
    assert n > 2, f"the read reached {n - 1} points of {files}: the sweep tried nothing"
    for s in stores[-1:]:
        s.close()
    return failures


@pytest.mark.parametrize("name", sorted(READS))
def test_one_or_two_interrupts_anywhere_in_a_read_leave_the_operation_lock_free(tmp_path, name):
    """A Ctrl-C at any point of a read in store.py, views.py, locks.py, interrupts.py where CPython
    can raise it (one at the start of ``_OpLock.__exit__``, or just past the acquire in its
    ``__enter__``, kept the lock held by the reading thread, and every other thread's next
    operation waited for good), and a second one at the first or second function its handler
    calls: every thread goes on reading and writing."""
    failures = _read_sweep(tmp_path, READS[name], ("store.py", "views.py", "locks.py", "interrupts.py"), (0, 1, 2))
    assert not failures, failures


def test_an_interrupt_as_the_write_lock_lets_the_turn_go_lets_lock_write_go(tmp_path, monkeypatch):
    """A Ctrl-C at the start of the process lock's unlock (``_Turns.unlock``, from
    ``WriteLock.release``) as a write ends while another process waits in line: LOCK_WRITE stayed
    held by this process (the thread lock let go), and no other process could write until this
    one wrote again."""
    import fcntl
    import struct

    from pagestore import store as store_mod

    flock = struct.Struct("hhqqi4x")

    def ofd(fd: int, kind: int, start: int) -> bool:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock.pack(kind, os.SEEK_SET, start, 1, 0))
            return True
        except (BlockingIOError, PermissionError):
            return False

    armed = [False]
    main = threading.get_ident()
    real = store_mod._Turns.unlock

    def interrupted(self):  # noqa: ANN001, ANN202
        if armed[0] and threading.get_ident() == main:
            armed[0] = False
            raise KeyboardInterrupt("at unlock's start")
        return real(self)

    monkeypatch.setattr(store_mod._Turns, "unlock", interrupted)
    path = str(tmp_path / "w.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"a"
        fd = os.open(shm.shm_path(path), os.O_RDWR)
        try:
            # another process waits in line, as ``wait_write`` does: LOCK_WAITING, then the asks word
            assert ofd(fd, fcntl.F_RDLCK, shm.LOCK_WAITING)
            db._pager.sharing.index.bump(shm.ASKS_OFFSET, 1 << 30)
            armed[0] = True
            try:
                db[b"b"] = b"b"
            except KeyboardInterrupt:
                pass
            assert not armed[0], "the interrupt never landed"
            assert ofd(fd, fcntl.F_UNLCK, shm.LOCK_WAITING)
            assert ofd(fd, fcntl.F_WRLCK, shm.LOCK_WRITE), "LOCK_WRITE is still held by the interrupted writer"
            assert ofd(fd, fcntl.F_UNLCK, shm.LOCK_WRITE)
        finally:
            os.close(fd)
        assert _within(lambda: db.get(b"a"), 5.0) == ""
        db[b"c"] = b"c"
        db.check()


@pytest.mark.parametrize("how", ["compact", "checkpoint"])
def test_an_interrupt_at_the_write_locks_release_in_compact_or_checkpoint_lets_it_go(
        tmp_path, monkeypatch, how):
    """A Ctrl-C at the start of ``WriteLock.release`` (a Python function) as ``compact()`` or
    ``checkpoint()`` let the write lock go: it stayed
    held for good, and every later write from another thread waited for it (StoreLockedError
    after the timeout). The release is tried again while this thread still owns the lock, as
    ``Store._exclusive`` does (e96b169)."""
    from pagestore import locks

    armed = [False]
    main = threading.get_ident()
    real = locks.WriteLock.release

    def interrupted(self):  # noqa: ANN001, ANN202
        if armed[0] and threading.get_ident() == main:
            armed[0] = False
            raise KeyboardInterrupt("at release's start")
        return real(self)

    monkeypatch.setattr(locks.WriteLock, "release", interrupted)
    path = str(tmp_path / "c.ps")
    with pagestore.open(path, timeout=3.0) as db:
        db[b"a"] = b"a"
        armed[0] = True
        with pytest.raises(KeyboardInterrupt):
            getattr(db, how)()
        assert _within(lambda: db.__setitem__(b"o", b"o"), 5.0) == ""
        db[b"o"] = b"again"
        db.check()
