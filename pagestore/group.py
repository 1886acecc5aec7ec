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
batch the same way: the disk's error, not one write's.) Nor after an
interrupt (``KeyboardInterrupt``, ``SystemExit``): it goes on up in the
committing thread, and the batch's other writes raise ``PageStoreError``
("write abandoned").

The sync outside the lock (issue 23): a group of single writes is committed
under the store's lock with its log sync deferred (``Pager.commit(defer=True)``);
the leader lets the locks go and hands the lead on, so that the next group
applies while this one's sync runs, and only then syncs (``Pager.sync(upto)``,
skipped if another sync has covered it meanwhile) and wakes its callers. A put is
acknowledged only after a sync covering its frames returned. This is sound
because a failed sync poisons the store (``Pager._poison``) and the log refuses
every later sync (``WAL.sync``): a group written after the failed one is never
acknowledged either. What a failed deferred sync leaves in memory is the group's
commit (later groups may have built on it): reads see it until the store is
reopened, which finds it in the log or not, as after a power cut. A
transaction's durable commit does the same (``commit_holding`` with
``release``): its frames, and those of the single writes that joined it, are
written with the sync deferred, the transaction lets the write lock go, and only
then does it sync and settle the joined writes; so the next transaction applies
while this one's sync runs, and syncs are shared. A failed sync poisons: the
transaction's commit raises, and it stays visible until a reopen, like a group's.
Bulk writes (put_many, clear, delete_range: ``commit_holding`` without ``release``) still sync inside the lock,
so that a failed sync rolls them back. A thread that finds no commit running and the write lock
free commits at once (``_direct``): no request, no event, no hand-off.

Locks (locks.py): the leader takes the store's write lock, and only then the
queued writes and the operation lock; so while a transaction holds the write
lock, single writes queue up behind it. The transaction's commit does not
wait for them: it takes them along (``commit_holding``), and its commit and
theirs are one. A leader that cannot get the write lock within its write's
timeout fails that write with ``StoreLockedError`` and hands the lead on.

Callers: the store, for every write outside a transaction, every
transaction's commit and the bulk deletes. A thread that holds the write
lock already must not submit (``ReentrantWriteError``): the leader would wait
for it.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, List, Optional

from .errors import PageStoreError, ReentrantWriteError, StoreLockedError, StorePoisonedError
from .locks import WriteLock

Apply = Callable[[List[Callable[[], Any]], Optional[bool]], List[Any]]
#: called under the store's lock right after a commit: the sync that commit still owes, to
#: run after the locks are let go (None: nothing owed)
Owed = Callable[[], Optional[Callable[[], None]]]


class _Request:
    __slots__ = ("fn", "sync", "deadline", "event", "lead", "done", "settled", "result", "error")

    def __init__(self, fn: Callable[[], Any], sync: Optional[bool], deadline: Optional[float] = None) -> None:
        self.fn = fn
        self.sync = sync
        self.deadline = deadline  # time.monotonic() past which it gives up waiting for the write lock
        # set when the request is done, and when its thread is made the leader
        self.event = threading.Event()
        self.lead = False
        self.done = False
        self.settled = False  # result or error set
        self.result: Any = None
        self.error: Optional[BaseException] = None


class CommitQueue:
    """CommitQueue batches concurrent writes into shared commits; see the module docstring.

    ``writer``: the store's write lock, held by the leader while it applies a batch.
    ``lock``: the store's operation lock, held inside it while the batch is applied.
    ``apply(fns, sync)``: runs ``fns`` in order as one commit (synced if
    ``sync``; None: the store's default) and returns their results, or rolls
    everything back and raises.
    ``batches`` and ``writes`` count what went through (for tests and bench).
    """

    def __init__(self, writer: WriteLock, lock: Any, apply: Apply, deferred: Optional[Apply] = None,
                 owed: Optional[Owed] = None) -> None:
        self._writer = writer
        self._lock = lock
        self._apply = apply
        # single writes commit with ``deferred``, whose sync ``owed`` hands back to run outside the locks
        self._deferred = deferred
        self._owed = owed
        self._mutex = threading.Lock()
        self._queue: List[_Request] = []
        self._busy = False
        self.batches = 0
        self.writes = 0

    def submit(self, fn: Callable[[], Any], sync: Optional[bool], timeout: Optional[float] = None) -> Any:
        """submit runs ``fn`` in a commit (maybe shared) and returns its result once that commit is done.

        ``sync``: True or False, or None for the store's default. A shared
        commit is synced if any of its writes asks for it (True, or None).
        ``timeout``: how long to wait for the write lock (None: no limit).

        Raises:
            ReentrantWriteError: the calling thread holds the write lock.
            StoreLockedError: the write lock stayed held for the whole timeout.
            whatever ``fn`` or the commit raised for this write.
        """
        if self._writer.owned():
            raise ReentrantWriteError(f"{self._writer.path}: a write submitted by the thread that holds the write lock")
        with self._mutex:
            alone = not self._busy
            if alone:
                self._busy = True
        if alone and self._writer.try_acquire(0, "a commit of single writes"):
            # Nobody else is committing and the write lock is free: commit here, with no
            # request, no event and no hand-off (a third of a lone durable put's CPU went to them).
            return self._direct(fn, sync)
        req = _Request(fn, sync, None if timeout is None else time.monotonic() + timeout)
        with self._mutex:
            self._queue.append(req)
            req.lead = alone  # a transaction holds the write lock: lead, so its commit may take this along
        try:
            if not req.lead:
                req.event.wait()  # done, or made the leader
            if req.lead:  # even if a transaction's commit took its write along: the queue needs a leader
                self._lead(req)
            while not req.done:  # a transaction's commit took it along and is still applying it
                req.event.wait()
        except BaseException:  # KeyboardInterrupt (a signal) while queued
            self._abandon(req)
            raise
        if req.error is not None:
            raise req.error
        return req.result

    def commit_holding(self, fn: Callable[[], Any], sync: Optional[bool],
                       release: Optional[Callable[[], None]] = None) -> Any:
        """commit_holding runs ``fn`` as one commit together with every write queued meanwhile.

        For a caller that holds the write lock (a transaction's commit, a bulk
        delete; a transaction may commit on another thread than the one that
        began it): the writes waiting for that lock join its commit instead of
        waiting for it to end. Returns ``fn``'s result.

        ``release``: lets the caller's write lock go. Given (a transaction's
        commit), the commit is written with its sync deferred, ``release`` is
        called right after, and only then is the sync run (``owed``, skipped if
        another sync has covered it); ``fn``'s result is returned, and the
        joined writes are settled, only after that sync. If ``release`` was
        not called (the commit raised), the caller still holds the lock. Not
        given (a bulk delete), the commit syncs inside the lock.

        Raises:
            whatever ``fn`` or the commit raised, or the deferred sync's error
            (the store is then poisoned: nothing of this commit is acknowledged).
        """
        mine = _Request(fn, sync)
        with self._mutex:
            batch, self._queue = self._queue, []
        batch.insert(0, mine)
        defer = release is not None and self._deferred is not None
        try:
            finish = self._run(batch, self._deferred if defer and self._deferred is not None else self._apply)
            if release is not None:
                release()  # the next transaction applies while this commit's sync runs
            if finish is not None:
                self._finish(batch, finish)  # a failed sync: every write of the batch gets its error
        finally:
            self._settle(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _lead(self, me: _Request) -> None:
        """_lead takes the write lock, applies every queued write, then hands the lead to a thread queued meanwhile."""
        me.event.clear()  # from here it means: done
        batch: List[_Request] = []
        finish: Optional[Callable[[], None]] = None
        try:
            wait = None if me.deadline is None else me.deadline - time.monotonic()
            if self._writer.try_acquire(wait, "a commit of single writes"):
                try:
                    with self._mutex:
                        batch, self._queue = self._queue, []
                    finish = self._run(batch, self._deferred or self._apply)
                except BaseException:
                    self._writer.release()
                    self._settle(batch)  # interrupted: the batch's writes are abandoned
                    raise
                self._writer.release()  # before the callers wake: one may begin a transaction at once
            else:
                with self._mutex:
                    mine = me in self._queue  # else a transaction's commit has taken it along
                    if mine:
                        self._queue.remove(me)
                if mine:
                    me.error = StoreLockedError(
                        f"{self._writer.path}: the store's write lock stayed held ({self._writer.holder or 'by a writer'}) "
                        "for the whole timeout"
                    )
                    self._settle([me])
        finally:
            with self._mutex:
                if not me.done and me in self._queue:  # interrupted (KeyboardInterrupt) while waiting for the lock
                    self._queue.remove(me)
                    self._settle([me])
                self._hand_on()
        # The next leader applies its group while this one's sync runs (outside every lock).
        try:
            if finish is not None:
                self._finish(batch, finish)
        finally:
            self._settle(batch)

    def _direct(self, fn: Callable[[], Any], sync: Optional[bool]) -> Any:
        """_direct commits one write at once, for a caller that found no commit running and took the
        write lock (``submit``); hands the lead on, then runs the commit's sync outside the locks."""
        finish: Optional[Callable[[], None]] = None
        try:
            try:
                with self._lock:
                    result = (self._deferred or self._apply)([fn], sync)[0]
                    self.batches += 1
                    self.writes += 1
                    if self._owed is not None:
                        finish = self._owed()
            finally:
                self._writer.release()
        finally:
            with self._mutex:
                self._hand_on()
        if finish is not None:
            finish()  # raises if the sync failed: the write is not acknowledged
        return result

    @staticmethod
    def _finish(batch: List[_Request], finish: Callable[[], None]) -> None:
        """_finish runs a batch's deferred sync; if it fails, no write of the batch is acknowledged:
        each gets the error (an interrupt: "write abandoned"), which goes on up in this thread."""
        try:
            finish()
        except BaseException as exc:
            err = exc if isinstance(exc, Exception) else PageStoreError(
                "write abandoned: the thread syncing its commit was interrupted")
            for r in batch:
                if r.error is None:  # a write that failed on its own keeps its own error
                    r.result, r.error, r.settled = None, err, True
            if not isinstance(exc, Exception):
                raise

    def _abandon(self, req: _Request) -> None:
        """_abandon takes out of the queue a request whose thread stopped waiting (interrupted).

        A request still queued is dropped (its write never runs); if it had
        been made the leader, the lead goes to the next one, else nothing would
        ever lead again and every later write would wait forever. A request a
        leader or a transaction's commit has already taken runs to its end:
        its write may commit although its caller was interrupted.
        """
        with self._mutex:
            if req not in self._queue:
                return  # taken into a batch, or _lead's own cleanup has run
            self._queue.remove(req)
            req.error = PageStoreError("write abandoned: its thread was interrupted while it waited")
            req.settled = req.done = True
            if req.lead:
                self._hand_on()

    def _hand_on(self) -> None:
        """_hand_on makes the first queued request the leader and wakes it, or marks the queue idle.
        Callers hold ``_mutex``."""
        if self._queue:
            nxt = self._queue[0]
            nxt.lead = True
            nxt.event.set()
        else:
            self._busy = False

    @staticmethod
    def _settle(batch: List[_Request]) -> None:
        """_settle marks a batch's requests done and wakes their threads."""
        for r in batch:
            if not r.settled and r.error is None:  # the leader was interrupted (KeyboardInterrupt) before applying it
                r.error = PageStoreError("write abandoned: the thread committing it was interrupted")
            r.done = True
            r.event.set()

    def _run(self, batch: List[_Request], apply: Apply) -> Optional[Callable[[], None]]:
        """_run applies a batch under the store's lock and sets each request's outcome; returns the
        sync the commit(s) still owe (``owed``), to run outside the locks before they are settled."""
        if not batch:
            return None
        # A commit is synced if any of its writes wants it: True wins, then the default (None).
        wants = {r.sync for r in batch}
        sync = True if True in wants else None if None in wants else False
        with self._lock:
            try:
                results = apply([r.fn for r in batch], sync)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # KeyboardInterrupt, SystemExit: the committing thread's own interrupt, not a
                    # write's failure. It goes on up; the batch, rolled back, is abandoned (_settle).
                    raise
                if len(batch) == 1 or isinstance(exc, (OSError, StorePoisonedError)):
                    # One write, or the commit failed, not a write: the store is poisoned
                    # and a retry could only fail again. Every write gets the error.
                    for r in batch:
                        r.error, r.settled = exc, True
                    return self._owed() if self._owed is not None else None
                # Rolled back whole: give each write its own commit and its own outcome.
                for r in batch:
                    try:
                        r.result = apply([r.fn], r.sync)[0]
                    except BaseException as one:
                        r.error = one
                    r.settled = True
                    self.batches += 1
                    self.writes += 1
                return self._owed() if self._owed is not None else None
            for r, value in zip(batch, results):
                r.result, r.settled = value, True
            self.batches += 1
            self.writes += len(batch)
            return self._owed() if self._owed is not None else None
