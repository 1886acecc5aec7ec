"""CommitQueue (pagestore/group.py) with a stand-in for the store's commit: batching, outcomes, failures."""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Dict, List

import pytest

from pagestore.errors import PageStoreError, ReentrantWriteError
from pagestore.group import CommitQueue
from pagestore.locks import WriteLock


class FakeStore:
    """FakeStore applies a batch as one 'commit' that takes ``delay`` seconds (a sync), under its lock."""

    def __init__(self, delay: float = 0.002) -> None:
        self.writer = WriteLock("fake")
        self.lock = threading.RLock()
        self.delay = delay
        self.commits: List[List[Any]] = []
        self.fail_next = 0
        self.queue = CommitQueue(self.writer, self.lock, self.apply)

    def apply(self, fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        assert self.writer.owned()
        results = [fn() for fn in fns]
        time.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(5, "injected sync failure")
        self.commits.append(results)
        return results


def test_one_thread_commits_alone():
    s = FakeStore(0)
    assert [s.queue.submit(lambda i=i: i, True) for i in range(5)] == list(range(5))
    assert s.commits == [[0], [1], [2], [3], [4]]


def test_concurrent_writes_share_commits():
    s = FakeStore(0.003)
    out: List[Any] = []

    def worker(t: int) -> None:
        for i in range(20):
            out.append(s.queue.submit(lambda t=t, i=i: (t, i), True))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(out) == sorted((t, i) for t in range(8) for i in range(20))
    assert sum(len(c) for c in s.commits) == 160
    assert len(s.commits) < 160 / 2, "eight threads should share most syncs"
    # each thread's writes are committed in its own order
    for t in range(8):
        mine = [x for c in s.commits for x in c if x[0] == t]
        assert mine == [(t, i) for i in range(20)]


def test_a_failing_write_fails_alone():
    s = FakeStore(0.003)
    results: dict = {}
    gate = threading.Barrier(6)

    def worker(t: int) -> None:
        def fn() -> int:
            if t == 3:
                raise ValueError("bad write")
            return t

        gate.wait()
        try:
            results[t] = s.queue.submit(fn, True)
        except ValueError as exc:
            results[t] = exc

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert isinstance(results.pop(3), ValueError)
    assert results == {t: t for t in (0, 1, 2, 4, 5)}


def test_a_failed_sync_fails_every_write_of_its_batch_and_nothing_is_retried():
    """An OSError from the commit is the disk's, not one write's: the store is poisoned by it
    (Pager._poison), so a retry of each write could only fail again or, worse, commit behind
    a hole in the log. Every write of the failed batch gets the same error; none is retried."""
    s = FakeStore(0.05)
    applied: List[int] = []
    real = s.apply
    inside = threading.Event()

    def counting(fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        applied.append(len(fns))
        if len(applied) == 2:  # the batch queued behind the first commit: several writes
            s.fail_next = 1
        inside.set()
        return real(fns, sync)

    s.queue._apply = counting
    outcomes: List[Any] = []

    def worker(t: int) -> None:
        if t:
            inside.wait()  # queue up behind the first commit
        try:
            outcomes.append(s.queue.submit(lambda: t, True))
        except OSError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    failed = [o for o in outcomes if isinstance(o, OSError)]
    assert applied[0] == 1 and len(failed) == applied[1] >= 2  # the second batch, whole
    assert all(e is failed[0] for e in failed)
    assert len(applied) == 1 + len(s.commits)  # no retry: one apply per batch
    assert sorted(o for o in outcomes if not isinstance(o, OSError)) == sorted(
        x for c in s.commits for x in c)


def test_a_thread_holding_the_write_lock_may_not_submit():
    """It would wait for a leader that waits for its lock: refused at once, nothing applied."""
    s = FakeStore(0)
    s.writer.acquire(None, "a transaction")
    try:
        with pytest.raises(ReentrantWriteError):
            s.queue.submit(lambda: "inside", True)
    finally:
        s.writer.release()
    assert s.commits == [] and not s.queue._busy


def test_a_commit_holding_the_lock_takes_the_queued_writes_along():
    """Single writes queued behind a transaction join its commit: one commit, every result delivered."""
    s = FakeStore(0)
    s.writer.acquire(None, "a transaction")
    out: List[Any] = []
    threads = [threading.Thread(target=lambda t=t: out.append(s.queue.submit(lambda: t, True))) for t in range(4)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 5
    while len(s.queue._queue) < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(s.queue._queue) == 4
    try:
        assert s.queue.commit_holding(lambda: "txn", True) == "txn"
    finally:
        s.writer.release()
    for th in threads:
        th.join()
    assert sorted(out) == [0, 1, 2, 3]
    assert s.commits[0][0] == "txn" and sorted(s.commits[0][1:]) == [0, 1, 2, 3]
    assert len(s.commits) == 1 and not s.queue._busy


def test_a_write_waiting_past_its_timeout_gets_store_locked():
    from pagestore.errors import StoreLockedError

    s = FakeStore(0)
    s.writer.acquire(None, "a transaction")
    got: List[Any] = []

    def write() -> None:
        t0 = time.monotonic()
        try:
            s.queue.submit(lambda: 1, True, timeout=0.05)
        except StoreLockedError as exc:
            got.append((exc, time.monotonic() - t0))

    try:
        th = threading.Thread(target=write)
        th.start()
        th.join(5)
    finally:
        s.writer.release()
    assert len(got) == 1 and 0.04 < got[0][1] < 2, got
    assert not s.queue._busy and not s.queue._queue
    assert s.queue.submit(lambda: 2, True) == 2


def test_an_interrupted_leader_leaves_the_queue_usable():
    s = FakeStore(0)
    real = s.apply

    def boom(fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        raise KeyboardInterrupt

    s.queue._apply = boom
    with pytest.raises(KeyboardInterrupt):
        s.queue.submit(lambda: 1, True)
    s.queue._apply = real
    assert s.queue.submit(lambda: 2, True) == 2
    assert not s.queue._busy and not s.queue._queue


def test_an_unapplied_request_gets_an_error_not_none():
    """A batch the leader never applied (interrupted while taking the lock) raises in its followers."""
    s = FakeStore(0)
    q = s.queue
    from pagestore.group import _Request

    leader = _Request(lambda: 0, True)
    follower = _Request(lambda: 1, True)
    q._queue = [leader, follower]
    q._busy = True

    def interrupted(batch: Any, *apply: Any) -> None:
        raise KeyboardInterrupt

    q._run = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        q._lead(leader)
    assert follower.done and isinstance(follower.error, PageStoreError)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_store_inherited_mid_commit_refuses_in_the_child(tmp_path):
    """fork() while another thread commits copies a busy queue that nothing will ever drain:
    a write in the child must raise (the store is not the child's), not wait forever."""
    from pagestore.store import Store

    db = Store(os.path.join(str(tmp_path), "s"), page_size=512, sync=False)
    db[b"a"] = b"1"
    db._commits._busy = True  # as if a commit were running in another thread at the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            db[b"b"] = b"2"
        except PageStoreError:
            code = 0
        except BaseException:
            code = 2
        os._exit(code)
    db._commits._busy = False
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    db[b"c"] = b"3"
    assert dict(db.items()) == {b"a": b"1", b"c": b"3"}
    db.close()


class _Interrupted(Exception):
    """Raised by a test's signal handler in the main thread, as KeyboardInterrupt is by SIGINT's."""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_a_follower_interrupted_while_queued_leaves_the_queue_usable():
    """A queued single write whose thread is interrupted (Ctrl-C) while it waits must leave the queue:
    made the leader after it stopped waiting, it would never lead, and every later write (any
    thread's, whatever its timeout) would wait forever. Its write must not run either."""
    s = FakeStore(0)
    real = s.apply
    applying, gate = threading.Event(), threading.Event()

    def slow(fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        applying.set()
        gate.wait(10)
        return real(fns, sync)

    s.queue._apply = slow
    leader = threading.Thread(target=s.queue.submit, args=(lambda: "leader", True))
    leader.start()
    assert applying.wait(10)
    ran: List[str] = []

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted

    def when_queued() -> None:  # the signal once the main thread's write waits in the queue
        deadline = time.monotonic() + 10
        while not s.queue._queue and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Thread(target=when_queued)
    try:
        timer.start()
        with pytest.raises(_Interrupted):
            s.queue.submit(lambda: ran.append("main"), True)  # queued behind the leader's commit
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, old)
    s.queue._apply = real
    gate.set()
    leader.join(10)
    later: List[Any] = []
    t = threading.Thread(target=lambda: later.append(s.queue.submit(lambda: "later", True)), daemon=True)
    t.start()
    t.join(5)
    assert later == ["later"], "a write after the interrupted one waited forever"
    assert ran == [], "the interrupted write ran although its caller was told it was interrupted"
    assert not s.queue._busy and not s.queue._queue


def test_an_interrupt_while_a_batch_is_applied_is_not_swallowed():
    """KeyboardInterrupt (Ctrl-C) inside a shared commit: the batch is rolled back and the interrupt
    reaches the thread that was committing. It must not be taken for one write's failure and answered
    by retrying each write alone (which swallowed the interrupt, and committed writes after it)."""
    s = FakeStore(0)
    real = s.apply
    calls: List[int] = []

    def interrupted_once(fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        calls.append(len(fns))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(fns, sync)

    s.queue._apply = interrupted_once
    s.writer.acquire(None, "a transaction")  # as a transaction holding the lock
    outcome: List[Any] = []

    def single() -> None:
        try:
            outcome.append(s.queue.submit(lambda: "theirs", True))
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=single)
    t.start()
    deadline = time.monotonic() + 10
    while not s.queue._queue and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        with pytest.raises(KeyboardInterrupt):
            s.queue.commit_holding(lambda: "mine", True)
    finally:
        s.writer.release()
    t.join(10)
    assert calls == [2], "the interrupted batch was retried write by write"
    assert s.commits == []
    assert len(outcome) == 1 and isinstance(outcome[0], PageStoreError)
    s.queue._apply = real
    assert s.queue.submit(lambda: 3, True) == 3


class DeferredStore(FakeStore):
    """DeferredStore: FakeStore whose commits leave their sync owed, to run outside the locks (as the
    store's single writes do); a sync may be held at a gate."""

    def __init__(self) -> None:
        super().__init__(0)
        self.gate: "threading.Event | None" = None
        #: holds a sync before it reaches the disk (``begun``), as LOCK_SYNC's wait would
        self.approach: "threading.Event | None" = None
        self.in_sync = threading.Event()
        self.synced = 0
        self.events: List[str] = []
        self.queue = CommitQueue(self.writer, self.lock, self.apply, self.apply, self.owed)

    def apply(self, fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        results = super().apply(fns, sync)
        self.events.append("applied %s" % ",".join(map(str, results)))
        return results

    def owed(self) -> Callable[[Callable[[], None]], None]:
        def finish(begun: "Callable[[], None] | None" = None) -> None:
            approach = self.approach
            if approach is not None:
                self.approach = None
                self.in_sync.set()
                assert approach.wait(10)
            self.events.append("sync begun")
            if begun is not None:
                begun()
            gate = self.gate
            if gate is not None:
                self.gate = None
                self.in_sync.set()
                assert gate.wait(10)
            self.synced += 1
        return finish


@pytest.mark.parametrize("where", ["await", "lead"])
def test_an_interrupt_between_taking_the_sync_duty_and_the_sync_never_leaves_the_queue_without_a_syncer(where):
    """Ctrl-C lands in a thread just after it took the duty of running the next sync and before its
    sync began (injected at the entry of ``_sync_groups``): the duty must not stay taken with
    nobody to run it (every later write then waited forever for a sync), and the interrupted
    thread's write is not acknowledged. ``await``: the duty handed to a thread whose group waited
    for the running sync (a transaction's commit: single writes wait for the running sync before
    they apply); ``lead``: taken by a leader whose group nobody else syncs."""
    s = DeferredStore()
    q = s.queue
    real = q._sync_groups
    fired: List[int] = []

    def interrupted(groups: Any) -> None:
        if not fired:
            fired.append(len(groups))
            raise KeyboardInterrupt
        real(groups)

    q._sync_groups = interrupted  # type: ignore[method-assign]
    outcome: List[Any] = []

    def put(value: str) -> None:
        try:
            outcome.append(q.submit(lambda: value, True))
        except BaseException as exc:
            outcome.append(exc)

    def txn(value: str) -> None:
        try:
            assert s.writer.try_acquire(10, "a transaction")
            outcome.append(q.commit_holding(lambda: value, True, s.writer.release))
        except BaseException as exc:
            outcome.append(exc)

    if where == "await":
        # A's sync is held; transaction B commits meanwhile and waits for it; A's sync returning
        # hands B the duty.
        s.gate = gate = threading.Event()
        a = threading.Thread(target=put, args=("A",))
        a.start()
        assert s.in_sync.wait(10)
        b = threading.Thread(target=txn, args=("B",))
        b.start()
        deadline = time.monotonic() + 10
        while not q.awaiting and time.monotonic() < deadline:
            time.sleep(0.002)
        assert q.awaiting == 1
        gate.set()
        a.join(10)
        b.join(10)
        assert outcome[0] == "A" and isinstance(outcome[1], KeyboardInterrupt)
    else:
        # B queues behind A's commit (A holds the operation lock), so B leads; A's sync has already
        # run, so B takes the duty at once (``_enlist``) and is interrupted before its sync.
        with s.lock:
            a = threading.Thread(target=put, args=("A",))
            a.start()
            deadline = time.monotonic() + 10
            while not q._busy and time.monotonic() < deadline:
                time.sleep(0.002)
            b = threading.Thread(target=put, args=("B",))
            b.start()
            while not q.queued and time.monotonic() < deadline:
                time.sleep(0.002)
        a.join(10)
        b.join(10)
        assert sorted(map(repr, outcome)) == sorted(["'A'", repr(KeyboardInterrupt())])
    assert fired == [1]
    later = threading.Thread(target=put, args=("C",), daemon=True)
    later.start()
    later.join(5)
    assert not later.is_alive(), "a write after the interrupted sync waited forever for a syncer"
    assert outcome[-1] == "C"


def test_a_leader_applies_only_once_the_running_sync_has_ended():
    """One group in flight: a leader that finds a sync running waits for it to end before it applies,
    so that every write arriving meanwhile goes in its commit. Before, it applied as soon as that
    sync reached the disk, and the writes that sync then released formed the group after: two
    groups in flight, each about half the threads (3.8 puts per sync with 8 threads)."""
    s = DeferredStore()
    q = s.queue
    outcome: List[Any] = []

    def put(value: str) -> None:
        outcome.append(q.submit(lambda: value, True))

    s.gate = gate = threading.Event()
    a = threading.Thread(target=put, args=("A",))
    a.start()
    assert s.in_sync.wait(10)  # A committed alone; its sync is at the disk
    b = threading.Thread(target=put, args=("B",))
    b.start()
    deadline = time.monotonic() + 10
    while not q.queued and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.1)
    assert s.events == ["applied A", "sync begun"], "the leader applied while a sync ran"
    gate.set()
    a.join(10)
    b.join(10)
    assert sorted(outcome) == ["A", "B"]
    assert s.events == ["applied A", "sync begun", "applied B", "sync begun"]


def test_a_leader_whose_wake_up_was_lost_to_an_interrupt_still_goes_on(monkeypatch):
    """The leader waiting for the running sync to end (``_wait_for_awaiting``) is woken by the
    syncing thread; a Ctrl-C landing in that thread between the state's change and the
    wake-up (here: at the wake-up's ``set``) loses it. The leader must not wait for good: it looks
    again (``GATE_RECHECK``), finds the sync over, and commits its write."""
    from pagestore import group as grouplib

    s = DeferredStore()
    q = s.queue
    outcome: List[Any] = []

    def put(value: str) -> None:
        try:
            outcome.append(q.submit(lambda: value, True))
        except BaseException as exc:  # noqa: BLE001 - the outcome
            outcome.append(exc)

    real_set = grouplib._Signal.set
    fired: List[bool] = []

    def lost_set(self: Any) -> None:
        if q._gate is None and not fired and threading.current_thread() is a:
            fired.append(True)  # the gate taken out of its slot, about to be set: the interrupt lands
            raise KeyboardInterrupt("at the gate's set")
        real_set(self)

    s.approach = approach = threading.Event()
    a = threading.Thread(target=put, args=("A",))
    a.start()
    assert s.in_sync.wait(10)
    s.writer.acquire(10, "the test")
    b = threading.Thread(target=put, args=("B",), daemon=True)
    b.start()
    deadline = time.monotonic() + 10
    while q._gate is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert q._gate is not None, "the leader did not wait for the running sync"
    s.writer.release()
    monkeypatch.setattr(grouplib._Signal, "set", lost_set)
    approach.set()
    a.join(10)
    b.join(5)
    assert fired, "the interrupt did not land at the gate"
    assert not b.is_alive(), "the leader waited for good for a wake-up an interrupt had lost"
    assert "B" in outcome


# ---- the grouping policy: one group in flight, and the writers a sync released wait for each other ----


def _held_first_sync(s: "DeferredStore", q: CommitQueue, put: Callable[[str], None]) -> "tuple[threading.Thread, threading.Event]":
    """_held_first_sync starts put "A" on a thread and returns once A's sync is held at the disk
    (``s.gate``); set the returned event to let it return."""
    s.gate = gate = threading.Event()
    a = threading.Thread(target=put, args=("A",))
    a.start()
    assert s.in_sync.wait(10)
    return a, gate


def _recording_put(q: CommitQueue, outcome: Dict[str, Any]) -> Callable[[str], None]:
    """_recording_put: a single durable put of ``value`` through ``q`` whose outcome (its result, or
    whatever it raised, a KeyboardInterrupt too) lands in ``outcome[value]``."""

    def put(value: str) -> None:
        try:
            outcome[value] = q.submit(lambda: value, True)
        except BaseException as exc:  # noqa: BLE001 - the outcome
            outcome[value] = exc

    return put


def _wait_queued(q: CommitQueue, n: int) -> None:
    deadline = time.monotonic() + 10
    while q.queued < n and time.monotonic() < deadline:
        time.sleep(0.002)
    assert q.queued == n


def _release_after_queued(q: CommitQueue, n: int, a: threading.Thread, gate: threading.Event,
                          threads: List[threading.Thread]) -> None:
    """_release_after_queued starts ``threads``, waits until ``n`` writes queue behind A's held sync
    (``_held_first_sync``), lets that sync end (``gate``) and joins A and them."""
    for th in threads:
        th.start()
    _wait_queued(q, n)
    gate.set()
    for th in [a] + threads:
        th.join(10)


def test_a_lone_thread_never_waits(monkeypatch):
    """A thread that finds nothing else in flight commits at once (``_direct``): it never leads a
    queue, never waits for a sync or for other writers, and each put has its own sync."""
    s = DeferredStore()
    q = s.queue
    led: List[int] = []
    monkeypatch.setattr(q, "_lead", lambda me: led.append(1))
    monkeypatch.setattr(q, "_wait_for_awaiting", lambda me: pytest.fail("a lone thread waited"))
    assert [q.submit(lambda i=i: i, True) for i in range(50)] == list(range(50))
    assert led == [] and s.synced == 50 and q._expected == 0


def test_the_writers_a_sync_released_go_together_in_the_next_commit(monkeypatch):
    """Four threads' first puts arrive while A's sync runs: they wait for it and go as one commit.
    That commit's sync releases all four; the first to submit again leads and waits for the other
    three (``_expected``), so their second puts go as one commit too, not split between the
    first arrivals and the rest (two groups in flight, each half the threads: the old rule's
    3.8 puts per sync with 8 threads)."""
    from pagestore import group as grouplib

    monkeypatch.setattr(grouplib, "ARRIVAL_GAP", 10.0)  # a scheduler's hiccup must not split the group here
    s = DeferredStore()
    q = s.queue
    outcome: List[Any] = []

    def put(value: str) -> None:
        outcome.append(q.submit(lambda: value, True))

    def two_puts(t: int) -> None:
        put("%d-1" % t)
        put("%d-2" % t)

    a, gate = _held_first_sync(s, q, put)
    threads = [threading.Thread(target=two_puts, args=(t,)) for t in range(4)]
    _release_after_queued(q, 4, a, gate, threads)
    assert sorted(outcome) == sorted(["A"] + ["%d-%d" % (t, i) for t in range(4) for i in (1, 2)])
    assert [sorted(c) for c in s.commits] == [["A"], ["%d-1" % t for t in range(4)], ["%d-2" % t for t in range(4)]]
    assert s.synced == 3


def test_a_writer_that_does_not_come_back_holds_the_next_commit_at_most_the_gap(monkeypatch):
    """Of two writers a sync released, one submits again and the other never does: the leader waits
    ARRIVAL_GAP for it, no longer, commits alone, and the next put commits at once (the count
    of writers expected back lapses)."""
    from pagestore import group as grouplib

    monkeypatch.setattr(grouplib, "ARRIVAL_GAP", 0.2)
    s = DeferredStore()
    q = s.queue
    done: List[float] = []

    def put(value: str) -> None:
        q.submit(lambda: value, True)

    def stays() -> None:
        put("stays-1")
        t0 = time.monotonic()
        put("stays-2")
        done.append(time.monotonic() - t0)

    a, gate = _held_first_sync(s, q, put)
    threads = [threading.Thread(target=stays), threading.Thread(target=put, args=("leaves",))]
    _release_after_queued(q, 2, a, gate, threads)
    assert len(done) == 1 and 0.1 <= done[0] < 5, done
    assert [sorted(c) for c in s.commits] == [["A"], ["leaves", "stays-1"], ["stays-2"]]
    led: List[int] = []
    real_lead = q._lead
    monkeypatch.setattr(q, "_lead", lambda me: (led.append(1), real_lead(me))[1])
    q.submit(lambda: "next", True)
    assert led == [], "a lone put after the wait went through the queue"


def test_a_failed_sync_fails_every_waiter_of_its_group_with_the_same_error():
    """The writes that waited for A's sync go as one commit; its deferred sync fails: each of them
    raises that one error (the same object), none is acknowledged, A is."""
    s = DeferredStore()
    q = s.queue
    real_owed = s.owed
    failure = OSError(5, "injected sync failure")

    def owed() -> Callable[[], None]:
        finish = real_owed()

        def failing() -> None:
            finish()
            if s.synced == 2:
                raise failure

        return failing

    q._owed = owed
    outcome: Dict[str, Any] = {}

    put = _recording_put(q, outcome)
    a, gate = _held_first_sync(s, q, put)
    threads = [threading.Thread(target=put, args=("w%d" % t,)) for t in range(5)]
    _release_after_queued(q, 5, a, gate, threads)
    assert outcome.pop("A") == "A"
    assert len(s.commits) == 2 and len(s.commits[1]) == 5
    assert all(err is failure for err in outcome.values()), outcome


def test_a_ctrl_c_in_the_leader_waiting_for_the_released_writers_hangs_nobody(monkeypatch):
    """The leader waiting for the writers a sync released (``_wait_for_awaiting``) is interrupted:
    its own put raises KeyboardInterrupt (not committed), the lead goes to the next queued write,
    and every other put commits."""
    from pagestore import group as grouplib

    monkeypatch.setattr(grouplib, "ARRIVAL_GAP", 10.0)
    s = DeferredStore()
    q = s.queue
    outcome: Dict[str, Any] = {}

    put = _recording_put(q, outcome)
    def two_puts(t: int) -> None:
        put("%d-1" % t)
        put("%d-2" % t)

    real_wait = grouplib._Signal.wait
    fired: List[str] = []

    def wait(self: Any, timeout: float = -1) -> None:
        if not fired and self is q._gate and q._expected and not q._syncing:
            fired.append(threading.current_thread().name)
            raise KeyboardInterrupt("in the leader's wait for the released writers")
        real_wait(self, timeout)

    a, gate = _held_first_sync(s, q, put)
    threads = [threading.Thread(target=two_puts, args=(t,), name="t%d" % t) for t in range(3)]
    for th in threads:
        th.start()
    _wait_queued(q, 3)
    monkeypatch.setattr(grouplib._Signal, "wait", wait)
    gate.set()
    for th in [a] + threads:
        th.join(10)
    assert not any(th.is_alive() for th in threads), "a put waited forever"
    assert len(fired) == 1
    caught = [v for v, r in outcome.items() if isinstance(r, BaseException)]
    assert caught == ["%s-2" % fired[0][1:]] and isinstance(outcome[caught[0]], KeyboardInterrupt)
    assert all(outcome[v] == v for v in outcome if v not in caught) and len(outcome) == 7
    assert not any(caught[0] in c for c in s.commits)
    monkeypatch.setattr(grouplib, "ARRIVAL_GAP", 0.0)  # the last group's two writers are not coming back
    assert q.submit(lambda: "later", True) == "later"


def test_a_leader_whose_write_a_transaction_took_along_does_not_wait_for_later_syncs():
    """Put B leads the queue and waits for A's running sync; transaction T1 commits meanwhile and
    takes B's write along; T1's sync makes it durable. B returns then, while transaction T2's
    sync, begun right after, still runs. Before, B's thread went on waiting for a moment with no
    sync running, which transactions committing one after another may never leave, for a write
    long durable."""
    s = DeferredStore()
    q = s.queue
    outcome: Dict[str, Any] = {}

    def put(value: str) -> None:
        outcome[value] = q.submit(lambda: value, True)

    def txn(value: str) -> None:
        assert s.writer.try_acquire(10, "a transaction")
        outcome[value] = q.commit_holding(lambda: value, True, s.writer.release)

    def hold_next_sync() -> threading.Event:
        s.in_sync.clear()
        s.gate = gate = threading.Event()
        return gate

    def wait_awaiting() -> None:
        deadline = time.monotonic() + 10
        while not q.awaiting and time.monotonic() < deadline:
            time.sleep(0.002)
        assert q.awaiting == 1

    a, gate1 = _held_first_sync(s, q, put)
    b = threading.Thread(target=put, args=("B",), daemon=True)
    b.start()
    _wait_queued(q, 1)
    gate2 = hold_next_sync()
    t1 = threading.Thread(target=txn, args=("T1",))
    t1.start()
    wait_awaiting()  # T1 wrote its commit, B's write in it, and waits for A's sync
    gate1.set()
    assert s.in_sync.wait(10)  # T1's thread runs the sync of T1 and B
    gate3 = hold_next_sync()
    t2 = threading.Thread(target=txn, args=("T2",))
    t2.start()
    wait_awaiting()
    gate2.set()
    assert s.in_sync.wait(10)  # T2's thread runs its sync, held
    b.join(5)
    alive = b.is_alive()
    gate3.set()
    for th in (a, b, t1, t2):
        th.join(10)
    assert not alive, "B waited for a later sync after its write was durable"
    assert outcome == {"A": "A", "B": "B", "T1": "T1", "T2": "T2"}
    assert [sorted(c) for c in s.commits] == [["A"], ["B", "T1"], ["T2"]]
