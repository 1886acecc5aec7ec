"""locks: the store's write lock, which serializes everything that changes a store.

A store has two locks (docs/architecture.md, Concurrency):

- the *operation lock* (``Store._lock``, re-entrant), held for the length of
  one read or one commit, so that a reader never sees a commit half applied;
- the *write lock* (``WriteLock``, here), held by whoever is changing the
  store: a transaction from ``db.transaction()`` to its commit or rollback,
  ``update()``, ``put_many()``, ``clear()``, ``delete_range()``,
  ``compact()``, and the group commit's leader while it applies a batch of
  single writes (group.py). A read takes no write lock.

Order: the write lock first, then the operation lock, never the other way
(a thread holding the operation lock never waits for the write lock), so a
reader is never blocked for longer than one commit by a transaction that is
open in another thread.

The write lock is not re-entrant: a thread that holds it and writes through
the store again (``db[k] = v`` inside its own transaction, or from the
iterator ``update()`` is reading) would commit the outer change half-way.
``WriteLock.owned`` lets the store refuse that with ``ReentrantWriteError``.

Writers in several processes (issue 26): a store open for writing in several
processes shares one more lock, the *process lock* (``ProcessLock``: an
``fcntl`` open-file-description lock on one byte of ``<store>-shm``, shm.py
``LOCK_WRITE``, which dies with its process as SQLite's WAL write lock does).
``acquire`` takes the thread lock, then the process lock within the same
deadline, polled with a short backoff as SQLite's busy handler polls, and
tells its holder (``ProcessLock.taken``: the store catches up with the other
processes' commits there); ``release`` lets the process lock go before the
thread lock (a writer no other process asks keeps it: store.py ``_Turns``). Nothing above this class changes: the timeout, the
``StoreLockedError`` and the owner checks are its callers' contract, whether
the writer it waited for is a thread or a process.
"""
from __future__ import annotations

import random
import threading
import time
from typing import List, Optional, Protocol

from .errors import StoreLockedError
from .interrupts import run_through


#: Seconds between two tries of the process lock: the first wait, and the longest (the
#: wait doubles up to it, with jitter, so that waiting processes do not try in step).
#: Where the holder's release ends a wait (``ProcessLock.prompt``: a futex), every wait is
#: POLL_MAX: a try is then only the release's (or a holder's death's, found by the poll).
POLL_FIRST = 0.0002
POLL_MAX = 0.002


class ProcessLock(Protocol):
    """ProcessLock is the write lock's share with other processes (store.py implements it over
    the pager's ``try_lock_write`` / ``end_write``)."""

    #: the lock is held across releases (a writer keeping its turn, store.py ``_Turns``): taking it
    #: again is then nothing (no wait in line, no try, no catch-up), and only a thread holding the
    #: write lock's thread lock gives a kept turn up, so one read of it under that lock holds
    kept: bool

    def try_lock(self) -> bool:
        """try_lock takes the lock without waiting; False if another process holds it."""

    def waiting(self, on: bool) -> None:
        """waiting: the caller waits in line for the lock (on), or no longer (off)."""

    def others_waiting(self) -> bool:
        """others_waiting: another process waits in line for the lock."""

    def ticket(self) -> int:
        """ticket: a number that changes each time the lock is let go, read before a try (``nap``)."""

    def nap(self, ticket: int, seconds: float) -> None:
        """nap sleeps up to ``seconds``, or until the lock is let go after ``ticket`` was read."""

    @property
    def prompt(self) -> bool:
        """prompt: ``nap`` ends when the lock is let go (not only after ``seconds``)."""

    def taken(self) -> None:
        """taken: the lock was just taken (the holder catches up here); raising lets it go again."""

    def unlock(self) -> None:
        """unlock lets the lock go."""


class WriteLock:
    """WriteLock is a store's write lock: one holder at a time, waits bounded by a timeout.

    ``holder`` names what holds it (for error messages); ``owned()`` says
    whether the calling thread does. ``release`` may come from another
    thread than ``acquire`` (a transaction committed, or collected, there).
    ``process``: the lock shared with other processes (``share``), or None.
    """

    __slots__ = ("path", "holder", "process", "_lock", "_owner", "_taken")

    def __init__(self, path: str) -> None:
        self.path = path
        self.holder = ""
        self.process: Optional[ProcessLock] = None
        self._lock = threading.Lock()
        self._owner: Optional[int] = None
        self._taken = 0  # acquisitions so far: names the one that holds the lock (``token``)

    def share(self, process: Optional[ProcessLock]) -> None:
        """share has every later ``acquire`` take ``process`` too (None: this process alone)."""
        self.process = process

    def owned(self) -> bool:
        """owned: the calling thread holds the lock."""
        return self._owner == threading.get_ident()

    def try_acquire(self, timeout: Optional[float], holder: str) -> bool:
        """try_acquire takes the lock, waiting at most ``timeout`` seconds (None: no limit); False if it could not.

        The thread lock first, then the process lock (``share``) in what is left of
        the same deadline; whatever ``ProcessLock.taken`` raises lets both go and
        goes on up.
        """
        # The deadline's start, before the thread lock is waited for; none to work out for no limit
        # or none at all (a lone put's ``try_acquire(0)``: a process lock gets one try either way)
        start = time.monotonic() if timeout else 0.0
        me = threading.get_ident()
        # The acquire's outcome is stored by C code (``extend`` over ``map``) before any bytecode
        # runs: a Ctrl-C lands after a call into C returns, and one landing just after the
        # acquire took the lock left it taken by nobody (every later write: StoreLockedError).
        got: List[bool] = []
        try:
            got.extend(map(self._lock.acquire, (True,), (-1 if timeout is None else max(0.0, timeout),)))
        except BaseException:
            if got and got[0]:
                self._lock.release()
            raise
        if not got[0]:
            return False
        process = self.process
        if process is not None and not process.kept:  # a kept turn: ``_poll`` and ``taken`` would do nothing (4 calls)
            # what is left of the call's timeout (a kept turn, a lone put's case, works none out)
            deadline = None if timeout is None else (start + max(0.0, timeout) if timeout else time.monotonic())
            try:
                if not _poll(process, deadline):
                    self._lock.release()
                    return False
                try:
                    process.taken()
                except BaseException:
                    process.unlock()
                    raise
            except BaseException:
                if self._lock.locked():
                    self._lock.release()
                raise
        self._owner = me  # no call between the lock taken and its owner set (a Ctrl-C lands at calls)
        self.holder = holder
        self._taken += 1
        return True

    def acquire(self, timeout: Optional[float], holder: str) -> None:
        """acquire takes the lock for ``holder`` (e.g. "a transaction"), waiting at most ``timeout`` seconds.

        Raises:
            StoreLockedError: another writer (a thread of this process or another process)
                held it for the whole timeout.
        """
        if not self.try_acquire(timeout, holder):
            raise StoreLockedError(self.busy_message(timeout))

    def busy_message(self, timeout: Optional[float]) -> str:
        """busy_message: what StoreLockedError says when a wait for the lock timed out."""
        if self.holder:
            who = f"another writer in this process ({self.holder})"
        elif self.process is not None:
            who = "a writer (in this process or another)"
        else:
            who = "another writer in this process (a write)"
        return f"{self.path}: {who} held the store's write lock for the whole timeout of {timeout} s"

    def token(self) -> int:
        """token names the acquisition that holds the lock now, for ``release_taken``."""
        return self._taken

    def release_taken(self, token: int) -> None:
        """release_taken lets the lock go if the acquisition ``token`` (``token()``) still holds it: for
        a holder whose ``release`` a Ctrl-C may have cut at its start (then it still holds it, its
        holder named) or after (let go: the lock may be another's since). A release may come
        from another thread than the acquire, so ``owned`` cannot tell."""
        if self._taken == token and self.holder:
            self.release()

    def release(self) -> None:
        """release lets the lock go, the process lock first. Callers: whoever acquired it, once."""
        self._owner = None
        self.holder = ""
        process = self.process
        try:
            if process is not None:
                try:
                    process.unlock()
                except KeyboardInterrupt:
                    # A Ctrl-C at its start (a Python function) or inside it kept LOCK_WRITE from
                    # every other process until this one wrote again: let go again (idempotent),
                    # then the interrupt goes on.
                    run_through(process.unlock)
                    raise
        finally:
            self._lock.release()


def deadline_after(timeout: Optional[float]) -> Optional[float]:
    """deadline_after: when a wait for another process begun now ends, ``timeout`` seconds from
    now as a ``time.monotonic()``; None (no timeout): no limit. Callers: every bounded wait of
    the write path (wal.py, readers.py, pagerfiles.py, group.py)."""
    return None if timeout is None else time.monotonic() + timeout


def _poll(process: ProcessLock, deadline: Optional[float]) -> bool:
    """_poll tries ``process`` until it is taken (True) or ``deadline`` (a ``time.monotonic()``) passes.

    Polled, as SQLite's busy handler polls its WAL write lock: a blocking
    ``F_OFD_SETLKW`` cannot be given a timeout. The wait doubles from
    POLL_FIRST to POLL_MAX, with jitter, so that waiting processes do not
    try in step. Each wait is a ``nap`` that the holder's release ends
    early (a futex on a word of the shared index, shm.py "Turns"): the
    next writer starts within a wake-up's time of the release, not a
    poll's (measured: a turn's hand-off cost about as much as its commit).
    The lock itself stays the truth: a holder that dies wakes nobody, and
    the waiters find it free at their next try.

    Turns: a process that finds others waiting (``others_waiting``) does not
    take the lock at once, though it may be free: it waits in line with them
    (``waiting``), so that a writer that has just let the lock go cannot take
    it again and again while the others sleep between their tries (measured,
    4 processes of one-put commits: without this, one process's share fell to
    0.56 of the mean).
    """
    if not process.others_waiting() and process.try_lock():
        return True
    if deadline is not None and time.monotonic() >= deadline:
        # A try without a wait (group commit's first, ``try_acquire(0)``, before it queues and
        # waits in line): joining the line only to leave it cost a lock, an unlock, a wake-up
        # of the watchers and a try, at every commit of writers in several processes.
        return False
    process.waiting(True)
    try:
        # With prompt naps a short first one only adds tries (each a system call, and a
        # wake-up of a process that then sleeps again: 4 processes of one-put commits
        # made ~2 tries a turn, most of them failed, and more context switches).
        wait = POLL_MAX if process.prompt else POLL_FIRST
        while True:
            ticket = process.ticket()  # before the try: a release after it wakes the nap below
            if process.try_lock():
                return True
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            nap = wait * (0.5 + random.random())
            if deadline is not None:
                nap = min(nap, deadline - now)
            process.nap(ticket, nap)
            wait = min(wait * 2, POLL_MAX)
    finally:
        process.waiting(False)
