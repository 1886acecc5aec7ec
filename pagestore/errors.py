"""pagestore's exceptions: one base class and its subclasses.

Every error pagestore raises on purpose is a ``PageStoreError`` (bad
arguments excepted: ``TypeError`` and ``ValueError``, as Python's own). Missing
keys and dead slots raise ``NotFoundError``, which is also a ``KeyError`` so
code written for dicts keeps working. The one table from the C core's status
codes to these is ``_native.raise_for``.
"""
from __future__ import annotations

import errno

from typing import Optional


class PageStoreError(Exception):
    """Base class of every error pagestore raises on purpose."""


class NotFoundError(PageStoreError, KeyError):
    """A key or slot that does not exist. Both a ``KeyError`` and a ``PageStoreError``."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "not found"


class PageFullError(PageStoreError):
    """A record does not fit in the page, even after compaction."""


class CorruptionError(PageStoreError):
    """Bytes read from disk break an invariant; ``pgno`` names the page (None: the file as a whole)."""

    def __init__(self, pgno: Optional[int], detail: str) -> None:
        self.pgno = pgno
        self.detail = detail
        where = "file" if pgno is None else f"page {pgno}"
        super().__init__(f"corruption in {where}: {detail}")


class InvalidFileError(PageStoreError):
    """The file is not a pagestore file."""


class VersionMismatchError(PageStoreError):
    """The file was written by a newer on-disk format than this pagestore reads."""


class StoreLockedError(PageStoreError):
    """Another open holds the store, or a lock of it, for longer than this one waits: a write's
    wait for the write lock, or an open's, a write turn's or a log restart's for a lock another
    process holds (stopped, or on a hung disk), past the store's ``timeout``; nothing of the
    call was written. The message names the store and says which."""


class DurabilityUnknownError(PageStoreError):
    """A durable commit is written to the log and published (reads see it, in this process and
    in others, and later commits build on it), but its durability is not confirmed: its log
    sync waited past the store's ``timeout`` for another process (stopped, or on a hung disk):
    for a sync slot or LOCK_SYNC before its own fsync, or, that fsync succeeded, for a sync
    that ran beside it, whose failure could have dropped pages this commit's sync relied on. Not acknowledged, not rolled back, nothing poisoned: the store
    stays usable, and the next sync that completes (``sync()``, the next durable commit) or a
    reopen settles it (whole, or absent after a crash, as any unacknowledged commit).
    ``path`` names the store."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class StoreClosedError(PageStoreError):
    """The store was used after ``close()``."""


class TransactionClosedError(PageStoreError):
    """A transaction was used after it committed or rolled back."""


class ReentrantWriteError(PageStoreError):
    """A write through the store on a thread whose own transaction (or ``update()``, whose
    input is read while its commit is built) is open: it would commit that one half-way.
    Write through the transaction instead."""


class ReadOnlyError(PageStoreError):
    """A write was attempted on a store opened with ``readonly=True``."""


class StorePoisonedError(PageStoreError):
    """An earlier write or sync of the store's data file or log failed, so the store refuses every
    write until it is closed and opened again (reads go on). ``original`` (also ``__cause__``)
    is that first failure.

    After a failed ``fsync`` Linux may have marked the unwritten pages clean: a later sync
    that succeeds does not write them, and a commit made after it could sit behind a hole
    in the log. Opening again recovers from what is durably on disk (PostgreSQL's PANIC on
    a failed fsync, LMDB's ``MDB_PANIC``).
    """

    def __init__(self, path: str, original: BaseException) -> None:
        self.path = path
        self.original = original
        # A full disk: reopening alone does not help (an open's own checkpoint fails the same
        # way and returns the store poisoned again), so the message says what does.
        room = "make room on its disk, then " if getattr(original, "errno", None) == errno.ENOSPC else ""
        super().__init__(
            f"{path}: the store refuses writes since a write or sync of its files failed "
            f"({type(original).__name__}: {original}); {room}close it and open it again "
            "(opening recovers from what is durable on disk)"
        )
