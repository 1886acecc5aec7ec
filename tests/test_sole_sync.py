"""Sole mode (docs/format.md, "Sole mode"; wal.py ``WAL._sync_alone``): the only writer with the
store open syncs its log holding LOCK_WRITERS exclusively, recording its sync in a slot with no
slot lock and no LOCK_SYNC. These tests check the switch between sole mode and the rounds, that
a failed fsync in sole mode poisons and marks the words as a round's does, and what a kill -9 at
each step leaves (the next open must count an unfinished sync as failed and lose no acknowledged
commit)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

import pagestore
from pagestore import fileio, shm
from pagestore.errors import StorePoisonedError
from pagestore.store import Store

import helpers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHILD = os.path.join(HERE, "multiproc_child.py")

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="no open-file-description locks")


def _wal(db):
    return db._pager.wal


def test_the_only_writer_syncs_in_sole_mode_without_lock_sync_or_a_slot_lock(tmp_path, monkeypatch):
    db = pagestore.open(str(tmp_path / "s.ps"), sync=True)
    db[b"a"] = b"1"
    from pagestore import wal as wallib

    modes = []
    real_round, real_ride = wallib.WAL._sync_round, wallib.WAL._ride
    monkeypatch.setattr(wallib.WAL, "_sync_round", lambda self, n, s, b, mode, *a, **k: (
        modes.append(mode), real_round(self, n, s, b, mode, *a, **k))[1])
    monkeypatch.setattr(wallib.WAL, "_ride", lambda self, *a: (modes.append("ride"), real_ride(self, *a))[1])
    before = _wal(db).sole_syncs
    for i in range(10):
        db[b"k%d" % i] = b"v"
    # (A checkpoint's restart of the log still runs a round: "reset".)
    assert _wal(db).sole_syncs == before + 10 and not {"sync", "ride"} & set(modes)
    index = db._pager.sharing.index
    assert not index.busy_slots() and index.unsynced() is None
    head = index.durable()
    assert head is not None and head == (_wal(db).salt, _wal(db).committed_end), "the durable word was not kept"
    db.close()


def test_a_second_writer_open_turns_sole_mode_off_and_its_close_back_on(tmp_path):
    from faultfs import Disk

    disk = Disk(str(tmp_path), seed=5)
    path = str(tmp_path / "f.ps")
    a = Store(path, _opener=disk.opener, sync=True)
    a[b"x"] = b"0"
    sole = _wal(a).sole_syncs
    assert sole > 0
    b = Store(path, _opener=disk.opener, sync=True, timeout=5)
    a[b"y"] = b"1"
    b[b"z"] = b"2"
    assert _wal(a).sole_syncs == sole and _wal(b).sole_syncs == 0, "a sync in sole mode beside another writer"
    assert _wal(a).syncs + _wal(a).shared_syncs + _wal(a).rides > sole
    b.close()
    a[b"w"] = b"3"
    assert _wal(a).sole_syncs == sole + 1
    a.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert dict(c.items()) == {b"x": b"0", b"y": b"1", b"z": b"2", b"w": b"3"}
        c.check()


def test_a_failed_fsync_in_sole_mode_poisons_and_marks_the_words_as_a_round_does(tmp_path, monkeypatch):
    from faultfs import Disk

    disk = Disk(str(tmp_path), seed=7)
    path = str(tmp_path / "f.ps")
    db = Store(path, _opener=disk.opener, sync=True)
    for i in range(5):
        db[b"k%d" % i] = b"v%d" % i
    wal = _wal(db)
    assert wal.sole_syncs >= 5
    index = db._pager.sharing.index
    failures = index.word(shm.FAILURES_OFFSET)
    durable_end = wal.committed_end
    in_sync, release, armed = helpers.block_then_fail_log_sync(monkeypatch)
    release.set()
    armed["on"] = True
    with pytest.raises(OSError, match="injected sync failure"):
        db[b"lost"] = b"?"
    assert in_sync.is_set()
    assert index.word(shm.FAILURES_OFFSET) == failures + 1
    assert index.unsynced() == (wal.salt, durable_end), "the next sync must write again from the durable end"
    assert not index.busy_slots()
    with pytest.raises(StorePoisonedError):
        db[b"after"] = b"x"
    armed["restore"]()
    db.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as again:
        got = dict(again.items())
        again.check()
    assert all(got[b"k%d" % i] == b"v%d" % i for i in range(5)), "an acknowledged commit was lost"
    assert b"after" not in got


_OPENER = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
import pagestore
print("OPENING", flush=True)
db = pagestore.open(sys.argv[1], sync=True, timeout=20)
print("START", flush=True)
db[b"second"] = b"2"
print("PUT", flush=True)
sys.stdin.readline()
db.close()
"""


def test_a_writer_opening_during_a_sole_sync_waits_for_it_then_both_sync_in_rounds(tmp_path, monkeypatch):
    """A's sync runs in sole mode (slowed here); writer B opens meanwhile in another process. B's open
    waits until A's sync has ended (LOCK_WRITERS), so it never sees that sync in flight; then A's
    next sync, with B open, runs in rounds, and both commits are there."""
    path = str(tmp_path / "s.ps")
    db = pagestore.open(path, sync=True)
    db[b"first"] = b"1"
    in_sync, release = threading.Event(), threading.Event()
    real = fileio.File.sync

    def slow(self):
        if self.path.endswith("-wal") and not release.is_set():
            in_sync.set()
            assert release.wait(30)
        real(self)

    monkeypatch.setattr(fileio.File, "sync", slow)
    t = threading.Thread(target=db.__setitem__, args=(b"slow", b"s"))
    t.start()
    b = None
    try:
        assert in_sync.wait(10)
        sole = _wal(db).sole_syncs
        b = subprocess.Popen([sys.executable, "-c", _OPENER, path, ROOT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert b.stdout.readline().startswith("OPENING")
        time.sleep(1.0)
        assert b.poll() is None
        # B is stuck in its open: START comes only after A's sync ends.
        import select
        assert not select.select([b.stdout], [], [], 0.5)[0], "B opened while A's sole sync ran"
        release.set()
        t.join(10)
        assert _wal(db).sole_syncs == sole + 1
        assert b.stdout.readline().startswith("START")
        assert b.stdout.readline().startswith("PUT")
        db[b"third"] = b"3"
        assert _wal(db).sole_syncs == sole + 1, "a sync in sole mode while B has the store open"
        b.stdin.write("\n")
        b.stdin.flush()
        assert b.wait(30) == 0, b.stderr.read()
    finally:
        release.set()
        t.join(10)
        if b is not None and b.poll() is None:
            b.kill()
            b.wait(10)
    db.close()
    with pagestore.open(path) as c:
        assert {k: c[k] for k in (b"first", b"slow", b"second", b"third")} == {
            b"first": b"1", b"slow": b"s", b"second": b"2", b"third": b"3"}
        c.check()


_KILLER = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import errno
import pagestore
from pagestore import fileio, shm
stage = sys.argv[3]
db = pagestore.open(sys.argv[1], sync=True)
for i in range(20):
    db[b"acked%02d" % i] = b"v%d" % i
    print("ACK", i, flush=True)
assert db._pager.wal.sole_syncs >= 20

def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)

real_sync = fileio.File.sync
def sync(self):
    if self.path.endswith("-wal"):
        if stage == "in_fsync":
            die()
        if stage == "fsync_fails":
            raise OSError(errno.EIO, "injected")
    real_sync(self)
fileio.File.sync = sync
if stage == "before_record":
    shm.SharedIndex.begin_alone = die  # S2-S3: the words read, then the record (``set_slot`` inline) set
elif stage == "after_fsync":
    shm.SharedIndex.end_alone = die
elif stage == "after_clear":
    shm.SharedIndex.set_durable = die  # in end_alone, after the record is cleared
elif stage == "fsync_fails":
    shm.SharedIndex.bump = die  # between the unsynced word and the failure count
elif stage == "before_leave":
    import pagestore.shm as s
    s.DataLock.end_sole = die
db[b"last"] = b"x"
print("NEVER", flush=True)
"""


@pytest.mark.parametrize("stage, counted", [("before_record", False), ("in_fsync", True), ("after_fsync", True),
                                            ("after_clear", False), ("fsync_fails", True),
                                            ("before_leave", False)])
def test_a_sole_writer_killed_at_each_step_loses_no_acknowledged_commit(tmp_path, stage, counted):
    """A kill -9 at each step of a sync in sole mode: between S1 and S3 (before the record), in the
    fsync, after it before the record is cleared, after it is cleared, in a failure's bookkeeping,
    and before LOCK_WRITERS goes back to shared. The next writer opens (the dead process's locks
    are gone), counts a record left set as a failed sync (failures + 1; the log written again),
    and finds every acknowledged commit and a clean store."""
    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"seed"] = b"0"
    probe = pagestore.open(path, readonly=True)
    index = probe._pager.sharing.index
    failures = index.word(shm.FAILURES_OFFSET)
    p = subprocess.run([sys.executable, "-c", _KILLER, path, ROOT, stage], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == -9, p.stderr[-2000:]
    acked = [ln for ln in p.stdout.splitlines() if ln.startswith("ACK")]
    assert len(acked) == 20 and "NEVER" not in p.stdout
    assert bool(index.busy_slots()) == counted, "the record a kill at this step leaves"
    with pagestore.open(path) as c:
        assert index.word(shm.FAILURES_OFFSET) == failures + (1 if counted else 0)
        assert index.unsynced() is None and not index.busy_slots()
        for i in range(20):
            assert c[b"acked%02d" % i] == b"v%d" % i
        c.check()
        c[b"after"] = b"1"
    probe.close()
    with pagestore.open(path) as c:
        assert c[b"after"] == b"1"
