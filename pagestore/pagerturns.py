"""pagerturns: a writer's turns on LOCK_WRITE, when writers in several processes take turns (issue 26).

``PagerTurns`` is the part of ``Pager`` (a base class: the same object, its code in a file
of its own, as ``PagerFiles`` and ``PagerReads``) that takes and gives up this process's
turn to write: ``try_lock_write`` (LOCK_WRITE, one byte of the shared index, through
``SharedLog``), ``begin_write`` (catch up with the commits other processes made since this
one last wrote: ``SharedLog.catch_up`` calls back ``_follow`` with the pages they changed),
``end_write`` (LOCK_WRITE goes at once: a commit's sync may run after it, since every sync
is acknowledged only once the syncs beside it are known to have succeeded, and one after a failed
sync writes the dropped frames again: wal.py ``_sync_round``), the line of waiting writers
(``wait_write``, ``others_wait_write``), the check that a commit is based on the latest
published state (``_check_latest``), and a turn of the pager's own for a checkpoint or a
commit asked of it directly (``_take_turn``, ``_lock_write_for``). The store's write lock
(locks.py) decides when; this module does it. It calls ``SharedLog``; it never assigns its
state, and touches no page.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Dict, Optional, Set

from .checkpointer import Checkpointer
from .errors import PageStoreError
from .readers import SharedLog
from .wal import WAL

if TYPE_CHECKING:
    from .pagecache import _Frame
    from .pager import _Poisons


class PagerTurns:
    """PagerTurns is the pager's turns to write beside other processes (see the module
    docstring); ``Pager`` is its one subclass."""

    path: str
    wal: Optional[WAL]
    sharing: Optional[SharedLog]
    turns: bool
    writing: bool
    owed: int
    dirty: Dict[int, "_Frame"]
    checkpointer: Checkpointer
    _guard: "_Poisons"  # the pager's: poisons it on a failed write or sync

    if TYPE_CHECKING:  # the pager's and PagerReads', for mypy only: at run time a stub here would hide them

        def sync(self, upto: int = 0) -> None: ...

        def _follow(self, changed: Optional[Set[int]], reset: bool, new_state: bool) -> None: ...

    def try_lock_write(self) -> bool:
        """try_lock_write takes LOCK_WRITE without waiting (False: another process holds it).
        Callers: the store's write lock (locks.py), then ``begin_write`` once it is taken."""
        assert self.sharing is not None and self.turns
        return self.sharing.try_lock_write()

    def begin_write(self) -> None:
        """begin_write: this process has just taken LOCK_WRITE. Its log and pages catch up with
        every commit the other writers made since it last looked (``SharedLog.catch_up``: the
        changed pages leave the cache, the tree's nodes and the map's verified bits through
        ``_follow`` and ``on_change``), so that what it writes next is based on the latest
        commit. Callers: the store, under its operation lock.

        Where a sync of the writer before failed (or did not return), its frames are written
        and synced again first (``SharedLog.catch_up``): no commit is built on frames not
        known durable.

        Raises:
            CorruptionError: from reading the other writers' frames, or those a failed sync left
                no longer read back whole; LOCK_WRITE is then the caller's to let go.
            OSError: writing them again failed (a failed sync: the log refuses every later
                one, ``WAL.sync``, and the pager is poisoned).
        """
        assert self.sharing is not None and self.wal is not None and self.turns
        assert not self.dirty and not self.wal.txn_index, "a write turn begins outside a transaction"
        if self.sharing.mark is not None:
            self.sharing.end_read()  # the operation's read mark: from here this process reads the latest
        with self._guard:  # a failed write or sync of the log (its repair) poisons, as a commit's does
            self.checkpointer.caught_up(self.sharing.catch_up(self.wal, self._follow))
        self.writing = True

    def end_write(self) -> None:
        """end_write lets LOCK_WRITE go: from the next operation on, this process reads as a reader
        beside the other writers. Callers: the store, under its operation lock.

        What deferred commits owe is synced by their callers afterwards, outside every lock
        (group.py), while the next writer takes its turn: syncs of several processes overlap, each
        acknowledged only once those beside it ended well, and one after a failed one writes the frames it may have dropped
        again first (``WAL.sync``, shm.py "Unsynced"), so no commit is acknowledged on frames
        a failed sync dropped."""
        self.writing = False
        if self.sharing is not None:
            self.sharing.unlock_write()

    def _sync_deferred(self) -> None:
        """_sync_deferred syncs the log through the commits that deferred their sync
        (``commit(defer=True)``) before the pager closes (``close``), since their callers'
        syncs then find no log.
        A failed sync poisons the pager and is not raised here: the deferred sync's caller
        (``sync(owed)``) raises StorePoisonedError, so none of those commits is acknowledged."""
        upto = self.owed
        if upto and self.wal is not None and not self.wal.synced_through(upto):
            try:
                self.sync(upto)
            except (OSError, PageStoreError):
                pass

    def wait_write(self, on: bool) -> None:
        """wait_write: this process waits in line for LOCK_WRITE, or no longer (locks.ProcessLock.waiting)."""
        if self.sharing is not None:
            self.sharing.wait_write(on)

    def others_wait_write(self, probe: bool = False) -> bool:
        """others_wait_write: another process waits in line for LOCK_WRITE (``probe``: the lock probed
        whatever the ``asks`` word says: ``SharedLog.others_wait_write``)."""
        return self.sharing is not None and self.sharing.others_wait_write(probe)

    def ask_watch(self) -> Callable[[float], None]:
        """ask_watch: a sleep a writer beginning to wait for LOCK_WRITE ends early (``SharedLog.ask_watch``)."""
        return self.sharing.ask_watch() if self.sharing is not None else time.sleep

    def turns_seen(self) -> int:
        """turns_seen: how many times LOCK_WRITE was let go, read before trying it (``await_turn``)."""
        return self.sharing.turns_seen() if self.sharing is not None else 0

    def await_turn(self, seen: int, seconds: float) -> None:
        """await_turn sleeps up to ``seconds``, or until LOCK_WRITE is let go again (``SharedLog.await_turn``)."""
        if self.sharing is not None:
            self.sharing.await_turn(seen, seconds)
        else:
            time.sleep(seconds)

    def _check_latest(self) -> None:
        """_check_latest: a commit of writers taking turns is based on the latest commit, or
        PageStoreError (nothing stale is ever written). One read of the index's header."""
        assert self.sharing is not None and self.wal is not None
        if not self.writing:
            raise PageStoreError(f"{self.path}: a commit without the write lock (a bug)")
        head = self.sharing.index.read_header()
        wal = self.wal
        if head is None:
            # Unreadable (damaged under a writer keeping its turn, which does not catch up):
            # only the holder of LOCK_WRITE publishes, and this commit publishes it again.
            return
        if (head.generation, head.salt, head.frames) != (wal.generation, wal.salt, wal.committed_frames):
            raise PageStoreError(f"{self.path}: a commit based on a state that is not the latest one published (a bug)")

    def _take_turn(self, wait: float) -> bool:
        """_take_turn takes a write turn of the pager's own (the checkpoint at close, or one asked
        of the pager directly), if LOCK_WRITE is free within ``wait`` seconds; False if not (or
        catching up failed: the next writer checkpoints). The caller ends it (``end_write``)."""
        if not self._lock_write_for(wait):
            return False
        try:
            self.begin_write()
        except (PageStoreError, OSError):
            self.end_write()
            return False
        return True

    def _lock_write_for(self, wait: float) -> bool:
        """_lock_write_for takes LOCK_WRITE if it is free within ``wait`` seconds (the operation's read
        mark let go first); False if not."""
        if self.sharing is not None:
            self.sharing.end_read()
        deadline = time.monotonic() + wait
        while not self.try_lock_write():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True
