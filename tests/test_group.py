"""CommitQueue (pagestore/group.py) with a stand-in for the store's commit: batching, outcomes, failures."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, List

import pytest

from pagestore.errors import PageStoreError
from pagestore.group import CommitQueue


class FakeStore:
    """FakeStore applies a batch as one 'commit' that takes ``delay`` seconds (a sync), under its lock."""

    def __init__(self, delay: float = 0.002) -> None:
        self.lock = threading.RLock()
        self.delay = delay
        self.commits: List[List[Any]] = []
        self.fail_next = 0
        self.queue = CommitQueue(self.lock, self.apply)

    def apply(self, fns: List[Callable[[], Any]], sync: bool) -> List[Any]:
        assert self.lock._is_owned()  # type: ignore[attr-defined]
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


def test_a_thread_holding_the_lock_bypasses_the_queue():
    s = FakeStore(0)
    with s.lock:
        assert s.queue.submit(lambda: "inside", True) == "inside"


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

    follower = _Request(lambda: 1, True)
    q._queue = [follower]
    q._busy = True

    def interrupted(batch: Any) -> None:
        raise KeyboardInterrupt

    q._run = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        q._lead()
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
