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
the leader lets the locks go and hands the lead on, and only then syncs
(``Pager.sync(upto)``, skipped if another sync has covered it meanwhile) and
wakes its callers; a transaction may apply meanwhile. A put is
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
so that a failed sync rolls them back. A thread that finds nothing in flight (no
sync running, no commit waiting for one, no writer expected back, below) and the
write lock free commits at once (``_direct``): no request, no event, no hand-off,
no wait; a lone thread always does.

Groups (issue 23's 8 threads >= 3x one): ONE group of single writes in flight at a
time. A leader that finds a sync of the queue running, or a commit waiting for
one, waits for it to end (``_wait_for_awaiting``), with every write queued
meanwhile; then it waits for the writers that sync has just acknowledged to
submit again (``_expected``, counted in ``_sync_groups``; each arrival opens the
way for ARRIVAL_GAP more, and the last one wakes the leader), and then applies
them all as ONE commit with ONE sync. The leader runs that sync itself. Before,
the next leader applied as soon as the running sync reached the disk: the
threads that sync then released could only join the group after, so the
threads split into two cohorts that took turns, two groups in flight of half
the threads each (3.8 puts per sync with 8 threads), and each turn cost a
hand-off of the sync between threads under the GIL (120-140 us between one
sync's end and the next one's start). A group of all the threads gives up the
overlap of one group's sync with the next one's apply; the syncs halved and
their hand-offs pay for it (bench/group_commit.py, 8 threads, same runs: 7.4-7.9
puts per sync against 3.7-3.9, 8.9-13.2k puts/s against 7.2-8.6k, CPU per put
68-92 us against 91-126, 2 cores shared; with 2 threads 2.0 puts per sync against
1.0, where two threads had been slower than one; with 4, 3.9 against 2.0; with 16,
13.8-15 against 5.6-7.3). The wait for the released writers is
MySQL's binlog_group_commit_sync_delay with its no_delay_count, bounded by the
writers' own pace instead of a fixed delay: one that does not come back within
ARRIVAL_GAP of the one before is not waited for, and a put that finds the count
older than that goes alone. Commits of transactions (``commit_holding``) do not
wait: one may be written while a sync runs; it then waits for that sync
(``_awaiting``), and the thread of the first such waiting group runs the next
sync, covering them all (``_let_go``).

The duty of running the next sync is never left without a thread: it is taken
(``_enlist``, ``_take_awaiting``) by plain stores that record the thread and the
groups it owes a sync, and every path of a thread that may hold it ends in a
handler (``_drop_duty``) that, if an interrupt (Ctrl-C lands between any two
calls) caught the thread before its ``_sync_groups`` let the duty go, abandons
those groups (their writes raise "write abandoned", none acknowledged) and hands
the duty on. Before, an interrupt there left the duty taken for good, and every
later write waited forever. The same handler (``submit``'s) also hands on a lead
an interrupt caught before it went on, lets go of a write lock a release never
reached, and marks gone a group whose thread was caught as it began to wait
(``_await``); and a batch applied but interrupted before its group owed a sync
is abandoned (``_settle``), never acknowledged unsynced. The wind-ups after a commit
(``_lead``'s, ``_sync_groups``', ``commit_holding``'s) and the handlers are idempotent and
run to their end through a Ctrl-C (interrupts.py ``run_through``), so that none leaves a
batch unsettled, a group neither enlisted nor abandoned, the lead or the duty with nobody;
``_hand_on`` says, with no call in between, when the lead went on. One interrupt at any
point of a put where CPython can raise it (a Python function's start, a C call's return),
and a second one in the handlers it starts, are covered (tests/test_commit_attack.py
sweeps them); a second at the very start of a ``run_through`` (a third, in the
handlers), or one at a loop's jump back inside them, are not.

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

import _thread
import threading
import time
from typing import Any, Callable, List, Optional

from .errors import PageStoreError, ReentrantWriteError, StoreLockedError, StorePoisonedError
from .interrupts import run_through
from .locks import WriteLock, deadline_after

Apply = Callable[[List[Callable[[], Any]], Optional[bool]], List[Any]]
#: a deferred sync: ``finish()`` makes a commit durable (nothing to do if another sync has made it
#: durable already)
Sync = Callable[[], None]
#: called under the store's lock right after a commit: the sync that commit still owes, to
#: run after the locks are let go (None: nothing owed)
Owed = Callable[[], Optional[Sync]]
#: ``one(fn, sync)``: one write as one commit (deferred, as ``deferred``'s), its result
One = Callable[[Callable[[], Any], Optional[bool]], Any]


#: how long a leader waiting for the running sync (``_wait_for_awaiting``) waits before it
#: looks again, in case its wake-up was lost to a Ctrl-C in the thread that was to send it
GATE_RECHECK = 0.05

#: how long (seconds) a leader waits for the next of the writers a sync has just acknowledged to
#: submit again (``_wait_for_awaiting``), counted from the sync's end or the last one's arrival.
#: Each comes back after running its own code between writes (a bench thread: 10-20 us under the
#: GIL); one that has not come by then is not waited for.
ARRIVAL_GAP = 100e-6


class _Signal:
    """_Signal is a flag one thread waits for and another sets (``threading.Event``'s set, clear,
    wait): a lock taken at the start and let go by ``set``. A ``threading.Event`` costs ten
    times as much (a Condition, and a new lock for every wait: 3.2 against 0.3 us made, set and
    waited for), and every write waiting in a group makes and waits for one."""

    __slots__ = ("_lock", "is_set")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self.is_set = False

    def set(self) -> None:
        if not self.is_set:
            self.is_set = True
            try:
                self._lock.release()
            except RuntimeError:  # set by two threads at once: the other one let it go
                pass

    def clear(self) -> None:
        if self.is_set:
            self._lock.acquire()
            self.is_set = False

    def wait(self, timeout: float = -1) -> None:
        """wait returns once set, or after ``timeout`` seconds (-1: none)."""
        if not self.is_set and self._lock.acquire(True, timeout):
            self._lock.release()


class _Request:
    __slots__ = ("fn", "sync", "deadline", "event", "lead", "done", "settled", "result", "error")

    def __init__(self, fn: Callable[[], Any], sync: Optional[bool], deadline: Optional[float] = None) -> None:
        self.fn = fn
        self.sync = sync
        self.deadline = deadline  # time.monotonic() past which it gives up waiting for the write lock
        # set when the request is done, and when its thread is made the leader
        self.event = _Signal()
        self.lead = False
        self.done = False
        self.settled = False  # result or error set
        self.result: Any = None
        self.error: Optional[BaseException] = None


class _Group:
    """_Group is one commit whose log sync is still owed: its writes (settled once a sync
    covering it returned), the sync (``finish``), the sync's error when it failed, and ``done``
    once it is settled. Its committing thread waits for ``done`` (``_await``) while another
    thread runs the sync."""

    __slots__ = ("batch", "writers", "finish", "error", "done", "event", "gone", "thread")

    def __init__(self, batch: List[_Request], finish: Sync, writers: int = 0) -> None:
        self.batch = batch
        #: how many of its writes came through ``submit``: threads likely to submit again once
        #: acknowledged (``_expected``)
        self.writers = writers
        self.finish = finish
        self.error: Optional[BaseException] = None
        self.done = False
        #: set when ``done``, or when its thread is asked to run the next sync (``_await``);
        #: made when the group waits (``_enlist``)
        self.event: Optional[_Signal] = None
        self.gone = False  # its thread stopped waiting (interrupted): it will not run the next sync
        self.thread = 0  # the thread that waits for it (``_enlist``)


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
                 owed: Optional[Owed] = None, one: Optional[One] = None) -> None:
        self._writer = writer
        self._lock = lock
        self._apply = apply
        # single writes commit with ``deferred``, whose sync ``owed`` hands back to run outside the locks
        self._deferred = deferred
        self._owed = owed
        # ``one(fn, sync)``: ``deferred`` (else ``apply``) for a lone write (``_direct``), returning its
        # result: the store's commits it with no list, no batch loop and no second operation
        self._one = one
        self._mutex = threading.Lock()
        self._queue: List[_Request] = []
        self._busy = False
        # The queue's syncs, one at a time: ``_syncing`` while a thread runs one (``_sync_groups``);
        # ``_awaiting``, the groups committed meanwhile, which the next sync covers all at once,
        # each group's thread waiting on the group's event; ``_gate`` wakes the leader waiting for
        # ``_awaiting`` to be taken (``_wait_for_awaiting``). Each wakes only the thread it is for: a
        # wake-up is a thread switch, and with the GIL one costs more than a small commit's CPU.
        self._syncing = False
        # The thread that holds the duty and the groups it owes a sync (``_enlist``,
        # ``_take_awaiting``): if that thread is interrupted before its ``_sync_groups`` settles
        # them, ``_drop_duty`` does.
        self._duty_thread: Optional[int] = None
        self._duty_groups: List[_Group] = []
        self._awaiting: List[_Group] = []
        # ``_gate``: the signal the next leader waits on (``_wait_for_awaiting``), set (``_open_gate``)
        # when what it waits for may have come. A _Signal, not a Condition on ``_mutex``: a
        # KeyboardInterrupt inside Condition.wait can leave the mutex let go, and the ``with``
        # around it then raised "release unlocked lock" (Ctrl-C storms).
        self._gate: Optional[_Signal] = None
        # ``_expected``: writers the last sync acknowledged that have not submitted again yet, and
        # ``_arrived``, when the last of them did (or the sync ended): the next leader waits for
        # them, each for at most ARRIVAL_GAP (``_wait_for_awaiting``).
        self._expected = 0
        self._arrived = 0.0
        self.batches = 0
        self.writes = 0

    @property
    def queued(self) -> int:
        """queued: writes waiting in the queue for a leader to apply them (for tests)."""
        return len(self._queue)

    @property
    def awaiting(self) -> int:
        """awaiting: commits written whose sync waits for the one running (for tests)."""
        return len(self._awaiting)

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
        if self._writer._owner == _thread.get_ident():  # ``owned()`` inline
            raise ReentrantWriteError(f"{self._writer.path}: a write submitted by the thread that holds the write lock")
        req: Optional[_Request] = None
        # This thread leads the queue (``alone``: it set ``_busy``) until ``handed`` says the lead
        # went on: to this write's request, or by ``_direct``'s ``_hand_on``. An interrupt before
        # that (as the mutex is let go, at ``try_acquire``, ``_Request``, ``_direct``'s first line)
        # hands it on in the handler below, else the queue stayed busy with no leader and every
        # later write waited forever.
        alone = False
        handed = [False]
        try:
            with self._mutex:
                if self._expected:  # one of the writers the last sync acknowledged is back, or the rest are not coming
                    now = time.monotonic()
                    self._expected = self._expected - 1 if now - self._arrived < ARRIVAL_GAP else 0
                    self._arrived = now
                    if not self._expected:
                        self._open_gate()  # the leader waiting for them all applies now
                alone = not self._busy
                if alone:
                    self._busy = True
                    # At once only if nothing else is in flight: no sync runs and no commit waits for
                    # one (a lone thread's case), and no other writer is on its way back.
                    direct = not (self._awaiting or self._syncing or self._expected)
                else:  # queued at once: one section of the mutex fewer, for the writes that contend for it
                    req = _Request(fn, sync, deadline_after(timeout))
                    self._queue.append(req)
            if alone:
                if direct and self._writer.try_acquire(0, "a commit of single writes"):
                    # Nobody else is committing and the write lock is free: commit here, with no
                    # request, no event and no hand-off (a third of a lone durable put's CPU went to them).
                    return self._direct(fn, sync, handed)
                req = _Request(fn, sync, deadline_after(timeout))
                with self._mutex:
                    self._queue.append(req)
                    # Lead: the queue had no leader (a transaction may hold the write lock: its commit then
                    # takes this along; or a commit waits for its sync: this one's group waits for it).
                    req.lead = True
                    handed[0] = True
            assert req is not None
            if not req.lead:
                req.event.wait()  # done, or made the leader
            if req.lead:  # even if a transaction's commit took its write along: the queue needs a leader
                self._lead(req)
            while not req.done:  # a transaction's commit took it along and is still applying it
                req.event.wait()
        except BaseException:
            # KeyboardInterrupt (a signal) while queued, leading, or holding the sync duty. Each
            # step is idempotent and runs to its end through a second Ctrl-C (``run_through``).
            def undo() -> None:
                if self._writer.owned():  # interrupted before ``_direct`` or ``_lead`` let it go
                    self._writer.release()
                self._release_op_lock()
                if alone and not handed[0]:
                    with self._mutex:
                        self._hand_on(handed)
                if req is not None:
                    self._abandon(req)
                self._drop_duty()

            try:
                undo()
            except KeyboardInterrupt:  # a second Ctrl-C, at its start too
                run_through(undo)
                raise
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
        another sync has covered it; one sync for this commit and every other
        committed meanwhile, ``_sync_groups``); ``fn``'s result is returned, and
        the joined writes are settled, only after that sync. If ``release`` was
        not called (the commit raised), the caller still holds the lock. Not
        given (a bulk delete), the commit syncs inside the lock.

        Raises:
            whatever ``fn`` or the commit raised, or the deferred sync's error
            (the store is then poisoned: nothing of this commit is acknowledged).
        """
        mine = _Request(fn, sync)
        batch: List[_Request] = [mine]
        defer = release is not None and self._deferred is not None
        group: Optional[_Group] = None
        syncer = False
        ended = False
        try:
            try:
                with self._mutex:
                    batch, self._queue = self._queue, []
                    batch.insert(0, mine)
                    if len(batch) > 1:
                        self._open_gate()  # the leader waiting for a sync: its write is taken (``_wait_for_awaiting``)
                finish = self._run(batch, self._deferred if defer and self._deferred is not None else self._apply)
                if release is not None:
                    release()  # the next transaction applies while this commit's sync runs
                if finish is not None:
                    group = _Group(batch, finish, len(batch) - 1)  # the writes that joined it
                    with self._mutex:
                        syncer = self._enlist(group)
                ended = True
            finally:
                if not ended:
                    # Interrupted before its group owed a sync (see ``_lead``), or as it was enlisted
                    # (the handler below lets an enlisted group go): its writes are abandoned.
                    def wind_up() -> None:
                        with self._mutex:
                            enlisted = group is not None and self._is_enlisted(group)
                        if not enlisted:
                            self._settle(batch, abandon=True)

                    try:
                        wind_up()
                    except KeyboardInterrupt:
                        run_through(wind_up)
                        raise
                elif group is None:
                    try:
                        self._settle(batch)
                    except KeyboardInterrupt:
                        run_through(lambda: self._settle(batch))
                        raise
            if group is not None:
                self._synced(group, syncer)
        except BaseException:  # interrupted while it held the sync duty, or as its group waited
            try:
                self._drop_duty()
            except KeyboardInterrupt:  # a second Ctrl-C, at its start too
                run_through(self._drop_duty)
                raise
            raise
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _lead(self, me: _Request) -> None:
        """_lead takes the write lock, applies every queued write as one commit, hands the lead to a
        thread queued meanwhile, then has the commit synced (``_sync_groups`` or ``_await``).

        One group in flight (``_wait_for_awaiting``): while a sync of the queue runs, or a commit
        waits for one, the leader waits for it, and then for the writers it acknowledged to
        submit again; the writes queued meanwhile then go in one commit, with one sync, after
        that one, rather than in several small commits each waiting behind the same sync."""
        me.event.clear()  # from here it means: done
        batch: List[_Request] = []
        finish: Optional[Sync] = None
        group: Optional[_Group] = None
        syncer = False
        ended = False  # the try below ran to its end (no interrupt): see ``_settle``'s ``abandon``
        try:
            taken = False
            if self._deferred is not None:
                orphans = self._wait_for_awaiting(me)
                if orphans:
                    self._sync_groups(orphans)  # the sync nobody ran (its thread interrupted): this thread runs it
                with self._mutex:
                    taken = me not in self._queue
            wait = None if me.deadline is None else me.deadline - time.monotonic()
            if taken:
                pass  # a transaction's commit took this write along, and those queued before it: the lead goes on
            elif self._writer.try_acquire(wait, "a commit of single writes"):
                try:
                    with self._mutex:
                        batch, self._queue = self._queue, []
                    finish = self._run(batch, self._deferred or self._apply)
                    if finish is not None:
                        group = _Group(batch, finish, len(batch))
                finally:
                    # Before the callers wake: one may begin a transaction at once. (Interrupted
                    # before its group was made, the batch's writes are abandoned: ``_settle`` below.)
                    self._writer.release()
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
            ended = True
        finally:
            # Idempotent, and run to its end through a Ctrl-C (``run_through``): cut short, it left
            # the lead with nobody, a group neither enlisted nor abandoned, or a batch unsettled,
            # its writers waiting forever (a Ctrl-C storm's hang: at ``_settle``'s start).
            handed = [False]

            def wind_up() -> None:
                nonlocal syncer
                with self._mutex:
                    if not me.done and me in self._queue:  # interrupted (KeyboardInterrupt) while waiting for the lock
                        self._queue.remove(me)
                        self._settle([me])
                    if group is not None and not self._is_enlisted(group):
                        syncer = self._enlist(group)  # before the lead goes on: the next leader waits for it
                    elif group is not None:
                        syncer = group.event is None  # enlisted by a try cut short: with the duty, or waiting
                    if not handed[0]:
                        self._hand_on(handed)
                if group is None:
                    # Interrupted (a Ctrl-C at ``_owed`` or ``_Group``) after the batch was applied but
                    # before its group owed a sync: abandoned, never acknowledged unsynced.
                    self._settle(batch, abandon=not ended)

            try:
                wind_up()
            except KeyboardInterrupt:
                run_through(wind_up)
                raise
        # Outside every lock: a transaction may apply while this sync runs.
        if group is not None:
            self._synced(group, syncer)

    def _synced(self, group: _Group, syncer: bool) -> None:
        """_synced has a committed ``group`` synced: here when ``_enlist`` gave this thread the duty
        (``syncer``), else by the running sync's thread or, when asked, here (``_await``)."""
        if syncer:
            self._sync_groups([group])
        else:
            self._await(group)

    def _direct(self, fn: Callable[[], Any], sync: Optional[bool], handed: List[bool]) -> Any:
        """_direct commits one write at once, for a caller that found no commit running and took the
        write lock (``submit``); hands the lead on (and says so in ``handed``), then has the commit
        synced outside the locks."""
        finish: Optional[Sync] = None
        group: Optional[_Group] = None
        syncer = False
        try:
            try:
                with self._lock:
                    one = self._one
                    result = one(fn, sync) if one is not None else (self._deferred or self._apply)([fn], sync)[0]
                    self.batches += 1
                    self.writes += 1
                    if self._owed is not None:
                        finish = self._owed()
            finally:
                self._writer.release()
        finally:
            with self._mutex:
                if finish is not None:
                    group = _Group([], finish)
                    syncer = self._enlist(group)
                self._hand_on(handed)
        if group is not None:
            if syncer:  # no other sync runs: this write's alone (no _sync_groups round: the lone put's path)
                try:
                    group.finish()  # raises if the sync failed: the write is not acknowledged
                finally:
                    with self._mutex:
                        self._let_go()
            else:
                self._await(group)
                if group.error is not None:
                    raise group.error  # the sync failed: the write is not acknowledged
        return result

    # ---- the queue's syncs ----

    def _enlist(self, group: _Group) -> bool:
        """_enlist: ``group`` is committed and owes a sync. True: no sync runs, the caller runs this one
        (``_sync_groups``); False: the group waits for the running one, whose thread then syncs it
        with every other group committed meanwhile (``_await``). Callers hold ``_mutex``."""
        me = _thread.get_ident()
        if self._syncing:
            group.event = _Signal()
            group.thread = me
            self._awaiting.append(group)
            return False
        # The duty, recorded with its thread and its groups by plain stores, with no call between
        # them (a KeyboardInterrupt lands only at a call or a loop's jump): an interrupt finds the
        # duty either not taken or taken and recorded, and the caller's handler lets a recorded
        # one go (``_drop_duty``), so that the queue is never left with a duty nobody runs.
        self._duty_groups = [group]
        self._duty_thread = me
        self._syncing = True
        return True

    def _is_enlisted(self, group: _Group) -> bool:
        """_is_enlisted: ``_enlist`` ran for ``group`` (a cleanup cut short by a Ctrl-C runs again:
        it must not enlist it twice). Callers hold ``_mutex``."""
        if group.event is not None:
            return True  # waiting for the running sync (or synced since)
        return self._duty_thread == _thread.get_ident() and any(g is group for g in self._duty_groups)

    def _release_op_lock(self) -> None:
        """_release_op_lock lets go of the holds of the store's operation lock an interrupt left to
        this thread (a Ctrl-C at the start of its ``__exit__``: ``_OpLock.release_own``). For the
        handlers of ``submit``, whose thread holds no hold of it (a thread that did could never
        have its write led by another: the leader takes the lock)."""
        release_own = getattr(self._lock, "release_own", None)
        if release_own is not None:
            release_own()

    def _drop_duty(self) -> None:
        """_drop_duty: for a thread interrupted (or failing) on its way to or through a sync: if it
        still holds the duty, the groups it owed a sync are abandoned (none acknowledged: each write
        gets "write abandoned") and the duty goes on (``_let_go``), so that no thread waits forever
        for a sync nobody runs. Nothing if the duty is not this thread's (``_sync_groups`` let it go)."""
        me = _thread.get_ident()
        with self._mutex:
            # Its group waiting for the running sync (interrupted at ``_await``'s start, before
            # that handler): gone, as ``_await``'s handler marks it, so that ``_let_go`` hands
            # the next sync to another waiting thread, not to this one.
            for g in self._awaiting:
                if g.thread == me and not g.gone:
                    g.gone = True
            if self._awaiting and not self._syncing:
                self._let_go()  # it may have been asked to run the next sync already
            if not self._syncing or self._duty_thread != me:
                return
            # Idempotent (a second Ctrl-C runs it again: ``run_through``), the duty let go last.
            groups = [g for g in self._duty_groups if not g.done]
            for g in groups:
                self._abandon_group(g)
                self._settle(g.batch)
            self._wake(groups)
            self._open_gate()  # a leader waiting for groups taken (``_take_awaiting``) before the interrupt
            self._let_go()

    def _take_awaiting(self) -> List[_Group]:
        """_take_awaiting takes the duty (as ``_enlist`` does) and every waiting group, for the sync
        about to run, and wakes the leader waiting for that (``_wait_for_awaiting``). Callers hold
        ``_mutex``, and find no sync running (``_syncing`` False)."""
        me = _thread.get_ident()
        groups = self._awaiting
        self._awaiting = []
        self._duty_groups = groups
        self._duty_thread = me
        self._syncing = True
        return groups

    def _wait_for_awaiting(self, me: _Request) -> Optional[List[_Group]]:
        """_wait_for_awaiting: a leader applies with nothing else in flight: it waits while a sync of
        the queue runs or a written commit waits for one, and then for the writers that sync
        acknowledged to submit again (``_expected``; each for at most ARRIVAL_GAP after the one
        before), so that every write queued meanwhile goes in its commit. Not once a
        transaction's commit has taken the leader's own write (``me``) along: beside transactions
        that commit one after another, a sync may run at every look, and the leader's thread
        waited on for a write long done. Returns the waiting groups if nobody runs their sync any
        more (their threads were interrupted): the caller runs it."""
        while True:
            with self._mutex:
                wait = GATE_RECHECK
                if me not in self._queue:
                    return None  # taken along (``_lead`` hands the lead on)
                if self._awaiting:
                    if not self._syncing and all(g.gone for g in self._awaiting):
                        return self._take_awaiting()
                    # A sync runs, or it has just ended and asked the first waiting group's thread
                    # to run the next (``_let_go``): that thread takes it.
                elif not self._syncing:
                    if not self._expected:
                        return None
                    wait = self._arrived + ARRIVAL_GAP - time.monotonic()
                    if wait <= 0:
                        self._expected = 0  # the rest are not coming back soon: go without them
                        return None
                self._gate = gate = _Signal()
            # Outside the mutex: an interrupt here leaves nothing held. Bounded: a Ctrl-C landing
            # in the thread that was to open the gate (at a call, between the state's change and
            # the signal) would leave this leader waiting for good; it looks again instead.
            gate.wait(wait)

    def _await(self, group: _Group) -> None:
        """_await waits until ``group`` (in ``_awaiting``) has been synced by another thread, or until
        the thread whose sync ran before asks it to run the next one (``_let_go``): it then
        syncs every waiting group here."""
        event = group.event
        assert event is not None
        try:
            while True:
                event.wait()
                with self._mutex:
                    if group.done:
                        return
                    if not self._syncing:
                        groups = self._take_awaiting()
                        break
                    event.clear()  # asked to sync, but another thread (a leader) took the duty first
        except BaseException:  # interrupted while waiting: the sync is another thread's to run
            with self._mutex:
                group.gone = True
                if not self._syncing:
                    self._let_go()
            raise
        self._sync_groups(groups)

    def _open_gate(self) -> None:
        """_open_gate wakes the leader waiting in ``_wait_for_awaiting``, if one waits: it looks again.
        Callers hold ``_mutex``."""
        gate = self._gate
        if gate is not None:
            self._gate = None
            gate.set()

    def _let_go(self) -> None:
        """_let_go gives up the duty of syncing: the thread of the first waiting group takes it on
        (one thread woken, not every waiting one), or the leader if none waits any more
        (``_wait_for_awaiting``), or else the next writer to lead. Callers hold ``_mutex``."""
        for g in self._awaiting:
            if not g.gone:
                assert g.event is not None
                g.event.set()
                break
        else:
            # The leader waiting (``_wait_for_awaiting``) for the sync to begin or end: ``_open_gate``
            # inline, so that no call (where a Ctrl-C lands) comes before the duty's fields below.
            gate = self._gate
            if gate is not None:
                self._gate = None
                gate.set()
        # Last, with no call in between: a Ctrl-C in the wake-up above leaves the duty held, and
        # the caller's ``_drop_duty`` lets it go again (a thread woken twice looks again: ``_await``;
        # a leader woken early looks again: ``_wait_for_awaiting``).
        self._syncing = False
        self._duty_thread = None
        self._duty_groups = []

    def _sync_groups(self, groups: List[_Group]) -> None:
        """_sync_groups runs the sync of ``groups`` (committed, in log order; one sync covers them
        all), settles them and lets the duty go (``_let_go``): the thread of a group committed
        meanwhile runs the next sync. (This thread running that one too at once, while it holds
        the GIL, was measured: a thread fewer writing, and groups of 2.7 puts instead of 3.9.)
        Callers hold the duty (``_syncing``)."""
        synced = 0
        me = _thread.get_ident()
        try:
            for g in groups:
                self._finish(g.batch, g.finish, g)  # the first syncs; the others find it done
                synced += 1
        finally:
            # Idempotent, run to its end through a Ctrl-C, the duty let go last (only if still this
            # thread's: a try cut short after it let go must not take it from the next syncer).
            # Cut short before, the groups were done and their batches never settled: their
            # writers waited forever.
            def wind_up() -> None:
                with self._mutex:
                    for g in groups[synced + 1:]:  # interrupted before their sync ran: not acknowledged
                        self._abandon_group(g)
                    for g in groups:
                        self._settle(g.batch)
                    # Their writers submit again soon, most of them: the next leader waits for them
                    # (``_wait_for_awaiting``). Counted once (a wind-up run again counts nothing).
                    back = sum(g.writers for g in groups if g.error is None and not g.done)
                    if back:
                        self._expected += back
                        self._arrived = time.monotonic()
                    self._wake(groups)
                    if self._syncing and self._duty_thread == me:
                        self._let_go()

            try:
                wind_up()
            except KeyboardInterrupt:
                run_through(wind_up)
                raise

    @staticmethod
    def _wake(groups: List[_Group]) -> None:
        """_wake marks ``groups`` done (synced or abandoned) and wakes the threads waiting on
        them. Callers hold ``_mutex``."""
        for g in groups:
            g.done = True
            if g.event is not None:
                g.event.set()

    @staticmethod
    def _abandon_group(group: _Group) -> None:
        """_abandon_group: no sync ran for ``group`` (the syncing thread was interrupted): none of its
        writes is acknowledged. Callers hold ``_mutex``."""
        err = PageStoreError("write abandoned: the thread syncing its commit was interrupted")
        group.error = err
        for r in group.batch:
            if r.error is None:
                r.result, r.error, r.settled = None, err, True

    @staticmethod
    def _finish(batch: List[_Request], finish: Sync, group: Optional[_Group] = None) -> None:
        """_finish runs a batch's deferred sync; if it fails, no write of the batch is acknowledged:
        each gets the error (an interrupt: "write abandoned"), which goes on up in this thread,
        and so does ``group`` (a lone write's, ``_direct``)."""
        try:
            finish()
        except BaseException as exc:
            err = exc if isinstance(exc, Exception) else PageStoreError(
                "write abandoned: the thread syncing its commit was interrupted")
            if group is not None:
                group.error = err
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

    def _hand_on(self, handed: Optional[List[bool]] = None) -> None:
        """_hand_on makes the first queued request the leader and wakes it, or marks the queue idle.
        ``handed``: set once the lead went on, with no call in between, so that a caller's cleanup
        cut short by a Ctrl-C knows whether to hand it on again (twice, the queue had two leaders).
        Callers hold ``_mutex``."""
        if self._queue:
            nxt = self._queue[0]
            nxt.lead = True
            event = nxt.event
            if handed is not None:
                handed[0] = True
            if not event.is_set:  # ``event.set()`` inline: a Ctrl-C at its start left the leader asleep
                event.is_set = True
                event._lock.release()
        else:
            self._busy = False
            if handed is not None:
                handed[0] = True

    @staticmethod
    def _settle(batch: List[_Request], abandon: bool = False) -> None:
        """_settle marks a batch's requests done and wakes their threads. ``abandon``: the committing
        thread was interrupted between applying the batch and owing its sync (``_Group``): a
        write applied is not acknowledged either (its commit may never be synced)."""
        for r in batch:
            if (abandon or not r.settled) and r.error is None:  # the leader was interrupted (KeyboardInterrupt)
                r.result = None
                r.error = PageStoreError("write abandoned: the thread committing it was interrupted")
            r.done = True
            r.event.set()

    def _run(self, batch: List[_Request], apply: Apply) -> Optional[Sync]:
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
