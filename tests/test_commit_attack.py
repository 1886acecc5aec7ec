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
