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

Extension to several processes (issue 26): ``acquire`` takes the thread lock
and then, in the same deadline, would take an exclusive ``fcntl`` lock on one
byte of the data file (``F_OFD_SETLK`` retried until the deadline, as
SQLite's busy handler does), and ``release`` would drop the byte lock before
the thread lock. Nothing above this class changes: the timeout, the
``StoreLockedError`` and the owner checks are already its callers' contract.
"""
from __future__ import annotations

import threading
from typing import Optional

from .errors import StoreLockedError


class WriteLock:
    """WriteLock is a store's write lock: one holder at a time, waits bounded by a timeout.

    ``holder`` names what holds it (for error messages); ``owned()`` says
    whether the calling thread does. ``release`` may come from another
    thread than ``acquire`` (a transaction committed, or collected, there).
    """

    __slots__ = ("path", "holder", "_lock", "_owner")

    def __init__(self, path: str) -> None:
        self.path = path
        self.holder = ""
        self._lock = threading.Lock()
        self._owner: Optional[int] = None

    def owned(self) -> bool:
        """owned: the calling thread holds the lock."""
        return self._owner == threading.get_ident()

    def try_acquire(self, timeout: Optional[float], holder: str) -> bool:
        """try_acquire takes the lock, waiting at most ``timeout`` seconds (None: no limit); False if it could not."""
        if not self._lock.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            return False
        self._owner = threading.get_ident()
        self.holder = holder
        return True

    def acquire(self, timeout: Optional[float], holder: str) -> None:
        """acquire takes the lock for ``holder`` (e.g. "a transaction"), waiting at most ``timeout`` seconds.

        Raises:
            StoreLockedError: another writer held it for the whole timeout.
        """
        if not self.try_acquire(timeout, holder):
            raise StoreLockedError(
                f"{self.path}: another writer in this process ({self.holder or 'a write'}) held the "
                f"store's write lock for the whole timeout of {timeout} s"
            )

    def release(self) -> None:
        """release lets the lock go. Callers: whoever acquired it, once."""
        self._owner = None
        self.holder = ""
        self._lock.release()
