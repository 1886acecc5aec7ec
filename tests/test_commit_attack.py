"""Attacks on the commit and sync path of branch commitcpu (issues 21, 23, 26), each test a claim
of those commits checked from the outside: the kept turn's probe of LOCK_WAITING skipped while the
``asks`` word is unchanged (readers.py ``others_wait_write``), the group commit's sync duty under
Ctrl-C (group.py ``_drop_duty``), the durable word's one-store update (shm.py ``set_durable``)."""
from __future__ import annotations

import fcntl
import os
import struct
import threading
import time

import pytest

import pagestore
from pagestore import shm

from helpers import interrupt_at

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="writers in several processes need open-file-description locks")

_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86-64 / AArch64 (l_pid 0 for OFD locks)


def _ofd(fd: int, kind: int, start: int) -> bool:
    """_ofd takes (kind F_RDLCK / F_WRLCK) or lets go (F_UNLCK) byte ``start`` of ``fd`` as an
    open-file-description lock, without waiting; False if another description holds it."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, start, 1, 0))
        return True
    except (BlockingIOError, PermissionError):
        return False


def _older_waiter_gets_the_turn(path: str, within: float) -> float:
    """An older pagestore's writer (from before the ``asks`` word: b06af04) waits in line as
    shm.py "Turns" still allows: LOCK_WAITING shared, then tries LOCK_WRITE, without bumping
    ``asks``. Returns how long it waited for LOCK_WRITE (inf if not within ``within`` s). Its
    own open file description, so that the keeper's probe sees it as another process's."""
    fd = os.open(shm.shm_path(path), os.O_RDWR)
    try:
        assert _ofd(fd, fcntl.F_RDLCK, shm.LOCK_WAITING)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < within:
                if _ofd(fd, fcntl.F_WRLCK, shm.LOCK_WRITE):
                    return time.monotonic() - t0
                time.sleep(0.005)
            return float("inf")
        finally:
            _ofd(fd, fcntl.F_UNLCK, shm.LOCK_WRITE)
            _ofd(fd, fcntl.F_UNLCK, shm.LOCK_WAITING)
    finally:
        os.close(fd)


def test_an_idle_keeper_gives_its_turn_to_a_waiter_that_does_not_bump_asks(tmp_path):
    """store.py WATCH_IDLE: the watcher sleeps at most 0.1 s "for a writer that asks without
    waking it: an older pagestore" (same SHM_VERSION). Before 1507fd0 its probe found such a
    waiter; with the probe skipped while ``asks`` is what it was when a probe found nobody,
    an idle keeper never saw it, and the older writer waited forever (or timed out)."""
    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        assert db._turns.kept
        time.sleep(0.3)  # the watcher has probed and found nobody (the word then cached)
        took = _older_waiter_gets_the_turn(path, 3.0)
        assert took < 1.0, f"an older pagestore's writer waited {took} s for an idle keeper's turn"


def test_a_busy_keeper_gives_its_turn_to_a_waiter_that_does_not_bump_asks(tmp_path):
    """The same older waiter against a keeper writing without pause: the end of one of its
    writes (``look``/``unlock``) or its watcher gives the turn up."""
    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        assert db._turns.kept
        stop = threading.Event()

        def loop() -> None:
            i = 0
            while not stop.is_set():
                db[b"w%d" % (i % 50)] = b"x"
                i += 1

        writer = threading.Thread(target=loop)
        writer.start()
        try:
            time.sleep(0.3)
            took = _older_waiter_gets_the_turn(path, 3.0)
        finally:
            stop.set()
            writer.join(30)
        assert not writer.is_alive()
        assert took < 1.0, f"an older pagestore's writer waited {took} s for a busy keeper's turn"


STORM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ctrlc_storm_child.py")


def _storm(tmp_path, seconds: float, seed: int) -> str:
    """Runs ctrlc_storm_child.py once; then a reopen must find every acknowledged put, and
    ``check()`` must be clean. Returns the child's summary line."""
    import subprocess
    import sys

    path, out = str(tmp_path / f"s{seed}.ps"), str(tmp_path / f"acked{seed}")
    p = subprocess.run([sys.executable, STORM, path, str(seconds), str(seed), out],
                       capture_output=True, text=True, timeout=seconds + 150)
    assert p.returncode == 0 and "DONE" in p.stdout and "FAILED" not in p.stdout, (
        p.returncode, p.stdout[-2000:], p.stderr[-6000:])
    with open(out, "rb") as f:
        acked = f.read().split()
    assert len(acked) > 100
    with pagestore.open(path) as db:
        lost = [k for k in acked if db.get(k) not in (k, b"1")]
        assert not lost, f"{len(lost)} acknowledged puts lost after the storm: {lost[:5]}"
        db.check()
    return p.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_ctrl_c_storm_never_hangs_the_queue_nor_loses_an_acknowledged_put(tmp_path):
    """8 threads and the main thread put durable keys while SIGINT lands in the main thread
    every 0.2-3 ms (group.py: the sync duty let go by ``_drop_duty``): no thread hangs, the
    store takes writes after it, and a reopen finds every acknowledged put."""
    line = _storm(tmp_path, 3.0, 1)
    assert "interrupts=" in line and not line.startswith("DONE interrupts=0 "), line


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
def test_ctrl_c_storms(tmp_path, seed):
    """The storm above, ten seeds of 6 s each."""
    _storm(tmp_path, 6.0, seed)


def _disk_store(tmp_path, seed: int):
    """_disk_store: a store on a fault-injecting disk (tests/faultfs.py) holding one durable put,
    ``b"before"``; returns ``(disk, path, store)``."""
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from faultfs import Disk

    from pagestore.store import Store

    disk = Disk(str(tmp_path), seed=seed)
    path = os.path.join(str(tmp_path), "db.ps")
    db = Store(path, _opener=disk.opener)
    db[b"before"] = b"1"
    return disk, path, db


def _put_interrupted_at(db, key: bytes, n: int) -> bool:
    """_put_interrupted_at puts ``key`` in this thread with KeyboardInterrupt raised at the entry of
    the ``n``-th Python function the put calls (where a SIGINT's handler runs: a function's
    start or a loop's jump). True if the interrupt landed (the put did not return)."""
    import sys

    calls = [0]

    def tracer(frame, event, arg):  # noqa: ANN001
        if event == "call":
            calls[0] += 1
            if calls[0] == n:
                raise KeyboardInterrupt(f"at call {n}: {frame.f_code.co_name}")
        return None

    sys.settrace(tracer)
    try:
        db[key] = key
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def _put_within(db, key: bytes, seconds: float) -> str:
    """_put_within puts ``key`` from another thread; "" if it returned within ``seconds``, else
    what went wrong."""
    box: list = []

    def run() -> None:
        try:
            db[key] = key
            box.append("")
        except Exception as exc:  # noqa: BLE001 - reported
            box.append(repr(exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        return "hung"
    return box[0]


def _interrupt_campaign(tmp_path) -> list:
    """_interrupt_campaign: for n = 1, 2, ... until a put makes fewer calls, one Ctrl-C lands at the
    start of the n-th function a lone durable put calls (the ``direct`` path of group.py
    ``submit``); then a put from another thread must return within 5 s, and one more from this
    thread, and 10 more, and ``check()``. Returns the failures as (n, function, error); after one,
    the campaign goes on with a fresh store. A reopen of each store finds every put acknowledged."""
    import sys

    failures = []
    stores = []
    where = [""]

    def interrupted(db, key: bytes, n: int) -> bool:
        calls = [0]

        def tracer(frame, event, arg):  # noqa: ANN001
            if event == "call":
                calls[0] += 1
                if calls[0] == n:
                    where[0] = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"
                    raise KeyboardInterrupt(where[0])
            return None

        sys.settrace(tracer)
        try:
            db[key] = key
        except KeyboardInterrupt:
            return True
        finally:
            sys.settrace(None)
        return False

    def fresh():
        return _warm_store(tmp_path, stores, "i")

    db = fresh()
    n = 0
    while True:
        n += 1
        acked = stores[-1][2]
        if not interrupted(db, b"k%05d" % n, n):
            acked.append(b"k%05d" % n)
            break  # the put made fewer calls than n: every entry tried
        err = _put_within(db, b"o%05d" % n, 5.0)
        if not err:
            acked.append(b"o%05d" % n)
            try:
                for j in range(10):
                    db[b"m%05d-%d" % (n, j)] = b"m%05d-%d" % (n, j)
                    acked.append(b"m%05d-%d" % (n, j))
                db.check()
            except Exception as exc:  # noqa: BLE001 - reported
                err = repr(exc)
        if err:
            failures.append((n, where[0], err[:160]))
            db = fresh()  # the broken store is left as it is (a thread may hang in it)
    assert n > 60  # the campaign reached the put's calls (about 85 Python calls since issue 23's cuts)
    db.close()
    path, _, acked = stores[-1]
    with pagestore.open(path) as again:  # the store no failure broke
        assert [k for k in acked if again.get(k) != k] == []
        again.check()
    return failures


def test_one_interrupt_anywhere_in_a_lone_put_never_hangs_the_queue(tmp_path):
    """Before, an interrupt at ``try_acquire`` or at ``_direct``'s first line (group.py
    ``submit``'s direct path) left the queue busy with no leader, or the write lock held:
    every later write waited forever. (Every failure, not only a hang: the test below.)"""
    failures = _interrupt_campaign(tmp_path)
    hung = [f for f in failures if f[2] == "hung"]
    assert not hung, hung


def test_one_interrupt_anywhere_in_a_lone_put_leaves_the_store_writable(tmp_path):
    """Before, a Ctrl-C between the log's write and the commit's publication made every later
    commit fail ('not the latest one published (a bug)') until a reopen (pager.py ``commit``), and
    one at ``_OpLock.__exit__``'s start left the operation lock held (later writes hung)."""
    failures = _interrupt_campaign(tmp_path)
    assert not failures, failures


@pytest.mark.parametrize("where", ["set_frames", "publish"])
def test_an_interrupt_between_the_logs_write_and_its_publication_leaves_the_store_writable(tmp_path, monkeypatch, where):
    """A Ctrl-C at the shared index's entries (after the log's frames are written, ``_append``)
    or at the publication of a commit: the put is not acknowledged, and the next put (this
    thread, another thread) goes through; a reopen finds every acknowledged put."""
    path = str(tmp_path / "p.ps")
    cls = shm.SharedIndex
    real = getattr(cls, where)
    armed = [False]

    def once(self, *args, **kwargs):  # noqa: ANN001
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt(where)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, where, once)
    with pagestore.open(path) as db:
        db[b"a"] = b"a"
        armed[0] = True
        with pytest.raises(KeyboardInterrupt):
            db[b"b"] = b"b"
        assert _put_within(db, b"c", 5.0) == ""
        db[b"d"] = b"d"
        db.check()
    with pagestore.open(path) as db:
        assert (db.get(b"a"), db.get(b"c"), db.get(b"d")) == (b"a", b"c", b"d")
        db.check()


@pytest.mark.parametrize("where", ["owed", "group"])
def test_a_leader_interrupted_after_its_batch_applied_acknowledges_nothing_unsynced(tmp_path, monkeypatch, where):
    """The leader (this thread) applies a batch holding another thread's durable put, its sync
    deferred (``_run``); a Ctrl-C lands before the batch's group is made (at ``owed``, which
    hands back the sync the commit owes, or at ``_Group``). The other put must not be
    acknowledged unless a sync covered it: after a power cut (pending writes dropped), every
    put that returned is there."""
    from pagestore import group as grouplib
    from pagestore.store import Store

    disk, path, db = _disk_store(tmp_path, 3)
    q = db._commits
    main = threading.get_ident()
    armed = [True]
    if where == "owed":
        real_owed = q._owed

        def owed():  # noqa: ANN202
            if armed[0] and threading.get_ident() == main:
                armed[0] = False
                raise KeyboardInterrupt("at owed")
            return real_owed()

        monkeypatch.setattr(q, "_owed", owed)
    else:
        real_group = grouplib._Group

        def make_group(batch, finish, *rest):  # noqa: ANN001, ANN002, ANN202
            if armed[0] and threading.get_ident() == main and len(batch) > 1:
                armed[0] = False
                raise KeyboardInterrupt("at _Group")
            return real_group(batch, finish, *rest)

        monkeypatch.setattr(grouplib, "_Group", make_group)
    # A transaction holds the write lock: this thread's put leads the queue and waits for it;
    # the other thread's put queues behind it; the transaction ends; one batch holds both.
    other = _two_puts_in_one_batch(db, armed)
    assert not other.get("hung"), "the other thread's put waited forever"
    assert other.get("ok") or "abandoned" in other.get("err", ""), other
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as again:
        assert again.get(b"before") == b"1"
        if other.get("ok"):
            assert again.get(b"other") == b"2", "a put acknowledged without a sync was lost in a power cut"


def test_a_leader_interrupted_at_the_release_of_the_write_lock_lets_it_go(tmp_path, monkeypatch):
    """A Ctrl-C at the start of ``WriteLock.release`` in ``_lead``'s finally (found by a
    one-interrupt campaign with 4 writer threads): the write lock stayed held by this thread, and
    every other thread's write raised StoreLockedError (or waited forever without a timeout)."""
    from pagestore import locks

    path = str(tmp_path / "r.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"a"
        q = db._commits
        writer = q._writer
        armed = [False]
        _interrupt_at_start(monkeypatch, type(writer), "release", armed)
        # a transaction on another thread holds the write lock, so this put leads the queue
        holding, end = threading.Event(), threading.Event()

        def txn() -> None:
            with db.transaction() as t:
                t[b"t"] = b"t"
                holding.set()
                end.wait(10)

        t = threading.Thread(target=txn)
        t.start()
        assert holding.wait(10)
        armed[0] = True
        threading.Timer(0.2, end.set).start()
        with pytest.raises(KeyboardInterrupt):
            db[b"mine"] = b"m"
        t.join(10)
        assert not armed[0]
        assert not writer.owned()
        assert _put_within(db, b"other", 5.0) == ""
        db[b"again"] = b"1"
        assert type(writer) is locks.WriteLock


def test_a_put_interrupted_as_it_begins_to_wait_for_a_running_sync_hangs_nobody(tmp_path, monkeypatch):
    """Thread A's put syncs (slow disk); this thread's transaction commits meanwhile, its group
    waiting for A's sync, and a Ctrl-C lands at the start of ``_await``, before its handler could
    mark the group gone. When A lets the duty go, it woke that group's (interrupted) thread and
    nobody else: a third put, leading, waited for the group's sync forever. (A single put no longer
    commits while a sync runs, group.py ``_wait_for_awaiting``; a transaction's commit does.)"""
    import faultfs

    from pagestore import group as grouplib
    from pagestore.store import Store

    disk, path, db = _disk_store(tmp_path, 5)
    real_sync = faultfs.FaultFile.sync
    in_sync, release = threading.Event(), threading.Event()
    block = [True]

    def slow_sync(self):  # noqa: ANN001, ANN202
        if block[0] and self.path.endswith("-wal"):
            block[0] = False
            in_sync.set()
            release.wait(10)
        real_sync(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", slow_sync)
    armed = [True]
    _interrupt_at_start(monkeypatch, grouplib.CommitQueue, "_await", armed)
    a = threading.Thread(target=lambda: db.__setitem__(b"a", b"a"))
    a.start()
    assert in_sync.wait(10)
    with pytest.raises(KeyboardInterrupt):
        with db.transaction() as t:
            t[b"mine"] = b"m"
    assert not armed[0]
    box: list = []

    def third() -> None:
        try:
            db[b"c"] = b"c"
            box.append("ok")
        except PageStoreError as exc:
            box.append(repr(exc))

    from pagestore.errors import PageStoreError

    c = threading.Thread(target=third, daemon=True)
    c.start()
    time.sleep(0.1)
    release.set()
    a.join(10)
    c.join(5)
    assert not c.is_alive(), "a put waited forever for the sync of an interrupted thread's group"
    assert box == ["ok"], box
    db.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as again:
        assert (again.get(b"before"), again.get(b"a"), again.get(b"c")) == (b"1", b"a", b"c")


def test_a_ctrl_c_inside_the_undo_of_a_failed_write_still_undoes_it_all(tmp_path, monkeypatch):
    """A write fails after its value went into the heap (the tree's insert raises); a Ctrl-C then
    lands inside the undo, as the free-space map reloads (``Store._abort``). The undo still runs
    to its end. Half done, the map kept the failed transaction's state: here heap pages it had
    allocated, which the rollback took back ("reference to page 15 outside the file (7 pages)"
    at the next write); in the Ctrl-C storms, entries a reopen's check() refused ("free-space
    map entry does not match the page")."""
    from pagestore.btree import BTree
    from pagestore.heap import FreeSpaceMap

    path = str(tmp_path / "u.ps")
    real_put, real_load = BTree.put_valid, FreeSpaceMap.load
    armed = {"put": False, "load": False}

    calls = [0]

    def put_valid(self, *args, **kwargs):  # noqa: ANN001
        if armed["put"]:
            calls[0] += 1
            if calls[0] == 20:  # the transaction's last record: its first 19 filled new heap pages
                armed["put"], armed["load"] = False, True
                raise ValueError("injected: the tree's insert fails")
        return real_put(self, *args, **kwargs)

    def load(self, *args, **kwargs):  # noqa: ANN001
        if armed["load"]:
            armed["load"] = False
            raise KeyboardInterrupt("inside the undo")
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(BTree, "put_valid", put_valid)
    monkeypatch.setattr(FreeSpaceMap, "load", load)
    with pagestore.open(path) as db:
        for i in range(40):
            db[b"k%03d" % i] = b"v" * 300
        armed["put"] = True
        with pytest.raises(KeyboardInterrupt):
            with db.transaction() as txn:
                for i in range(20):
                    txn[b"failed%02d" % i] = b"x" * 1500
        assert not armed["put"] and not armed["load"], "the injection did not land"
        for i in range(40):
            db[b"after%03d" % i] = b"z" * 300
        assert b"failed00" not in db
        db.check()
    with pagestore.open(path) as db:
        assert len(db) == 80 and b"failed00" not in db
        db.check()


def _interrupt_at_start(monkeypatch, cls: type, name: str, armed: list) -> None:
    """_interrupt_at_start patches ``cls.name`` so that its next call on this thread while
    ``armed[0]`` raises KeyboardInterrupt at its start (and clears ``armed[0]``); calls on other
    threads, and later ones, run the real method."""
    real = getattr(cls, name)
    main = threading.get_ident()

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if armed[0] and threading.get_ident() == main:
            armed[0] = False
            raise KeyboardInterrupt(f"at {cls.__name__}.{name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(cls, name, interrupted)


def _two_puts_in_one_batch(db, armed: list) -> dict:
    """_two_puts_in_one_batch: this thread's put leads a batch that holds another thread's put (a
    transaction holds the write lock until both are queued), and must raise KeyboardInterrupt
    (the caller's patch, which clears ``armed[0]`` as it fires). Returns the other put's outcome
    ("ok", or "err": its repr), with "hung" if it did not return within 10 s."""
    q = db._commits
    holding, end = threading.Event(), threading.Event()

    def txn() -> None:
        try:
            with db.transaction():
                holding.set()
                end.wait(10)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass

    t = threading.Thread(target=txn)
    t.start()
    assert holding.wait(10)
    other: dict = {}

    def put_other() -> None:
        while not q.queued:
            time.sleep(0.001)  # after this thread's request: it leads
        try:
            db[b"other"] = b"2"
            other["ok"] = True
        except Exception as exc:  # noqa: BLE001 - reported
            other["err"] = repr(exc)

    o = threading.Thread(target=put_other, daemon=True)
    o.start()

    def end_txn() -> None:
        while q.queued < 2:
            time.sleep(0.001)
        end.set()

    e = threading.Thread(target=end_txn)
    e.start()
    with pytest.raises(KeyboardInterrupt):
        db[b"mine"] = b"3"
    o.join(10)
    t.join(10)
    e.join(10)
    assert not armed[0], "the interrupt never landed"
    if o.is_alive():
        other["hung"] = True
    return other


def _lead_a_batch_interrupted(db, monkeypatch, at: str, where: str) -> dict:
    """_lead_a_batch_interrupted: this thread's put leads a batch that holds another thread's put
    (a transaction holds the write lock until both are queued), and a Ctrl-C lands at the start
    of ``at`` (a method of the commit queue) when called from ``where`` on this thread. Returns
    the other put's outcome (``_two_puts_in_one_batch``)."""
    from pagestore import group as grouplib

    main = threading.get_ident()
    armed = [True]
    real = getattr(grouplib.CommitQueue, at)
    import sys

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        caller = sys._getframe(1)
        if caller.f_code.co_name == "wind_up":  # the caller's cleanup, in a function of its own
            caller = caller.f_back
        if armed[0] and threading.get_ident() == main and caller.f_code.co_name == where:
            armed[0] = False
            raise KeyboardInterrupt(f"at {at} in {where}")
        return real(*args, **kwargs)

    monkeypatch.setattr(grouplib.CommitQueue, at, staticmethod(interrupted) if at == "_settle" else interrupted)
    return _two_puts_in_one_batch(db, armed)


@pytest.mark.parametrize("sync", [False, True])
def test_a_leader_interrupted_as_it_settles_its_batch_wakes_every_writer(tmp_path, monkeypatch, sync):
    """A Ctrl-C storm's hang (about 1 run in 6 before, 8 threads at 6 s each: the workers waiting
    in ``submit`` for a batch nobody settled, the queue idle): the leader's Ctrl-C landed at the
    start of ``_settle`` once the batch was committed, in ``_lead``'s wind-up (a commit owing no
    sync: sync=False here, or one a sync had covered) or in ``_sync_groups``' (after the group's
    sync). The batch's other writer must return (its put committed, or abandoned), and the store
    take writes after it."""
    path = str(tmp_path / "b.ps")
    with pagestore.open(path, sync=sync) as db:
        db[b"a"] = b"a"
        other = _lead_a_batch_interrupted(db, monkeypatch, "_settle", "_sync_groups" if sync else "_lead")
        assert not other.get("hung"), "a writer of the interrupted leader's batch waited forever"
        assert other.get("ok") or "abandoned" in other.get("err", ""), other
        assert _put_within(db, b"c", 5.0) == ""
        db[b"d"] = b"d"
        db.check()


@pytest.mark.parametrize("where", ["__exit__", "__enter__"])
def test_a_put_interrupted_in_the_operation_locks_enter_or_exit_lets_the_lock_go(tmp_path, monkeypatch, where):
    """A Ctrl-C at the start of ``_OpLock.__exit__`` (a Python function: the signal's handler may
    run before its first line), or in ``__enter__`` just after the lock is taken: the put's
    thread kept a hold of the operation lock nobody let go, and every other thread's next write
    waited forever (a one-interrupt campaign's 'store.py:__exit__' hang)."""
    from pagestore.store import _OpLock

    path = str(tmp_path / "o.ps")
    real = getattr(_OpLock, where)
    armed = [False]
    main = threading.get_ident()

    def interrupted(self, *exc):  # noqa: ANN001, ANN002, ANN202
        if where == "__enter__":
            out = real(self)
            if armed[0] and threading.get_ident() == main:
                armed[0] = False
                raise KeyboardInterrupt("in __enter__, the lock taken")
            return out
        if armed[0] and threading.get_ident() == main:
            armed[0] = False
            raise KeyboardInterrupt("at __exit__'s start")
        return real(self, *exc)

    monkeypatch.setattr(_OpLock, where, interrupted)
    with pagestore.open(path) as db:
        assert isinstance(db._lock, _OpLock)
        db[b"a"] = b"a"
        armed[0] = True
        with pytest.raises(KeyboardInterrupt):
            db[b"b"] = b"b"
        assert not armed[0]
        assert _put_within(db, b"c", 5.0) == ""
        assert db.get(b"c") == b"c"
        db[b"d"] = b"d"
        assert _put_within(db, b"e", 5.0) == ""
        db.check()




@pytest.mark.parametrize("call", ["update", "clear"])
def test_an_interrupt_as_the_log_indexes_a_commit_undoes_it_whole(tmp_path, call):
    """A Ctrl-C as the log's append returns from a call into C at its end (``index.update``,
    ``txn_index.clear()``), in a commit whose sync is deferred (group commit): the undo
    (``WAL._restore``) left the index pointing at the frames past the committed end, which the
    next commit wrote over: "log frame at offset 17187 is missing or belongs to another page"
    (found by the sweep over every file). The commit is undone whole, the store keeps taking
    writes, and a reopen finds every acknowledged put."""
    import sys

    path = str(tmp_path / "x.ps")
    armed = [False]

    def prof(frame, event, arg):  # noqa: ANN001
        if (armed[0] and event == "c_return" and frame.f_code.co_name == "_append"
                and getattr(arg, "__name__", "") == call):
            armed[0] = False
            raise KeyboardInterrupt(f"after {call} in _append")

    with pagestore.open(path) as db:
        for i in range(30):
            db[b"a%02d" % i] = b"v" * 200
        armed[0] = True
        sys.setprofile(prof)
        try:
            db[b"a05"] = b"w" * 200
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        assert not armed[0], "the interrupt never landed"
        for i in range(30):
            db[b"b%02d" % i] = b"x" * 200
        assert _put_within(db, b"c", 5.0) == ""
        assert db.get(b"a05") in (b"v" * 200, b"w" * 200)
        db.check()
    with pagestore.open(path) as db:
        assert db.get(b"b29") == b"x" * 200 and db.get(b"c") == b"c"
        db.check()

def _warm_store(tmp_path, stores: list, prefix: str):
    """_warm_store opens a fresh store with one put made (its files set up: a later put is a lone
    durable put, nothing more) and adds (path, store, the keys acknowledged) to ``stores``."""
    path = str(tmp_path / f"{prefix}{len(stores)}.ps")
    db = pagestore.open(path)
    db[b"warm"] = b"warm"
    stores.append((path, db, [b"warm"]))
    return db


def _interrupt_sweep(tmp_path, files: tuple, gaps: tuple, limit: int = 10**6) -> list:
    """_interrupt_sweep: for n = 1, 2, ... until a lone durable put reaches fewer such points than n
    (or ``limit``: a put that checkpoints reaches thousands), and for each gap k in ``gaps`` (0: one interrupt), a KeyboardInterrupt
    lands at the put's n-th point where CPython 3.11 runs a SIGINT's handler in code of ``files``
    (a Python function's start; the return of a call into C: the C call's work done), and, with a
    gap, a second one at the start of the k-th Python function the first one's handlers call
    (inside the ``except`` or ``finally`` that the first started). Then a put from another thread
    must return within 5 s, and one from this thread, and ``check()`` pass. Returns the failures
    as (n, k, where, error); after one, the sweep goes on with a fresh store. A reopen of the last
    store finds every put acknowledged. The interrupts are ``helpers.interrupt_at``'s."""
    failures = []
    stores = []

    def fresh():
        return _warm_store(tmp_path, stores, "l")

    db = fresh()
    n = 0
    while True:
        n += 1
        reached = 0
        for k in gaps:
            key = b"k%05d-%d" % (n, k)
            acked = stores[-1][2]

            def put() -> None:
                db[key] = key
                acked.append(key)

            hit = interrupt_at(put, n, k, files)
            where = hit.where
            reached = max(reached, hit.points)
            err = _put_within(db, b"o%05d-%d" % (n, k), 5.0)
            if not err:
                acked.append(b"o%05d-%d" % (n, k))
                try:
                    db[b"m%05d-%d" % (n, k)] = b"m"
                    acked.append(b"m%05d-%d" % (n, k))
                    db.check()
                except Exception as exc:  # noqa: BLE001 - reported
                    err = repr(exc)
            if err:
                failures.append((n, k, where, err[:160]))
                db = fresh()  # the broken store is left as it is (a thread may hang in it)
        if reached < n or n >= limit:
            break  # the put reached fewer points than n: every one tried
    assert n > 2, f"the put reached {n - 1} points of {files}: the sweep tried nothing"
    db.close()
    path, _, acked = stores[-1]
    with pagestore.open(path) as again:
        assert [k for k in acked if again.get(k) not in (k, b"m")] == []
        again.check()
    return failures


def test_one_or_two_interrupts_anywhere_in_the_write_paths_cleanup_hang_nothing(tmp_path):
    """A Ctrl-C at any point of a lone put's commit queue, store write path and locks (group.py,
    store.py, locks.py, interrupts.py) where CPython can raise it, and a second one at the
    first, second or fourth function its handlers call: nothing is left held (the write lock,
    the operation lock, the lead, the sync duty), and the store keeps taking writes from every
    thread."""
    failures = _interrupt_sweep(tmp_path, ("group.py", "store.py", "locks.py", "interrupts.py"), (0, 1, 2, 4))
    assert not failures, failures


@pytest.mark.slow
def test_one_or_two_interrupts_anywhere_in_a_put_hang_nothing(tmp_path):
    """The sweep above over every point of pagestore a lone put reaches (the pager's commit, the
    log's append and sync, the shared index's publication; 242 points when it does not
    checkpoint), gaps 0 to 8."""
    import pagestore as pkg

    files = tuple(f for f in os.listdir(os.path.dirname(pkg.__file__)) if f.endswith(".py"))
    failures = _interrupt_sweep(tmp_path, files, (0, 1, 2, 3, 5, 8), limit=300)
    assert not failures, failures


@pytest.mark.parametrize("how", ["commit", "rollback", "put_many"])
def test_an_interrupt_at_the_release_of_a_transactions_write_lock_lets_it_go(tmp_path, monkeypatch, how):
    """A Ctrl-C at the start of ``WriteLock.release`` as a transaction ends (``Transaction._end``,
    or ``_release`` before a commit's deferred sync) or a bulk write does (``Store._exclusive``):
    the lock stayed held for good (the transaction said it no longer held it), and every
    later write from another thread waited for it, or raised StoreLockedError."""
    from pagestore import locks

    path = str(tmp_path / "t.ps")
    armed = [False]
    _interrupt_at_start(monkeypatch, locks.WriteLock, "release", armed)
    with pagestore.open(path, timeout=3.0) as db:
        db[b"a"] = b"a"
        armed[0] = True
        with pytest.raises(KeyboardInterrupt):
            if how == "put_many":
                db.put_many([(b"p1", b"1"), (b"p2", b"2")])
            else:
                with db.transaction() as t:
                    t[b"t"] = b"t"
                    if how == "rollback":
                        raise RuntimeError("rolled back")
        assert not armed[0], "the interrupt never landed"
        assert _put_within(db, b"other", 5.0) == ""
        db[b"again"] = b"1"
        with db.transaction() as t:
            t[b"t2"] = b"t2"
        db.check()


def test_an_interrupt_as_a_durable_commits_sync_ends_loses_no_later_put(tmp_path, monkeypatch):
    """A Ctrl-C as a bulk write's commit (synced inside the lock: ``WAL.commit`` with ``durable``)
    lets LOCK_SYNC (in sole mode, LOCK_WRITERS's exclusive hold) go, its sync done: the log undid the commit in memory, but the shared
    index's durable word already covered its frames. The next put wrote its frames over them
    and its sync found them "made durable by another process's sync" and skipped the fsync:
    the put was acknowledged, and a power cut lost it. The interrupted commit now stays (its
    outcome is the caller's to find out), and the next put's frames come after it."""
    from pagestore.store import Store

    disk, path, db = _disk_store(tmp_path, 7)
    armed = [False]
    _interrupt_at_start(monkeypatch, shm.SharedIndex, "unlock_sync", armed)
    # The only writer syncs in sole mode: there, as its sync ends it lets LOCK_WRITERS back to shared.
    _interrupt_at_start(monkeypatch, shm.DataLock, "end_sole", armed)
    armed[0] = True
    try:
        db.put_many([(b"bulk%d" % i, b"b" * 100) for i in range(4)])
    except KeyboardInterrupt:
        pass
    assert not armed[0], "the interrupt never landed"
    db[b"acked"] = b"1"  # returned: acknowledged, so durable
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as again:
        assert again.get(b"before") == b"1"
        assert again.get(b"acked") == b"1", "an acknowledged put was lost in a power cut"
        again.check()
