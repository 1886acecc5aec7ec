"""readers: the log's side of reading beside a writer in another process: the shared index
(shm.py), the read marks this process has locked, and the read
protocol, as SQLite's wal.c keeps its -shm index and read marks behind a narrow pager.h.

The pager owns pages (the map, the cache, the free list); this module owns what the
processes agree on about the log. The pager asks it, through ``SharedLog``:

    a reader                          a writer
    begin_read(wal, apply)            recover(wal, generation)   (the index rebuilt at open)
    end_read()                        publish(wal, backfilled)   (after a commit or a copy)
    mark                              oldest_mark(frames)        (how far a checkpoint may copy)
    rebuild(force=...)                readers_gone()             (may a held-back restart run)
                                      lock_for_restart(wait) / end_restart(wal, backfilled)
                                      try_lock_write() / unlock_write()   (LOCK_WRITE)
                                      catch_up(wal, apply)       (on taking LOCK_WRITE)
                                      begin_read(wal, apply, writer=True) / hold(frames)

Writers in several processes (issue 26) take turns on LOCK_WRITE. Between its turns a
writer reads as a reader does (``begin_read(..., writer=True)``: a mark on the latest
commit, its log brought up to it by ``WAL.catch_up``, which keeps the frame lists a
writer appends after); on taking the lock it catches up with every commit in the log
(``catch_up``), and republishes what a writer killed before its publication left
unpublished.

``begin_read`` takes a read mark on the writer's latest publication (the header read,
its mark locked, the header read again: if it changed, start over), brings the reader's
log (``WAL.follow``) up to it, and hands the pager what changed (``apply``). The marks
a process holds are locked once: an operation's mark and every live snapshot's
(``ReadMark.lock``) are unlocked when nothing in the process needs them (``end_read``).

``ReadMark`` is one reader's hold on a committed state, in this process (a snapshot) or,
through its ``lock``, in the shared index for the others.

The data side that rebuilding the index needs (the data file's shared lock, its header,
a log to scan) is asked of a ``DataSide``: the pager, or a test's fake.
"""
from __future__ import annotations

import errno
import functools
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Set

from . import format as fmt
from . import shm as shmlib
from .errors import CorruptionError, PageStoreError, StoreLockedError
from .locks import deadline_after
from .shm import (LOCK_CREATE, LOCK_SOLO, LOCK_WRITERS, READ_BASE, READ_SPAN, DataLock, Header, IndexGrowError, SharedIndex,
                  remove_shm, shm_path)

__all__ = ["DataLock", "DataSide", "Header", "IndexGrowError", "LOCK_CREATE", "LOCK_SOLO", "LOCK_WRITERS", "Marks", "ReadMark",
           "SUPPORTED", "SharedLog", "remove_shm", "shm_path"]

#: whether this platform has the locks reading beside a writer needs (shm.SUPPORTED)
SUPPORTED = shmlib.SUPPORTED


class ReadMark:
    """ReadMark is one reader's hold on a committed state of the store: ``meta``, the header of
    that commit, and ``index``, the log's committed frames up to ``log_end`` (pgno -> offset
    of the page's newest frame among them); every other page is the data file's.

    Marks taken with no commit in between share ``meta`` and ``index`` (neither is ever
    changed): ``index`` identifies the state. ``taken`` is a ``time.monotonic()``. ``live``
    is cleared when the mark is released, or when the pager closes or replaces its file.
    ``lock``: a reader beside a writer, the read mark it keeps locked in the shared index.
    """

    __slots__ = ("meta", "index", "log_end", "generation", "frames", "taken", "live", "lock")

    def __init__(self, meta: fmt.Meta, index: Dict[int, int], log_end: int, generation: int, frames: int) -> None:
        self.meta = meta
        self.index = index
        self.log_end = log_end
        self.generation = generation
        self.frames = frames  # log frames before log_end: what a checkpoint may copy while it is held
        self.lock: Optional[int] = None  # a reader beside a writer: the read mark it keeps locked (SharedLog)
        self.taken = time.monotonic()
        self.live = True


class Marks:
    """Marks is the read marks held in this process (snapshots, iterations, backups), and what they
    allow a checkpoint: ``live``, the marks held (a list, so that a snapshot's finalizer releases
    its mark with one atomic ``remove``), and ``last``, the mark taken last, whose header and
    index serve the next one while nothing commits."""

    __slots__ = ("live", "last")

    def __init__(self) -> None:
        self.live: List[ReadMark] = []
        self.last: Optional[ReadMark] = None

    def take(self, committed: fmt.Meta, wal: Any, lock: Optional[int]) -> ReadMark:
        """take holds the log's last commit (``committed``, its header): O(log frames) the first
        time after a commit (the log's index is copied), O(1) after that. ``lock``: the shared
        index's mark the current operation holds (a reader beside a writer), kept with it."""
        last = self.last
        if (last is not None and last.log_end == wal.committed_end and last.generation == wal.generation
                and last.lock == lock):
            mark = ReadMark(last.meta, last.index, last.log_end, last.generation, last.frames)
        else:
            mark = ReadMark(committed.copy(), wal.index_copy(), wal.committed_end, wal.generation,
                            wal.committed_frames)
        mark.lock = lock
        self.last = mark
        self.live.append(mark)
        return mark

    def release(self, mark: ReadMark) -> None:
        """release gives up ``mark``. Takes no lock (one atomic list removal); twice is harmless."""
        mark.live = False
        try:
            self.live.remove(mark)
        except ValueError:
            pass

    def forget_last(self) -> None:
        """forget_last: the next mark copies the log's index afresh (the log was replaced)."""
        self.last = None

    def drop_all(self) -> None:
        """drop_all ends every mark: the file they read is closing or being replaced."""
        for mark in list(self.live):
            mark.live = False
        self.live.clear()
        self.last = None

    def copy_limit(self, frames: int, generation: int, shared: Optional["SharedLog"]) -> int:
        """copy_limit: how many of the log's ``frames`` first frames a checkpoint may copy into
        the data file: none past the oldest mark held, here or (``shared``) in another process.
        (SQLite's rule: a page the copy rewrites then has a frame every mark reads instead.)"""
        limit = frames
        for mark in self.live:
            limit = min(limit, mark.frames if mark.generation == generation else 0)
        if shared is not None:
            oldest = shared.oldest_mark(frames)
            if oldest is not None:
                limit = min(limit, oldest)
        return limit

    def readers_gone(self, shared: Optional["SharedLog"]) -> bool:
        """readers_gone: no mark is held here, nor (``shared``) by another open."""
        return not self.live and (shared is None or shared.readers_gone())


class DataSide(Protocol):
    """DataSide: what rebuilding the shared index asks of the data file's owner (the pager)."""

    def lock_data_shared(self) -> bool:
        """Takes a shared lock on the data file (no writer starts meanwhile); False if a writer holds it."""

    def unlock_data(self) -> None:
        """Lets go of ``lock_data_shared``'s lock."""

    def disk_meta(self) -> fmt.Meta:
        """The data file's header."""

    def open_log(self, file_id: int) -> Any:
        """A read-only WAL of the store's log for a file of ``file_id`` (recovered by the caller)."""


#: apply(pages, reset, new_state): what a new view changed, for the pager's caches.
#: ``pages``: the pages whose newest frame changed, or None (any page may have: a new
#: log generation); ``reset``: the log's pages are to be taken afresh (``WAL.pages``),
#: not added to; ``new_state``: a new commit (False: the same state, now in the data file).
Apply = Callable[[Optional[Set[int]], bool, bool], None]


class SharedLog:
    """SharedLog is one open's share of the store's log with other processes: the shared index
    and, for a reader, the marks it holds and the state it has followed.
    See the module docstring. ``marks`` is the pager's list of live ``ReadMark``s (the same list)."""

    def __init__(self, index: SharedIndex, side: DataSide, marks: List[ReadMark]) -> None:
        self.index = index
        self.side = side
        self.marks = marks
        self.view: Optional[Header] = None  # reader: the published state its pages are as of
        self.mark: Optional[int] = None  # reader: the mark (frame count) the current operation holds
        self.locked: Set[int] = set()  # reader: the marks this process holds a lock on
        # writer: the ``asks`` word when a probe last found nobody waiting for LOCK_WRITE
        # (``others_wait_write``), or None
        self._asks_seen: Optional[int] = None
        # how many callers of this open wait in line for LOCK_WRITE (``wait_write``): a writer's
        # thread, and a read that finds the header unreadable while a writer keeps its turn
        # (``_acquire``); LOCK_WAITING is held while any does (one open's lock: one holder)
        self._waiters = 0
        self._waiters_guard = threading.Lock()
        self.name = shm_path("")  # for messages only
        #: seconds a wait for another process's hold of LOCK_RECOVER, or for an unreadable header
        #: to be rebuilt, lasts (the store's ``timeout``, set by the pager); None: no limit
        self.timeout: Optional[float] = None

    @classmethod
    def open(cls, path: str, page_size: int, file_id: int, side: DataSide, marks: List[ReadMark]) -> "SharedLog":
        """open opens (or makes) the shared index beside the store at ``path``.

        Raises:
            OSError: it cannot be opened or made (a read-only directory, a full disk).
        """
        shared = cls(SharedIndex(shm_path(path), page_size, file_id), side, marks)
        shared.name = path
        return shared

    def _deadline(self) -> Optional[float]:
        """_deadline: the end of a wait for another process begun now (``timeout``); None: no limit."""
        return deadline_after(self.timeout)

    # ---- a writer ----

    def attach(self, wal: Any, sole: Any = None) -> None:
        """attach has the writer's log record each frame it appends in the shared index; ``sole``: the
        writer's proof that it is the only one (``WAL.record_frames_in``)."""
        wal.record_frames_in(self.index, sole)

    def recover(self, wal: Any, generation: int, backfilled: int = 0, *, alone: bool = False) -> None:
        """recover scans the writer's log at open (``WAL.recover``) and rebuilds the index from it,
        holding LOCK_RECOVER so that no reader rebuilds it meanwhile; where a sync of the log
        failed, the frames are made durable first (``_resync``; ``alone``: no other open of
        the store, so none reads the state that was published).

        Raises:
            CorruptionError: from ``WAL.recover``, or frames a failed sync left are lost while
                other opens may read them (``_resync``).
            OSError: writing them again or syncing them failed.
            StoreLockedError: another process held LOCK_RECOVER (a reader's rebuild) for the
                whole ``timeout``, or a sync beside the repair did not end in it (``WAL.repair``).
        """
        index = self.index
        if not index.lock_within(shmlib.LOCK_RECOVER, self._deadline(), exclusive=True):
            # A reader rebuilding the index holds it (stopped, or on a hung disk): nothing written.
            raise StoreLockedError(f"{self.name}: another process rebuilding the store's shared index held "
                                   f"it for the store's timeout of {self.timeout} s (it may be stopped); "
                                   "try again")
        try:
            wal.recover(generation)
            self._resync(wal, index.read_header(), alone)
            index.set_frames(0, wal.entries(0))
            self.publish(wal, backfilled)
        finally:
            index.unlock(shmlib.LOCK_RECOVER)

    def publish(self, wal: Any, backfilled: int) -> None:
        """publish shows the log's committed state to readers in other processes (writer)."""
        self.index.publish(wal.generation, wal.salt, wal.committed_frames, backfilled)

    def set_file_id(self, file_id: int) -> None:
        """set_file_id: the data file was replaced by one of ``file_id`` (``Pager.adopt``)."""
        self.index.file_id = file_id

    def oldest_mark(self, frames: int) -> Optional[int]:
        """oldest_mark: the smallest read mark below ``frames`` another open holds (a few lock
        probes), or None: how far a checkpoint may copy."""
        return self.index.oldest_mark(frames)

    def readers_gone(self) -> bool:
        """readers_gone: no other open holds a read mark, LOCK_READ0 included (two lock probes,
        F_OFD_GETLK: nothing is taken)."""
        index = self.index
        return (index.held_by_others(shmlib.LOCK_READ0, 1) is None
                and index.held_by_others(READ_BASE, READ_SPAN) is None)

    def lock_for_restart(self, wait: float) -> bool:
        """lock_for_restart locks the whole mark range, so that no reader takes a mark while the
        log starts over; waits up to ``wait`` seconds for the reads holding marks to end. True:
        locked, and the index is marked invalid (a crash before ``end_restart`` makes readers
        rebuild it); the caller must call ``end_restart``."""
        index = self.index
        if not index.try_lock(READ_BASE, READ_SPAN, exclusive=True):
            # Reads that began before everything was copied hold marks on the log; those
            # that begin now read the data file only (LOCK_READ0). Wait for the first to end.
            deadline = time.monotonic() + wait
            while True:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.0001)
                if index.try_lock(READ_BASE, READ_SPAN, exclusive=True):
                    break
        return True

    def invalidate(self) -> None:
        """invalidate marks the published state unreadable until the next ``publish``."""
        self.index.invalidate()

    def end_restart(self, wal: Any, backfilled: int) -> None:
        """end_restart publishes the log's state and unlocks the mark range ``lock_for_restart`` took."""
        try:
            self.publish(wal, backfilled)
        finally:
            self.index.unlock(READ_BASE, READ_SPAN)

    # ---- a reader ----

    def begin_read(self, wal: Any, apply: Apply, *, writer: bool = False) -> None:
        """begin_read takes a read mark on the writer's latest commit for the current operation
        and brings the reader's log up to it, telling ``apply`` what changed (nothing is
        called when nothing did). Callers: ``Pager.begin_operation``.

        ``writer``: a writer between its turns (``wal`` is a writer's log): it marks the
        commit's frame count even when the data file holds it whole (not LOCK_READ0,
        under which a new log may start: its log keeps reading the old one's frames),
        and its log catches up by reading the new frames (``WAL.catch_up``).

        Raises:
            StoreLockedError: the index stayed unreadable.
            CorruptionError: from ``WAL.follow`` or ``apply``; the view stays the old one.
        """
        head = self._acquire(writer)
        if writer:
            self.mark = head.frames
            if (head.generation, head.salt, head.frames) != (wal.generation, wal.salt, wal.committed_frames):
                same = (head.generation, head.salt) == (wal.generation, wal.salt)
                changed = wal.catch_up(head.frames, same, head.frames, self.index.frame_entries)
                if changed is None or changed:
                    apply(None if changed is None else set(changed), changed is None, True)
            self.view = head
            return
        self.mark = head.mark
        if head is not self.view:  # read_header returns the same object while nothing changes
            self._follow(wal, head, apply)

    def try_lock_write(self) -> bool:
        """try_lock_write takes LOCK_WRITE, the write lock writers in several processes share
        (locks.py), without waiting; False if another process holds it."""
        return self.index.try_lock(shmlib.LOCK_WRITE, exclusive=True)

    def unlock_write(self) -> None:
        """unlock_write lets LOCK_WRITE go, and wakes a writer waiting in line (shm.py, "Turns")."""
        index = self.index
        index.unlock(shmlib.LOCK_WRITE)
        index.bump(shmlib.TURNS_OFFSET, 1)

    def wait_write(self, on: bool) -> None:
        """wait_write: this process waits in line for LOCK_WRITE (LOCK_WAITING shared), or no longer;
        beginning to wait wakes a writer keeping its turn (shm.py, "Turns")."""
        with self._waiters_guard:
            if on:
                if self._waiters == 0:
                    self.index.lock(shmlib.LOCK_WAITING)  # a Ctrl-C in it counts no waiter
                self._waiters += 1
                self.index.bump(shmlib.ASKS_OFFSET, 1 << 30)
            else:
                self._waiters -= 1
                if self._waiters == 0:
                    self.index.unlock(shmlib.LOCK_WAITING)

    def turns_seen(self) -> int:
        """turns_seen: the count of LOCK_WRITE's releases, read before trying it (``await_turn``)."""
        return self.index.word(shmlib.TURNS_OFFSET)

    def await_turn(self, seen: int, seconds: float) -> None:
        """await_turn sleeps up to ``seconds``, or until LOCK_WRITE is let go after ``turns_seen``
        said ``seen`` (a futex: the next writer starts within a wake-up of the release)."""
        self.index.sleep(shmlib.TURNS_OFFSET, seen, seconds)

    def ask_watch(self) -> Callable[[float], None]:
        """ask_watch: a sleep of so many seconds that a writer beginning to wait for LOCK_WRITE from
        now on ends early (shm.py, "Turns"): the watcher of a writer keeping its turn (store.py)
        looks whether anyone asks, then sleeps in it. It holds the shared index only."""
        return functools.partial(self.index.sleep, shmlib.ASKS_OFFSET, self.index.word(shmlib.ASKS_OFFSET))

    def others_wait_write(self, probe: bool = False) -> bool:
        """others_wait_write: another process waits in line for LOCK_WRITE (one lock probe, or none:
        see below). A writer keeping its turn asks this at the end of every write.

        A process that begins to wait takes LOCK_WAITING and only then bumps ``asks``
        (``wait_write``): while the word is what it was when a probe last found nobody
        waiting, every process that waits now took LOCK_WAITING after that probe and has not
        yet bumped the word, and a probe would find what the next call finds after its bump.
        So no probe then: the word says no. (The lock stays the truth: a changed word only
        makes this probe it again.)

        Not so for an older pagestore (before the word: same SHM_VERSION), which waits in
        line without bumping it: ``probe`` (the keeper's watcher, every WATCH_IDLE s at most)
        probes whatever the word says, and a probe that finds a waiter forgets the word, so
        that the end of the keeper's next write probes too and gives the turn up.
        """
        index = self.index
        asks = index.word(shmlib.ASKS_OFFSET)
        if asks == self._asks_seen and not probe:
            return False
        if index.held_by_others(shmlib.LOCK_WAITING, 1) is not None:
            self._asks_seen = None  # every call probes until one finds nobody
            return True
        self._asks_seen = asks
        return False

    def catch_up(self, wal: Any, apply: Apply) -> int:
        """catch_up brings a writer that has just taken LOCK_WRITE up to every commit in the log
        (``WAL.catch_up``: a commit another writer made durable but was killed before publishing
        counts; frames past the last commit frame never do), tells ``apply`` what changed, and
        republishes the state when the index's header does not show it. Returns how many frames
        the data file holds (``backfilled``: another writer may have checkpointed).

        Frames a failed (or unfinished) sync of the writer before may have left unwritten are
        read back, checked, written and synced again before anything is built on them
        (``_resync``).

        Raises:
            CorruptionError: from ``WAL.catch_up`` or ``apply``, or the frames a failed sync
                left do not read back whole (``_resync``): nothing is to be written.
            OSError: writing them again or syncing them failed.
        """
        head = self.index.read_header()
        # Salt 0 is no log's: a log whose header this writer never read (joined while the first
        # writer recovered it, ``WAL.catch_up``) is read, never trusted to be the published one.
        same = head is not None and (head.generation, head.salt) == (wal.generation, wal.salt) and wal.salt != 0
        changed: Optional[List[int]]
        if not same and wal.unwritten():
            # No header was ever written to this log: the writer that made it (the first of a
            # new log) died in its first turn before its recovery wrote one, and this open had
            # joined meanwhile. Nothing in it is committed: started as that recovery would
            # start it (``WAL.recover``), and published below.
            wal.reset(self.side.disk_meta().checkpoint_seq)
            changed = None
        else:
            changed = wal.catch_up(None, same, head.frames if head is not None and same else 0, self.index.frame_entries)
        if changed is None or changed:
            apply(None if changed is None else set(changed), changed is None, True)
        self._resync(wal, head, False)
        state = (wal.generation, wal.salt, wal.committed_frames)
        same_log = head is not None and (head.generation, head.salt) == state[:2]
        backfilled = head.backfilled if same_log and head is not None and head.backfilled <= state[2] else 0
        if head is None or (head.generation, head.salt, head.frames) != state:
            # A writer killed between its commit and its publication (or halfway through a
            # publication, or a restart): the entries of the frames it wrote may be missing too.
            first = min(head.frames, state[2]) if same_log and head is not None else 0
            self.index.set_frames(first, wal.entries(first))
            self.publish(wal, backfilled)
        self.view = self.index.read_header()
        return backfilled

    def _resync(self, wal: Any, head: Optional[Header], alone: bool) -> None:
        """_resync: a writer that has just taken LOCK_WRITE (at open, or catching up) finds the
        shared index's unsynced word set (shm.py, "Unsynced"): the writer before it failed or
        died in a sync of the log, and the frames from where that word says may be in the page
        cache only, marked clean (Linux, after a failed fsync), so that no later sync writes
        them. Building on them, this writer's acknowledged commit would lie behind frames a
        power cut loses, and recovery stops there. So they are read back and checked, written
        again and synced (``WAL.repair``), and the word cleared; one sync, only after a failure.
        At open, a process that died in its sync (a slot's record left under a free lock) counts
        as a failed sync first (``SharedIndex.fold_dead``); at a turn, a sync running now (or
        dead) is left to the sync of any commit built here, which waits for its outcome and
        writes them again (``WAL._sync_round``, step 6) before acknowledging.

        Frames that were published (``head``) but no longer read back whole (the page cache
        dropped the clean pages) are not written over while other opens may read them:
        CorruptionError. Alone (at open), the log recovered is what there is.

        Raises:
            CorruptionError: as above, or from ``WAL.repair``.
            OSError: from ``WAL.repair``.
        """
        index = self.index
        if alone and index.busy_slots():
            # At open: a process that died in its sync left its slot's record: it counts as a
            # failed sync (the word takes its offset), under the log's sync lock
            # (``WAL.count_dead_syncs``). At a turn, no probe (a few lock calls a turn): a sync
            # running now, or dead, is the sync's to find: that of any commit built here waits
            # for its outcome and writes again (``WAL._sync_round``, step 6).
            wal.count_dead_syncs()
        if index.unsynced() is None:
            return
        lost = (head is not None and (head.generation, head.salt) == (wal.generation, wal.salt)
                and head.frames > wal.committed_frames)
        if lost and not alone:
            raise CorruptionError(None, f"{self.name}: the log holds {wal.committed_frames} whole committed frames of "
                                        f"the {head.frames if head is not None else 0} published, after a failed "
                                        "sync of another writer; nothing is written on them (close every open of "
                                        "the store: the next open recovers what the log holds)")
        wal.repair()

    def unsynced(self) -> bool:
        """unsynced: a sync of the log failed (or is under way) and nobody has written its frames
        again yet (``_resync``): the index must outlive this open (shm.py, "Unsynced")."""
        return self.index.map is not None and not self.index.settled()

    def hold(self, frames: int) -> int:
        """hold locks read mark ``frames`` for a snapshot a writer takes while it holds LOCK_WRITE
        (it holds no operation mark then), so that no writer after it copies past, or restarts,
        the log the snapshot reads; ``reconcile`` lets it go with the snapshot. Returns it."""
        if frames not in self.locked:
            if not self.index.lock_mark(frames):  # pragma: no cover - only a restart holds marks exclusively
                raise StoreLockedError(f"{self.name}: read mark {frames} is held exclusively")
            self.locked.add(frames)
        return frames

    def end_read(self) -> None:
        """end_read lets go of the operation's mark, unless a live snapshot holds it too."""
        self.mark = None
        self.reconcile()

    def _acquire(self, writer: bool = False) -> Header:
        """_acquire takes a read mark on the latest published state and returns it (``writer``:
        the frame count, never LOCK_READ0; see ``begin_read``).

        The header is read, its mark locked, and the header read again: if it
        changed in between, the writer may have moved past the mark before the
        lock was seen, so it starts over. An unreadable header (a publication
        in flight) is read again; one that stays unreadable while no writer is
        there is rebuilt from the log. While a writer keeps its turn (an idle
        writer no other writer asked: it publishes nothing until it writes), the
        read asks for the turn as a waiting writer does, so that its watcher lets
        LOCK_WRITE go and the rebuild can run: a header damaged under an idle
        writer (a foreign or hostile ``-shm``) is not waited on for the whole loop.
        """
        index = self.index
        asking = False
        deadline: Optional[float] = None
        try:
            for attempt in range(100000):
                head = index.read_header()
                if head is None:
                    if deadline is None:
                        deadline = self._deadline()
                    elif attempt > 50 and time.monotonic() >= deadline:
                        # Past one try of the rebuild (a publication in flight passes sooner):
                        # no process rebuilt it, or one is stopped in its rebuild.
                        break
                    if attempt >= 50 and attempt % 50 == 0:
                        if not self.rebuild(force=False) and not asking:
                            self.wait_write(True)
                            asking = True
                    time.sleep(0 if attempt < 10 else 0.0005)
                    continue
                m = head.frames if writer else head.mark
                if m not in self.locked:
                    if not index.lock_mark(m):
                        # The writer is starting a new log (the whole mark range held): as long as
                        # the timeout, if that writer is stopped there.
                        if deadline is None:
                            deadline = self._deadline()
                        elif attempt > 50 and time.monotonic() >= deadline:
                            break
                        time.sleep(0 if attempt < 10 else 0.0005)
                        continue
                    self.locked.add(m)
                if index.read_header() == head:
                    return head
                self.reconcile()
        finally:
            if asking:
                self.wait_write(False)
        raise StoreLockedError(f"{self.name}: the writer's shared index stayed unreadable, or its read marks "
                               f"held by a writer starting a new log (for the store's timeout of {self.timeout} s, "
                               "if set: that writer may be stopped); try again")

    def reconcile(self) -> None:
        """reconcile unlocks the marks nothing in this process needs any more: not the current
        operation's, nor a live snapshot's."""
        index = self.index
        if not self.marks and self.mark is None and len(self.locked) == 1:
            index.unlock_mark(self.locked.pop())  # the common case: an operation's mark, and no snapshot
            return
        needed = {m.lock for m in self.marks if m.live}
        if self.mark is not None:
            needed.add(self.mark)
        for m in self.locked - needed:
            index.unlock_mark(m)
            self.locked.discard(m)

    def _follow(self, wal: Any, head: Header, apply: Apply) -> None:
        """_follow brings the reader's log to the state ``head`` publishes, which the caller holds
        a mark on, and tells ``apply``. Only the pages of the frames added since the last view
        are named; a new log generation names none (any page may have changed)."""
        view = self.view
        file_only = head.mark < 0
        if view is not None and (view.generation, view.salt, view.frames) == (head.generation, head.salt, head.frames):
            if file_only and wal.has_frames():
                # The same state, whole in the data file now: read it there.
                wal.forget_frames()
                apply(set(), True, False)
            self.view = head
            return
        changed: Optional[Set[int]]
        if view is None or (view.generation, view.salt) != (head.generation, head.salt) or head.frames < view.frames:
            wal.follow(head.generation, head.salt, head.frames, self.index.frame_entries(0, head.frames), 0,
                       verify=not file_only)
            changed = None
        else:
            entries = self.index.frame_entries(view.frames, head.frames)
            changed = set(wal.follow(head.generation, head.salt, head.frames, entries, view.frames))
        if file_only:
            # Every frame up to here is in the data file, and nothing newer can be copied
            # there while LOCK_READ0 is held: read the file only. Later views add only the
            # frames after this one (their pages are the ones the file may hold newer).
            wal.forget_frames()
        apply(changed, changed is None or file_only, True)
        self.view = head

    def rebuild(self, *, force: bool) -> bool:
        """rebuild rebuilds the shared index from the log, as a reader, when no writer is there
        to keep it (or ``force``: this process is the only one with the store open). Returns
        False when a writer holds the store (it keeps the index; the caller waits), or another
        process held LOCK_RECOVER for the whole ``timeout`` (stopped in its own rebuild or recovery).

        Raises:
            OSError: the index cannot grow to the log's frames (a full disk).
        """
        index, side = self.index, self.side
        if not index.lock_within(shmlib.LOCK_RECOVER, self._deadline(), exclusive=True):
            return False  # another process rebuilds it (or recovers, a writer), stopped: as if a writer kept it
        try:
            if not force and index.read_header() is not None:
                return True
            if not side.lock_data_shared():  # no writer starts meanwhile
                return False
            if not index.try_lock(shmlib.LOCK_WRITE, exclusive=True):  # nor is one writing (issue 26)
                side.unlock_data()
                return False
            try:
                disk = side.disk_meta()
                wal = side.open_log(disk.file_id)
                try:
                    wal.recover(disk.checkpoint_seq)
                    if wal.file is None or not wal.frame_pgnos:
                        index.publish(disk.checkpoint_seq, 0, 0, 0)
                    else:
                        index.set_frames(0, wal.entries(0))
                        index.publish(wal.generation, wal.salt, len(wal.frame_pgnos), 0)
                finally:
                    wal.close()
            finally:
                index.unlock(shmlib.LOCK_WRITE)
                side.unlock_data()
            self.view = None
            return True
        finally:
            index.unlock(shmlib.LOCK_RECOVER)

    # ---- both ----

    def close(self) -> None:
        """close lets go of the index and every mark this process held (their locks go with it)."""
        self.index.close()
        self.locked.clear()
        self.mark = None


#: errnos of a disk that failed a write (``open_index_for_writer``): raised as OSErrors, not wrapped
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def open_index_for_writer(path: str, page_size: int, file_id: int, side: DataSide,
                          marks: List[ReadMark]) -> SharedLog:
    """open_index_for_writer opens the shared index a writer keeps.

    Raises:
        OSError: the disk failed to make or grow it (a full disk: ENOSPC, a quota: EDQUOT, EFBIG,
            EIO), as docs/api.md "When the disk fails" says every failed write raises; its
            filename the index. Nothing of the store was written: with room, an open goes on.
        PageStoreError: it cannot be opened or made for another reason, named as what it is.
    """
    try:
        return SharedLog.open(path, page_size, file_id, side, marks)
    except OSError as exc:
        if exc.errno in _DISK_ERRORS:
            strerror = exc.strerror or os.strerror(exc.errno)
            if "shared index" not in strerror:
                strerror += ": cannot make the store's shared index"
            raise OSError(exc.errno, strerror, shm_path(path)) from exc
        # Named as what it is: an IsADirectoryError here is not about the store's own file.
        raise PageStoreError(
            f"{shm_path(path)}: cannot open the store's shared index for writing ({exc.strerror or exc})"
        ) from exc
