"""group: group commit, so that threads committing at the same time share one log sync.

A durable commit costs one ``fdatasync`` of the log, and the sync, not the
CPU, sets the rate: on this machine's disk a sync takes 150-300 us, a
one-put commit's CPU about 60 us. Threads that commit one after another each
wait for their own sync. Here, a thread that arrives while another is
committing queues its write and waits; when the running commit is done, one
waiting thread (the leader) takes every queued write and applies them all
as ONE pager transaction with one sync. Each caller returns only when the
commit holding its write is durable (or has failed), exactly as before.

    queue = CommitQueue(lock, apply)     # apply(fns, sync) -> results, one commit
    result = queue.submit(fn, sync)      # fn changes pages; returns fn's result

Atomicity is unchanged: each write is all-or-nothing because the batch is;
a batch that fails is rolled back whole (``apply`` does that) and then its
writes are retried one commit each, so that each caller gets its own
outcome: the failing write its exception, the others their commit. Except
when the disk failed (an ``OSError``, or ``StorePoisonedError``): a failed
write or sync of the store's files has poisoned it (``Pager._poison``), so a
retry could only fail again; nothing is retried, and every write of the
batch raises that error, the same exception object, as ``concurrent.futures``
hands one failure to every waiter. (An ``OSError`` from a read fails the
batch the same way: the disk's error, not one write's.)

Callers: the store, for every write outside a transaction and every
transaction's commit. A thread that already holds the store's lock (a write
from inside another operation) bypasses the queue: waiting for a leader that
waits for that lock would deadlock.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from .errors import PageStoreError, StorePoisonedError

Apply = Callable[[List[Callable[[], Any]], Optional[bool]], List[Any]]


class _Request:
    __slots__ = ("fn", "sync", "event", "lead", "done", "settled", "result", "error")

    def __init__(self, fn: Callable[[], Any], sync: Optional[bool]) -> None:
        self.fn = fn
        self.sync = sync
        self.event: Optional[threading.Event] = None  # made only for a thread that waits
        self.lead = False
        self.done = False
        self.settled = False  # result or error set
        self.result: Any = None
        self.error: Optional[BaseException] = None


class CommitQueue:
    """CommitQueue batches concurrent writes into shared commits; see the module docstring.

    ``lock``: the store's re-entrant lock, held while a batch is applied.
    ``apply(fns, sync)``: runs ``fns`` in order as one commit (synced if
    ``sync``; None: the store's default) and returns their results, or rolls
    everything back and raises.
    ``batches`` and ``writes`` count what went through (for tests and bench).
    """

    def __init__(self, lock: Any, apply: Apply) -> None:
        self._lock = lock
        self._apply = apply
        self._mutex = threading.Lock()
        self._queue: List[_Request] = []
        self._busy = False
        self.batches = 0
        self.writes = 0

    def submit(self, fn: Callable[[], Any], sync: Optional[bool]) -> Any:
        """submit runs ``fn`` in a commit (maybe shared) and returns its result once that commit is done.

        ``sync``: True or False, or None for the store's default. A shared
        commit is synced if any of its writes asks for it (True, or None).

        Raises:
            whatever ``fn`` or the commit raised for this write.
        """
        owned = getattr(self._lock, "_is_owned", None)
        if owned is not None and owned():
            return self._apply([fn], sync)[0]
        req = _Request(fn, sync)
        with self._mutex:
            self._queue.append(req)
            if self._busy:
                req.event = threading.Event()
            else:
                self._busy = True
                req.lead = True
        if req.event is not None:
            req.event.wait()
        if not req.done:
            self._lead()
        if req.error is not None:
            raise req.error
        return req.result

    def _lead(self) -> None:
        """_lead applies every queued write, then hands the lead to a thread queued meanwhile."""
        with self._mutex:
            batch, self._queue = self._queue, []
        try:
            self._run(batch)
        finally:
            with self._mutex:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    assert nxt.event is not None
                    nxt.event.set()
                else:
                    self._busy = False
            for r in batch:
                if not r.settled:  # the leader was interrupted (KeyboardInterrupt) before applying it
                    r.error = PageStoreError("write abandoned: the thread committing it was interrupted")
                r.done = True
                if r.event is not None:
                    r.event.set()

    def _run(self, batch: List[_Request]) -> None:
        # A commit is synced if any of its writes wants it: True wins, then the default (None).
        wants = {r.sync for r in batch}
        sync = True if True in wants else None if None in wants else False
        with self._lock:
            try:
                results = self._apply([r.fn for r in batch], sync)
            except BaseException as exc:
                if len(batch) == 1 or isinstance(exc, (OSError, StorePoisonedError)):
                    # One write, or the commit failed, not a write: the store is poisoned
                    # and a retry could only fail again. Every write gets the error.
                    for r in batch:
                        r.error, r.settled = exc, True
                    return
                # Rolled back whole: give each write its own commit and its own outcome.
                for r in batch:
                    try:
                        r.result = self._apply([r.fn], r.sync)[0]
                    except BaseException as one:
                        r.error = one
                    r.settled = True
                    self.batches += 1
                    self.writes += 1
                return
            for r, value in zip(batch, results):
                r.result, r.settled = value, True
            self.batches += 1
            self.writes += len(batch)
