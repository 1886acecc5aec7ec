"""Readers in other processes beside a writer (issue 13), tested with real processes.

The other processes run tests/readers_child.py: a reader or writer driven one
command at a time (``Peer``), the bank's writer, and the bank's readers.
Nothing here forks a process that has a store open: every process is a fresh
interpreter (subprocess); only the fork test forks, inside such a child.

What is promised, and tested here:
- ``open(path, readonly=True)`` succeeds beside a writer in another process;
  each read operation sees the latest commit at its start, whole; a
  snapshot, or an iteration, sees the commit at its start and nothing later.
- A second writer takes turns with the first (issue 26).
- Read marks: a checkpoint copies nothing past the oldest, and the log
  restarts only when no reader needs it; a reader killed with SIGKILL
  releases its marks, so the log shrinks again. Readers that never pause do
  not keep it growing.
- A writer killed with SIGKILL loses no acknowledged commit, and its readers
  read on (never seeing an older commit than one they saw).
- The writer leaving leaves the log for its readers; a reader deletes nothing.
- The CLI's read-only commands work on a store open for writing elsewhere.
- Two opens in one process, and fork: one's close keeps the other's marks; a
  reader used in a forked child raises, and its parent's snapshot still holds.

Slow variants (``-m slow``): the bank for 60 s with 4 readers, 40 writer kills.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import pagestore
import readers_child as rc
from helpers import fill
import pagestore.errors
from pagestore.errors import PageStoreError, StoreLockedError
from pagestore.store import Store

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CHILD = os.path.join(HERE, "readers_child.py")
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
WAL_LIMIT = 64 * 1024
TIMEOUT = 60.0


def child(*args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, CHILD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=stderr, env=ENV, text=True, bufsize=1)


class Lines:
    """Lines collects a child's stdout lines in a thread, so a test can wait for one with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self.all: List[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut short by a kill does not count
                self.all.append(line.rstrip("\n"))
                self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, timeout: float = TIMEOUT) -> str:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from the child within {timeout} s; so far: {self.all[-5:]}") from None
        if line is None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the child ended (rc {self.proc.wait()}): {err}")
        return line

    def wait_for(self, prefix: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.1, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line


class Peer:
    """Peer is a store open in another process (readers_child.py serve), driven one command at a time."""

    def __init__(self, path: str, *, readonly: bool = True, mmap: bool = True, wal_limit: int = WAL_LIMIT) -> None:
        args = ["serve", path, "--wal-limit", str(wal_limit)]
        if readonly:
            args.append("--readonly")
        if not mmap:
            args.append("--no-mmap")
        self.proc = child(*args)
        self.lines = Lines(self.proc)
        self.opened = json.loads(self.lines.next())

    @property
    def error(self) -> Optional[str]:
        """error: the exception's class name if the open failed, else None."""
        return self.opened.get("error")

    def call(self, op: str, **kw: Any) -> Any:
        """call runs one command in the peer and returns its result; an exception there fails here."""
        reply = self.ask(op, **kw)
        assert "ok" in reply, f"{op}: {reply}"
        return reply["ok"]

    def ask(self, op: str, **kw: Any) -> Dict[str, Any]:
        assert self.error is None, f"the peer did not open the store: {self.opened}"
        assert self.proc.stdin is not None
        for name in ("key", "value"):
            if name in kw:
                kw[name] = kw[name].hex()
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        reply: Dict[str, Any] = json.loads(self.lines.next())
        return reply

    def get(self, key: bytes, snap: Optional[int] = None) -> Optional[bytes]:
        kw: Dict[str, Any] = {"key": key}
        if snap is not None:
            kw["snap"] = snap
        value = self.call("get", **kw)
        return None if value is None else bytes.fromhex(value)

    def items(self, snap: Optional[int] = None) -> Dict[bytes, bytes]:
        got = self.call("items", **({} if snap is None else {"snap": snap}))
        return {bytes.fromhex(k): bytes.fromhex(v) for k, v in got}

    def exit(self) -> int:
        if self.proc.poll() is None:
            self.call("exit")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        return self.proc.wait(TIMEOUT)

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(TIMEOUT)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:  # a write the dead child never read
                    pass


@pytest.fixture
def peers():
    """peers: a list the test appends its Peer objects to; every one still running is killed at the end."""
    started: List[Peer] = []
    yield started
    for p in started:
        p.cleanup()


@pytest.fixture
def procs():
    """procs: the same for bare subprocesses."""
    started: List[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(TIMEOUT)
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


def _unpadded(items: Dict[bytes, bytes]) -> Dict[bytes, bytes]:
    return {k: v for k, v in items.items() if not k.startswith(b"~pad")}


def log_size(db: Store) -> int:
    return int(db.stats()["log_size"])


# ---- b: a reader beside a writer sees each commit whole, a snapshot sees its own ----


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "no-mmap"])
def test_reader_beside_writer_sees_new_commits_and_snapshots_do_not(tmp_path, peers, mmap):
    path = str(tmp_path / "db")
    with Store(path, wal_limit=WAL_LIMIT, sync=False) as db:
        db.update({b"a": b"1", b"m": b"middle"})
        r = Peer(path, readonly=True, mmap=mmap)
        peers.append(r)
        assert r.error is None, r.opened
        assert r.get(b"a") == b"1" and r.call("len") == 2
        pads = _restart(db)  # the reader holds no mark between its reads: the log may restart
        assert r.call("len") == 2 + pads
        snap = r.call("snap")
        it, k0, v0 = r.call("iter_start")  # an iteration half done holds its snapshot too
        assert (bytes.fromhex(k0), bytes.fromhex(v0)) == (b"a", b"1")

        with db.transaction() as t:  # one commit, several changes
            t[b"a"] = b"2"
            t[b"z"] = b"new"
            del t[b"m"]
        # every kind of read sees the new commit, whole
        assert r.get(b"a") == b"2"
        assert r.call("getitem", key=b"z") == b"new".hex()
        assert r.call("contains", key=b"z") is True and r.call("contains", key=b"m") is False
        assert r.call("len") == 2 + pads
        assert r.call("first") == [b"a".hex(), b"2".hex()]
        assert r.call("last") == [(b"~pad%04d" % (pads - 1)).hex(), bytes(3000).hex()]
        assert r.call("get_many", keys=[b"a".hex(), b"m".hex(), b"z".hex()]) == [b"2".hex(), None, b"new".hex()]
        assert _unpadded(r.items()) == {b"a": b"2", b"z": b"new"}
        # the snapshot taken before, and the iteration begun before, do not
        assert r.get(b"a", snap) == b"1" and r.get(b"z", snap) is None and r.get(b"m", snap) == b"middle"
        assert r.call("len", snap=snap) == 2 + pads and r.call("contains", key=b"z", snap=snap) is False
        assert _unpadded(r.items(snap)) == {b"a": b"1", b"m": b"middle"}
        rest = [[bytes.fromhex(k), bytes.fromhex(v)] for k, v in r.call("iter_rest", iter=it)]
        assert rest == [[b"m", b"middle"]] + [[b"~pad%04d" % i, bytes(3000)] for i in range(pads)]

        # and a snapshot taken now sees this commit until it closes, not the next
        snap2 = r.call("snap")
        for i in range(30):  # enough to pass the writer's checkpoint threshold, were nothing held
            db[b"x%02d" % i] = bytes(2000)
        assert _unpadded(r.items(snap2)) == {b"a": b"2", b"z": b"new"}
        assert r.get(b"a", snap) == b"1"
        assert r.call("len") == 32 + pads
        r.call("close_snap", snap=snap)
        r.call("close_snap", snap=snap2)
        db[b"a"] = b"3"
        assert r.get(b"a") == b"3"
        # the reader cannot write
        reply = r.ask("put", key=b"q", value=b"1")
        assert reply.get("error") == "ReadOnlyError", reply
        assert b"q" not in db
        assert r.exit() == 0
        db.check()


def test_reader_opened_first_then_a_writer_opens(tmp_path, peers):
    """A reader does not keep a writer out: a writer opening after it succeeds, and the reader sees its commits."""
    path = str(tmp_path / "db")
    with Store(path) as db:
        db[b"k"] = b"old"
    r = Peer(path, readonly=True)
    peers.append(r)
    assert r.error is None, r.opened
    snap = r.call("snap")
    with Store(path, wal_limit=WAL_LIMIT) as db:
        assert db[b"k"] == b"old"
        db[b"k"] = b"new"
        assert r.get(b"k") == b"new"
        assert r.get(b"k", snap) == b"old"
        db.check()
    assert r.get(b"k") == b"new"  # the writer has gone: the reader reads on
    assert r.call("check")["records"] == 1  # and what it reads is sound
    assert r.exit() == 0


# ---- c: one writer at a time ----


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_second_writer_takes_turns_with_the_first(tmp_path, peers, how):
    """Writers in several processes take turns (issue 26; it was one writer at a time)."""
    path = str(tmp_path / "db")
    w = Peer(path, readonly=False)
    peers.append(w)
    assert w.error is None, w.opened
    w.call("put", key=b"k", value=b"v")
    with pagestore.open(path) as db:  # a second writer, in this process
        assert db[b"k"] == b"v"
        db[b"k"] = b"v1"
    w2 = Peer(path, readonly=False)  # and in another
    peers.append(w2)
    assert w2.error is None, w2.opened
    assert w2.get(b"k") == b"v1"
    w2.call("put", key=b"k", value=b"v2")
    assert w.get(b"k") == b"v2"
    # a reader is still welcome beside them
    with pagestore.open(path, readonly=True) as r:
        assert r[b"k"] == b"v2"
    if how == "exit":
        w.call("close")
        assert w.exit() == 0
    else:
        assert w.kill() == -signal.SIGKILL
    w2.call("put", key=b"k3", value=b"v3")  # the first writer has gone: the other goes on
    w2.call("close")
    assert w2.exit() == 0
    with pagestore.open(path) as db:
        assert db[b"k"] == b"v2" and db[b"k3"] == b"v3"
        db[b"k2"] = b"v2"
        db.check()


# ---- d, e: read marks bound the log, and die with their process ----


def _fill(db: Store, n: int, tag: bytes) -> None:
    fill(db, n, lambda i: bytes([i % 256]) * 1500, key=tag.replace(b"%", b"%%") + b"%04d", one_commit=False)


def _restart(db: Store) -> int:
    """_restart commits (keys ``~pad...``) until a commit checkpoints and restarts the log; returns how many.

    Then every page is in the data file and the log is empty, so a snapshot
    taken next reads the data file: a checkpoint that copied a newer image over
    a page it reads (past its read mark) would show.
    """
    for i in range(200):
        before = log_size(db)
        db[b"~pad%04d" % i] = bytes(3000)
        if log_size(db) < before:
            assert log_size(db) <= 4096, log_size(db)
            return i + 1
    raise AssertionError(f"the log never restarted: {log_size(db)} bytes")


def _shrinks(db: Store, held: int, tag: bytes) -> int:
    """_shrinks makes one commit, after which the log must have restarted; returns its size then.

    The first write after the last reader let go checkpoints and restarts the log
    (docs/api.md). It took up to a quarter of the threshold more log before (issue 20).
    """
    db[b"%s0000" % tag] = b"after"
    size = log_size(db)
    assert size < held // 2 and size <= WAL_LIMIT, f"the log did not shrink: {size} bytes, {held} while held"
    return size


def test_killed_reader_releases_its_snapshot(tmp_path, peers):
    path = str(tmp_path / "db")
    with Store(path, wal_limit=WAL_LIMIT, sync=False) as db:
        db[b"k"] = b"before"
        _fill(db, 60, b"a")
        free = log_size(db)
        assert free <= WAL_LIMIT  # no reader: the log checkpoints and restarts on its own
        r = Peer(path, readonly=True)
        peers.append(r)
        _restart(db)
        snap = r.call("snap")
        db[b"k"] = b"after"
        _fill(db, 120, b"b")
        held = log_size(db)
        assert held > 2 * WAL_LIMIT, f"the log did not grow while a snapshot was held: {held}"
        st = db.stats()
        # the writer sees the reader's mark, and copied nothing into the data file past it
        assert st["oldest_mark"] is not None and st["backfilled_frames"] <= st["oldest_mark"] < st["log_frames"], st
        assert r.get(b"k", snap) == b"before"  # the snapshot is real, and still readable
        assert r.get(b"k") == b"after"
        assert r.kill() == -signal.SIGKILL
        assert db.stats()["oldest_mark"] is None  # the kernel dropped its locks
        size = _shrinks(db, held, b"c")
        assert size < held
        db.check()
        n = len(db)
    with Store(path) as db:
        assert db[b"k"] == b"after" and len(db) == n
        db.check()


@pytest.mark.parametrize("how", ["close", "iteration", "exit"])
def test_log_grows_while_a_snapshot_is_held_and_shrinks_after(tmp_path, peers, how):
    path = str(tmp_path / "db")
    with Store(path, wal_limit=WAL_LIMIT, sync=False) as db:
        db[b"k"] = b"0"
        r = Peer(path, readonly=True, mmap=how != "iteration")
        peers.append(r)
        _restart(db)
        if how == "iteration":
            at_start = [[k.hex(), v.hex()] for k, v in db.items()]
            it, k0, v0 = r.call("iter_start")
            assert [k0, v0] == at_start[0]
        else:
            snap = r.call("snap")
            before = r.items(snap)
        pads = [k for k in db.keys(prefix=b"~pad")]
        db[b"k"] = b"1"  # change what the reader reads: its snapshot must not see it
        for k in pads:
            db[k] = b"changed"
        sizes = []
        for round in range(4):
            _fill(db, 40, b"r%d-" % round)
            sizes.append(log_size(db))
        assert sizes == sorted(sizes) and sizes[-1] > 3 * WAL_LIMIT, sizes  # it only grows, past the limit
        if how != "iteration":
            assert r.get(b"k", snap) == b"0" and r.items(snap) == before
            assert r.get(b"k") == b"1"
        if how == "close":
            r.call("close_snap", snap=snap)
        elif how == "iteration":
            rest = r.call("iter_rest", iter=it)  # the iteration ends: its snapshot with it
            assert rest == at_start[1:]  # the store as it began, none of the commits since
        else:
            assert r.exit() == 0
        size = _shrinks(db, sizes[-1], b"after")
        if how != "exit":
            # the reader, still open, reads the newest commit
            assert r.get(b"after0000") == b"after"
            assert r.call("len") == len(db)
        db.check()


# ---- a: the bank ----


def run_bank(tmp_path, procs, *, seconds: float, nreaders: int, nacc: int = 100, pause: bool = True,
             wal_limit: int = WAL_LIMIT) -> Dict[str, Any]:
    path = str(tmp_path / "bank")
    total = rc.bank_create(path, nacc, 1000)
    writer = child("bank-writer", path, str(nacc), "1", "--wal-limit", str(wal_limit), "--seconds", str(int(seconds + 2)))
    procs.append(writer)
    wlines = Lines(writer)
    start = wlines.wait_for("START")
    assert start == "START 0"
    wlines.wait_for("ACK")  # the writer is under way
    modes = ["mmap", "no-mmap"]
    readers = [child("bank-reader", path, str(nacc), str(total), str(seconds), modes[i % 2], *([] if pause else ["--no-pause"]))
               for i in range(nreaders)]
    procs.extend(readers)
    results = []
    for p in readers:
        out, err = p.communicate(timeout=seconds + TIMEOUT)
        assert p.returncode == 0, err
        lines = out.splitlines()
        assert lines[0] == "OPEN", out + err
        results.append(json.loads(lines[-1]))
    done = wlines.wait_for("DONE", timeout=seconds + TIMEOUT)
    assert writer.wait(TIMEOUT) == 0
    last = int(done.split()[1])
    logs = [int(x.split()[2]) for x in wlines.all if x.startswith("LOG")]
    # the writer checkpointed and restarted its log while the readers read
    drops = [i for i, (a, b) in enumerate(zip(logs, logs[1:])) if b < a]
    restarts = len(drops)
    grown = logs[0] + sum(b - a for a, b in zip(logs, logs[1:]) if b > a)  # what was logged in all
    for res in results:
        assert res["errors"] == [], res["errors"][0]
        assert res["bad"] == [], res["bad"]
        assert res["backwards"] == [], res["backwards"]
        assert all(res["ways"].get(str(w), 0) > 0 for w in range(4)), res["ways"]
        # the readers overlapped the writer: they saw it move on, several times
        assert len(res["counters"]) >= 3, res["counters"]
        assert res["counters"][-1] <= last
    with Store(path, create=False) as db:
        db.check()
        assert rc.balance(db[rc.COUNTER]) == last
        assert sum(rc.balance(db[rc.acct(i)]) for i in range(nacc)) == total
        assert all(rc.MARK % n in db for n in range(1, last + 1))
    return {"commits": last, "rounds": [r["rounds"] for r in results], "states": [len(r["counters"]) for r in results],
            "log_restarts": restarts, "log_largest": max(logs), "logged": grown,
            "restarts_by_half": [sum(1 for i in drops if i < len(logs) // 2), sum(1 for i in drops if i >= len(logs) // 2)]}


def test_bank_every_sum_is_the_total(tmp_path, procs):
    stats = run_bank(tmp_path, procs, seconds=4, nreaders=3)
    print(f"\nbank: {stats}")
    assert stats["commits"] > 10


def test_readers_that_never_pause_do_not_keep_the_log_growing(tmp_path, procs):
    """Reads back to back, none of them behind: the writer still restarts its log (LOCK_READ0).

    Each read begins on the newest commit; a checkpoint after a commit finds
    reads begun before it, but before its next write those are over and new
    reads read the data file alone.
    """
    stats = run_bank(tmp_path, procs, seconds=3, nreaders=2, pause=False)
    print(f"\nbank, readers without pause: {stats}")
    # Before LOCK_READ0 the log never restarted while they read (62 MB in 4 s,
    # all that was logged). Now it restarts all along the run; between
    # restarts it grows while reads on the log overlap one another (these
    # last milliseconds: up to a third of what was logged, 33 MB of 95, seen on
    # a quiet machine; on a 2-core machine at load 6, readers descheduled in
    # the middle of their reads held the log for longer: 7.3 MB of 10.5).
    # Without LOCK_READ0 the log is all that was logged (log_largest == logged).
    assert min(stats["restarts_by_half"]) >= 1, stats
    assert stats["log_largest"] < stats["logged"] * 0.85, stats


def test_bank_with_the_log_restarting_at_every_commit(tmp_path, procs):
    """A tiny log limit: the writer restarts its log whenever it can, and its readers all start again together.

    The readers come out of their common quiet time at once, while the writer
    restarts its log: a reader that locked its mark without reading the
    header again after (so that a restart in between went unseen) failed this
    in 3 runs of 4, on a copy of the core with that re-read removed.
    """
    stats = run_bank(tmp_path, procs, seconds=3, nreaders=3, nacc=30, wal_limit=4096)
    print(f"\nbank, log restarting at every commit: {stats}")
    assert stats["log_restarts"] >= 10, stats


@pytest.mark.slow
def test_bank_long(tmp_path, procs):
    stats = run_bank(tmp_path, procs, seconds=60, nreaders=4, nacc=200)
    print(f"\nbank long: {stats}")
    assert stats["commits"] > 100


# ---- d: the writer, and readers, killed with SIGKILL while readers read ----


def kill_writer_loop(tmp_path, procs, *, rounds: int, nacc: int = 10, seed: int = 0) -> Dict[str, Any]:
    path = str(tmp_path / "bank")
    total = rc.bank_create(path, nacc, 1000)
    rng = random.Random(seed)
    seconds = rounds * 2.0 + 2
    readers = [child("bank-reader", path, str(nacc), str(total), str(seconds), mode) for mode in ("mmap", "no-mmap")]
    procs.extend(readers)
    for p in readers:
        assert p.stdout is not None and p.stdout.readline() == "OPEN\n"
    last = 0
    acks = 0
    for _ in range(rounds):
        writer = child("bank-writer", path, str(nacc), str(seed), "--wal-limit", str(WAL_LIMIT), "--sync")
        procs.append(writer)
        lines = Lines(writer)
        start = int(lines.wait_for("START").split()[1])
        assert start == last, f"the writer starts from commit {start}, the last verified was {last}"
        # a reader killed in the middle of its reads: its marks must go with it
        victim = child("bank-reader", path, str(nacc), str(total), "60", rng.choice(("mmap", "no-mmap")))
        procs.append(victim)
        Lines(victim).wait_for("OPEN")
        time.sleep(rng.uniform(0.02, 0.5))
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(TIMEOUT) == -signal.SIGKILL
        time.sleep(rng.uniform(0.02, 0.5))
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(TIMEOUT) == -signal.SIGKILL
        lines.thread.join(TIMEOUT)
        ack = max([int(x.split()[1]) for x in lines.all if x.startswith("ACK")], default=start)
        acks += ack - start
        # reopen as the writer, readers still reading: recovered, whole, nothing acknowledged lost
        with Store(path, create=False, wal_limit=WAL_LIMIT) as db:
            db.check()
            n = rc.balance(db[rc.COUNTER])
            assert ack <= n <= ack + 1, f"the store holds commit {n}, the last acknowledged was {ack}"
            assert sum(rc.balance(db[rc.acct(i)]) for i in range(nacc)) == total
            missing = [m for m in range(1, n + 1) if rc.MARK % m not in db]
            assert missing == [], f"acknowledged commits lost: {missing[:10]}"
            assert rc.MARK % (n + 1) not in db
        last = n
    for p in readers:
        out, err = p.communicate(timeout=seconds + TIMEOUT)
        assert p.returncode == 0, err
        res = json.loads(out.splitlines()[-1])
        assert res["errors"] == [], res["errors"][0]
        assert res["bad"] == [], res["bad"]
        assert res["backwards"] == [], res["backwards"]  # not even across a writer's crash and recovery
        assert res["counters"] and res["counters"][-1] <= last
    # every reader gone, the killed ones too: the log restarts again
    with Store(path, create=False, wal_limit=WAL_LIMIT) as db:
        _restart(db)
        db.check()
    return {"rounds": rounds, "acks": acks, "last": last}


def test_writer_and_readers_killed_at_random_points(tmp_path, procs):
    stats = kill_writer_loop(tmp_path, procs, rounds=3, seed=13)
    print(f"\nwriter kills: {stats}")
    assert stats["acks"] > 0


@pytest.mark.slow
def test_writer_killed_at_random_points_long(tmp_path, procs):
    stats = kill_writer_loop(tmp_path, procs, rounds=40, seed=1313)
    print(f"\nwriter kills (long): {stats}")
    assert stats["acks"] > 0


# ---- the writer leaves; readers stay; the next writer recovers ----


def test_writer_closing_leaves_the_log_for_readers(tmp_path, peers):
    path = str(tmp_path / "db")
    w = Peer(path, readonly=False, wal_limit=16 * 1024 * 1024)  # a large limit: the commits stay in the log
    peers.append(w)
    want = {b"k%03d" % i: b"v%d" % i * 50 for i in range(100)}
    for k, v in want.items():
        w.call("put", key=k, value=v)
    readers = [Peer(path, readonly=True, mmap=m) for m in (True, False)]
    peers.extend(readers)
    snap = readers[0].call("snap")
    w.call("put", key=b"late", value=b"1")
    w.call("close")
    assert w.exit() == 0
    for r in readers:
        assert r.error is None, r.opened
        assert r.items() == {**want, b"late": b"1"}
    assert readers[0].items(snap) == want
    files = sorted(os.listdir(tmp_path))
    readers[0].call("close")
    assert readers[0].exit() == 0
    assert readers[1].get(b"late") == b"1"  # one reader leaving takes nothing from the other
    assert readers[1].exit() == 0  # the last one out, leaving without close()
    assert sorted(os.listdir(tmp_path)) == files  # a reader deletes nothing
    with Store(path, create=False) as db:  # the next writer recovers
        db.check()
        assert dict(db.items()) == {**want, b"late": b"1"}


# ---- f: the CLI's read-only commands on a store open for writing ----


def cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pagestore", *args], capture_output=True, timeout=120, env=ENV)
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert proc.returncode == 0, f"{args[0]}: exit {proc.returncode}: {err}"
    return proc


def dumped(proc: subprocess.CompletedProcess) -> Dict[bytes, bytes]:
    out = {}
    for line in proc.stdout.decode().splitlines():
        rec = json.loads(line)
        out[base64.b64decode(rec["k"])] = base64.b64decode(rec["v"])
    return out


def test_cli_read_only_commands_beside_a_writer(tmp_path):
    path = str(tmp_path / "data.ps")
    rng = random.Random(3)
    want = {b"key%04d" % i: rng.randbytes(rng.choice((0, 10, 300, 5000))) for i in range(300)}
    with Store(path, page_size=1024) as db:  # the default limit: every commit stays in the log
        with db.transaction() as t:
            for k, v in want.items():
                t[k] = v
        del db[b"key0000"]
        del want[b"key0000"]
        assert log_size(db) > 0

        stats = json.loads(cli("stats", path, "--json").stdout)
        assert stats["records"] == len(want)
        assert cli("stats", path).stdout.decode().splitlines()[0].split()[-1] == path
        check = cli("check", path)
        assert b"OK" in check.stdout and b"%d records" % len(want) in check.stdout.replace(b",", b"")
        assert json.loads(cli("check", path, "--json").stdout)["ok"] is True
        assert b"root page" in cli("inspect", path).stdout
        summary = json.loads(cli("inspect", path, "--json").stdout)
        assert summary["header"]["record_count"] == len(want)  # the last commit's header, read through the log
        assert b"record_count" in cli("inspect", path, "--page", "0").stdout
        assert dumped(cli("dump", path)) == want
        assert cli("get", path, b"key0001".hex(), "--hex").stdout.decode().strip() == want[b"key0001"].hex()
        scan = cli("scan", path, "--keys-only", "--prefix", "key01").stdout.decode().split()
        assert scan == sorted(k.decode() for k in want if k.startswith(b"key01"))
        dest = str(tmp_path / "copy.ps")
        cli("backup", path, dest)
        with Store(dest, create=False, readonly=True) as copy:
            copy.check()
            assert dict(copy.items()) == want

        # the next commit is seen by the next command; an open transaction's writes are not
        db[b"key0001"] = b"changed"
        want[b"key0001"] = b"changed"
        with db.transaction() as t:
            t[b"pending"] = b"x"  # buffered, not committed
            assert dumped(cli("dump", path)) == want
            assert cli("get", path, "key0001").stdout == b"changed\n"
        assert b"pending" in db
        db.check()


def test_cli_stats_beside_a_writer_reports_its_log(tmp_path):
    path = str(tmp_path / "data.ps")
    with Store(path) as db:  # the default limit: every commit stays in the log
        for i in range(50):
            db[b"k%03d" % i] = bytes(1000)
        stats = json.loads(cli("stats", path, "--json").stdout)
        assert stats["log_size"] == log_size(db) > 0
        assert stats["wal_size"] == os.path.getsize(path + "-wal") >= stats["log_size"], stats
        with pagestore.open(path, readonly=True) as r:  # the same from the library, in this process
            assert r.stats()["wal_size"] == os.path.getsize(path + "-wal")
        text = cli("stats", path).stdout.decode()
        assert "log size        0 B" not in text, text


def test_cli_beside_a_busy_writer_sees_whole_commits(tmp_path, procs):
    path = str(tmp_path / "bank")
    nacc = 20
    total = rc.bank_create(path, nacc, 1000)
    writer = child("bank-writer", path, str(nacc), "2", "--wal-limit", str(WAL_LIMIT), "--seconds", "30")
    procs.append(writer)
    lines = Lines(writer)
    lines.wait_for("ACK")
    counters = set()
    for _ in range(3):
        recs = dumped(cli("dump", path))
        assert sum(rc.balance(v) for k, v in recs.items() if k.startswith(b"acct/")) == total
        counters.add(rc.balance(recs[rc.COUNTER]))
        assert b"OK" in cli("check", path).stdout
        assert json.loads(cli("stats", path, "--json").stdout)["records"] >= nacc + 1
    dest = str(tmp_path / "copy")
    cli("backup", path, dest)
    with Store(dest, create=False, readonly=True) as copy:
        copy.check()
        assert sum(rc.balance(copy[rc.acct(i)]) for i in range(nacc)) == total
    assert len(counters) >= 2, counters  # the writer moved on between the dumps
    writer.kill()


# ---- one process, several opens; fork (g) ----


def test_closing_one_reader_keeps_the_marks_of_another_in_the_same_process(tmp_path, peers):
    """POSIX drops every fcntl lock a process holds on a file when it closes ANY descriptor of that file.

    Two readonly opens of one store in this process: closing the second must
    not release the first one's read mark, or the writer would restart the log
    under its snapshot.
    """
    path = str(tmp_path / "db")
    w = Peer(path, readonly=False)
    peers.append(w)
    w.call("put", key=b"k", value=b"before")
    w.call("fill", tag="a", n=20, size=1500)
    r1 = pagestore.open(path, readonly=True)
    try:
        r2 = pagestore.open(path, readonly=True)
        assert r2[b"k"] == b"before"
        with r1.snapshot() as snap:
            want = dict(snap.items())
            r2.close()
            w.call("put", key=b"k", value=b"after")
            w.call("fill", tag="a", n=20, size=700)  # overwrites what the snapshot reads
            w.call("fill", tag="b", n=120, size=1500)
            held = w.call("stats")["log_size"]
            assert held > 2 * WAL_LIMIT, f"the log restarted under a live snapshot: {held} bytes"
            assert snap[b"k"] == b"before"
            assert dict(snap.items()) == want
        assert r1[b"k"] == b"after"
        w.call("fill", tag="c", n=10, size=10)
        assert w.call("stats")["log_size"] < held // 2  # and with the snapshot gone it restarts
        assert r1[b"a0001"] == bytes([1]) * 700
    finally:
        r1.close()
    w.call("check")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_reader_used_after_fork_refuses_and_its_parent_is_unharmed(tmp_path, peers):
    """A readonly store (and a snapshot) used in a forked child raises; the parent's snapshot still holds the log.

    The child holds none of its parent's fcntl locks, so it has no read mark
    of its own that a writer would respect: its reads cannot be safe.
    """
    path = str(tmp_path / "db")
    with Store(path, wal_limit=WAL_LIMIT, sync=False) as db:
        db[b"k"] = b"before"
        _fill(db, 20, b"a")
        r = Peer(path, readonly=True)
        peers.append(r)
        snap = r.call("snap")
        probe = r.call("fork_probe")
        assert os.WIFEXITED(probe["status"]) and os.WEXITSTATUS(probe["status"]) == 0, probe
        assert probe["results"], probe
        for name, outcome in probe["results"].items():
            cls = getattr(pagestore.errors, outcome.split(":")[0], None)  # "ok" when the read went through
            assert isinstance(cls, type) and issubclass(cls, PageStoreError), (name, outcome)
            assert "child" in outcome, (name, outcome)  # it says what to do: open the store in the child
        assert os.path.exists(path + "-wal")  # the child's close removed nothing
        # the parent reads on, and its snapshot still holds the log back
        db[b"k"] = b"after"
        _fill(db, 120, b"b")
        held = log_size(db)
        assert held > 2 * WAL_LIMIT, held
        assert r.get(b"k", snap) == b"before" and r.get(b"k") == b"after"
        r.call("close_snap", snap=snap)
        _shrinks(db, held, b"c")
        assert r.exit() == 0
        db.check()


@pytest.mark.parametrize("how", ["snapshot", "readonly-open", "another-process", "process-exit"])
def test_the_log_shrinks_at_the_first_write_after_the_last_reader_lets_go(tmp_path, peers, how):
    """The log restarts at the first write after the last reader let go (docs/api.md): a
    snapshot of the writer's own store, a read-only open in this process (issue 25: it held a
    snapshot, finished and closed, and the writer's log stayed long for up to 200 more
    commits), a reader in another process that closes its snapshot or exits. A try that
    readers held back waited for a quarter of the threshold more log before (issue 20)."""
    path = str(tmp_path / "db")
    wal_limit = 1 << 20  # a quarter of this (256 KiB) is ~70 of these commits
    with Store(path, wal_limit=wal_limit, sync=False) as db:
        db[b"k"] = b"0"
        peer = ro = None
        if how in ("another-process", "process-exit"):
            peer = Peer(path, readonly=True, wal_limit=wal_limit)
            peers.append(peer)
            snap = peer.call("snap")
        else:
            ro = Store(path, readonly=True, create=False) if how == "readonly-open" else db
            local = ro.snapshot()
        for round in range(6):
            _fill(db, 200, b"r%d-" % round)
        held = log_size(db)
        assert held > 2 * wal_limit
        if peer is not None:
            assert peer.get(b"k", snap) == b"0"
            if how == "process-exit":
                assert peer.exit() == 0
            else:
                peer.call("close_snap", snap=snap)
                assert peer.get(b"r5-0001") == bytes([1]) * 1500  # a read of its own after: no mark kept
        else:
            assert local[b"k"] == b"0"
            local.close()
            if ro is not db:
                assert ro.get(b"r5-0001") == bytes([1]) * 1500  # one more read of its own, then it closes
                ro.close()
        db[b"after"] = b"1"
        assert log_size(db) < 64 * 1024, log_size(db)
        db.check()


def test_a_reader_descends_internal_nodes_the_writer_split_since_its_last_read(tmp_path, peers):
    """A reader's gets search the page images of the internal nodes it cached (issue 22); the
    writer in another process then splits and merges those nodes: the reader's next gets and
    get_many see the new tree, not the images it kept."""
    path = str(tmp_path / "db")
    rng = random.Random(5)
    model = {}
    big = 1 << 30  # no checkpoint: the reader follows each commit's changed pages (forget), not a reset
    with Store(path, wal_limit=big, sync=False, page_size=512) as db:
        for _ in range(2):
            batch = {rng.randbytes(rng.randint(4, 20)): rng.randbytes(rng.randint(0, 40)) for _ in range(1500)}
            db.update(batch)
            model.update(batch)
        assert db.stats()["tree_height"] >= 3
        r = Peer(path, readonly=True, wal_limit=big)
        peers.append(r)
        assert r.error is None, r.opened
        keys = list(model)
        for k in rng.sample(keys, 40):
            assert r.get(k) == model[k]
        for round_ in range(6):
            for _ in range(3):  # commits of a few hundred changes: internal nodes split and merge
                batch = {rng.randbytes(rng.randint(4, 20)): rng.randbytes(rng.randint(0, 40)) for _ in range(150)}
                db.update(batch)
                model.update(batch)
                with db.transaction() as t:
                    for k in rng.sample(list(model), 60):
                        del t[k]
                        del model[k]
            probe = rng.sample(list(model), 60) + [rng.randbytes(8) for _ in range(5)]
            for k in probe:
                assert r.get(k) == model.get(k), (round_, k)
            got = r.call("get_many", keys=[k.hex() for k in probe])
            assert [None if v is None else bytes.fromhex(v) for v in got] == [model.get(k) for k in probe]
        assert r.exit() == 0
        db.check()


def test_a_readonly_check_while_the_writer_restarts_the_log_under_read0(tmp_path, monkeypatch):
    """A reader whose view is whole in the data file (LOCK_READ0) keeps the ends of the log it
    last followed; the writer may restart that log meanwhile and shorten its file to KEEP_BYTES.
    The reader's ``check()`` held its ends to the shortened file and raised CorruptionError ("log
    ends out of order", a CI failure of test_sigkill_of_a_writer_loses_nothing_acknowledged): the
    store was sound. Here the restart lands inside the check, as it did there."""
    import pagestore.store as store_mod
    from pagestore.wal import KEEP_BYTES

    path = str(tmp_path / "r.ps")
    w = pagestore.open(path)
    r = pagestore.open(path, readonly=True)
    try:
        with r.snapshot():  # holds the log back: it grows past KEEP_BYTES
            for i in range(1500):
                w[b"k%05d" % i] = bytes([i % 251]) * 3000
        with r.snapshot():  # at the latest commit: the copy is whole, the restart waits
            assert w.checkpoint()["restarted"] is False
        assert os.path.getsize(path + "-wal") > KEEP_BYTES
        check_store = store_mod.check_store
        seen: Dict[str, int] = {}

        def restart_then_check(pager: Any, tree: Any, heap: Any) -> Dict[str, int]:
            seen["end"] = pager.wal.end  # the old log's end, read from the data file only
            w[b"x"] = b"y"  # its first write restarts the log (restart_if_idle)
            seen["size"] = os.path.getsize(path + "-wal")
            return check_store(pager, tree, heap)

        monkeypatch.setattr(store_mod, "check_store", restart_then_check)
        counts = r.check()
        assert seen["end"] > KEEP_BYTES >= seen["size"], seen
        assert counts["records"] == 1500, counts  # as of its view: not yet b"x"
        monkeypatch.undo()
        r.check()  # the next operation follows the new log
        assert r[b"x"] == b"y" and r[b"k01499"] == bytes([1499 % 251]) * 3000
    finally:
        r.close()
        w.close()
