"""Every wait for another process is bounded by the store's ``timeout`` (issue 26): a process
stopped (SIGSTOP: Ctrl-Z, a debugger, a frozen container) while it holds a lock or a sync slot
makes the others raise, never hang, and does no harm once continued (or killed).

Each test stops a child process at one lock (LOCK_SYNC, every sync slot, a sync in flight
under a repair or a log restart, LOCK_DMS, LOCK_RECOVER, LOCK_CREATE, a log restart's read
marks), or holds it from a second handle on the shared index in this process (a sync that
does not end), has this process (or a thread of it) wait on that lock with ``timeout=1.0``, and checks the error and how long it
took; then continues the child (or kills it) and checks that nothing acknowledged is lost,
the child finishes, and ``check()`` is clean. On the code before, each victim waited for as
long as the child stayed stopped: the thread is given 5 s (``_timed_in_thread``), then the
child is continued in ``finally``, so the test ends in bounded time either way.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any, Dict

import pytest

import pagestore
from pagestore import fileio, shm, wal as wallib
from pagestore.errors import DurabilityUnknownError, StoreLockedError, StorePoisonedError

from test_outside_attack4 import _child, _expect, _stopped, _timed_in_thread, needs_locks
# ``_stopped``: the child stops itself (``stop``: its tag printed first); sending SIGSTOP as well
# could stop it twice, once before its own, which then stops it again as soon as it is continued.

# The start of every child script: ``stop(tag)`` prints the tag and stops the whole process.
_PRE = r"""
import errno, os, signal, sys, time
sys.path.insert(0, sys.argv[-1])
import pagestore, pagestore.store
from pagestore import fileio, shm, wal as wallib, readers, pagerfiles
def stop(tag):
    print(tag, flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
def before(cls, name, act, when=lambda self, *a, **k: True):
    # cls.name runs act(self) first, the first time when(...) holds; then as it was.
    real, armed = getattr(cls, name), [1]
    def patched(self, *a, **k):
        if armed and when(self, *a, **k):
            armed.clear()
            act(self)
        return real(self, *a, **k)
    setattr(cls, name, patched)
stopped = lambda self: stop("STOPPED")
to_log = lambda self: self.path.endswith("-wal")
"""

# A writer (the store's timeout 10 s) that, once asked for its turn, never keeps it again, so its
# log sync runs after LOCK_WRITE is let go. After "go" on stdin its next durable put stops the
# process in that sync at the point ``arm`` (defined after this) patches.
_WRITER = _PRE + r"""
def run(arm):
    with pagestore.open(sys.argv[1], timeout=10) as db:
        pagestore.store.KEEP_AFTER = 1e9
        db[b"a0"] = b"1"
        print("START", flush=True)
        sys.stdin.readline()
        arm()
        try:
            db[b"a1"] = b"1"
            print("DONE acknowledged", flush=True)
        except OSError as exc:
            print("DONE failed", exc.errno, flush=True)
"""

# Stopped in step 2 of its sync round: holding LOCK_SYNC (and a slot, its record not yet set).
_STOP_UNDER_LOCK_SYNC = _WRITER + r"""
run(lambda: before(shm.SharedIndex, "sync_words", stopped))
"""

# Stopped in its log's fdatasync (a slot held, its record set); continued, the sync succeeds, or
# with argv[2] "fail" raises EIO.
_STOP_IN_FSYNC = _WRITER + r"""
run(lambda: before(fileio.File, "sync", stopped, to_log))
"""

# Its log's fdatasync fails (EIO) at once, without stopping: the store's unsynced word is set.
_FAIL_FSYNC = _WRITER + r"""
def fail(self):
    raise OSError(errno.EIO, "Input/output error (injected)", self.path)
run(lambda: before(fileio.File, "sync", fail, to_log))
"""


def _until_stopped(p: Any) -> None:
    """_until_stopped: child ``p`` said STOPPED and is stopped (``_stopped``)."""
    _expect(p, "STOPPED")
    _stopped(p.pid)


def _open_while_stopped(p: Any, path: str, readonly: bool, out: Dict[str, Any], join: float) -> bool:
    """_open_while_stopped: once child ``p`` is stopped, an open of ``path`` (timeout 1 s) runs in a
    thread (``_timed_in_thread``: ``out`` says what it did); ``p`` is continued and the thread
    joined (up to ``join`` s). Returns whether the open had not ended 5 s after it began (stuck)."""
    _until_stopped(p)

    def open_() -> None:
        pagestore.open(path, readonly=readonly, timeout=1.0).close()

    t, stuck = _timed_in_thread(open_, out, "opened")
    os.kill(p.pid, signal.SIGCONT)
    t.join(join)
    return stuck


def _put_b_in_thread(db: Any, out: Dict[str, Any]) -> Any:
    """_put_b_in_thread: ``db[b"b"] = b"1"`` in a thread (``_timed_in_thread``); returns (thread, stuck)."""
    def put() -> None:
        db[b"b"] = b"1"
    return _timed_in_thread(put, out, "acknowledged")


def _open_after(p: Any, path: str) -> Any:
    """_open_after opens ``path`` (timeout 1 s) once child ``p`` has started, commits ``b0`` in a
    transaction (which asks ``p`` for its kept turn), and lets ``p`` go on."""
    _expect(p, "START")
    db = pagestore.open(path, timeout=1.0)
    with db.transaction(timeout=30) as t:
        t[b"b0"] = b"1"
    _go(p)
    return db


def _go(p: Any) -> None:
    assert p.stdin is not None
    p.stdin.write("go\n")
    p.stdin.flush()


def _finish(p: Any) -> None:
    """_finish continues ``p`` if it is still stopped or running, and waits for its end."""
    if p.poll() is None:
        os.kill(p.pid, signal.SIGCONT)
        p.communicate(timeout=60)


def _seed(path: str) -> None:
    with pagestore.open(path) as db:
        db[b"seed"] = b"0"


def _assert_raised(out: Dict[str, Any], stuck: bool, kind: type, path: str) -> BaseException:
    assert not stuck, "the victim (timeout=1) still waited 5 s later for the stopped process"
    err = out["result"]
    assert isinstance(err, kind), err
    assert path in str(err), err
    assert 0.9 <= out["seconds"] < 4.0, out
    return err


@needs_locks
@pytest.mark.parametrize("then", ["ok", "kill"])
def test_a_writer_stopped_holding_lock_sync_makes_anothers_put_raise_not_hang(tmp_path, then):
    """A is stopped (SIGSTOP) in its sync's bookkeeping, holding LOCK_SYNC, which every sync of
    the log beside other writers takes. B's durable put commits and publishes, then its sync
    cannot begin: DurabilityUnknownError within about its timeout (written and published, not
    acknowledged, not poisoned). Found: B waited as long as A stayed stopped. A continued
    finishes its put (acknowledged); A killed lets the lock go. B's next put is acknowledged
    and a reopen finds every commit."""
    path = str(tmp_path / "s.ps")
    _seed(path)
    a = _child(_STOP_UNDER_LOCK_SYNC, path)
    out: Dict[str, Any] = {}
    try:
        db = _open_after(a, path)
        _until_stopped(a)

        t, stuck = _put_b_in_thread(db, out)
        if then == "kill":
            os.kill(a.pid, signal.SIGKILL)
        else:
            os.kill(a.pid, signal.SIGCONT)
        t.join(30)
        err = _assert_raised(out, stuck, DurabilityUnknownError, path)
        assert "durability is not confirmed" in str(err) and "LOCK_SYNC" in str(err)
        assert db[b"b"] == b"1"  # written and published
        if then == "kill":
            a.communicate(timeout=60)
            assert a.returncode == -signal.SIGKILL
        else:
            assert _expect(a, "DONE").split()[1] == "acknowledged"
        db[b"c"] = b"1"  # not poisoned: acknowledged
        db.close()
    finally:
        _finish(a)
    with pagestore.open(path) as again:
        assert [again[k] for k in (b"seed", b"a0", b"a1", b"b0", b"b", b"c")] == [b"0", b"1", b"1", b"1", b"1", b"1"]
        again.check()


# A writer that takes its turn, lets it go when asked, then (after "go") holds every sync slot's
# lock, as SLOTS processes stopped in their fdatasync would, and stops; continued, it lets them go.
_HOLD_EVERY_SLOT = _PRE + r"""
with pagestore.open(sys.argv[1], timeout=10) as db:
    db[b"h"] = b"1"
    print("START", flush=True)
    sys.stdin.readline()
    fd = os.open(sys.argv[1] + "-shm", os.O_RDWR)
    for i in range(shm.SLOTS):
        fileio.lock(fd, shm.LOCK_SLOT + i, 1, exclusive=True)
    stop("STOPPED")
    os.close(fd)
    print("DONE", flush=True)
"""


@needs_locks
def test_every_sync_slot_held_by_stopped_syncs_makes_a_put_raise_not_hang(tmp_path):
    """Every one of the SLOTS sync slots is held (processes stopped in their fdatasync): a sync
    beside them waited for one without end (``claim_slot``). Now B's durable put raises
    DurabilityUnknownError within about its timeout, its commit written and published; once
    the slots are let go, its next put is acknowledged and a reopen finds both."""
    path = str(tmp_path / "s.ps")
    _seed(path)
    h = _child(_HOLD_EVERY_SLOT, path)
    out: Dict[str, Any] = {}
    try:
        db = _open_after(h, path)
        _until_stopped(h)

        t, stuck = _put_b_in_thread(db, out)
        os.kill(h.pid, signal.SIGCONT)
        t.join(30)
        err = _assert_raised(out, stuck, DurabilityUnknownError, path)
        assert "sync slot" in str(err)
        assert db[b"b"] == b"1"
        _expect(h, "DONE")
        db[b"c"] = b"1"
        db.close()
    finally:
        _finish(h)
    with pagestore.open(path) as again:
        assert (again[b"b"], again[b"c"], again[b"h"]) == (b"1", b"1", b"1")
        again.check()


@needs_locks
@pytest.mark.parametrize("then", ["ok", "kill"])
def test_a_repair_beside_a_stopped_sync_raises_store_locked_not_hangs(tmp_path, then):
    """C is stopped in its log's fdatasync; then F's sync fails (EIO): the unsynced word is set.
    B's next write takes its turn and must first write F's frames again and sync them
    (``WAL.repair``), then wait for every sync beside that one (C's) before building on them.
    Found: the repair waited for C without a deadline, so B's put hung. Now: StoreLockedError
    naming the store within about its timeout, nothing of B's put written, the word kept for
    the next turn. C continued (or killed), B's put goes through, and nothing C or B
    acknowledged is lost."""
    path = str(tmp_path / "s.ps")
    _seed(path)
    c = _child(_STOP_IN_FSYNC, path)
    f = None
    out: Dict[str, Any] = {}
    try:
        _expect(c, "START")
        f = _child(_FAIL_FSYNC, path)
        _expect(f, "START")
        db = pagestore.open(path, timeout=1.0)
        with db.transaction(timeout=30) as t:  # asks the open's kept turn
            t[b"b0"] = b"1"
        _go(c)
        _until_stopped(c)
        _go(f)
        assert _expect(f, "DONE").split()[1] == "failed"
        f.communicate(timeout=60)
        assert f.returncode == 0

        t, stuck = _put_b_in_thread(db, out)
        if then == "kill":
            os.kill(c.pid, signal.SIGKILL)
        else:
            os.kill(c.pid, signal.SIGCONT)
        t.join(30)
        err = _assert_raised(out, stuck, StoreLockedError, path)
        assert "write the log again" in str(err) and "nothing of this write was written" in str(err)
        assert b"b" not in db
        if then == "kill":
            c.communicate(timeout=60)
        else:
            assert _expect(c, "DONE").split()[1] == "acknowledged"
        db[b"b"] = b"1"  # the repair now runs to its end; acknowledged
        db.close()
    finally:
        _finish(c)
        if f is not None:
            _finish(f)
    with pagestore.open(path) as again:
        assert (again[b"seed"], again[b"b0"], again[b"b"]) == (b"0", b"1", b"1")
        if then == "ok":
            assert again[b"a1"] == b"1"  # C's, acknowledged once continued
        again.check()


@needs_locks
@pytest.mark.parametrize("then", ["ok", "dead"])
def test_a_log_restart_beside_a_sync_that_does_not_end_poisons_not_hangs(tmp_path, monkeypatch, then):
    """A checkpoint copies the log into the data file (synced), then restarts the log: its new
    header is written and synced, and then the restart waits for every sync of the log
    beside it (a failure of one could drop the header). Here another open's sync begins as
    the restart does and does not end (its process stopped in its fdatasync: a second handle
    on the shared index, in this process, holds a sync slot with its record set). Found: the
    restart waited without a deadline. Now, past the timeout, the header's durability is
    unknown and every later commit would stand on it: the store is poisoned for writing
    (TimeoutError, an OSError, from the checkpoint; StorePoisonedError after), its reads go
    on. That sync then ends well (``ok``) or its process dies in it (``dead``: the record
    left under a free lock, a failed sync to whoever looks next); a reopen finds every
    commit, and writes."""
    path = str(tmp_path / "s.ps")
    db = pagestore.open(path, timeout=1.0)
    other = None
    out: Dict[str, Any] = {}
    try:
        for i in range(20):
            db[b"k%d" % i] = b"v%d" % i
        index = db._pager.sharing.index
        wal = db._pager.wal
        other = shm.SharedIndex(index.path, index.page_size, index.file_id)
        j = (index._first_slot + 1) % shm.SLOTS  # not the slot this open's sync takes first
        real_round = wallib.WAL._sync_round

        def sync_round(self: Any, n: int, s: Any, begun: Any, mode: str, *a: Any, **k: Any) -> bool:
            if mode == "reset" and not out.get("begun"):
                out["begun"] = True
                assert other is not None and other.try_lock(shm.LOCK_SLOT + j, exclusive=True)
                other.lock_sync()
                other.set_slot(j, wal.salt, wallib.WAL_HEADER_SIZE, wal.end)  # a sync in flight
                other.unlock_sync()
            return bool(real_round(self, n, s, begun, mode, *a, **k))

        monkeypatch.setattr(wallib.WAL, "_sync_round", sync_round)

        def checkpoint() -> None:
            try:
                out["report"] = db.checkpoint()
            except OSError as exc:
                out["error"] = exc

        t, stuck = _timed_in_thread(checkpoint, out, "done")
        assert out.get("begun"), out
        if then == "ok":
            other.lock_sync()
            other.clear_slot(j, synced=True)
            other.unlock_sync()
        other.release_slot(j)
        t.join(30)
        assert not stuck, "the checkpoint (timeout=1) still waited 5 s later for a sync beside its restart"
        err = out.get("error")
        assert isinstance(err, TimeoutError), out
        assert "restart" in str(err) and "poisoned" in str(err)
        assert 0.9 <= out["seconds"] < 4.0, out
        with pytest.raises(StorePoisonedError):
            db[b"x"] = b"1"
        assert [db[b"k%d" % i] for i in range(20)] == [b"v%d" % i for i in range(20)]  # reads go on
        db.close()
    finally:
        if other is not None:
            other.close()
        db.close()  # closing twice is harmless
    with pagestore.open(path) as again:
        assert [again[b"k%d" % i] for i in range(20)] == [b"v%d" % i for i in range(20)]
        assert b"x" not in again
        again[b"y"] = b"1"
        again.check()
    with pagestore.open(path) as again:
        assert again[b"y"] == b"1"
        again.check()


# The only open of the store closes; stopped as it removes the log, holding LOCK_DMS exclusively.
_STOP_IN_LAST_CLOSE = _PRE + r"""
db = pagestore.open(sys.argv[1], timeout=10)
db[b"l"] = b"1"
before(wallib.WAL, "remove", stopped)
db.close()
print("DONE", flush=True)
"""


@needs_locks
@pytest.mark.parametrize("readonly", [False, True])
def test_an_open_beside_a_last_close_stopped_holding_lock_dms_raises_not_hangs(tmp_path, readonly):
    """The last open of a store holds LOCK_DMS exclusively while it removes the log and the
    shared index at close; stopped there, every open waited for it without end (shm.py
    ``DataLock``). Now an open, writable or read-only, raises StoreLockedError naming the store
    within about its timeout, having changed nothing; continued, the closer finishes and the
    next open finds its commit."""
    path = str(tmp_path / "s.ps")
    _seed(path)
    p = _child(_STOP_IN_LAST_CLOSE, path)
    out: Dict[str, Any] = {}
    try:
        stuck = _open_while_stopped(p, path, readonly, out, 30)
        err = _assert_raised(out, stuck, StoreLockedError, path)
        assert "held the store exclusively" in str(err)
        _expect(p, "DONE")
        p.communicate(timeout=60)
        assert p.returncode == 0
    finally:
        _finish(p)
    assert not os.path.exists(path + "-wal") and not os.path.exists(path + "-shm")
    with pagestore.open(path) as again:
        assert (again[b"seed"], again[b"l"]) == (b"0", b"1")
        again.check()


# A read-only open, the only one, rebuilding the shared index (LOCK_RECOVER): stopped in the
# log's recovery (argv[2] "recover": holding LOCK_WRITE too) or before its try of LOCK_WRITE
# ("write": LOCK_RECOVER only). Continued, it reads.
_STOP_IN_REBUILD = _PRE + r"""
where = sys.argv[2]
if where == "recover":
    before(wallib.WAL, "recover", stopped)
else:
    before(shm.SharedIndex, "try_lock", stopped, lambda self, start, *a, **k: start == shm.LOCK_WRITE)
with pagestore.open(sys.argv[1], readonly=True, timeout=10) as db:
    print("DONE", db[b"seed"].decode(), flush=True)
"""


@needs_locks
@pytest.mark.parametrize("where", ["recover", "write"])
@pytest.mark.parametrize("readonly", [False, True])
def test_an_open_beside_a_reader_stopped_in_its_rebuild_raises_not_hangs(tmp_path, where, readonly):
    """A reader that opens a store nobody else has open rebuilds the shared index under
    LOCK_RECOVER. Stopped there, a writer's open waited without end: for LOCK_RECOVER in its
    recovery (``SharedLog.recover``; the reader stopped before taking LOCK_WRITE), or in its
    first read, whose rebuild of the unpublished index waits for it (``SharedLog.rebuild``;
    the reader stopped holding LOCK_WRITE too); a read-only open the same. Now each raises
    StoreLockedError naming the store within about its timeout; the reader continued reads,
    and the store opens and checks clean."""
    path = str(tmp_path / "s.ps")
    _seed(path)
    r = _child(_STOP_IN_REBUILD, path, where)
    out: Dict[str, Any] = {}
    try:
        stuck = _open_while_stopped(r, path, readonly, out, 30)
        _assert_raised(out, stuck, StoreLockedError, path)
        assert _expect(r, "DONE").split()[1] == "0"
        r.communicate(timeout=60)
        assert r.returncode == 0
    finally:
        _finish(r)
    with pagestore.open(path) as again:
        assert again[b"seed"] == b"0"
        again[b"z"] = b"1"
        again.check()


# A writer making a new store (an empty file): stopped as it writes the first page, under LOCK_CREATE.
_STOP_IN_CREATE = _PRE + r"""
before(pagerfiles.PagerFiles, "_create", stopped)
with pagestore.open(sys.argv[1], timeout=10) as db:
    db[b"k"] = b"1"
print("DONE", flush=True)
"""


@needs_locks
def test_an_open_beside_a_writer_stopped_making_the_store_raises_not_hangs(tmp_path):
    """Writers that open a new, empty file together write its first page under LOCK_CREATE, one
    of them; stopped there, another's open waited without end. Now it raises StoreLockedError
    naming the store within about its timeout; continued, the first makes the store, and it
    opens and checks clean."""
    path = str(tmp_path / "s.ps")
    open(path, "wb").close()
    p = _child(_STOP_IN_CREATE, path)
    out: Dict[str, Any] = {}
    try:
        _until_stopped(p)

        def open_() -> None:
            pagestore.open(path, timeout=1.0).close()

        t, stuck = _timed_in_thread(open_, out, "opened")
        os.kill(p.pid, signal.SIGCONT)
        t.join(30)
        _assert_raised(out, stuck, StoreLockedError, path)
        _expect(p, "DONE")
        p.communicate(timeout=60)
        assert p.returncode == 0
    finally:
        _finish(p)
    with pagestore.open(path) as again:
        assert again[b"k"] == b"1"
        again.check()


def _not_alone(path: str) -> "shm.DataLock":
    """_not_alone: a writer's open of another process, as far as the sole mode looks (its
    LOCK_WRITERS held shared, on a file description of its own): every sync runs the rounds."""
    lock = shm.DataLock(path, write=True)
    assert lock.hold(shm.LOCK_WRITERS)
    return lock


@needs_locks
def test_a_sync_that_cannot_record_its_outcome_leaves_its_record_for_the_next_to_count(tmp_path, monkeypatch):
    """A sync's fdatasync returned, and LOCK_SYNC, which its outcome is recorded under (step 4),
    stays held by another process (stopped) past the timeout. The put raises
    DurabilityUnknownError (written and published, not poisoned), and the sync's slot is let
    go with its record still set: to whoever looks next, a sync that may have failed, so the
    next sync writes the log again from the record's offset before it acknowledges (had the
    fsync failed, this process is poisoned as ever, and the others learn it the same way)."""
    path = str(tmp_path / "s.ps")
    db = pagestore.open(path, timeout=1.0)
    other = None
    lock = _not_alone(path)
    try:
        db[b"a"] = b"1"
        index = db._pager.sharing.index
        other = shm.SharedIndex(index.path, index.page_size, index.file_id)
        real_sync, armed = fileio.File.sync, [1]

        def sync(self: Any) -> None:
            real_sync(self)
            if self.path.endswith("-wal") and armed:
                armed.clear()
                assert other is not None
                other.lock_sync()  # taken as this fsync returns, held past the timeout

        monkeypatch.setattr(fileio.File, "sync", sync)
        rewrites: list = []
        real_rewrite = wallib.WAL._rewrite

        def rewrite(self: Any, start: int, end: int) -> None:
            rewrites.append(start)
            real_rewrite(self, start, end)

        monkeypatch.setattr(wallib.WAL, "_rewrite", rewrite)
        failures = index.word(shm.FAILURES_OFFSET)
        out: Dict[str, Any] = {}

        t, stuck = _put_b_in_thread(db, out)
        assert not armed
        other.unlock_sync()
        t.join(30)
        err = _assert_raised(out, stuck, DurabilityUnknownError, path)
        assert "LOCK_SYNC" in str(err)
        assert db[b"b"] == b"1"  # written and published
        assert index.busy_slots() != [] and not rewrites  # the record stays, under a free lock
        db[b"c"] = b"1"  # its sync counts the record as a failed sync and writes the log again
        assert rewrites, "the next sync acknowledged without writing again what the record covers"
        assert index.word(shm.FAILURES_OFFSET) == failures + 1
        assert index.busy_slots() == [] and index.unsynced() is None
        db.close()
    finally:
        if other is not None:
            other.close()
        lock.close()
        db.close()
    with pagestore.open(path) as again:
        assert (again[b"a"], again[b"b"], again[b"c"]) == (b"1", b"1", b"1")
        again.check()


@needs_locks
def test_a_log_restart_that_cannot_begin_leaves_the_old_log_and_raises_store_locked(tmp_path):
    """A checkpoint's log restart cannot take LOCK_SYNC (another process holds it, stopped) before
    it writes the new header: StoreLockedError naming the store within about the timeout, and
    nothing changed: the old log goes on in memory and on disk (before, memory took the new
    generation whatever failed, which is right only once the header is written), the store is
    not poisoned. A write, which first restarts a log the last checkpoint copied whole, raises
    the same, having written nothing. Once the lock is let go the write restarts the log and
    goes through."""
    path = str(tmp_path / "s.ps")
    db = pagestore.open(path, timeout=1.0)
    other = None
    try:
        for i in range(10):
            db[b"k%d" % i] = b"v"
        index = db._pager.sharing.index
        wal = db._pager.wal
        generation, frames = wal.generation, wal.committed_frames
        other = shm.SharedIndex(index.path, index.page_size, index.file_id)
        other.lock_sync()
        out: Dict[str, Any] = {}
        t, stuck = _timed_in_thread(db.checkpoint, out, "done")
        if stuck:
            other.unlock_sync()
            t.join(30)
        err = _assert_raised(out, stuck, StoreLockedError, path)
        assert "start a new log" in str(err)
        assert (wal.generation, wal.committed_frames) == (generation, frames)
        # A write first restarts the log the checkpoint copied whole (``restart_if_idle``): the
        # same wait, the same error, nothing of the write written.
        with pytest.raises(StoreLockedError, match="nothing of this write was written"):
            db[b"after"] = b"1"
        assert b"after" not in db and (wal.generation, wal.committed_frames) == (generation, frames)
        other.unlock_sync()
        db[b"after"] = b"1"  # not poisoned: the restart, then the write
        assert db._pager.wal.generation == generation + 1
        db.checkpoint()
        db[b"later"] = b"1"
        db.check()
        db.close()
    finally:
        if other is not None:
            other.close()
        db.close()
    with pagestore.open(path) as again:
        assert again[b"after"] == b"1" and again[b"later"] == b"1" and again[b"k9"] == b"v"
        again.check()


# A writer that checkpoints and stops (SIGSTOP) as it restarts the log: the shared index's header
# invalidated, the whole read-mark range and LOCK_WRITE held. Continued, it restarts and closes.
_STOP_IN_RESTART = _PRE + r"""
with pagestore.open(sys.argv[1], timeout=10) as db:
    for i in range(10):
        db[b"r%d" % i] = b"1"
    before(wallib.WAL, "reset", stopped)
    db.checkpoint()
    db[b"after"] = b"1"
print("DONE", flush=True)
"""


@needs_locks
@pytest.mark.parametrize("readonly", [False, True])
def test_an_open_beside_a_writer_stopped_restarting_the_log_raises_not_hangs(tmp_path, readonly):
    """A writer stopped (SIGSTOP) as it restarts its log holds LOCK_WRITE and the read marks, and
    has invalidated the shared index's header (readers rebuild it if it dies there). An open's
    first read found the header unreadable and retried for some 100,000 tries (about a minute:
    not the timeout the caller gave). Now it raises StoreLockedError naming the store within
    about its timeout; continued, the writer restarts the log and goes on, and every commit
    is there."""
    path = str(tmp_path / "s.ps")
    _seed(path)
    p = _child(_STOP_IN_RESTART, path)
    out: Dict[str, Any] = {}
    try:
        stuck = _open_while_stopped(p, path, readonly, out, 120)
        _assert_raised(out, stuck, StoreLockedError, path)
        _expect(p, "DONE")
        p.communicate(timeout=60)
        assert p.returncode == 0
    finally:
        _finish(p)
    with pagestore.open(path) as again:
        assert again[b"r9"] == b"1" and again[b"after"] == b"1" and again[b"seed"] == b"0"
        again.check()


@needs_locks
def test_a_restart_whose_second_round_times_out_is_past_its_header_and_poisons(tmp_path, monkeypatch):
    """A log restart's first round writes the new header and syncs it, then a sync beside it
    fails, so the round proves nothing and the next one is to write the header again; that
    round cannot take LOCK_SYNC (its holder stopped). The header is on the file already, so
    the restart's outcome is unknown: poisoned, TimeoutError, as for a timeout in the first
    round after its write. Found (on the first version of the bound): the second round's
    timeout counted as "nothing written": StoreLockedError, the old log kept in memory while
    the file held the new header (here the next write's restart wrote it again; a commit
    appended with the old salt behind the new header would be unreadable to recovery)."""
    path = str(tmp_path / "s.ps")
    db = pagestore.open(path, timeout=1.0)
    other = None
    out: Dict[str, Any] = {}
    try:
        for i in range(10):
            db[b"k%d" % i] = b"v"
        index = db._pager.sharing.index
        wal = db._pager.wal
        old_salt = wal.salt
        other = shm.SharedIndex(index.path, index.page_size, index.file_id)
        j = (index._first_slot + 1) % shm.SLOTS
        real_round, real_wait = wallib.WAL._sync_round, shm.SharedIndex.wait_slot
        rounds: list = []

        def sync_round(self: Any, n: int, s: Any, begun: Any, mode: str, *a: Any, **k: Any) -> bool:
            if mode == "reset":
                rounds.append(1)
                assert other is not None
                if len(rounds) == 1:  # a sync beside the first round, in flight
                    assert other.try_lock(shm.LOCK_SLOT + j, exclusive=True)
                    other.lock_sync()
                    other.set_slot(j, old_salt, wallib.WAL_HEADER_SIZE, wal.end)
                    other.unlock_sync()
                elif len(rounds) == 2:  # LOCK_SYNC held (its holder stopped) as the next begins
                    other.lock_sync()
            return bool(real_round(self, n, s, begun, mode, *a, **k))

        def wait_slot(self: Any, i: int, deadline: Any = None) -> bool:
            if self is index and i == j and rounds == [1] and not out.get("failed"):
                out["failed"] = True  # that sync fails: its step 4, then its slot let go
                assert other is not None
                other.lock_sync()
                other.mark_unsynced(old_salt, wallib.WAL_HEADER_SIZE)
                other.bump(shm.FAILURES_OFFSET, 0)
                other.clear_slot(j)
                other.unlock_sync()
                other.release_slot(j)
            return bool(real_wait(self, i, deadline))

        monkeypatch.setattr(wallib.WAL, "_sync_round", sync_round)
        monkeypatch.setattr(shm.SharedIndex, "wait_slot", wait_slot)

        def checkpoint() -> None:
            try:
                db.checkpoint()
            except (OSError, StoreLockedError) as exc:
                out["error"] = exc

        t, stuck = _timed_in_thread(checkpoint, out, "done")
        other.unlock_sync()
        t.join(30)
        assert not stuck and len(rounds) == 2 and out.get("failed"), (rounds, out)
        assert isinstance(out.get("error"), TimeoutError), out
        assert wal.salt != old_salt  # memory follows the header on the file
        acknowledged = []
        try:
            db[b"x"] = b"1"
            acknowledged.append(b"x")
        except StorePoisonedError:
            pass
        assert not acknowledged, "a commit was acknowledged after a restart of unknown outcome"
        db.close()
    finally:
        if other is not None:
            other.close()
        db.close()
    with pagestore.open(path) as again:
        assert again[b"k9"] == b"v"
        for k in acknowledged:
            assert again[k] == b"1", "an acknowledged commit was lost"
        again[b"y"] = b"1"
        again.check()
