"""Attacks on the overlapping syncs of several processes (issue 26; shm.py and docs/format.md,
"Unsynced"): interleavings of a sync against another process's checkpoint, log restart, death
or fork, forced deterministically with the fault double (tests/faultfs.py) or child processes.

The rule each test holds the store to: an acknowledged commit survives any crash or power cut;
no transaction is ever half visible after one; and no process waits forever on another's sync.
"""
from __future__ import annotations

import os
import sys

import pytest

from pagestore import shm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="writers in several processes need open-file-description locks")


def _writers(tmp_path, keys: int = 300):
    """Two writers (two opens on one fault-double disk, each its own shared-index descriptor, so
    their locks are two processes' as far as the kernel is concerned) over a store whose ``keys``
    records span several leaves, all of them in the data file (the log restarted empty)."""
    from faultfs import Disk
    from pagestore.store import Store

    disk = Disk(str(tmp_path), seed=7)
    path = str(tmp_path / "f.ps")
    a = Store(path, _opener=disk.opener, sync=True)
    with a.transaction() as t:
        for i in range(keys):
            t[b"k%04d" % i] = b"0" * 60
    assert a.checkpoint()["restarted"]
    b = Store(path, _opener=disk.opener, sync=True, timeout=5)
    return disk, path, a, b


def test_a_checkpoint_never_copies_frames_another_process_has_not_synced(tmp_path):
    """B commits with sync=False (or its group commit's sync has not run yet, or B dies before it
    runs: the same bytes, dirty in the page cache only) a transaction that changes a leaf A's
    last durable commit also changed (its newest image in the log) and a leaf only the data file
    holds. A, with nothing of its own to sync, checkpoints while a snapshot keeps the log from
    restarting: if it copies B's frames into the data file and syncs that file without syncing
    the log first, a power cut leaves B's change to the second leaf in the data file and its
    change to the first nowhere: half of B's transaction. (SQLite's checkpoint syncs the log
    before it copies; so must this one, for the frames any process wrote.)"""
    from pagestore.store import Store

    disk, path, a, b = _writers(tmp_path)
    a[b"k0000"] = b"A" * 60  # acknowledged; its leaf's newest image is now in the log
    with b.transaction(sync=False) as t:
        t[b"k0000"] = b"B" * 60
        t[b"k0299"] = b"B" * 60  # another leaf, whose only image is the data file's
    snap = a.snapshot()  # A catches up to B's commit; its read holds the log (no restart)
    try:
        info = a.checkpoint()
        assert not info["restarted"]
    finally:
        snap.close()
    disk.crash("drop")  # a power cut: whatever was never synced is gone
    with Store(path, _opener=disk.opener) as c:
        got = (c[b"k0000"], c[b"k0299"])
        c.check()
    assert got in ((b"A" * 60, b"0" * 60), (b"B" * 60, b"B" * 60)), f"half of B's transaction survived: {got}"


_FORKING_HANG = r"""
import os, sys, time
sys.path.insert(0, sys.argv[2])
import pagestore
from pagestore import fileio

db = pagestore.open(sys.argv[1], timeout=10)
db[b"base"] = b"1"
kid = os.fork()  # a worker forked after the open (a pre-forking server): it never touches the store
if kid == 0:
    time.sleep(float(sys.argv[3]))
    os._exit(0)
print("KID", kid, flush=True)
real = fileio.File.sync

def sync(self):
    if self.path.endswith("-wal"):
        print("IN_SYNC", flush=True)
        time.sleep(3600)
    real(self)

fileio.File.sync = sync
db[b"hung"] = b"1"
print("NEVER", flush=True)
"""


def _line(p, word: str, timeout: float) -> str:
    """_line: the next line child ``p`` prints that starts with ``word``, or "" once ``timeout``
    seconds pass (its stdout read unbuffered, so that select never waits on a line a buffer holds)."""
    import select
    import time

    deadline = time.monotonic() + timeout
    fd = p.stdout.fileno()
    buf = getattr(p, "_attack_buf", b"")
    try:
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(word.encode()):
                    return line.decode().strip()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            buf += chunk
    finally:
        p._attack_buf = buf


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_process_killed_in_its_sync_frees_its_slot_though_it_forked_a_child(tmp_path):
    """Process X opened the store, then forked a worker (which never touches the store: fileio closes
    the child's copies of the store's descriptors), and is killed (SIGKILL) inside its sync of
    the log, holding a sync slot or, alone, LOCK_WRITERS exclusively (sole mode), and maybe the
    write lock. Its locks must die with it, as
    they do for a process that never forked: writer B's put, which waits for X's sync to end,
    goes on within seconds, while the worker still lives. (An fcntl open-file-description lock
    dies with the last descriptor of its open file; Python's mmap keeps a dup of the descriptor
    it maps, and a forked child inherits that dup: a map of the lock's own descriptor keeps the
    dead process's locks held as long as any child it forked lives.)"""
    import signal
    import subprocess

    import pagestore

    root = os.path.dirname(HERE)
    path = str(tmp_path / "fork.ps")
    with pagestore.open(path) as db:
        db[b"seed"] = b"0"
    x = subprocess.Popen([sys.executable, "-c", _FORKING_HANG, path, root, "60"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    kid = 0
    b = None
    try:
        got = _line(x, "KID", 60)
        assert got, x.stderr.read().decode() if x.poll() is not None else "no KID"
        kid = int(got.split()[1])
        assert _line(x, "IN_SYNC", 60)
        b = subprocess.Popen([sys.executable, os.path.join(HERE, "multiproc_child.py"), "put", path, "after"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # B's open waits while X's sync runs in sole mode (X was the only writer: LOCK_WRITERS
        # exclusive across its fsync, docs/format.md "Sole mode"), or B starts and its put waits
        # for X's sync slot (shared mode): either way B waits on a lock of X's.
        _line(b, "START", 3)
        assert b.poll() is None, b.stderr.read().decode()
        x.send_signal(signal.SIGKILL)
        x.wait(30)
        done = _line(b, "PUT", 20)
        if not done:
            try:
                b.wait(2)
            except subprocess.TimeoutExpired:
                pass
        err = "" if done else (b.stderr.read().decode() if b.poll() is not None else "B still waiting")
        assert done, f"B's put did not finish within 20 s of X's death while X's forked worker lives: {err[-800:]}"
        assert b.wait(30) == 0
    finally:
        for p in (x, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(30)
        if kid:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with pagestore.open(path) as db:
        assert db[b"after"] == b"2" and db[b"base"] == b"1"
        db.check()


class _Killed(BaseException):
    """_Killed: the process dies here (SIGKILL between two stores into the shared map)."""


class _DieAfter:
    """_DieAfter stands for shm's ``_U64`` and lets ``stores`` of its 8-byte stores into the map
    happen, then the process dies (``_Killed``): what another process then reads is what a kill
    -9 between two stores leaves."""

    def __init__(self, real, stores: int) -> None:
        self.real, self.left = real, stores

    def pack_into(self, buf, offset: int, value: int) -> None:
        if self.left == 0:
            raise _Killed()
        self.left -= 1
        self.real.pack_into(buf, offset, value)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@pytest.mark.parametrize("how", ["reset_unsynced", "mark_unsynced"])
def test_a_kill_between_the_stores_of_the_unsynced_word_never_claims_more_durable(tmp_path, monkeypatch, how):
    """The unsynced word says (salt, from): bytes of that log from ``from`` on may be unwritten;
    a word of another log's salt says the whole of this one may be (a failed fsync of the old
    log's frames drops every dirty page of the file, the new log's too). A process killed
    between the word's stores (the salt, then the offset) must leave a word that claims no
    more durable than before or after: never the new salt with the old log's offset, which
    would let a sync of the new log skip writing again what a failure may have dropped below
    that offset (docs/format.md: 'a half-done step ... claims less, never more')."""
    from pagestore.shm import SharedIndex

    index = SharedIndex(str(tmp_path / "x.ps-shm"), 4096, 1)
    try:
        old_salt, new_salt = 0x1111, 0x2222
        index.reset_unsynced(old_salt, 50_000)  # a failure in the old log, from 50,000
        monkeypatch.setattr(shm, "_U64", _DieAfter(shm._U64, 1))
        with pytest.raises(_Killed):
            if how == "reset_unsynced":
                index.reset_unsynced(new_salt, 100)  # a sync of the new log wrote it again below 100
            else:
                index.mark_unsynced(new_salt, 0)  # a sync of the new log failed: all of it unknown
        monkeypatch.undo()
        salt, offset = index.unsynced()
        limit = 100 if how == "reset_unsynced" else 0
        assert salt != new_salt or offset <= limit, (
            f"a kill between two stores left the word claiming the new log durable below {offset}")
    finally:
        index.close()


def test_every_slot_held_a_sync_waits_its_turn_and_each_outcome_then_a_dead_one_makes_it_write_again(tmp_path, monkeypatch):
    """Eight syncs of other processes hold every sync slot (each its own open of the shared index,
    so its own lock owner): a ninth, a durable put, claims slot pid % 8 and waits for it; once it
    has its own fsync it waits for the seven still busy. Six end well; one holder dies in its
    sync (its lock goes, its record stays): the put counts it as a failed sync, writes the log
    again from the dead one's offset, syncs once more, and only then acknowledges. Nothing hangs
    once the holders are gone, and the words are settled after."""
    import threading
    import time

    import pagestore
    from pagestore.shm import LOCK_SLOT, SLOTS, SharedIndex

    from pagestore.wal import WAL

    rewrites = []
    real_rewrite = WAL._rewrite

    def rewrite(self, start: int, end: int) -> None:
        rewrites.append(start)
        real_rewrite(self, start, end)

    monkeypatch.setattr(WAL, "_rewrite", rewrite)
    path = str(tmp_path / "slots.ps")
    db = pagestore.open(path)
    try:
        db[b"base"] = b"0"
        index = db._pager.sharing.index
        wal = db._pager.wal
        others = [SharedIndex(index.path, index.page_size, index.file_id) for _ in range(SLOTS)]
        try:
            for i, o in enumerate(others):
                assert o.try_lock(LOCK_SLOT + i, exclusive=True)
                o.lock_sync()
                o.set_slot(i, wal.salt, 32)  # a sync in flight: from the log's first frame
                o.unlock_sync()
            failures = index.word(shm.FAILURES_OFFSET)
            t, out = _in_thread(lambda: db.__setitem__(b"k", b"1"), "k")
            time.sleep(0.5)
            assert t.is_alive(), f"the put did not wait for a slot: {out}"
            mine = os.getpid() % SLOTS
            dead = (mine + 3) % SLOTS

            def end(i: int) -> None:
                o = others[i]
                o.lock_sync()
                o.clear_slot(i)
                o.unlock_sync()
                o.release_slot(i)

            end(mine)  # its sync ends well: the put claims the slot, syncs, then waits for the rest
            time.sleep(0.5)
            assert t.is_alive(), f"the put acknowledged while seven syncs beside it ran: {out}"
            for i in range(SLOTS):
                if i not in (mine, dead):
                    end(i)
            time.sleep(0.3)
            assert t.is_alive(), f"the put acknowledged while a sync beside it ran: {out}"
            others[dead].close()  # died in its sync: the lock goes with it, the record stays
            t.join(30)
            assert not t.is_alive(), "the put hangs after every slot's holder is gone"
            assert out["k"] == "acked", out["k"]
            assert rewrites and min(rewrites) <= 32, f"acknowledged without writing the log again: {rewrites}"
            assert index.word(shm.FAILURES_OFFSET) == failures + 1, "the dead sync was not counted as failed"
            assert index.settled(), (index.unsynced(), index.busy_slots())
        finally:
            for o in others:
                o.close()
    finally:
        db.close()
    with pagestore.open(path) as c:
        assert c[b"k"] == b"1" and c[b"base"] == b"0"
        c.check()


def test_a_log_restart_beside_a_failing_sync_of_the_old_log_writes_its_header_again(tmp_path, monkeypatch):
    """A checkpoints and restarts the log (a new header at 0, synced in a round of its own) while
    B's sync of the old log runs beside it (B writes its frames again after a failure it was
    counted, then its fdatasync). B's fails as Linux's does, after A wrote the new header: every
    dirty page of the file is marked clean, unwritten, the new header's too; A's own fdatasync,
    which follows, is not told (an older kernel, or a log opened after someone was told) and
    finds nothing to write. A must not take that for a durable header: its round saw B's
    failure counted, so it writes the header again and syncs. Else A's next acknowledged commit
    lies behind the old log's header on disk, and recovery (which stops at the first frame of
    another salt) loses it."""
    import errno
    import threading

    import faultfs
    from pagestore.store import Store

    disk, path, a, b = _writers(tmp_path, keys=60)
    with b.transaction(sync=False) as t:
        t[b"k0001"] = b"B" * 60
    a_log, b_log = a._pager.wal.file, b._pager.wal.file
    real = faultfs.FaultFile.sync
    b_in, b_fail, b_done = threading.Event(), threading.Event(), threading.Event()
    state = {"b_armed": False, "a_armed": False}

    def sync(self) -> None:
        if self is b_log and state["b_armed"]:
            state["b_armed"] = False
            b_in.set()
            assert b_fail.wait(20)
            self.content.pending = []  # the failed writeback: marked clean, never written; A is not told
            raise OSError(errno.EIO, "injected log sync failure")
        if self is a_log and state["a_armed"]:
            state["a_armed"] = False
            b_fail.set()  # B's fdatasync fails now, after A wrote the new header
            assert b_done.wait(20)
        real(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", sync)
    real_write = faultfs.FaultFile.write
    headers = []

    def write(self, offset: int, data) -> None:
        if self is a_log and offset == 0:
            headers.append(bytes(data[:36]))
        real_write(self, offset, data)

    monkeypatch.setattr(faultfs.FaultFile, "write", write)
    out = {}

    def b_sync() -> None:
        try:
            b._pager.sync()  # B's deferred sync, as its group commit runs it
            out["b"] = "acked"
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's
            out["b"] = exc
        finally:
            b_done.set()

    wal = a._pager.wal
    real_reset = wal.reset
    tb = threading.Thread(target=b_sync)

    def reset(generation: int) -> None:
        # B's sync begins now, just before the new header: a failure counted since its last good
        # sync makes it write its frames again (under LOCK_SYNC), then it blocks in its fdatasync.
        b._pager.wal._failures_seen -= 1
        state["b_armed"] = True
        tb.start()
        assert b_in.wait(20)
        state["a_armed"] = True
        real_reset(generation)

    monkeypatch.setattr(wal, "reset", reset)
    assert a.checkpoint()["restarted"]
    tb.join(30)
    assert not tb.is_alive()
    assert isinstance(out["b"], OSError), out["b"]
    assert len(headers) >= 2 and headers[-1] == headers[0], f"the new header was written {len(headers)} time(s)"
    monkeypatch.setattr(faultfs.FaultFile, "sync", real)
    a[b"after"] = b"1"  # acknowledged, in the new log
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"after") == b"1", "an acknowledged commit in the new log was lost behind the old log's header"
        assert c[b"k0001"] == b"B" * 60
        c.check()


def test_a_writer_taking_its_turn_never_counts_its_own_threads_running_sync_as_dead(tmp_path, monkeypatch):
    """Process P's deferred sync (its group commit's, on thread T1) holds a sync slot, in its fdatasync,
    when P's next write (thread T2) takes the turn and catches up: it probes each busy slot's
    lock to find syncs whose process died. fcntl locks of one open file description never
    conflict with each other: probing T1's slot through P's own descriptor must not take T1's
    exclusive lock for a dead one's (the probe converts it, and its unlock lets it go), count
    it failed and clear its record, for then another process R's sync no longer waits for T1's
    outcome. T1's fdatasync fails (Linux: every dirty page of the log marked clean, unwritten,
    R's frames too); R's own fdatasync, not told (an older kernel, or a log opened after someone
    was told), finds nothing to write. R must not acknowledge before T1's failure is counted;
    else R's acknowledged commit is lost to a power cut."""
    import errno
    import threading

    import faultfs
    from pagestore.store import Store
    from pagestore.wal import WAL

    disk, path, a, b = _writers(tmp_path, keys=60)
    with a.transaction(sync=False) as t:
        t[b"p"] = b"1"
    with b.transaction(sync=False) as t:
        t[b"r"] = b"1"
    a_log, b_log = a._pager.wal.file, b._pager.wal.file
    a_wal = a._pager.wal
    index = a._pager.sharing.index
    real_sync = faultfs.FaultFile.sync
    t1_in, go_fail, t1_failed, r_done = (threading.Event() for _ in range(4))
    state = {"a": True, "r": True}

    def sync(self) -> None:
        if self is a_log and state["a"]:
            state["a"] = False
            t1_in.set()
            go_fail.wait(10)
            self.content.pending = []  # the failed writeback: marked clean, never written; R is not told
            t1_failed.set()
            raise OSError(errno.EIO, "injected log sync failure")
        if self is b_log and state["r"]:
            state["r"] = False
            go_fail.set()  # T1's fdatasync fails now, after R wrote (and wrote again) what it syncs
            t1_failed.wait(10)
        real_sync(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", sync)
    real_end = WAL._end_slot

    def end_slot(self, shm_, slot, failed, salt, low):
        if self is a_wal and failed is not None:
            r_done.wait(2)  # T1 records its failure late: R's sync must have waited for it anyway
        return real_end(self, shm_, slot, failed, salt, low)

    monkeypatch.setattr(WAL, "_end_slot", end_slot)
    out = {}

    def run(name: str, fn) -> None:
        try:
            fn()
            out[name] = "acked"
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's
            out[name] = exc
        finally:
            if name == "r":
                r_done.set()

    t1 = threading.Thread(target=run, args=("t1", a._pager.sync))  # P's deferred group sync
    t1.start()
    assert t1_in.wait(10)
    failures = index.word(shm.FAILURES_OFFSET)

    def put() -> None:
        a[b"x"] = b"1"

    t2 = threading.Thread(target=run, args=("t2", put))  # P's next write: takes the turn, catches up
    t2.start()
    t2.join(3)  # it waits for T1's sync (the log's sync lock), or has counted T1's slot dead
    counted = index.word(shm.FAILURES_OFFSET) != failures
    t3 = threading.Thread(target=run, args=("r", b._pager.sync))  # R's deferred sync
    t3.start()
    for t in (t3, t1, t2):
        t.join(30)
        assert not t.is_alive()
    go_fail.set()
    assert isinstance(out["t1"], OSError), out
    acked = out["r"] == "acked"
    monkeypatch.undo()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        got = c.get(b"r")
        c.check()
    assert not (acked and got != b"1"), (
        f"R's acknowledged commit was lost (P's own running sync counted dead by its catch-up: {counted})")


def test_a_catch_up_never_counts_a_dead_slot_beside_its_own_processs_sync_bookkeeping(tmp_path, monkeypatch):
    """LOCK_SYNC is an fcntl lock of the shared index's one open file description, which never
    conflicts with itself: it keeps other processes out of a sync's bookkeeping, not this
    process's other threads. P's group-commit sync (T1) fails and records it (step 4: reads the
    unsynced word, then moves it down to its offset) while P's next write (T2) takes the turn
    and, catching up, counts a slot whose process died (its record from the log's header)
    the same way. Interleaved, T1's store lands last and the word says the log is unsynced only
    from T1's offset: the dead sync's lower offset is lost, and a writer's repair starts above
    frames it may have dropped. The dead slot must be counted after T1's bookkeeping, or left
    for a sync to count."""
    import errno
    import threading

    import faultfs
    from pagestore.shm import SharedIndex

    disk, path, a, b = _writers(tmp_path, keys=60)
    with a.transaction(sync=False) as t:
        t[b"p"] = b"1"
    with b.transaction(sync=False) as t:
        t[b"r"] = b"1"
    index = a._pager.sharing.index
    dead = shm.SLOTS - 1
    index.set_slot(dead, a._pager.wal.salt, 0)  # its process died in its sync, from the log's header
    a_log = a._pager.wal.file
    real_sync = faultfs.FaultFile.sync
    armed = [True]

    def sync(self) -> None:
        if self is a_log and armed[0]:
            armed[0] = False
            self.content.pending = []
            raise OSError(errno.EIO, "injected log sync failure")
        real_sync(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", sync)
    real_reset = SharedIndex.reset_unsynced
    t1_paused, t2_folded = threading.Event(), threading.Event()

    def reset_unsynced(self, salt: int, offset: int) -> None:
        if threading.current_thread().name == "t1":
            t1_paused.set()  # T1 has read the word, and is about to store its own offset
            t2_folded.wait(1.5)
        real_reset(self, salt, offset)

    monkeypatch.setattr(SharedIndex, "reset_unsynced", reset_unsynced)
    real_fold = SharedIndex.fold_dead

    def fold_dead(self, *args, **kwargs) -> bool:
        found = real_fold(self, *args, **kwargs)
        if threading.current_thread().name == "t2" and found:
            t2_folded.set()
        return found

    monkeypatch.setattr(SharedIndex, "fold_dead", fold_dead)
    out = {}

    def run(fn) -> None:
        try:
            fn()
            out[threading.current_thread().name] = "acked"
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's
            out[threading.current_thread().name] = exc

    def put() -> None:
        a[b"x"] = b"1"

    t1 = threading.Thread(target=run, args=(a._pager.sync,), name="t1")  # P's deferred group sync
    t1.start()
    assert t1_paused.wait(10)
    t2 = threading.Thread(target=run, args=(put,), name="t2")  # P's next write: takes the turn
    t2.start()
    for t in (t1, t2):
        t.join(30)
        assert not t.is_alive()
    assert isinstance(out["t1"], OSError), out
    word = index.unsynced()
    assert dead in index.busy_slots() or (word is not None and word[1] == 0), (
        f"the dead sync was counted, but the unsynced word says only from {word}")


def test_a_ctrl_c_as_a_sync_lets_lock_sync_go_never_leaves_it_held(tmp_path, monkeypatch):
    """A Ctrl-C (KeyboardInterrupt, raised between bytecodes) lands as a sync's bookkeeping lets
    LOCK_SYNC go (``finally: unlock_sync()``): the process goes on, idle, its store open. Every
    other process's sync takes LOCK_SYNC with F_OFD_SETLKW, without a timeout: left held, they
    would all wait until this one syncs again or closes. The lock must be let go whatever lands
    (``interrupts.run_through``), as a slot's is."""
    import threading

    disk, path, a, b = _writers(tmp_path, keys=20)
    real = shm.SharedIndex.unlock_sync
    armed = [True]

    def unlock_sync(self) -> None:
        if self is a._pager.sharing.index and armed[0]:
            armed[0] = False
            raise KeyboardInterrupt  # at the call's start: nothing let go yet
        real(self)

    monkeypatch.setattr(shm.SharedIndex, "unlock_sync", unlock_sync)
    with pytest.raises(KeyboardInterrupt):
        a[b"a"] = b"1"
    assert not armed[0]
    t, out = _in_thread(lambda: b.__setitem__(b"b", b"1"), "b")
    t.join(8)
    hung = t.is_alive()
    if hung:
        a.close()  # its descriptor closed: the lock goes, and B's put ends
        t.join(30)
    assert not hung, "another process's sync waits for LOCK_SYNC, which an interrupted sync left held"
    assert out["b"] == "acked", out


def _ride_setup(tmp_path, monkeypatch):
    """_ride_setup: a store whose last commit (sync=False) is published and not yet synced, and a
    sync of another process (its own open of the shared index: its own lock owner) in flight in
    a slot, begun after that commit was published (its *covers* word at the published end).
    Returns (db, its log, the other's index, its slot, the log's writes again)."""
    import pagestore
    from pagestore.shm import LOCK_SLOT, SharedIndex
    from pagestore.wal import FRAME_HEADER_SIZE, WAL

    rewrites: list = []
    real_rewrite = WAL._rewrite

    def rewrite(self, start: int, end: int) -> None:
        rewrites.append(start)
        real_rewrite(self, start, end)

    monkeypatch.setattr(WAL, "_rewrite", rewrite)
    db = pagestore.open(str(tmp_path / "ride.ps"), sync=False)
    db[b"base"] = b"0"
    db.sync()
    db[b"k"] = b"1"
    index, wal = db._pager.sharing.index, db._pager.wal
    assert not wal.synced_through(wal.append_count())
    other = SharedIndex(index.path, index.page_size, index.file_id)
    slot = (os.getpid() + 3) % shm.SLOTS
    assert other.try_lock(LOCK_SLOT + slot, exclusive=True)
    last = index.last_frame(wal.salt)
    assert last is not None
    published = last[0] + FRAME_HEADER_SIZE + last[1]
    assert published == wal.committed_end
    other.lock_sync()
    other.set_slot(slot, wal.salt, 32, published)  # its fsync will cover the put's frames
    other.unlock_sync()
    return db, wal, other, slot, rewrites


def _end_sync(index, slot: int, salt: int, *, failed: bool) -> None:
    """_end_sync ends the sync another process runs in ``slot`` of the shared index ``index`` as
    ``_sync_round``'s step 4 would: under LOCK_SYNC, a failure marks the log unsynced from offset
    32 and counts itself; the slot's record is cleared (its *covers* word with it) and let go."""
    index.lock_sync()
    if failed:
        index.mark_unsynced(salt, 32)
        index.bump(shm.FAILURES_OFFSET, 0)
    index.clear_slot(slot)
    index.unlock_sync()
    index.release_slot(slot)


def _in_thread(fn, name: str):
    """_in_thread starts ``fn`` on a thread of its own; returns the thread and a dict whose ``name``
    becomes "acked" when ``fn`` returns, or the exception it raised."""
    import threading

    out: dict = {}

    def run() -> None:
        try:
            fn()
            out[name] = "acked"
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's
            out[name] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _sync_in_thread(db):
    return _in_thread(db.sync, "sync")


def test_a_sync_covered_by_another_processs_sync_in_flight_waits_for_it_and_does_no_fsync_of_its_own(tmp_path, monkeypatch):
    """Group commit across processes (WAL._ride; docs/format.md "Unsynced", *covers*): a sync of
    another process, begun after this process's commit was published, is in flight; this
    process's sync waits for that one's outcome instead of an fsync of its own, and acknowledges
    once it ended well (its record cleared with *covers* kept). Before: an fsync of its own."""
    import time

    db, wal, other, slot, rewrites = _ride_setup(tmp_path, monkeypatch)
    try:
        syncs = wal.syncs
        t, out = _sync_in_thread(db)
        time.sleep(0.4)
        assert t.is_alive(), f"the sync did not wait for the one in flight: {out}"
        other.lock_sync()
        other.clear_slot(slot, synced=True)  # its fsync returned success
        other.unlock_sync()
        other.release_slot(slot)
        t.join(10)
        assert out["sync"] == "acked", out
        assert wal.syncs == syncs, "an fsync of its own, though a sync in flight covered its frames"
        assert wal.rides == 1 and not rewrites
        assert db._pager.sharing.index.settled()
    finally:
        other.close()
        db.close()


@pytest.mark.parametrize("how", ["failed", "interrupted", "died"])
def test_a_sync_that_rode_on_one_that_failed_or_died_acknowledges_only_after_its_own(tmp_path, monkeypatch, how):
    """The sync it waited for ends badly: its fsync failed (the unsynced word down to its offset,
    *failures* + 1, *covers* cleared with its record), a Ctrl-C cut it (record and *covers*
    cleared, nothing counted) or its process died in it (lock gone, record left). The rider
    never acknowledges on it: a round of its own, with an fsync (after writing the log again
    where a failure or a dead sync says), and only then."""
    import time

    db, wal, other, slot, rewrites = _ride_setup(tmp_path, monkeypatch)
    index = db._pager.sharing.index
    failures = index.word(shm.FAILURES_OFFSET)
    try:
        syncs = wal.syncs
        t, out = _sync_in_thread(db)
        time.sleep(0.3)
        assert t.is_alive(), f"the sync did not wait for the one in flight: {out}"
        if how == "died":
            other.close()  # its lock goes, its record stays
        else:
            _end_sync(other, slot, wal.salt, failed=how == "failed")
        t.join(10)
        assert out["sync"] == "acked", out
        # A dead one is found only after the round's own fsync (step 6): a second round writes again.
        assert wal.syncs == syncs + (2 if how == "died" else 1) and wal.rides == 0, \
            "acknowledged on a sync that did not end well"
        if how == "interrupted":
            assert not rewrites and index.word(shm.FAILURES_OFFSET) == failures
        else:
            assert rewrites and min(rewrites) <= 32, f"acknowledged without writing the log again: {rewrites}"
            assert index.word(shm.FAILURES_OFFSET) == failures + 1
        assert index.settled(), (index.unsynced(), index.busy_slots())
    finally:
        other.close()
        db.close()
    import pagestore

    with pagestore.open(str(tmp_path / "ride.ps")) as c:
        assert c[b"k"] == b"1" and c[b"base"] == b"0"
        c.check()


def test_a_rider_waits_for_every_sync_busy_beside_the_one_it_rode_on_and_a_failure_there_undoes_the_ride(tmp_path, monkeypatch):
    """The sync it rode on ended well, but another one, begun before that one's fsync returned,
    is still in flight (its failure could have dropped pages the first relied on: Linux marks
    them clean). The rider waits for it too (that sync's step 5, done for itself); it fails:
    no acknowledgement on the ride, a round of its own that writes the log again."""
    import time

    from pagestore.shm import LOCK_SLOT, SharedIndex

    db, wal, other, slot, rewrites = _ride_setup(tmp_path, monkeypatch)
    index = db._pager.sharing.index
    third = SharedIndex(index.path, index.page_size, index.file_id)
    k = (slot + 2) % shm.SLOTS
    try:
        assert third.try_lock(LOCK_SLOT + k, exclusive=True)
        third.lock_sync()
        third.set_slot(k, wal.salt, 32, 0)  # began before the put's commit: covers none of it
        third.unlock_sync()
        syncs = wal.syncs
        t, out = _sync_in_thread(db)
        time.sleep(0.3)
        other.lock_sync()
        other.clear_slot(slot, synced=True)
        other.unlock_sync()
        other.release_slot(slot)
        time.sleep(0.3)
        assert t.is_alive(), f"acknowledged while a sync beside the one it rode on ran: {out}"
        _end_sync(third, k, wal.salt, failed=True)
        t.join(10)
        assert out["sync"] == "acked", out
        assert wal.syncs == syncs + 1 and wal.rides == 0
        assert rewrites and min(rewrites) <= 32
        assert index.settled()
    finally:
        third.close()
        other.close()
        db.close()
