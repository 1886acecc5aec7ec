"""Writers in several processes, taking turns (issue 26).

What the issue asks to show, in sizes the fast suite can afford (the soak sizes behind
``-m slow``):

- 4 processes x 200 counter increments in transactions: exactly 800.
- Account transfers by 3 writer processes while a read-only process sums the balances in
  snapshots: every sum is the total; the final balances equal a serial replay of the ops.
- SIGKILL of a random writer (inside and outside transactions) with two other writers and a
  reader running, round after round: no acknowledged commit lost, no half transaction,
  ``check()`` clean after each round; the next writer goes on.
- A process holding a transaction past another's timeout makes that one raise
  StoreLockedError, not hang.
- A forked child using its parent's Store gets a clear error, and nothing is damaged.
- Where the locks are missing, a second writer gets StoreLockedError saying why.
- A writer no other writer asks keeps its turn: its reads make no system call (the read
  floor of issue 22); a second writer asking gets the turn within a few ms of the keeper's
  idleness, and a keeper killed while keeping it idle lets the next writer in.
"""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

import pagestore
from pagestore import fileio, shm
from pagestore.format import PAGE_HEAP
from pagestore.store import Store
from pagestore.errors import PageStoreError, StoreLockedError

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "multiproc_child.py")
sys.path.insert(0, HERE)
from multiproc_child import group_errors  # noqa: E402

pytestmark = pytest.mark.skipif(not shm.SUPPORTED, reason="writers in several processes need open-file-description locks")


class Proc:
    """Proc is one child process (multiproc_child.py ROLE ...), its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen([sys.executable, CHILD, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines: List[str] = []

    def expect(self, word: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline() if self.p.stdout is not None else ""
            if not line:
                break
            self.lines.append(line.strip())
            if line.startswith(word):
                return line.strip()
        raise AssertionError(f"child never said {word}: {self.lines[-5:]} {self.stderr()}")

    def stderr(self) -> str:
        if self.p.poll() is None or self.p.stderr is None:
            return ""
        return self.p.stderr.read()[-2000:]

    def finish(self, timeout: float = 120) -> List[str]:
        out, err = self.p.communicate(timeout=timeout)
        self.lines += [ln.strip() for ln in out.splitlines()]
        assert self.p.returncode == 0, (self.p.returncode, err[-3000:])
        return self.lines

    def kill(self) -> List[str]:
        self.p.send_signal(signal.SIGKILL)
        out, _ = self.p.communicate(timeout=30)
        self.lines += [ln.strip() for ln in out.splitlines()]
        return self.lines


# ---- counters ----


def test_four_processes_count_to_exactly_800(tmp_path):
    path = str(tmp_path / "c.ps")
    pagestore.open(path).close()
    procs = [Proc("counter", path, "200") for _ in range(4)]
    for p in procs:
        p.finish()
    with pagestore.open(path) as db:
        assert db[b"counter"] == b"800"
        db.check()


def test_writers_creating_a_store_together_make_one_store(tmp_path):
    """Four processes open a path that does not exist yet, at once: one header is written (LOCK_CREATE)."""
    for attempt in range(3):
        path = str(tmp_path / f"new{attempt}.ps")
        procs = [Proc("counter", path, "5") for _ in range(4)]
        for p in procs:
            p.finish()
        with pagestore.open(path) as db:
            assert db[b"counter"] == b"20"
            db.check()


def test_a_writer_sees_the_others_commits_between_its_own(tmp_path):
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"counter"] = b"0"
        p = Proc("counter", path, "50")
        p.finish()
        assert db[b"counter"] == b"50"  # a read outside the write lock sees the other's commits
        with db.transaction() as t:
            t[b"counter"] = b"%d" % (int(t[b"counter"]) + 1)
        assert db[b"counter"] == b"51"
        assert len(db) == 1
        db.check()
    with pagestore.open(path, readonly=True) as r:
        assert r[b"counter"] == b"51"


# ---- transfers ----


def _transfers(tmp_path, n: int, accounts: int = 20) -> None:
    path = str(tmp_path / "t.ps")
    stop = str(tmp_path / "stop")
    start = 1000
    with pagestore.open(path) as db:
        db.update((b"acct/%04d" % a, b"%d" % start) for a in range(accounts))
    reader = Proc("sum", path, stop, str(start * accounts))
    reader.expect("START")
    writers = [Proc("transfer", path, str(seed), str(n), str(accounts)) for seed in range(3)]
    for w in writers:
        w.finish(timeout=600)
    open(stop, "w").close()
    lines = reader.finish()
    assert not [ln for ln in lines if ln.startswith("BAD")], lines[:5]
    assert int(lines[-1].split()[1]) > 0
    with pagestore.open(path) as db:
        db.check()
        balances = [start] * accounts
        assert int(db[b"seq"]) == 3 * n
        for _k, v in db.items(prefix=b"op/"):
            a, b, amount = map(int, v.split())
            moved = min(amount, balances[a])
            balances[a] -= moved
            balances[b] += moved
        assert [int(db[b"acct/%04d" % a]) for a in range(accounts)] == balances


def test_transfers_by_three_writers_sum_in_every_snapshot(tmp_path):
    _transfers(tmp_path, 60)


@pytest.mark.slow
def test_transfers_by_three_writers_for_a_minute(tmp_path):
    _transfers(tmp_path, 10000)  # about a minute here (4,000 each took 19 s on a quiet machine)


def test_a_writer_opening_while_the_first_recovers_a_new_log_reads_and_writes(tmp_path, monkeypatch):
    """The transfers' flake: the store closed (its log removed), a reader's open publishes the
    data file's state (no log), writer A opens, makes the log file and takes the first turn;
    writer B opens meanwhile, before A has written the log's header. B joins without
    recovering, and its view's catch-up found no header: CorruptionError 'the log's header is
    unreadable' (in B's open; in its transaction's begin before 061f420). The opens are in one
    process, in threads: their locks are open-file-description locks, as between processes."""
    from pagestore import wal as wal_mod

    path = str(tmp_path / "t.ps")
    with pagestore.open(path) as db:
        db.update((b"acct/%04d" % a, b"1000") for a in range(20))
    assert not os.path.exists(path + "-wal")
    reader = pagestore.open(path, readonly=True)
    in_reset, go = threading.Event(), threading.Event()
    reset = wal_mod.WAL.reset

    def slow_reset(self: Any, generation: int) -> None:
        if threading.current_thread().name == "first":
            in_reset.set()
            go.wait(30)
        reset(self, generation)

    monkeypatch.setattr(wal_mod.WAL, "reset", slow_reset)
    opened: Dict[str, Any] = {}
    first = threading.Thread(target=lambda: opened.setdefault("a", pagestore.open(path)), name="first")
    first.start()
    try:
        assert in_reset.wait(30)
        # A holds its first turn, the log has no header yet. B stands for another process: its own
        # opener, so that the refusal of a second writable open here (and the opening lock that
        # makes it hold against threads) leaves it be, as they leave a test's opener.
        b = Store(path, timeout=30, _opener=lambda p, **kw: fileio.open_file(p, **kw))
        try:
            assert b[b"acct/0003"] == b"1000"
        finally:
            go.set()
            first.join(30)
        a = opened["a"]
        with b.transaction() as t:
            t[b"acct/0003"] = b"900"
            t[b"acct/0004"] = b"1100"
        with a.transaction() as t:
            t[b"acct/0004"] = b"%d" % (int(t[b"acct/0004"]) + 5)
        assert b[b"acct/0004"] == b"1105"
        a.close()
        b.close()
    finally:
        go.set()
        first.join(30)
    with reader.snapshot() as snap:
        assert sum(int(v) for _k, v in snap.items(prefix=b"acct/")) == 20005
    reader.close()
    with pagestore.open(path) as db:
        db.check()
        assert (db[b"acct/0003"], db[b"acct/0004"]) == (b"900", b"1105")


def test_a_writer_that_joined_while_the_first_died_in_its_recovery_keeps_its_commits(tmp_path):
    """The first writer of a new log (the last close removed it) is killed in its first turn,
    before its recovery writes the header; another writer had joined meanwhile. Its turns read
    an empty log: it used to refuse each (CorruptionError 'the log's header is unreadable')
    with this branch's first fix, and before that (a store never checkpointed, whose reader's
    rebuild publishes generation 0, salt 0: the joiner's log in memory looked the same) it
    appended its commits to the log with no header, acknowledged them, and a crash then lost
    every one (recovery reads no frame of a log without a header). Now its turn starts the
    log as that recovery would have."""
    path = str(tmp_path / "d.ps")
    go = str(tmp_path / "go")
    pagestore.open(path).close()  # never checkpointed: generation 0
    assert not os.path.exists(path + "-wal")
    reader = pagestore.open(path, readonly=True)
    try:
        assert reader.get(b"counter") is None  # its open rebuilt the index: the data file's state
        first = Proc("first_dies", path)
        first.expect("IN_RESET")  # holds its first turn; the log file exists, empty
        joined = Proc("joined", path, go, "3")
        joined.expect("OPEN")
        first.kill()
        open(go, "w").close()
        lines = joined.finish()
        assert [ln for ln in lines if ln.startswith("ACK")] == ["ACK 1", "ACK 2", "ACK 3"], lines
        with reader.snapshot() as snap:
            assert snap.get(b"counter") == b"3"
    finally:
        reader.close()
    with pagestore.open(path) as db:  # recovers what the joiner's log holds
        assert db[b"counter"] == b"3"
        db.check()


# ---- SIGKILL ----


def _acked(lines: List[str], name: str) -> Tuple[Set[bytes], Dict[bytes, int]]:
    singles: Set[bytes] = set()
    txns: Dict[bytes, int] = {}
    for ln in lines:
        parts = ln.split()
        if parts[:2] == ["ACK", "s"]:
            singles.add(b"s/%s/%s" % (name.encode(), parts[2].encode()))
        elif parts[:2] == ["ACK", "t"]:
            txns[b"t/%s/%s" % (name.encode(), parts[2].encode())] = int(parts[3])
    return singles, txns


def _kill_rounds(tmp_path, rounds: int, seed: int = 1, pause: float = 0.0) -> None:
    rng = random.Random(seed)
    path = str(tmp_path / "k.ps")
    stop = str(tmp_path / "stop")
    pagestore.open(path).close()
    reader = Proc("groups", path, stop)
    reader.expect("START")
    born = 0
    writers: Dict[str, Proc] = {}
    for _ in range(3):
        born += 1
        writers[f"w{born}"] = Proc("writer", path, f"w{born}", str(rng.randrange(1 << 30)), str(pause))
    acked_s: Set[bytes] = set()
    acked_t: Dict[bytes, int] = {}
    try:
        for _r in range(rounds):
            time.sleep(rng.uniform(0.2, 0.8))
            name = rng.choice(sorted(writers))
            lines = writers.pop(name).kill()
            s, t = _acked(lines, name)
            acked_s |= s
            acked_t.update(t)
            with pagestore.open(path, readonly=True) as db:
                db.check()
                with db.snapshot() as snap:
                    keys = set(snap.keys())
                    half = group_errors(snap.items(prefix=b"t/"))
            lost = [k for k in acked_s if k not in keys]
            lost += [k for k, n in acked_t.items() if any(b"%s/%d" % (k, i) not in keys for i in range(n))]
            assert not lost, f"round {_r}: lost acknowledged commits {lost[:5]}"
            assert not half, f"round {_r}: half transactions {half[:5]}"
            born += 1
            writers[f"w{born}"] = Proc("writer", path, f"w{born}", str(rng.randrange(1 << 30)), str(pause))
    finally:
        for name, w in writers.items():
            s, t = _acked(w.kill(), name)
            acked_s |= s
            acked_t.update(t)
        open(stop, "w").close()
    lines = reader.finish()
    assert not [ln for ln in lines if ln.startswith("BAD")], lines[:5]
    with pagestore.open(path) as db:
        db.check()
        for k in acked_s:
            assert k in db
        for k, n in acked_t.items():
            assert all(b"%s/%d" % (k, i) in db for i in range(n))
    assert acked_t and acked_s


def test_sigkill_of_a_writer_loses_nothing_acknowledged(tmp_path):
    _kill_rounds(tmp_path, 5)


@pytest.mark.slow
def test_sigkill_of_a_writer_100_rounds(tmp_path):
    _kill_rounds(tmp_path, 100, seed=7, pause=0.005)


# ---- timeouts ----


def test_a_transaction_held_past_anothers_timeout_raises_store_locked(tmp_path):
    path = str(tmp_path / "h.ps")
    pagestore.open(path).close()
    holder = Proc("hold", path, "4")
    holder.expect("HELD")
    with pagestore.open(path, timeout=0.3) as db:
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError, match="write lock"):
            db[b"x"] = b"1"
        assert time.monotonic() - t0 < 2.5
        with pytest.raises(StoreLockedError):
            with db.transaction(timeout=0.2):
                pass
        assert b"x" not in db  # reads go on meanwhile
        holder.finish()
        db[b"x"] = b"1"  # and the lock is there to take once the other has let go
        assert db[b"held"] == b"1"


def test_a_killed_holder_lets_the_next_writer_in(tmp_path):
    path = str(tmp_path / "h.ps")
    pagestore.open(path).close()
    holder = Proc("hold", path, "60")
    holder.expect("HELD")
    holder.kill()
    with pagestore.open(path, timeout=2) as db:
        db[b"x"] = b"1"
        assert b"held" not in db
        db.check()


# ---- keeping the turn (no other writer asks) ----


def _count_fcntl(monkeypatch) -> List[int]:
    import fcntl
    calls = [0]
    real = fcntl.fcntl

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(fcntl, "fcntl", counting)
    return calls


def test_a_writer_alone_keeps_its_turn_and_reads_without_a_system_call(tmp_path, monkeypatch):
    """Between turns a writer took a read mark per operation (two fcntl calls per get, 2.45 ->
    8.61 us); alone, it keeps LOCK_WRITE and reads as a single writer does."""
    with pagestore.open(str(tmp_path / "k.ps")) as db:
        with db.transaction() as t:
            for i in range(200):
                t[b"k%04d" % i] = b"v" * 50
        calls = _count_fcntl(monkeypatch)
        for _ in range(3):
            for i in range(200):
                assert db[b"k%04d" % i] == b"v" * 50
        assert calls[0] <= 3, f"{calls[0]} fcntl calls for 600 gets"  # the turn watcher's probes, at most
        db[b"again"] = b"1"  # a write in the kept turn: no catch-up, no lock taken
        assert db[b"again"] == b"1"
        db.check()


def test_a_writer_that_only_reads_keeps_the_turn_of_its_open(tmp_path, monkeypatch):
    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    with pagestore.open(path) as db:
        assert db._turns.kept
        calls = _count_fcntl(monkeypatch)
        for _ in range(300):
            assert db[b"a"] == b"1"
        assert calls[0] <= 3, f"{calls[0]} fcntl calls for 300 gets"


def test_a_second_writer_gets_the_kept_turn_soon(tmp_path):
    """The first writer keeps its turn and idles; a second writer process asks for it and puts
    within a few ms (the keeper's watcher gives it up); the keeper then reads the new value."""
    path = str(tmp_path / "k.ps")
    pagestore.open(path).close()
    keeper = Proc("keep", path, "3")
    assert keeper.expect("KEPT") == "KEPT yes"
    other = Proc("put", path, "kept")
    took = float(other.expect("PUT").split()[1])
    other.finish()
    assert keeper.expect("STILL") == "STILL no"
    assert keeper.expect("READ") == "READ 2"
    keeper.finish()
    assert took < 0.25, f"the second writer waited {took:.3f} s for the kept turn"


def test_a_writer_reading_in_a_loop_gives_the_kept_turn_up_soon(tmp_path):
    """The keeper reads without pause (its operation lock is hardly ever free for the watcher):
    the end of one of its reads gives the turn up to the writer that asks."""
    import threading

    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"kept"] = b"1"
        assert db._turns.kept
        stop = threading.Event()
        reads = [0]

        def loop() -> None:
            while not stop.is_set():
                db[b"kept"]
                reads[0] += 1

        reader = threading.Thread(target=loop)
        reader.start()
        try:
            other = Proc("put", path, "kept")
            took = float(other.expect("PUT").split()[1])
            other.finish()
        finally:
            stop.set()
            reader.join()
        assert db[b"kept"] == b"2" and reads[0] > 0
        assert took < 0.25, f"the second writer waited {took:.3f} s for the kept turn"


def test_a_reader_process_does_not_ask_for_the_kept_turn(tmp_path):
    """A read-only process reads beside the keeper with its marks, as beside a single writer;
    the keeper keeps its turn."""
    path = str(tmp_path / "k.ps")
    pagestore.open(path).close()
    keeper = Proc("keep", path, "1")
    assert keeper.expect("KEPT") == "KEPT yes"
    with pagestore.open(path, readonly=True) as ro:
        assert ro[b"kept"] == b"1"
        with ro.snapshot() as snap:
            assert snap[b"kept"] == b"1"
    assert keeper.expect("STILL") == "STILL yes"
    keeper.finish()


def test_the_next_writer_commits_while_a_sync_runs_and_is_acknowledged_only_after_it(tmp_path, monkeypatch):
    """Taking turns, a commit's sync runs after LOCK_WRITE goes, as a group commit's does inside
    one process (issue 23): writer A's sync blocks (a slow disk) and writer B takes its turn and
    writes its commit meanwhile; B's own sync waits for A's (LOCK_SYNC: one sync at a time). A's
    sync then fails, and Linux drops the dirty pages, B's frames among them: A's put raises, and
    B's sync writes the frames from where A's failed again before it syncs, so B's put, which
    returns, survives a power cut. (The old rule synced under LOCK_WRITE: B never wrote a frame
    while A's sync ran.)"""
    import errno
    import threading

    import faultfs
    from pagestore import store as store_mod

    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)  # a turn per write
    disk, path, a, b = _two_writers(tmp_path)
    with a._lock:
        a._turns._give_up()  # the open's turn, kept
    for db in (a, b):
        db._turns._given = time.monotonic()
    real = faultfs.FaultFile.sync
    in_sync, release = threading.Event(), threading.Event()
    armed = {"on": True}

    def sync(self) -> None:
        if armed["on"] and self.path.endswith("-wal"):
            armed["on"] = False
            in_sync.set()
            assert release.wait(20)
            self.content.pending = []  # marked clean, never written: B's frames too
            raise OSError(errno.EIO, "injected log sync failure")
        real(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", sync)
    outcome: Dict[str, object] = {}

    def put(db, key: bytes) -> None:
        try:
            db[key] = b"1"
            outcome[key.decode()] = "ok"
        except Exception as exc:  # noqa: BLE001 - the outcome
            outcome[key.decode()] = exc

    ta = threading.Thread(target=put, args=(a, b"A"))
    ta.start()
    assert in_sync.wait(10)
    before = b._pager.wal.committed_frames
    tb = threading.Thread(target=put, args=(b, b"B"))
    tb.start()
    deadline = time.monotonic() + 5
    while b._pager.wal.committed_frames == before and time.monotonic() < deadline:
        time.sleep(0.005)
    overlapped = b._pager.wal.committed_frames > before
    assert tb.is_alive(), outcome  # B's put waits for a sync after A's
    release.set()
    ta.join(10)
    tb.join(10)
    assert overlapped, "B did not write its commit while A's sync ran"
    assert isinstance(outcome["A"], OSError), outcome
    assert outcome["B"] == "ok", outcome
    disk.crash("drop")
    from pagestore.store import Store

    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"B") == b"1", "an acknowledged commit was lost behind frames a failed sync dropped"
        assert c[b"base"] == b"0"
        c.check()


def test_a_keeper_killed_while_idle_lets_the_next_writer_in(tmp_path):
    path = str(tmp_path / "k.ps")
    pagestore.open(path).close()
    keeper = Proc("keep", path, "60")
    assert keeper.expect("KEPT") == "KEPT yes"
    keeper.kill()
    with pagestore.open(path, timeout=2) as db:
        t0 = time.monotonic()
        db[b"x"] = b"1"
        assert time.monotonic() - t0 < 1.0
        assert db[b"kept"] == b"1"  # the keeper's commit, durable before it kept the turn
        db.check()


# ---- fork ----


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_using_its_parents_store_gets_a_clear_error(tmp_path):
    path = str(tmp_path / "f.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                try:
                    db[b"b"] = b"2"
                except PageStoreError as exc:
                    if "fork" in str(exc):
                        with pagestore.open(path) as own:  # its own open works
                            own[b"c"] = b"3"
                        code = 0
            finally:
                os.write(w, b"%d" % code)
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        assert os.read(r, 8) == b"0" and os.waitstatus_to_exitcode(status) == 0
        os.close(r)
        assert b"b" not in db
        assert db[b"c"] == b"3"
        db[b"d"] = b"4"
        db.check()


# ---- no locks ----


def test_without_the_locks_a_second_writer_is_told_why(tmp_path):
    path = str(tmp_path / "n.ps")
    code = (
        "import sys, pagestore\n"
        "from pagestore import readers, shm\n"
        "readers.SUPPORTED = shm.SUPPORTED = False\n"
        "db = pagestore.open(sys.argv[1])\n"
        "print('OPEN', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    first = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "OPEN"
        second = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
        assert "StoreLockedError" in second.stderr
        assert "open-file-description locks" in second.stderr
    finally:
        first.communicate("\n", timeout=60)


# ---- the write lock's share with other processes (locks.py) ----


class FakeProcessLock:
    """FakeProcessLock: a ProcessLock another process holds until ``free_at`` (a time.monotonic())."""

    def __init__(self, free_at: float = 0.0, fail_taken: bool = False, prompt: bool = False) -> None:
        self.free_at = free_at
        self.fail_taken = fail_taken
        self.prompt = prompt
        self.kept = False  # ProcessLock.kept: never a kept turn here
        self.naps: List[float] = []
        self.others = False  # another process waits in line
        self.lines = 0  # times this one joined the line
        self.held = False
        self.tries = 0
        self.caught_up = 0

    def try_lock(self) -> bool:
        self.tries += 1
        if time.monotonic() < self.free_at:
            return False
        assert not self.held
        self.held = True
        return True

    def waiting(self, on: bool) -> None:
        self.in_line = on
        self.lines += on

    def others_waiting(self) -> bool:
        return self.others

    def ticket(self) -> int:
        return 0

    def nap(self, ticket: int, seconds: float) -> None:
        self.naps.append(seconds)
        time.sleep(seconds)

    def taken(self) -> None:
        self.caught_up += 1
        if self.fail_taken:
            raise OSError("catch-up failed")

    def unlock(self) -> None:
        assert self.held
        self.held = False


def test_write_lock_polls_the_process_lock_until_its_deadline():
    from pagestore.locks import WriteLock

    lock = WriteLock("s")
    busy = FakeProcessLock(free_at=time.monotonic() + 60)
    lock.share(busy)
    t0 = time.monotonic()
    assert not lock.try_acquire(0.2, "a write")
    assert 0.2 <= time.monotonic() - t0 < 1.5
    assert busy.tries > 3 and not lock.owned()
    with pytest.raises(StoreLockedError, match="in this process or another"):
        lock.acquire(0.05, "a write")
    free = FakeProcessLock(free_at=time.monotonic() + 0.1)
    lock.share(free)
    lock.acquire(5, "a transaction")  # the thread lock was let go by the failed tries
    assert free.held and free.caught_up == 1 and lock.owned()
    lock.release()
    assert not free.held and not lock.owned()


def test_a_waiter_whose_naps_the_release_ends_tries_the_lock_only_every_poll_max():
    """Where the holder's release ends a nap (a futex: ``ProcessLock.prompt``), a waiter's naps are
    POLL_MAX from the first (the release wakes it; the poll only finds a holder that died), not
    0.2 ms doubling: 4 processes of one-put commits made ~2 tries of LOCK_WRITE a turn, most of
    them failed, each a system call and a wake-up. Without futexes the short first naps stay."""
    from pagestore.locks import POLL_FIRST, POLL_MAX, WriteLock

    lock = WriteLock("s")
    prompt = FakeProcessLock(free_at=time.monotonic() + 0.05, prompt=True)
    lock.share(prompt)
    lock.acquire(5, "a write")
    lock.release()
    assert prompt.naps and min(prompt.naps) >= POLL_MAX / 2, prompt.naps
    polled = FakeProcessLock(free_at=time.monotonic() + 0.05)
    lock.share(polled)
    lock.acquire(5, "a write")
    lock.release()
    assert polled.naps[0] <= POLL_FIRST * 1.5, polled.naps


def test_a_try_without_a_wait_never_joins_the_line():
    """``try_acquire(0)`` (group commit's first try, before it queues and waits in line) takes a free
    lock nobody waits for, and otherwise gives up at once: it never joins the line of waiting
    processes (LOCK_WAITING taken and let go, the watchers woken: four system calls and a
    wake-up a commit, for nothing, when writers in several processes take turns)."""
    from pagestore.locks import WriteLock

    lock = WriteLock("s")
    busy = FakeProcessLock(free_at=time.monotonic() + 60)
    busy.others = True
    lock.share(busy)
    assert not lock.try_acquire(0, "a commit of single writes")
    assert busy.lines == 0 and busy.tries == 0
    busy.others = False
    assert not lock.try_acquire(0, "a commit of single writes")
    assert busy.lines == 0 and busy.tries == 1
    free = FakeProcessLock()
    lock.share(free)
    assert lock.try_acquire(0, "a commit of single writes") and free.lines == 0
    lock.release()


def test_write_lock_lets_both_go_when_catching_up_fails():
    from pagestore.locks import WriteLock

    lock = WriteLock("s")
    bad = FakeProcessLock(fail_taken=True)
    lock.share(bad)
    with pytest.raises(OSError, match="catch-up"):
        lock.acquire(1, "a write")
    assert not bad.held and not lock.owned()
    bad.fail_taken = False
    assert lock.try_acquire(0, "a write")
    lock.release()


def test_two_writers_opening_an_empty_file_at_once_write_one_header(tmp_path, monkeypatch):
    """The look at an empty file and the write of its header are one step (LOCK_CREATE): a second
    writer opening meanwhile waits, then reads the first one's header (the same file_id)."""
    import threading

    from pagestore.pager import Pager

    path = str(tmp_path / "e.ps")
    open(path, "wb").close()
    real = Pager._create
    other: list = []

    def create(self, page_size):
        if not other:
            t = threading.Thread(target=lambda: other.append(Pager(path, share_writes=True)))
            other.append(t)
            t.start()
            t.join(0.5)  # it waits for this header (or, unprotected, writes its own meanwhile)
        real(self, page_size)

    monkeypatch.setattr(Pager, "_create", create)
    first = Pager(path, share_writes=True)
    other[0].join(10)
    second = other[1]
    try:
        assert first.turns and second.turns
        assert second.meta.file_id == first.meta.file_id
    finally:
        second.close()
        first.close()


def test_after_compact_other_writers_join_the_new_file(tmp_path):
    path = str(tmp_path / "cp.ps")
    with pagestore.open(path) as db:
        db.update((b"%04d" % i, b"x" * 300) for i in range(500))
        db.delete_range(b"0100", b"0400")
        assert db.compact() >= 0
        p = Proc("counter", path, "3")  # another process writes the compacted store beside this one
        p.finish()
        assert db[b"counter"] == b"3"
        db[b"mine"] = b"1"
        stop = str(tmp_path / "stop")
        reader = Proc("groups", path, stop)
        reader.expect("START")
        with pytest.raises(PageStoreError, match="other processes have the store open"):
            db.compact()
        open(stop, "w").close()
        reader.finish()
        db.check()


def _die_before_publishing(path: str, published: Tuple[bytes, ...] = ()) -> None:
    """_die_before_publishing runs a writer process on ``path`` that puts each key of ``published``
    (b"1"), then puts b"unpublished" and dies between that commit's sync and its publication
    (``Pager._publish``)."""
    code = (
        "import os, sys, pagestore\n"
        "from pagestore.pager import Pager\n"
        "db = pagestore.open(sys.argv[1])\n"
        + "".join(f"db[{k!r}] = b'1'\n" for k in published)
        + "Pager._publish = lambda self: os._exit(7)  # dies between the commit's sync and its publication\n"
        "db[b'unpublished'] = b'1'\n"
    )
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 7, out.stderr


def test_a_commit_durable_but_never_published_is_kept_by_the_next_writer(tmp_path):
    """A writer killed after its commit frame was synced but before it published it: the next writer's
    catch-up reads past the published state to the last valid commit frame, keeps that commit, and
    publishes it (it does not write over it)."""
    path = str(tmp_path / "u.ps")
    with pagestore.open(path) as db:
        db[b"before"] = b"0"
        _die_before_publishing(path)
        assert b"unpublished" not in db  # a read sees the published state only
        db[b"after"] = b"2"  # the turn's catch-up finds the commit
        assert db[b"unpublished"] == b"1" and db[b"after"] == b"2"
        db.check()
        with pagestore.open(path, readonly=True) as r:  # and published it for the readers
            assert r[b"unpublished"] == b"1" and r[b"after"] == b"2"
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"before": b"0", b"unpublished": b"1", b"after": b"2"}


def test_a_writers_free_space_map_follows_the_other_writers(tmp_path):
    """The heap's free-space map in memory is the stored one after catching up (check() compares
    them for a writer), read again page by page (FreeSpaceMap.reload), or whole when its chain grew."""
    path = str(tmp_path / "fsm.ps")
    with pagestore.open(path, page_size=512) as db:
        db.update((b"%05d" % i, b"v" * 40) for i in range(300))
        p = Proc("counter", path, "30")
        p.finish()
        db.check()
        code = ("import sys, pagestore\n"
                "with pagestore.open(sys.argv[1]) as o:\n"
                "    o.update((b'x%05d' % i, b'w' * 120) for i in range(3000))\n"
                "    o.delete_range(b'00100', b'00200')\n")
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        db[b"mine"] = b"m" * 100  # placed by the map as the other writer left it
        db.check()
        assert len(db) == 300 - 100 + 3000 + 2


def test_a_file_system_without_the_locks_is_named(tmp_path, monkeypatch):
    """Where LOCK_WRITE cannot be taken at all (a network file system answers ENOLCK), the open
    says so with StoreLockedError, instead of failing later or writing unguarded."""
    import errno

    from pagestore import readers

    path = str(tmp_path / "nfs.ps")
    pagestore.open(path).close()

    def no_locks(self):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(readers.SharedLog, "try_lock_write", no_locks)
    with pytest.raises(StoreLockedError, match="network file system"):
        pagestore.open(path)
    monkeypatch.undo()
    with pagestore.open(path) as db:  # nothing was left behind
        db[b"k"] = b"v"
        db.check()


# ---- a failed sync of one writer, and the writer after it (faultfs: two opens of one path in this
# process are two writers for the OFD locks on the shared index, and share one page cache) ----


def _fail_next_log_sync(monkeypatch) -> Dict[str, int]:
    """_fail_next_log_sync makes the next sync of a faultfs log fail as Linux may: EIO, and every
    dirty page of the file marked clean without being written (faultfs's fail_sync writes a random
    part; here none, the case that loses most). Returns a counter of the failures made."""
    import errno

    import faultfs

    real = faultfs.FaultFile.sync
    made = {"failed": 0}

    def sync(self) -> None:
        if self.path.endswith("-wal") and not made["failed"]:
            made["failed"] += 1
            self.content.pending = []  # marked clean, never written
            raise OSError(errno.EIO, "injected log sync failure")
        real(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", sync)
    return made


def _two_writers(tmp_path):
    from faultfs import Disk
    from pagestore.store import Store

    disk = Disk(str(tmp_path), seed=3)
    path = str(tmp_path / "f.ps")
    a = Store(path, _opener=disk.opener, sync=True)
    a[b"base"] = b"0"
    with a.transaction() as t:
        for i in range(30):
            t[b"pad%02d" % i] = b"p" * 40
    b = Store(path, _opener=disk.opener, sync=True, timeout=5)
    assert a._turns.kept and not b._turns.kept
    return disk, path, a, b


def test_a_writer_after_a_failed_sync_makes_the_frames_durable_before_building_on_them(tmp_path, monkeypatch):
    """Writer A's log sync fails (Linux marks the dirty pages clean: no later fsync writes them);
    A is poisoned and lets LOCK_WRITE go. Writer B takes it and catches up onto A's frames, which
    it reads whole from the page cache. Building on them as they are, B's acknowledged commit sits
    behind frames that a power cut loses, and recovery stops there. B must rewrite them (the
    shared index says a sync failed from where) and sync before it builds on them."""
    from faultfs import Disk  # noqa: F401  (faultfs on the path)
    from pagestore.errors import StorePoisonedError
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    made = _fail_next_log_sync(monkeypatch)
    with pytest.raises(OSError):
        a[b"lost"] = b"1"  # its sync failed: not acknowledged
    assert made["failed"] == 1
    with pytest.raises(StorePoisonedError):
        a[b"again"] = b"x"
    b[b"acked"] = b"2"  # acknowledged: it must survive a power cut
    assert b[b"lost"] == b"1"  # built on A's commit, which B made durable
    disk.crash("drop")
    c = Store(path, _opener=disk.opener)
    try:
        assert c.get(b"acked") == b"2", "an acknowledged commit was lost behind frames a failed sync dropped"
        assert c[b"base"] == b"0"
        c.check()
    finally:
        c.close()


def test_frames_a_failed_sync_left_that_no_longer_read_back_are_not_built_on(tmp_path, monkeypatch):
    """As above, but the page cache has since dropped A's clean pages (read back, they are what the
    disk holds): B finds fewer whole commits than A published. It refuses to write (readers may
    read the published state) with CorruptionError saying why; once every open is closed, the
    next open, alone, recovers what the log holds and writes again."""
    from pagestore.errors import CorruptionError
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    _fail_next_log_sync(monkeypatch)
    log = a._pager.wal.file
    with pytest.raises(OSError):
        a[b"lost"] = b"1"
    content = log.content  # evicted: reads now see the durable bytes
    content.view[:] = bytes(content.durable) + bytes(max(0, len(content.view) - len(content.durable)))
    with pytest.raises(CorruptionError, match="failed sync"):
        b[b"acked"] = b"2"
    a.close()
    b.close()
    c = Store(path, _opener=disk.opener)
    try:
        assert c[b"base"] == b"0" and b"lost" not in c and b"acked" not in c
        c[b"after"] = b"3"
        c.check()
    finally:
        c.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as d:
        assert d[b"after"] == b"3"
        d.check()


def test_a_failed_sync_after_a_turn_is_made_good_by_the_next_open(tmp_path, monkeypatch):
    """The failed sync is the one A's put runs after its turn ended (outside the locks, as a group
    commit's), and A closes, poisoned; the next writer is a new open, which recovers with the
    turn free: it writes A's frames again and syncs them before it builds on them. (A reader's snapshot
    from before keeps the open's checkpoint from copying A's frames into the data file, which
    would make them durable there.)"""
    from pagestore import store as store_mod
    from pagestore.store import Store

    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)  # no kept turn: every write ends its turn
    disk, path, a, b = _two_writers(tmp_path)
    b.close()
    reader = Store(path, _opener=disk.opener, readonly=True)
    snap = reader.snapshot()
    with a._lock:
        a._turns._give_up()
    a._turns._given = time.monotonic()
    real = a._pager.sync
    calls: List[int] = []

    def deferred_sync(upto: int = 0, begun: Any = None) -> None:  # the group's own sync, outside the lock, came too late
        calls.append(upto)
        real(upto, begun)

    monkeypatch.setattr(a._pager, "sync", deferred_sync)
    _fail_next_log_sync(monkeypatch)
    with pytest.raises((OSError, PageStoreError)):
        a[b"lost"] = b"1"  # its sync, after its turn, failed: poisoned, not acknowledged
    assert calls and a._pager.poisoned is not None
    a.close()
    b = Store(path, _opener=disk.opener)
    b[b"acked"] = b"2"
    assert snap[b"base"] == b"0" and b"lost" not in snap
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"acked") == b"2", "an acknowledged commit was lost behind frames a failed sync dropped"
        assert c[b"base"] == b"0"
        c.check()


def test_the_unsynced_word_is_clear_after_every_sync_that_returned(tmp_path):
    """Each sync of the log sets the shared index's unsynced word and clears it when it returns: a
    store in use never leaves it set (the next writer would write the log again for nothing)."""
    path = str(tmp_path / "w.ps")
    with pagestore.open(path, wal_limit=8192) as db:
        for i in range(100):
            db[b"k%03d" % i] = b"v" * 100  # checkpoints and restarts of the log among them
            assert db._pager.sharing.index.unsynced() is None
        with db.transaction() as t:
            t[b"x"] = b"1"
        db.sync()
        assert db._pager.sharing.index.unsynced() is None


def test_a_sync_outside_a_turn_that_fails_is_made_good_by_the_writer_in_its_turn(tmp_path, monkeypatch):
    """``db.sync()`` of B while A keeps its turn with a commit made with sync=False (its frames dirty
    in the page cache): B's fsync fails and drops them too. B syncs in a write turn of its own, so
    the shared index says so, and A writes them again when its turn comes back: A's sync that
    follows, and every commit it acknowledges after it, survive a power cut."""
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    with a.transaction(sync=False) as t:
        t[b"nosync"] = b"1"
    _fail_next_log_sync(monkeypatch)
    with pytest.raises(OSError):
        b.sync()
    a[b"acked"] = b"2"  # durable, acknowledged
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"acked") == b"2", "an acknowledged commit was lost behind frames a failed sync dropped"
        assert c[b"nosync"] == b"1"
        c.check()


@pytest.mark.parametrize("how", ["store", "pager"])
def test_close_syncs_what_a_deferred_commit_owes_before_the_log_and_the_turn_go(tmp_path, monkeypatch, how):
    """A single write's commit defers its sync until after the locks are let go (issue 23); the
    store is closed in between, keeping its turn (``Store.close``, whose checkpoint a reader's
    snapshot holds back, so that it syncs nothing; or ``Pager.close(checkpoint=False)``). The
    close syncs what that commit owes while it still holds the log and LOCK_WRITE: the write,
    acknowledged once its own deferred sync returns, survives a power cut."""
    import threading

    from faultfs import Disk
    from pagestore.store import Store

    disk = Disk(str(tmp_path), seed=5)
    path = str(tmp_path / "c.ps")
    db = Store(path, _opener=disk.opener, sync=True)
    db[b"base"] = b"0"
    db.checkpoint()
    reader = Store(path, _opener=disk.opener, readonly=True)
    snap = reader.snapshot()  # the data file holds every frame: the checkpoint at close copies nothing
    assert db._turns.kept
    pager = db._pager
    real = pager.sync
    committed, go = threading.Event(), threading.Event()
    writer: List[threading.Thread] = []

    def sync(upto: int = 0, begun: Any = None) -> None:
        if writer and threading.current_thread() is writer[0]:
            committed.set()  # the commit is written, its sync deferred: the close comes now
            assert go.wait(10)
        real(upto, begun)

    monkeypatch.setattr(pager, "sync", sync)
    outcome: Dict[str, object] = {}

    def put() -> None:
        try:
            db[b"late"] = b"1"
            outcome["ok"] = True
        except Exception as exc:  # noqa: BLE001 - what the put raised is the outcome
            outcome["error"] = exc

    writer.append(threading.Thread(target=put))
    writer[0].start()
    assert committed.wait(10)
    if how == "store":
        db.close()
    else:
        with db._lock:
            pager.close(checkpoint=False)
    go.set()
    writer[0].join(10)
    snap.close()
    reader.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        if outcome.get("ok"):
            assert c.get(b"late") == b"1", "a write acknowledged after its store closed was never synced"
        else:
            assert isinstance(outcome.get("error"), PageStoreError), outcome
        assert c[b"base"] == b"0"
        c.check()


def test_a_snapshot_closed_while_the_turn_is_kept_lets_its_read_mark_go(tmp_path):
    """A writer keeping its turn locks a read mark in the shared index for each snapshot (the writers
    after its turn must neither copy past it nor restart the log it reads). Closed, the snapshot's
    mark goes at once, inside a transaction too, not when the turn is given up."""
    from pagestore import fileio

    path = str(tmp_path / "m.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
        assert db._turns.kept
        fd = os.open(path + "-shm", os.O_RDWR)
        try:
            def held() -> bool:
                return (fileio.held_by_others(fd, shm.READ_BASE, shm.READ_SPAN) is not None
                        or fileio.held_by_others(fd, shm.LOCK_READ0, 1) is not None)

            snap = db.snapshot()
            db[b"b"] = b"2"
            assert held() and snap[b"a"] == b"1" and b"b" not in snap
            snap.close()
            assert not held()
            with db.snapshot() as snap:
                with db.transaction() as t:
                    t[b"c"] = b"3"
                    assert held()
                    snap.close()
                    assert not held()
            assert db._turns.kept
        finally:
            os.close(fd)


def test_a_catch_up_from_the_shared_index_leaves_the_log_as_recovery_reads_it(tmp_path, monkeypatch):
    """A writer taking its turn takes the frames the others published from the shared index's list
    (``WAL._adopt``), not from the file: its log in memory (frame lists, delta depths, index,
    committed end and checksum) must be what reading the file gives (``WAL.recover``), for
    whole images and chains of deltas alike, and the frames it appends after must chain on."""
    from faultfs import Disk
    from pagestore import store as store_mod, wal as wal_mod
    from pagestore.store import Store

    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)  # a turn per write: a catch-up per write
    adopted: List[int] = []
    real = wal_mod.WAL._adopt

    def adopt(self, entries, frames):
        out = real(self, entries, frames)
        adopted.append(len(out[0]))  # (the pages taken, the bytes after them)
        return out

    monkeypatch.setattr(wal_mod.WAL, "_adopt", adopt)
    disk = Disk(str(tmp_path), seed=1)
    path = str(tmp_path / "a.ps")
    a = Store(path, _opener=disk.opener, sync=False, page_size=512)
    b = Store(path, _opener=disk.opener, sync=False, page_size=512)
    for db in (a, b):
        with db._lock:
            db._turns._give_up()
        db._turns._given = time.monotonic()
    for i in range(60):
        a[b"a%03d" % (i % 25)] = b"x" * (i % 7 * 30)
        b[b"b%03d" % i] = b"y" * 40
        if i % 10 == 9:
            with b.transaction() as t:
                for j in range(12):
                    t[b"t%02d" % j] = b"%d" % i
        for db in (a, b):
            db[b"probe"] = b"%d" % i  # each takes a turn: catches up with the other's commits
            w = db._pager.wal
            fresh = wal_mod.WAL(w.path, w.page_size, w.file_id, readonly=True, opener=disk.opener)
            fresh.recover(0)
            assert (w.committed_frames, w.committed_end, w.committed_crc) == \
                (fresh.committed_frames, fresh.committed_end, fresh.committed_crc)
            assert w.index == fresh.index
            assert (w.frame_offsets, w.frame_pgnos) == (fresh.frame_offsets, fresh.frame_pgnos)
            assert [w.depth[off] for off in w.frame_offsets] == [fresh.depth[off] for off in fresh.frame_offsets]
            fresh.close()
    assert sum(1 for n in adopted if n) > 50, adopted  # the list was used, not the file
    for db in (b, a):
        db.check()
        db.close()
    with Store(path, _opener=disk.opener) as c:
        assert c[b"probe"] == b"59" and c[b"b059"] == b"y" * 40
        c.check()


def test_a_catch_up_reads_again_only_the_free_space_map_pages_that_changed(tmp_path, monkeypatch):
    """A writer catching up with the others' commits reads again the map pages they changed
    (``FreeSpaceMap.reload``), the chain's last one too when nothing follows it (a store of one
    map page: nearly every commit changes it), not the whole map (``load``) each time; and the
    map in memory is the stored one (check())."""
    from faultfs import Disk
    from pagestore import heap, store as store_mod
    from pagestore.store import Store

    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)
    disk = Disk(str(tmp_path), seed=2)
    path = str(tmp_path / "m.ps")
    a = Store(path, _opener=disk.opener, sync=False)
    b = Store(path, _opener=disk.opener, sync=False)
    loads = [0]
    real = heap.FreeSpaceMap.load

    def load(self, read=True):
        loads[0] += 1
        real(self, read)

    monkeypatch.setattr(heap.FreeSpaceMap, "load", load)
    checks = 0
    for i in range(40):
        a[b"a%03d" % i] = b"x" * (300 + 37 * (i % 5))
        b[b"b%03d" % i] = b"y" * 300
        if i % 4 == 3:
            del a[b"a%03d" % (i - 2)]
            for db in (a, b):
                with db._lock:
                    db._pager.begin_operation()
                    fsm = db._heap.fsm
                    fsm.settle()
                    stored = heap.FreeSpaceMap(db._pager)  # a whole load, counted apart
                    checks += 1
                    assert (list(fsm.offered()), fsm.pages) == (list(stored.offered()), stored.pages)
                    fsm.check()  # the bits cover every entry (they may say more: cleared lazily)
    assert loads[0] - checks <= 4, f"{loads[0] - checks} whole loads of the free-space map in 80 catch-ups"
    for db in (a, b):
        db.check()
        db.close()


def test_frames_of_an_open_transaction_that_a_failed_sync_dropped_are_written_again_at_its_commit(tmp_path):
    """A transaction's pages spilled to the log (frames past the committed end) while another
    process's sync runs; that sync fails and drops them. A sync of this log before the
    transaction commits (another thread's group) writes again only the committed frames and
    clears the shared index's word; the transaction's own sync, at its commit, must still write
    its spilled frames again (the failure count moved since this log's last good sync that
    covered them), or its acknowledged commit lies behind frames recovery never reaches."""
    from faultfs import Disk
    from pagestore import shm as shm_mod, wal as wal_mod

    ps = 512
    disk = Disk(str(tmp_path), seed=4)
    path = str(tmp_path / "t.ps-wal")
    index = shm_mod.SharedIndex(str(tmp_path / "t.ps-shm"), ps, 7)
    w = wal_mod.WAL(path, ps, 7, opener=disk.opener)
    w.recover(1)
    w.record_frames_in(index)
    page = lambda b: bytes([b]) * ps  # noqa: E731
    w.commit([(1, page(1), None), (0, page(9), None)], 1, 2, durable=True)  # durable, synced
    w.append(2, page(2), 2)  # the open transaction spills page 2
    content = w.file.content
    # Another process's sync fails now: every dirty page of the log is marked clean unwritten.
    index.lock(shm_mod.LOCK_SYNC, exclusive=True)
    index.mark_unsynced(w.salt, w.committed_end)
    content.pending = []
    index.bump(shm_mod.FAILURES_OFFSET, 0)
    index.unlock(shm_mod.LOCK_SYNC)
    w.sync()  # another thread's sync: committed frames only, and the word is cleared
    assert index.unsynced() is None
    w.commit([(3, page(3), None), (0, page(8), None)], 2, 4, durable=True)  # the transaction commits
    index.close()
    disk.crash("drop")
    r = wal_mod.WAL(path, ps, 7, readonly=True, opener=disk.opener)
    r.recover(1)
    assert r.committed_frames == 5, "the transaction's commit was lost behind its dropped spilled frame"
    assert r.read_frame(r.index[2], 2) == page(2)
    r.close()


def test_a_sync_in_another_process_makes_the_frames_published_before_it_durable(tmp_path):
    """A sync shared across processes (shm.py's ``durable``): A's sync begins after B published
    its frames, so A's fsync writes them too; B's own sync that follows finds them durable and
    syncs nothing. Both commits survive a power cut (faultfs keeps only what a sync covered)."""
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    with a.transaction(sync=False) as t:
        t[b"a"] = b"1"
    with b.transaction(sync=False) as t:
        t[b"b"] = b"2"
    syncs_before = b._pager.wal.syncs
    a.sync()
    b.sync()
    assert b._pager.wal.shared_syncs == 1 and b._pager.wal.syncs == syncs_before
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"a") == b"1" and c.get(b"b") == b"2"
        c.check()


def test_a_sync_that_wrote_again_only_its_own_frames_leaves_the_others_unsynced(tmp_path, monkeypatch):
    """B's sync fails and drops every dirty page of the log: A's frames and B's after them. A's sync
    that follows writes again what A knows (up to its committed end) and returns; B's frames, past
    A's end, are still not on disk, so the shared index must go on saying so (from A's end), not be
    cleared. A's next turn catches up onto B's frames, finds them unsynced and writes them again
    before it builds on them: A's acknowledged commit survives a power cut."""
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    with a.transaction(sync=False) as t:
        t[b"a"] = b"1"
    with b.transaction(sync=False) as t:
        t[b"b"] = b"2"
    a_end = a._pager.wal.committed_end
    _fail_next_log_sync(monkeypatch)
    with pytest.raises(OSError):
        b.sync()
    # A's sync as a deferred group sync runs it, after A's turn ended: no catch-up before it
    # (``Store.sync`` would begin an operation, and A would know B's frames).
    a._pager.sync()
    assert a._pager.wal.committed_end == a_end
    index = a._pager.sharing.index
    assert index.unsynced() == (a._pager.wal.salt, a_end)
    a[b"acked"] = b"3"
    assert a[b"b"] == b"2"
    b.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"acked") == b"3", "an acknowledged commit was lost behind frames a failed sync dropped"
        assert c.get(b"a") == b"1" and c.get(b"b") == b"2"
        c.check()


def test_a_failed_write_of_the_frames_a_failed_sync_left_poisons_the_writer_that_wrote_them_again(tmp_path, monkeypatch):
    """A's log sync fails; B, taking its turn, writes A's frames again (``WAL.repair``) and that
    write fails (EIO). A failed write of the log is a failed sync (the log's one helper for both):
    B's log refuses every later sync until it is reopened (so B never acknowledges a commit built
    on frames it could not write), and the shared index counts the failure for the other writers."""
    import errno

    import faultfs
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    _fail_next_log_sync(monkeypatch)
    with pytest.raises(OSError):
        a[b"lost"] = b"1"
    index = b._pager.sharing.index
    assert index.unsynced() is not None
    failures = index.word(shm.FAILURES_OFFSET)
    real_write = faultfs.FaultFile.write
    failed: List[int] = []

    def write(self, offset: int, data: bytes) -> None:
        if self.path.endswith("-wal") and not failed:
            failed.append(offset)
            raise OSError(errno.EIO, "injected log write failure")
        real_write(self, offset, data)

    monkeypatch.setattr(faultfs.FaultFile, "write", write)
    with pytest.raises(OSError):
        b[b"acked"] = b"2"  # its turn's repair of A's frames failed to write them
    assert failed, "the repair wrote nothing"
    assert index.word(shm.FAILURES_OFFSET) == failures + 1
    with pytest.raises((OSError, PageStoreError)):
        b[b"after"] = b"3"  # the log refuses: no commit of B is acknowledged until it is reopened
    a.close()
    b.close()
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert b"after" not in c and b"acked" not in c
        c.check()


def test_a_writer_that_caught_up_logs_its_header_as_a_delta(tmp_path, monkeypatch):
    """A writer taking its turn after the others' commits logs its commit's header (page 0) as a
    delta from the newest header frame, which its catch-up read, as a single writer does: logged
    whole after every catch-up instead, 4 processes of one-put commits wrote 8.6 KB of log a
    commit against 4.9 KB for one alone. The header the pager keeps for that delta must be the
    log's (check()), and the store reads back whole after a reopen."""
    from faultfs import Disk
    from pagestore import store as store_mod, wal as wal_mod
    from pagestore.store import Store

    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)  # a turn per write: a catch-up per write
    disk = Disk(str(tmp_path), seed=4)
    path = str(tmp_path / "h.ps")
    a = Store(path, _opener=disk.opener, sync=False)
    b = Store(path, _opener=disk.opener, sync=False)
    for db in (a, b):
        with db._lock:
            db._turns._give_up()
        db._turns._given = time.monotonic()
    rounds = 40
    for i in range(rounds):
        a[b"a%03d" % i] = b"x" * 100
        b[b"b%03d" % i] = b"y" * 100
    wal = b._pager.wal
    ends = wal.frame_offsets[1:] + [wal.end]
    sizes = [end - off - wal_mod.FRAME_HEADER_SIZE
             for pgno, off, end in zip(wal.frame_pgnos, wal.frame_offsets, ends) if pgno == 0]
    assert len(sizes) >= 2 * rounds
    whole = sum(1 for n in sizes[-2 * rounds:] if n == wal.page_size)
    # A whole header every MAX_CHAIN + 1 at most (the chain's limit), not one a commit.
    assert whole <= 2 * rounds // (wal_mod.MAX_CHAIN + 1) + 1, (whole, sizes[-20:])
    for db in (a, b):
        db.check()
    a.close()
    b.close()
    with Store(path, _opener=disk.opener) as c:
        assert c[b"a039"] == b"x" * 100 and c[b"b039"] == b"y" * 100
        assert len(c) == 2 * rounds
        c.check()


def test_a_commit_never_published_after_published_ones_is_kept_by_the_next_writer(tmp_path):
    """The catch-up takes the published frames from the shared index (``WAL._adopt``) and reads in
    the same call the bytes after them: a commit frame there (a writer killed between its commit
    and its publication, after commits it did publish) is read from the file and kept, as the
    catch-up that reads the file throughout keeps it."""
    path = str(tmp_path / "v.ps")
    with pagestore.open(path) as db:
        db[b"before"] = b"0"
        _die_before_publishing(path, (b"published", b"published2"))
        # No read first (it would take the published frames itself): the turn's catch-up takes
        # them from the list and finds the commit past them.
        db[b"after"] = b"2"
        assert db[b"unpublished"] == b"1" and db[b"after"] == b"2"
        db.check()
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"before": b"0", b"published": b"1", b"published2": b"1",
                                    b"unpublished": b"1", b"after": b"2"}


def _turn_a_write(tmp_path, monkeypatch, name: str, seed: int, **kw):
    """_turn_a_write: two stores on one file in this process, taking turns a write at a time (each
    write a catch-up with the other's commits), on a fault-free Disk."""
    from faultfs import Disk
    from pagestore import store as store_mod
    from pagestore.store import Store

    monkeypatch.setattr(store_mod, "KEEP_AFTER", 1e9)  # a turn per write: a catch-up per write
    disk = Disk(str(tmp_path), seed=seed)
    path = str(tmp_path / name)
    a = Store(path, _opener=disk.opener, sync=False, **kw)
    b = Store(path, _opener=disk.opener, sync=False, **kw)
    for db in (a, b):
        with db._lock:
            db._turns._give_up()
        db._turns._given = time.monotonic()
    return a, b


def test_a_catch_up_reads_the_frames_it_took_from_one_read_and_none_of_an_older_log(tmp_path, monkeypatch):
    """A writer catching up reads the frames the others committed since its last turn in one read
    (``WAL._adopt``) and rebuilds the pages they changed from those bytes (``_frame_bytes``), not
    with a read of the file per frame. Those bytes are one log generation's: after another writer
    restarts the log, frames at the same offsets are other frames, read from the file (served
    from the old bytes, they belong to another log: CorruptionError, or a stale page)."""
    from pagestore import wal as wal_mod

    a, b = _turn_a_write(tmp_path, monkeypatch, "w.ps", 3, page_size=512)
    served = [0, 0]  # frames rebuilt from the bytes read at once, from the file
    real = wal_mod.WAL._frame_bytes

    def frame_bytes(self, off):
        raw = real(self, off)
        served[len(raw) == wal_mod.FRAME_HEADER_SIZE + self.page_size] += 1
        return raw

    monkeypatch.setattr(wal_mod.WAL, "_frame_bytes", frame_bytes)
    for rnd in range(3):
        # After the first round, b writes the log anew from its start: its frames take the
        # offsets of those a read at once last round, in the log b restarted since.
        for i in range(30):
            b[b"k%02d" % i] = b"%d-%02d" % (rnd, i) * (1 + i % 9)
        served[:] = [0, 0]
        a[b"probe"] = b"%d" % rnd  # a catches up: b's 30 commits
        assert a[b"k07"] == b"%d-07" % rnd * 8
        if rnd == 0:
            assert served[0] > 0, served  # the header, the map, the leaves: from the bytes read at once
        assert b.checkpoint()["restarted"], "the log restarts: the same offsets, other frames"
    for db in (a, b):
        assert {db[b"k%02d" % i] for i in range(30)} == {b"2-%02d" % i * (1 + i % 9) for i in range(30)}
        db.check()
    b.close()
    a.close()


def test_a_writer_catching_up_maps_the_pages_another_writers_checkpoint_added_to_the_file(tmp_path, monkeypatch):
    """A writer catching up reads the data file's size once a turn (``_check_extent``) and maps by
    it (``_cover``), not with a second read of it: when another writer's checkpoint grew the file,
    the catch-up maps the new pages (else it reads them through its cache until the next remap)."""
    a, b = _turn_a_write(tmp_path, monkeypatch, "g.ps", 4, page_size=512)
    for rnd in range(3):
        a[b"a%d" % rnd] = b"x"
        for i in range(40):
            b[b"k%d-%03d" % (rnd, i)] = b"v" * 60  # new pages, in the log until b's checkpoint
        before = a.stats()["mapped_bytes"]
        assert b.checkpoint()["copied"]
        size = b._pager.file.size()  # (the fault-free Disk's file)
        assert size > before  # the checkpoint grew the file past a's map
        a[b"probe"] = b"%d" % rnd  # a catches up
        assert a.stats()["mapped_bytes"] == size // 512 * 512
    for db in (a, b):
        db.check()
        db.close()


# ---- syncs of several processes overlap (shm.py "Unsynced": sync slots) ----


def _overlap_a_failing_sync(tmp_path, monkeypatch, errseq: bool):
    """Writer A's deferred sync of the log fails as Linux's does (every dirty page marked clean,
    unwritten), and returns only once B's sync, begun after, has returned from its fdatasync.
    ``errseq``: the failure is reported to B's open log too (Linux 4.13+); else B is not told
    (an older kernel, or a log opened after someone was told). Returns (disk, path, a, b, what
    happened: "overlapped", A's and B's outcome)."""
    import threading

    import faultfs

    disk, path, a, b = _two_writers(tmp_path)
    a_log, b_log = a._pager.wal.file, b._pager.wal.file
    real = faultfs.FaultFile.sync
    a_in_sync, b_synced, release = threading.Event(), threading.Event(), threading.Event()
    armed = {"on": True}

    def sync(self) -> None:
        if self is a_log and armed["on"]:
            armed["on"] = False
            if errseq:
                self.fail_sync()
            else:
                self.content.pending = []  # marked clean, never written; nobody else is told
            a_in_sync.set()
            assert release.wait(20)
            raise OSError(errno.EIO, "injected log sync failure")
        try:
            real(self)
        finally:
            if self is b_log:
                b_synced.set()

    monkeypatch.setattr(faultfs.FaultFile, "sync", sync)
    b_waits = threading.Event()
    real_wait = shm.SharedIndex.wait_slot

    def wait_slot(self, i: int, deadline: Optional[float] = None) -> bool:
        if self is b._pager.sharing.index:
            b_waits.set()
        return real_wait(self, i, deadline)

    monkeypatch.setattr(shm.SharedIndex, "wait_slot", wait_slot)
    out: Dict[str, Any] = {}

    def put(db, key: bytes, name: str) -> None:
        try:
            db[key] = b"1"
            out[name] = "acked"
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's
            out[name] = exc

    ta = threading.Thread(target=put, args=(a, b"lost", "a"))
    ta.start()
    assert a_in_sync.wait(20)
    tb = threading.Thread(target=put, args=(b, b"acked", "b"))
    tb.start()
    # B's fdatasync runs while A's has not returned: syncs overlap. (One at a time, B's sync
    # waits for A's to end: that it never reached the disk in 3 s says so.)
    out["overlapped"] = b_synced.wait(3)
    # A's failure is let out once B waits for it, or B is done without waiting.
    deadline = time.monotonic() + 5
    while not b_waits.is_set() and tb.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    ta.join(30)
    tb.join(30)
    assert not ta.is_alive() and not tb.is_alive()
    return disk, path, a, b, out


def test_overlapping_syncs_one_failing_a_writer_not_told_acknowledges_only_after_writing_again(tmp_path, monkeypatch):
    """A's sync fails while B's runs beside it; B is not told by its own fdatasync (an older
    kernel, or a log opened after the failure was reported). B's fdatasync returned while A's
    had already dropped A's frames, which B's commit lies behind: B must not acknowledge until
    it knows how A's sync ended (its sync waits for every sync that ran beside it), and then
    writes the log again from where A's could have dropped it. A is poisoned; B's acknowledged
    commit survives a power cut. (A variant that does not wait for the syncs beside it loses
    B's commit; with one sync at a time, B's never overlaps A's.)"""
    from pagestore.store import Store

    disk, path, a, b, out = _overlap_a_failing_sync(tmp_path, monkeypatch, errseq=False)
    assert out["overlapped"], "B's sync waited for A's: syncs of two processes did not overlap"
    assert isinstance(out["a"], OSError), out["a"]
    assert out["b"] == "acked", out["b"]
    assert a._pager.poisoned is not None
    with pytest.raises((OSError, PageStoreError)):
        a[b"again"] = b"x"
    index = b._pager.sharing.index
    settled = index.unsynced() is None and not index.busy_slots()
    disk.crash("drop")  # B open: its close would sync again
    with Store(path, _opener=disk.opener) as c:
        assert c.get(b"acked") == b"1", "an acknowledged commit was lost behind frames a failed sync dropped"
        assert c[b"base"] == b"0"
        c.check()
    assert settled, "B's sync wrote the log again but left the shared words unsettled"


def test_overlapping_syncs_one_failing_errseq_tells_the_other_and_neither_acknowledges(tmp_path, monkeypatch):
    """As above with Linux's errseq: B's fdatasync, beside A's failed one, reports A's failure
    (B's log was open when it happened), so B is poisoned as well: no commit of either is
    acknowledged past the failure, and after a power cut the store opens clean."""
    from pagestore.store import Store

    disk, path, a, b, out = _overlap_a_failing_sync(tmp_path, monkeypatch, errseq=True)
    assert out["overlapped"]
    assert isinstance(out["a"], OSError) and isinstance(out["b"], OSError), out
    for db in (a, b):
        assert db._pager.poisoned is not None
        with pytest.raises((OSError, PageStoreError)):
            db[b"again"] = b"x"
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c[b"base"] == b"0"
        c.check()
        c[b"after"] = b"1"
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert c[b"after"] == b"1"


def test_a_writer_killed_mid_sync_while_another_syncs(tmp_path):
    """Process A is killed (SIGKILL) inside its sync of the log, after taking its sync slot and
    before its fdatasync returned; B's commit, built on A's frames, syncs meanwhile. B does not
    acknowledge while A's sync may still fail; once A is dead, its slot's record says it never
    ended, which counts as a failed sync (the failure count goes up): B writes the log again
    from there and syncs before it acknowledges. The shared words are settled after; a third
    open finds both commits and a clean store."""
    import select

    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"seed"] = b"0"
    # A writer open here (idle) keeps A out of sole mode: A's sync is a round, in a slot it locks.
    probe = pagestore.open(path)
    a = Proc("hang", path, "hung")
    a.expect("IN_SYNC", 60)
    index = probe._pager.sharing.index
    failures = index.word(shm.FAILURES_OFFSET)
    assert index.busy_slots(), "A's sync holds no slot"
    b = Proc("put", path, "after")
    b.expect("START", 60)
    ready, _, _ = select.select([b.p.stdout], [], [], 1.5)
    assert not ready, f"B acknowledged while A's sync ran: {b.p.stdout.readline()!r}"
    a.kill()
    b.expect("PUT", 30)
    b.finish()
    _dead_sync_counted_and_every_commit_kept(probe, failures, path)


def _dead_sync_counted_and_every_commit_kept(probe: Any, failures: int, path: str) -> None:
    """After A died in its sync and B's put went through: A's sync counted as one failure, the words
    settled, and a new open finds A's, B's and the base commit in a clean store. ``probe``: an
    open of the store kept to read the index (closed here)."""
    index = probe._pager.sharing.index
    assert index.word(shm.FAILURES_OFFSET) == failures + 1, "A's unfinished sync was not counted as failed"
    assert index.unsynced() is None and not index.busy_slots()
    probe.close()
    with pagestore.open(path) as c:
        assert c[b"after"] == b"2" and c[b"hung"] == b"1" and c[b"base"] == b"1"
        c.check()


def test_a_sole_writer_killed_mid_sync_keeps_a_new_writer_out_then_counts_as_failed(tmp_path):
    """Sole mode (docs/format.md): A is the only writer, so its sync holds LOCK_WRITERS exclusively
    and records itself in a slot with no slot lock and no LOCK_SYNC. A is killed (SIGKILL) inside
    that fdatasync. B, a writer opening meanwhile, must not get in while A's sync runs (its open
    waits at LOCK_WRITERS: no START); once A is dead, B's open finds A's record under a free lock,
    counts it as a failed sync (the failure count goes up), writes the log again from where it
    says and syncs before it builds on it. A third open finds every commit and a clean store."""
    import select

    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        db[b"seed"] = b"0"
    a = Proc("hang", path, "hung")
    a.expect("IN_SYNC", 60)
    probe = pagestore.open(path, readonly=True)  # a reader: it takes no LOCK_WRITERS
    index = probe._pager.sharing.index
    failures = index.word(shm.FAILURES_OFFSET)
    assert index.busy_slots(), "A's sole sync left no record in a slot"
    slot = index.busy_slots()[0]
    assert shm.try_lock(index.fd, shm.LOCK_SLOT + slot, 1), "a sole sync takes no slot lock"
    shm.unlock(index.fd, shm.LOCK_SLOT + slot, 1)
    b = Proc("put", path, "after")
    ready, _, _ = select.select([b.p.stdout], [], [], 1.5)
    assert not ready, f"B opened while A's sole sync ran: {b.p.stdout.readline()!r}"
    a.kill()
    b.expect("START", 30)
    b.expect("PUT", 30)
    b.finish()
    _dead_sync_counted_and_every_commit_kept(probe, failures, path)


def test_a_sync_after_a_counted_failure_on_a_log_another_writer_restarted_is_not_a_failure(tmp_path):
    """B commits with sync=False; a process then dies in its sync (a slot's record left under a free
    lock: a failure counted); A takes its turn, writes the log again, checkpoints and restarts the
    log. B's own sync that follows must write again from its durable end (a failure was counted
    since), but its log is gone: every frame it committed is in the data file, synced by A's
    checkpoint. Writing its old frames again would land on the new log's (or, refused, poison B
    for nothing): it syncs nothing and succeeds, and B writes on; both survive a power cut."""
    from pagestore.store import Store

    disk, path, a, b = _two_writers(tmp_path)
    with b.transaction(sync=False) as t:
        t[b"b"] = b"1"
    index = a._pager.sharing.index
    index.set_slot(shm.SLOTS - 1, a._pager.wal.salt, 0)  # its process died in its sync
    failures = index.word(shm.FAILURES_OFFSET)
    a[b"a"] = b"1"
    assert index.word(shm.FAILURES_OFFSET) == failures + 1 and not index.busy_slots()
    assert a.checkpoint()["restarted"]
    a[b"a2"] = b"2"
    b._pager.sync()  # as B's deferred group sync runs it: no operation begun, its log as it was
    assert b._pager.poisoned is None
    b[b"b2"] = b"2"
    disk.crash("drop")
    with Store(path, _opener=disk.opener) as c:
        assert (c[b"b"], c[b"a"], c[b"a2"], c[b"b2"]) == (b"1", b"1", b"2", b"2")
        c.check()


def test_a_page_another_process_changed_between_turns_is_brought_up_to_date_never_written_stale(tmp_path):
    """This process holds the heap page, the map page and the header its put wrote; another
    process puts into that same heap page (durably, then dies without closing: the log is not
    restarted) and so changes exactly the pages held here. The next read here takes that
    commit's frames from the shared index and applies them to the images it holds (the same
    cached frames, kept: WAL.advance), which are then the other process's images byte for byte;
    the next put here is built on them, and a fresh open reads both records, check() clean."""
    path = str(tmp_path / "held.ps")
    db = pagestore.open(path, timeout=10)
    try:
        db[b"a0"] = b"x" * 40
        pager = db._pager
        held = dict(pager.cache)
        index = dict(pager.wal.index)
        heap_pages = {p for p, f in held.items() if f.page.page_type == PAGE_HEAP}
        code = ("import os, sys, pagestore\n"
                "db = pagestore.open(sys.argv[1], timeout=10)\n"
                "db[b'b0'] = b'y' * 40\n"
                "os._exit(0)\n")
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert db[b"b0"] == b"y" * 40
        moved = {p for p, off in pager.wal.index.items() if index.get(p) != off}
        kept = {p for p, f in held.items() if p in moved and pager.cache.get(p) is f}
        assert heap_pages & moved and kept == moved - {0}, (heap_pages, moved, kept)  # every page B changed, kept
        for p in kept:
            assert bytes(pager.cache[p].buf) == bytes(pager.wal.read_frame(pager.wal.index[p], p)), p
        db[b"a1"] = b"z" * 40
    finally:
        db.close()
    with pagestore.open(path) as fresh:
        fresh.check()
        assert dict(fresh.items()) == {b"a0": b"x" * 40, b"b0": b"y" * 40, b"a1": b"z" * 40}
