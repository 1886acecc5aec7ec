"""shm: the shared index beside a store (``<store>-shm``), so that readers in other processes
can read beside the writer, as SQLite's WAL mode does with its ``-shm`` file.

The file holds no data of its own, only what every process needs to agree on
about the log, and it can always be rebuilt from the log (so it is never
synced). Every process that has the store open maps it, shared. It grows by
written zeros, never by a hole (``_grow``): on a full disk, a store through
the map into a hole kills the process with SIGBUS, where a write that grows
the file fails with an OSError the caller can handle.

SHARED INDEX FILE LAYOUT (little-endian)

    OFFSET  SIZE   DESCRIPTION
       0     64    header, copy 0
      64     64    header, copy 1 (the same bytes; see "Publishing")
     128     16    unsynced: a sync of the log is under way or failed (see "Unsynced")
     144      4    turns: bumped each time LOCK_WRITE is let go (see "Turns")
     148      4    asks: bumped each time a writer begins to wait for LOCK_WRITE
     152      4    failures: failed syncs of the log (see "Unsynced")
     156      4    ends: bumped each time a sync lets its slot's lock go (a wake-up hint; see "Unsynced")
     160     16    durable: where the log is known durable, by a sync in any process (see "Unsynced")
     176     16    unused (zero)
     192    128    sync slots: 8 records of 16 bytes, one per sync of the log in flight (see "Unsynced")
     320     64    covers: 8 words of 8 bytes, slot i's at 320 + 8 i (see "Unsynced")
     384   3712    unused (zero)
    4096  16 * n   frame array: an entry for log frame k at 4096 + 16k, for every
                   frame the writer has appended in this generation

FRAME ENTRY (ENTRY_SIZE = 16 bytes; frames vary in size, so a reader finds each one here)

    OFFSET  SIZE  DESCRIPTION
       0      4   pgno: the page the frame belongs to
       4      4   size: its payload bytes (the page size, or a delta's)
       8      8   offset: where the frame begins in the log

HEADER (HEADER_SIZE = 56 bytes used of 64)

    OFFSET  SIZE  DESCRIPTION
       0      8   magic b"psSHM\\r\\n\\x00"
       8      4   shared index version (2; version 1 held 4-byte page numbers only)
      12      4   page size of the store
      16      8   file_id of the data file
      24      8   generation of the log (its header's)
      32      4   salt of the log (its header's)
      36      4   frames: committed frames in the log (a reader's snapshot is a frame count)
      40      4   backfilled: frames (from the first) whose pages the data file holds
      44      8   change: bumped by every publication
      52      4   checksum: CRC32C of bytes [0, 52)

Publishing: the writer writes copy 1, then copy 0; a reader reads copy 0,
then copy 1, and trusts the header only when both are equal and the
checksum holds. A reader that catches a publication halfway sees two
different copies and reads again.

UNSYNCED (UNSYNCED_OFFSET = 128, 16 bytes; not part of the checksummed header)

    OFFSET  SIZE  DESCRIPTION
       0      8   from: 0, or 1 + the log offset from which a failed (or unfinished) sync
                  may have left bytes unwritten
       8      4   salt of the log that offset is in
      12      4   zero

DURABLE (DURABLE_OFFSET = 160, 16 bytes; not part of the checksummed header)

    OFFSET  SIZE  DESCRIPTION
       0      8   end: 0, or the log offset up to which a sync that returned made it durable
       8      4   salt of the log that offset is in
      12      4   zero

SYNC SLOT i (SLOTS_OFFSET + 16 i, i < SLOTS = 8; its lock byte LOCK_SLOT + i)

    OFFSET  SIZE  DESCRIPTION
       0      8   from: 0 (free, or its sync ended), or 1 + the log offset from which the
                  sync holding the slot may drop bytes if it fails
       8      4   salt of the log that offset is in
      12      4   zero

COVERS i (COVERS_OFFSET + 8 i, 8 bytes): 0, or the log offset (of the log of slot i's salt)
up to which the sync that last held slot i makes the log durable if its fsync succeeds (the
published end when it began); kept when its record is cleared only if its fsync returned
success.

Unsynced: syncs of the log from several processes overlap; LOCK_SYNC is held only
for the bookkeeping of these words (and the rare writes again), never across an
fsync (docs/format.md, "Unsynced",
has each step and what a process killed between two of them leaves). A sync holds
a slot (its lock exclusive) from before its writes to its outcome, recorded there
with where the log was known durable when it began. A failure moves ``unsynced``
down to that offset and adds one to ``failures``. After its own fsync returned, a
sync waits for every slot busy then (its lock taken shared): any sync that began
before it returned, whose failure could have dropped a page it relied on (Linux
marks the pages of a failed fsync clean without writing them, and errseq tells
only the files open at the time). A record still set under a lock nobody holds
exclusively is a process that died in its sync: counted as failed. If a failure
was counted since it began, it writes the log again from ``unsynced`` and syncs
once more before it acknowledges; else ``durable`` goes up to the published end
as of before its fsync (every frame published by then was written before it),
and ``unsynced`` up past what it wrote again. A sync in another process whose
frames end below ``durable``, with nothing unsynced and no failure since its own
last good sync, has nothing to do (a sync shared across processes, as group
commit shares one across threads). A sync whose frames lie below a busy slot's *covers*
(a sync of another process, begun after they were published) rides on it (``WAL._ride``):
it waits for that sync's outcome and for every sync busy after it, and acknowledges if
that fsync returned success (the record cleared, *covers* kept) and nothing failed meanwhile,
with no fsync of its own. The only writer with the store open syncs in sole mode (``WAL._sync_alone``):
LOCK_WRITERS exclusive across the sync keeps every other writer out, so the words are its
alone and it records its sync in a slot without the slot's lock or LOCK_SYNC. A writer taking its turn writes again from
``unsynced`` at once (``WAL.repair``), refusing if frames
that were published no longer read back (readers.py). Readers ignore the words;
a version-2 index without them reads as zero (nothing unsynced, no slot busy).

Turns: the words at 144 and 148 are wake-up hints, never the truth (the fcntl locks
are: a process that dies lets its locks go without bumping anything). A writer that
lets LOCK_WRITE go bumps ``turns`` and wakes one process sleeping on it (a Linux
futex on the shared map, ``FUTEX_WAIT`` with a timeout); a writer waiting in line
reads ``turns``, tries the lock, and sleeps on ``turns`` until it changes or its poll
interval passes, so the next writer starts within a wake-up's time of the release
instead of a poll's. A writer that begins to wait takes LOCK_WAITING, then bumps
``asks`` and wakes every sleeper on it: the thread of a writer keeping its turn sleeps
there between its looks (store.py ``_watch``), and the writer itself, at the end of
each write, probes LOCK_WAITING only when ``asks`` changed since a probe found nobody
(readers.py ``others_wait_write``: one lock call per write fewer); the watcher probes
whatever the word says (an older pagestore waits without bumping it), and a probe that
finds a waiter makes the next write's end probe too. Without futexes (not Linux on
x86-64 or AArch64) both are plain polls.

LOCKS (``fcntl`` open-file-description byte-range locks, at offsets past the
end of their file; they vanish when their process dies, so a SIGKILLed process
never blocks anyone for long)

    FILE   OFFSET          DESCRIPTION
    data   LOCK_DMS        shared by every process that has the store open, taken
                           before it opens this file; a writer that can take it
                           exclusively is alone, and may remove the log and this
                           file at close (an opener waits for it meanwhile, up to
                           its store's timeout: ``DataLock``)
    data   LOCK_WRITERS    shared by every writer that takes turns (issue 26), for its
                           open's life, taken before its open touches the log; exclusive
                           by the only writer across one sync of its log in sole mode
                           (docs/format.md, "Sole mode"; ``DataLock.try_sole``)
    data   LOCK_CREATE     exclusive while a writer that takes turns writes the header of
                           a new, empty data file (two opening it at once write one)
    data   LOCK_NAMES + n  shared by every open that uses a shared index, for its life: byte
                           n stands for the index file (a hash of its device and inode,
                           ``name_byte``); an open that finds another index's byte held
                           refuses (the data file is open under another name, a hard
                           link, whose log and index are another's)
    data   LOCK_SOLO       shared by a reader that reads without the shared index (it
                           cannot write it): it and the writers taking turns refuse
                           each other (each takes its own byte, then looks at the other's)
    shm    LOCK_RECOVER    exclusive while the index is being rebuilt
    shm    LOCK_WRITE      the write lock of writers in several processes: exclusive
                           while one writes (a transaction, a commit of single
                           writes, a checkpoint; locks.py); a reader rebuilding the
                           index holds it too, so that no writer starts meanwhile
    shm    LOCK_WAITING    shared by each writer waiting for LOCK_WRITE: a writer that
                           sees it held waits in line instead of taking LOCK_WRITE at once
    shm    LOCK_SYNC       exclusive for a sync's bookkeeping of the words above and its
                           writes again after a failure, and for a new log's header
                           write, never across an fsync (see "Unsynced")
    shm    LOCK_SLOT + i   sync slot i (i < SLOTS): exclusive by the sync holding it, from
                           its record to its outcome; shared by a sync waiting for that
    shm    READ_BASE + m   a read mark: shared by each process while it reads the
                           store as of m committed frames; the writer copies log
                           frames into the data file only up to the smallest held
                           mark, and starts a new log only while it can lock the
                           whole mark range exclusively (no reader of the log)
    shm    LOCK_READ0      the read mark of a reader whose state the data file holds
                           whole (frames == backfilled when it began): it reads no
                           log frame, so a new log may start under it, but nothing
                           more is copied into the data file while it is held

Writers take turns on LOCK_WRITE (pager.py, ``try_lock_write``). Where these
locks are missing, a writer holds an exclusive ``flock`` on the data file
instead, as before writers in several processes (one writing process at a time).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import mmap
import os
import platform
import struct
import sys
import time
from array import array
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple, TypeVar, Union

from . import fileio
# The byte-range locks, on the shared index's descriptor (the data file's are a File's).
from .fileio import _FLOCK, held_by_others, lock, try_lock, unlock
from ._native import crc32c
from .errors import CorruptionError, StoreLockedError

_T = TypeVar("_T")

SHM_MAGIC = b"psSHM\r\n\x00"
SHM_VERSION = 2
HEADER_SIZE = 56
COPY_SIZE = 64
ARRAY_OFFSET = 4096
ENTRY_SIZE = 16
#: the file grows by this many bytes at a time (4,096 frames)
GROW_BYTES = 64 * 1024
UNSYNCED_OFFSET = 128
TURNS_OFFSET = 144
ASKS_OFFSET = 148
FAILURES_OFFSET = 152
SYNC_ENDS_OFFSET = 156
DURABLE_OFFSET = 160

LOCK_BASE = 1 << 40
LOCK_DMS = LOCK_BASE
LOCK_RECOVER = LOCK_BASE + 1
LOCK_READ0 = LOCK_BASE + 2
LOCK_WRITE = LOCK_BASE + 3
LOCK_WAITING = LOCK_BASE + 4
LOCK_SYNC = LOCK_BASE + 5
#: sync slot i's lock byte is LOCK_SLOT + i (see "Unsynced"); its record is at SLOTS_OFFSET + 16 i
LOCK_SLOT = LOCK_BASE + 8
SLOTS = 8
SLOTS_OFFSET = 192
SLOT_SIZE = 16
#: slot i's *covers* word is at COVERS_OFFSET + 8 i (see "Unsynced")
COVERS_OFFSET = 320
LOCK_WRITERS = LOCK_BASE + 1  # on the data file, as LOCK_DMS
LOCK_SOLO = LOCK_BASE + 2  # on the data file, as LOCK_DMS
LOCK_CREATE = LOCK_BASE + 3  # on the data file, as LOCK_DMS
#: on the data file: [LOCK_NAMES, LOCK_NAMES + NAME_SPAN), one byte per shared index (``name_byte``)
LOCK_NAMES = LOCK_BASE + 64
NAME_SPAN = 1 << 30


def name_byte(device: int, inode: int) -> int:
    """name_byte: the byte of the data file's LOCK_NAMES range that stands for the shared index
    file (``device``, ``inode``): every open that uses that index holds it shared
    (``DataLock.claim_name``). Two different index files land on one byte with odds of about
    one in 2^30; they are then not told apart, as before the range existed."""
    return LOCK_NAMES + crc32c(struct.pack("<QQ", device & (2**64 - 1), inode & (2**64 - 1))) % NAME_SPAN
READ_BASE = LOCK_BASE + 16
READ_SPAN = 1 << 32

_HDR = struct.Struct("<8sIIQQIIIQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# The words a sync reads (``sync_words``), bytes [128, 176): unsynced from, its salt, zero; turns,
# asks, failures, ends; durable end, its salt, zero.
_SYNC_WORDS = struct.Struct("<QIIIIIIQII")
_ENTRY = struct.Struct("<QQ")
_SETLK = getattr(fcntl, "F_OFD_SETLK", 0)
_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 0)
_SLOT_WORDS = struct.Struct("<" + "QII" * SLOTS)
# What a sync in sole mode reads (``begin_alone``), bytes [128, 320): the words of ``_SYNC_WORDS``, 16
# unused bytes, then each slot's record word (its salt and zero skipped).
_ALONE_WORDS = struct.Struct("<QIIIIIIQII16x" + "Q8x" * SLOTS)
_SYNC_LOCK = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, LOCK_SYNC, 1, 0)
_SYNC_UNLOCK = _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, LOCK_SYNC, 1, 0)
# LOCK_WRITERS (on the data file) turned exclusive and back: a sync in sole mode (``DataLock.try_sole``)
_WRITERS_EXCLUSIVE = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, LOCK_WRITERS, 1, 0)
_WRITERS_SHARED = _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, LOCK_WRITERS, 1, 0)

#: Seconds between two tries of a lock waited for with a deadline (``poll_lock``): the first nap,
#: and the longest (each nap doubles up to it). A sync's fsync takes milliseconds: a waiter
#: polling at this pace is late by a fraction of one.
LOCK_POLL_FIRST = 0.0001
LOCK_POLL_MAX = 0.002


def poll_lock(attempt: Callable[[], bool], deadline: float) -> bool:
    """poll_lock calls ``attempt`` (a lock tried without waiting) until it returns True, with naps
    doubling from LOCK_POLL_FIRST to LOCK_POLL_MAX between tries, or until ``deadline`` (a
    ``time.monotonic()``) passes: False. Tried once at least, even past the deadline. The wait
    of a lock whose holder may never let it go (stopped, or stuck on a hung disk) where the
    caller promises a timeout: ``F_OFD_SETLKW`` cannot be given one."""
    nap = LOCK_POLL_FIRST
    while True:
        if attempt():
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(nap, deadline - now))
        nap = min(nap * 2, LOCK_POLL_MAX)


#: Whether this platform has the locks the shared index needs (open-file-description
#: locks: Linux). Elsewhere a store is used by one process at a time, as before.
SUPPORTED = fileio.OFD_LOCKS


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _futex_call() -> Optional[Any]:
    """_futex_call: libc's ``syscall`` set up for ``futex(2)``, or None where there is none to call
    (not Linux on x86-64 or AArch64, no libc to load)."""
    number = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):  # pragma: no cover - a libc without syscall()
        return None
    call.restype = ctypes.c_long
    call.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p,
                     ctypes.c_void_p, ctypes.c_uint32]
    return functools.partial(call, number)


#: futex(2) through libc's syscall(), or None (then the wake-up words are polled)
_FUTEX = _futex_call()
#: whether a sleep on a wake-up word ends when it is bumped (else it is a plain poll)
FUTEXES = _FUTEX is not None
_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_WAKE_ALL = 0x7FFFFFFF


def shm_path(path: str) -> str:
    """shm_path names the shared index of the store at ``path``: ``<path>-shm``."""
    return path + "-shm"


def remove_shm(store_path: str) -> None:
    """remove_shm deletes the shared index of the store at ``store_path``, if there is one."""
    try:
        os.unlink(shm_path(store_path))
    except FileNotFoundError:
        pass


class Header(NamedTuple):
    """Header is one published state of the log (see the module docstring)."""

    page_size: int
    file_id: int
    generation: int
    salt: int
    frames: int
    backfilled: int
    change: int

    @property
    def mark(self) -> int:
        """mark: the read mark a reader of this state locks: its frame count, or -1 (LOCK_READ0)
        when the data file holds every committed frame, so the reader needs no log frame and
        does not keep the writer from starting a new log."""
        return -1 if self.frames == self.backfilled else self.frames

    def encode(self) -> bytes:
        body = _HDR.pack(SHM_MAGIC, SHM_VERSION, self.page_size, self.file_id, self.generation,
                         self.salt, self.frames, self.backfilled, self.change)
        return body + _U32.pack(crc32c(body))


class DataLock:
    """DataLock is this open's LOCK_DMS on the data file (see the module docstring), on a
    ``fileio.File`` of its own, made by the pager's opener (so a test's double sees it), so
    that it works whatever the pager reads the file with and lets go of nothing the pager's
    own File holds. Shared from construction; ``alone`` tells whether anyone else holds it."""

    def __init__(self, path: str, *, write: bool, opener: fileio.Opener = fileio.open_file,
                 start: int = LOCK_DMS, timeout: Optional[float] = None) -> None:
        """``write``: the caller may write the file. A reader opens it for writing too where it
        may (never writing it), so that it can tell it is the last one out at close.
        ``start``: the byte to hold shared (LOCK_SOLO: a reader without the shared index).
        ``timeout``: seconds to wait for it (the store's ``timeout``; None: as long as it
        takes). LOCK_DMS is held exclusively by the last open of the store while it removes
        the log and the shared index at close, and by a compaction across its rename: a
        process stopped (SIGSTOP) there keeps every open out.

        Raises:
            StoreLockedError: the byte stayed held exclusively for ``timeout`` seconds; naming
                the store. Nothing is held.
        """
        self.file: Optional[fileio.File] = None
        try:
            self.file = opener(path, create=False, readonly=False)
        except PermissionError:
            if write:
                raise
            self.file = opener(path, create=False, readonly=True)
        try:
            file = self.file
            if timeout is None:
                file.lock_range(start)
            elif not poll_lock(lambda: file.try_lock_range(start), time.monotonic() + timeout):
                raise StoreLockedError(
                    f"{path}: another process held the store exclusively for the store's timeout of "
                    f"{timeout} s (the last open of it removing its log and shared index at close, "
                    "or a compaction replacing the file; that process may be stopped); try again")
        except BaseException:
            self.close()
            raise

    def hold(self, start: int, deadline: Optional[float] = None) -> bool:
        """hold takes byte ``start`` of the data file shared too (LOCK_WRITERS), until close.
        ``deadline`` (a ``time.monotonic()``): wait for it no longer (``poll_lock``), then False,
        nothing taken: a writer's sync in sole mode holds it exclusively across its fdatasync
        (``try_sole``), for as long as that process is stopped or its disk hangs."""
        file = self.file
        assert file is not None
        if deadline is None:
            file.lock_range(start)
            return True
        return poll_lock(lambda: file.try_lock_range(start), deadline)

    @contextlib.contextmanager
    def section(self, start: int, deadline: Optional[float] = None) -> Iterator[None]:
        """section holds byte ``start`` of the data file exclusively for the block (LOCK_CREATE), waiting for it,
        no longer than ``deadline`` (a ``time.monotonic()``; None: as long as it takes).

        Raises:
            StoreLockedError: another open held it past ``deadline`` (stopped while it writes a
                new file's header).
        """
        file = self.file
        assert file is not None
        if deadline is None:
            file.lock_range(start, exclusive=True)
        elif not poll_lock(lambda: file.try_lock_range(start, exclusive=True), deadline):
            raise StoreLockedError(f"{file.path}: another process writing the new store's first page kept "
                                   "this open out for the store's timeout; try again")
        try:
            yield
        finally:
            file.unlock_range(start)

    def others(self, start: int) -> bool:
        """others: another open holds byte ``start`` of the data file (LOCK_WRITERS, LOCK_SOLO)."""
        assert self.file is not None
        return self.file.range_held_by_others(start, 1) is not None

    def claim_name(self, index: Tuple[int, int]) -> bool:
        """claim_name holds, shared until close, the byte of LOCK_NAMES that stands for the shared
        index this open uses (``index``: its device and inode; ``name_byte``), then looks at the
        rest of the range. False: another open holds another index's byte, so the data file is
        open under another name (a hard link) whose log and shared index are not this one's. Of
        two that claim at once, at least one sees the other (each holds its byte first)."""
        assert self.file is not None
        mine = name_byte(*index)
        self.file.lock_range(mine)
        below, above = mine - LOCK_NAMES, LOCK_NAMES + NAME_SPAN - mine - 1
        if below and self.file.range_held_by_others(LOCK_NAMES, below) is not None:
            return False
        return not (above and self.file.range_held_by_others(mine + 1, above) is not None)

    def alone(self) -> bool:
        """alone: no other open holds LOCK_DMS now."""
        assert self.file is not None
        return self.file.range_held_by_others(LOCK_DMS, 1) is None

    def try_exclusive(self) -> bool:
        """try_exclusive turns the lock exclusive (keep it so until close), or returns False
        (also where the file could only be opened read-only)."""
        assert self.file is not None
        try:
            return self.file.try_lock_range(LOCK_DMS, exclusive=True)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return False
            raise

    def share(self) -> None:
        """share turns an exclusive lock (``try_exclusive``) back into a shared one."""
        assert self.file is not None
        self.file.lock_range(LOCK_DMS)

    def try_sole(self) -> bool:
        """try_sole turns this open's LOCK_WRITERS (held shared, ``hold``) exclusive without waiting:
        True when no other writer has the store open, and then none opens it (each waits at
        ``hold``) until ``end_sole``: the log's sync in sole mode (docs/format.md, "Sole
        mode"). False when another open holds it, or this one is closed or read-only. On
        failure the shared lock stays as it was (a refused conversion changes nothing)."""
        file = self.file
        if file is None:
            return False
        try:
            fd = getattr(file, "fd", None)
            if type(fd) is int and fd >= 0 and _SETLK:
                fcntl.fcntl(fd, _SETLK, _WRITERS_EXCLUSIVE)  # ``try_lock_range``, its argument packed once
                return True
            return file.try_lock_range(LOCK_WRITERS, exclusive=True)
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise

    def end_sole(self) -> None:
        """end_sole turns LOCK_WRITERS back to shared (``try_sole``); a downgrade never waits."""
        file = self.file
        if file is None:
            return
        fd = getattr(file, "fd", None)
        if type(fd) is int and fd >= 0 and _SETLK:
            fcntl.fcntl(fd, _SETLK, _WRITERS_SHARED)
        else:
            file.lock_range(LOCK_WRITERS)

    def identity(self) -> Tuple[int, int]:
        """identity: (device, inode) of the file locked, to tell whether its path still names it."""
        assert self.file is not None
        return self.file.identity()

    def close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            file.close()

    def __del__(self) -> None:
        self.close()


class SharedIndex:
    """SharedIndex is one process's open shared index of a store: the map and the locks.

    Callers: the pager only. Not thread-safe on its own: the pager calls it
    under the store's lock, but for the words of "Unsynced" and "Turns" (under
    the log's sync lock and LOCK_SYNC; the turn watcher's sleep), which are
    single stores into the map.
    """

    def __init__(self, path: str, page_size: int, file_id: int) -> None:
        """Opens (creating if needed) the file; raises OSError when it cannot be opened for writing."""
        self.fd: int = -1
        self._last_raw = b""  # the header bytes read_header last trusted, and what it made of them
        self._last: Optional[Header] = None
        self._packed: "dict[int, tuple[bytes, bytes]]" = {}  # mark -> packed lock and unlock arguments
        self.path = path
        self.page_size = page_size
        self.file_id = file_id
        self._addresses: Dict[int, int] = {}  # offset in the map -> its address (futex words), for this map
        self._claimed: Set[int] = set()  # sync slots this open holds exclusively (``claim_slot``), on any thread
        self._first_slot = os.getpid() % SLOTS  # the slot ``claim_slot`` tries first (a hint: no system call a sync)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self.fd = fileio.off_stdio(os.open(path, flags, 0o644))
        fileio.track(self)
        self.map: Optional[mmap.mmap] = None
        self._capacity = 0  # frames the frame array holds in the current map (``capacity``)
        try:
            size = os.fstat(self.fd).st_size
            # What is there already was grown as _grow grows it. (Not posix_fallocate over it
            # as well: where the file system cannot allocate, glibc reads and writes back a
            # byte per block, which could undo a write another process makes meanwhile.)
            if size < ARRAY_OFFSET + GROW_BYTES:
                _grow(self.fd, size, ARRAY_OFFSET + GROW_BYTES, self.path)
            self._remap()
        except BaseException:
            self.close()
            raise

    # ---- the map ----

    def _remap(self) -> None:
        size = os.fstat(self.fd).st_size
        if self.map is not None and len(self.map) == size:
            return
        # Through a description of its own: the map's duplicate descriptor, inherited by a forked
        # child, must not keep this one's locks (the turn, a sync slot) alive after it dies.
        old, self.map = self.map, fileio.map_apart(self.fd, size, write=True)
        self._capacity = (size - ARRAY_OFFSET) // ENTRY_SIZE
        self._addresses = {}
        if old is not None:
            old.close()  # it holds a duplicate of the descriptor, and so the locks: never leave it to the GC

    def capacity(self) -> int:
        """capacity: frames the frame array holds in the current map."""
        assert self.map is not None
        return (len(self.map) - ARRAY_OFFSET) // ENTRY_SIZE

    def _ensure(self, frames: int) -> None:
        """_ensure makes the map hold ``frames`` frame entries, growing the file (writer) or
        remapping a file another process grew (reader)."""
        if frames <= self._capacity:
            return
        size = os.fstat(self.fd).st_size
        need = ARRAY_OFFSET + ENTRY_SIZE * frames
        if size < need:
            _grow(self.fd, size, -(-need // GROW_BYTES) * GROW_BYTES, self.path)
        self._remap()

    def reserve(self, frames: int) -> None:
        """reserve makes room for ``frames`` frame entries now, so that ``set_frames`` for them
        cannot fail. Writer only: the log calls it before it writes frames, so that a full disk
        fails an append before any of its bytes are in the log.

        Raises:
            IndexGrowError: the file could not grow (ENOSPC on a full disk).
        """
        if frames <= self._capacity:
            return
        try:
            self._ensure(frames)
        except OSError as exc:
            raise IndexGrowError(exc.errno, exc.strerror, exc.filename) from exc

    # ---- the header ----

    def read_header(self) -> Optional[Header]:
        """read_header returns the published header, or None when the two copies differ
        (a publication in flight, or a torn or foreign file) or it is not this store's."""
        mm = self.map
        assert mm is not None
        a = mm[0:HEADER_SIZE]
        if a != mm[COPY_SIZE : COPY_SIZE + HEADER_SIZE]:
            return None
        if a == self._last_raw:  # unchanged since the last read: already checked
            return self._last
        magic, version, page_size, file_id, generation, salt, frames, backfilled, change = _HDR.unpack_from(a, 0)
        if magic != SHM_MAGIC or version != SHM_VERSION or crc32c(a[:52]) != _U32.unpack_from(a, 52)[0]:
            return None
        if page_size != self.page_size or file_id != self.file_id:
            return None
        head = Header(page_size, file_id, generation, salt, frames, backfilled, change)
        self._last_raw, self._last = a, head
        return head

    def publish(self, generation: int, salt: int, frames: int, backfilled: int) -> Header:
        """publish makes a new state visible to readers (copy 1 first, then copy 0). Writer only."""
        mm = self.map
        assert mm is not None
        old = self.read_header()
        change = (old[6] + 1) & 0xFFFFFFFFFFFFFFFF if old is not None else 1
        page_size, file_id = self.page_size, self.file_id
        body = _HDR.pack(SHM_MAGIC, SHM_VERSION, page_size, file_id, generation, salt, frames, backfilled, change)
        raw = body + _U32.pack(crc32c(body))  # Header.encode's bytes, without making the tuple twice
        head = tuple.__new__(Header, (page_size, file_id, generation, salt, frames, backfilled, change))
        mm[COPY_SIZE : COPY_SIZE + HEADER_SIZE] = raw
        mm[0:HEADER_SIZE] = raw
        # The next publish reads it back (the change counter): trusted as written, not decoded again.
        self._last_raw, self._last = raw, head
        return head

    def invalidate(self) -> None:
        """invalidate makes the header untrusted (both copies zeroed), so the next reader rebuilds it."""
        mm = self.map
        assert mm is not None
        mm[0 : 2 * COPY_SIZE] = bytes(2 * COPY_SIZE)

    # ---- the unsynced word (see the module docstring) ----

    def sync_words(self) -> Tuple[int, int, int, int, int]:
        """sync_words: what a sync of the log reads under LOCK_SYNC, in one read of the map:
        (unsynced ``from`` (0, or 1 + offset), its salt, ``failures``, ``durable`` end, its salt)."""
        mm = self.map
        assert mm is not None
        w = _SYNC_WORDS.unpack_from(mm, UNSYNCED_OFFSET)
        return w[0], w[1], w[5], w[7], w[8]

    def unsynced(self) -> Optional[Tuple[int, int]]:
        """unsynced: (salt, offset) when a sync of the log is under way or failed, bytes of the log
        of that salt from that offset on maybe unwritten; None when every sync returned."""
        mm = self.map
        assert mm is not None
        (word,) = _U64.unpack_from(mm, UNSYNCED_OFFSET)
        if not word:
            return None
        return _U32.unpack_from(mm, UNSYNCED_OFFSET + 8)[0], word - 1

    def mark_unsynced(self, salt: int, offset: int) -> None:
        """mark_unsynced: a sync of the log of ``salt`` begins, bytes from ``offset`` on not known
        durable. Keeps an earlier mark of the same log that says less is durable; one of another
        log says the whole of this one is not known durable. Under LOCK_SYNC only."""
        old = self.unsynced()
        if old is not None:
            offset = min(offset, old[1]) if old[0] == salt else 0
        self.reset_unsynced(salt, offset)

    def reset_unsynced(self, salt: int, offset: int) -> None:
        """reset_unsynced: a sync made the log of ``salt`` durable below ``offset``, which it wrote
        again; what may be unwritten now begins there (unlike ``mark_unsynced``, the word may
        move forward). Under LOCK_SYNC only."""
        mm = self.map
        assert mm is not None
        # The salt first (and the zero after it: one little-endian 8-byte word), then the word
        # that makes it count (one aligned 8-byte store). Over another log's word, its offset
        # goes to 0 first: a kill between the stores never leaves this salt with that offset
        # (which would claim this log durable below it).
        (word,) = _U64.unpack_from(mm, UNSYNCED_OFFSET)
        if word > 1 and _U32.unpack_from(mm, UNSYNCED_OFFSET + 8)[0] != salt:
            _U64.pack_into(mm, UNSYNCED_OFFSET, 1)
        _U64.pack_into(mm, UNSYNCED_OFFSET + 8, salt)
        _U64.pack_into(mm, UNSYNCED_OFFSET, offset + 1)

    def clear_unsynced(self) -> None:
        """clear_unsynced: the sync returned; everything the log held when it began is durable."""
        mm = self.map
        if mm is not None:
            _U64.pack_into(mm, UNSYNCED_OFFSET, 0)

    # ---- the sync slots (see "Unsynced" in the module docstring) ----

    def claim_slot(self, deadline: Optional[float] = None) -> Optional[int]:
        """claim_slot takes a sync slot's lock exclusively: the first free one from ``pid % SLOTS`` on, without waiting, or
        (every one held) the first that comes free, waiting for it (its holder waits for nothing but
        its own fsync and the short LOCK_SYNC), until ``deadline`` (a ``time.monotonic()``; None:
        as long as it takes): None then, nothing held (SLOTS syncs stopped in their fsync, or on
        a hung disk). Returns the slot. Not under LOCK_SYNC."""
        first = self._first_slot  # processes start apart: fewer tries
        for k in range(SLOTS):
            i = (first + k) % SLOTS
            if try_lock(self.fd, LOCK_SLOT + i, 1, exclusive=True):
                self._claimed.add(i)
                return i
        if deadline is None:
            i = first
            lock(self.fd, LOCK_SLOT + i, 1, exclusive=True)
            self._claimed.add(i)
            return i
        # Every slot busy: each nap ends early when a sync lets its slot go (``release_slot`` bumps
        # ``ends``), as ``wait_slot``'s do.

        def any_slot() -> Optional[int]:
            for k in range(SLOTS):
                i = (first + k) % SLOTS
                if try_lock(self.fd, LOCK_SLOT + i, 1, exclusive=True):
                    self._claimed.add(i)
                    return i
            return None

        return self._until_a_sync_ends(any_slot, deadline)

    def begin_alone(self, salt: int, seen: int, low: int) -> Optional[Tuple[int, int]]:
        """begin_alone: step S2-S3 of a sync in sole mode (``WAL._sync_alone``; no other writer has the
        store open, so no lock is taken): in one read of the words and the slots, None when the
        unsynced word is set, ``failures`` is not ``seen`` or a slot's record is set (a sync died:
        the rounds are to make it good); else the sync is recorded in this process's slot (*from*:
        the durable word's end if it is of ``salt``, else ``low``; *covers* 0) and
        (slot, durable end of ``salt`` or 0) returned, for ``end_alone``."""
        mm = self.map
        assert mm is not None
        w = _ALONE_WORDS.unpack_from(mm, UNSYNCED_OFFSET)
        if w[0] or w[5] != seen or any(w[10:]):
            return None
        durable = w[7] if w[8] == salt else 0
        i = self._first_slot
        # ``set_slot(i, salt, durable or low)`` inline: covers 0, the salt, then the word that makes it count
        at = SLOTS_OFFSET + SLOT_SIZE * i
        _U64.pack_into(mm, COVERS_OFFSET + 8 * i, 0)
        _U64.pack_into(mm, at + 8, salt)
        _U64.pack_into(mm, at, (durable or low) + 1)
        return i, durable

    def end_alone(self, i: int, salt: int, durable: int, end: int) -> None:
        """end_alone: the sync in sole mode recorded in slot ``i`` (``begin_alone``) returned success:
        its record is cleared and the durable word (``durable``, as ``begin_alone`` read it) goes up
        to ``end``, the log of ``salt``'s committed end (0: left as it is)."""
        mm = self.map
        assert mm is not None
        _U64.pack_into(mm, SLOTS_OFFSET + SLOT_SIZE * i, 0)
        if end > durable:
            self.set_durable(salt, end, (salt, durable) if durable else None, read=False)

    def release_slot(self, i: int) -> None:
        """release_slot lets go of slot ``i``'s lock (held exclusively by ``claim_slot``, or shared by
        ``wait_slot``). Its record must be clear first (``clear_slot``) unless ``wait_slot`` took it.
        A slot of ``claim_slot``'s: ``ends`` is bumped after, waking every waiter (``wait_slot``)."""
        claimed = i in self._claimed
        self._claimed.discard(i)
        if self.fd >= 0:
            unlock(self.fd, LOCK_SLOT + i, 1)
            if claimed:
                self.bump(SYNC_ENDS_OFFSET, _WAKE_ALL)

    def slot(self, i: int) -> Optional[Tuple[int, int]]:
        """slot: (salt, offset) that slot ``i``'s sync may drop bytes of the log from if it fails,
        or None (the slot is free, or its sync ended)."""
        mm = self.map
        assert mm is not None
        at = SLOTS_OFFSET + SLOT_SIZE * i
        (word,) = _U64.unpack_from(mm, at)
        if not word:
            return None
        return _U32.unpack_from(mm, at + 8)[0], word - 1

    def set_slot(self, i: int, salt: int, offset: int, covers: int = 0) -> None:
        """set_slot: this process's sync in slot ``i`` (its lock held) is about to write and fsync the
        log of ``salt``; if it fails, bytes from ``offset`` on may be lost; if it succeeds, the log
        is durable up to ``covers`` (the published end: every frame published was written before
        the fsync begins). Under LOCK_SYNC."""
        mm = self.map
        assert mm is not None
        at = SLOTS_OFFSET + SLOT_SIZE * i
        _U64.pack_into(mm, COVERS_OFFSET + 8 * i, covers)
        _U64.pack_into(mm, at + 8, salt)
        _U64.pack_into(mm, at, offset + 1)

    def clear_slot(self, i: int, *, synced: bool = False) -> None:
        """clear_slot: the sync in slot ``i`` has ended, and its outcome is recorded. ``synced``: its
        fsync returned success, and its *covers* word stays as the proof a rider looks for
        (``covered``); else the word goes first. Under LOCK_SYNC."""
        mm = self.map
        if mm is not None:
            if not synced:
                _U64.pack_into(mm, COVERS_OFFSET + 8 * i, 0)
            _U64.pack_into(mm, SLOTS_OFFSET + SLOT_SIZE * i, 0)

    def covering(self, salt: int, end: int) -> Optional[int]:
        """covering: a slot whose sync is in flight (its record set) on the log of ``salt`` and will
        make it durable up to ``end`` or past if it succeeds (its *covers* word), or None. A hint,
        read without LOCK_SYNC (a rider waits for it, then looks for the proof: ``covered``)."""
        mm = self.map
        if mm is None:
            return None
        w = _SLOT_WORDS.unpack_from(mm, SLOTS_OFFSET)
        for i in range(SLOTS):
            if w[3 * i] and w[3 * i + 1] == salt and _U64.unpack_from(mm, COVERS_OFFSET + 8 * i)[0] >= end:
                return i
        return None

    def covered(self, i: int, salt: int, end: int) -> bool:
        """covered: slot ``i``'s last sync ended (its record clear) with its fsync returned success, on the
        log of ``salt``, which it made durable up to ``end`` or past (its *covers* word, which a
        failed, interrupted or dead sync clears). Under LOCK_SYNC."""
        mm = self.map
        assert mm is not None
        at = SLOTS_OFFSET + SLOT_SIZE * i
        return (not _U64.unpack_from(mm, at)[0] and _U32.unpack_from(mm, at + 8)[0] == salt
                and _U64.unpack_from(mm, COVERS_OFFSET + 8 * i)[0] >= end)

    def busy_slots(self, mine: int = -1) -> List[int]:
        """busy_slots: the slots but ``mine`` whose record is set: a sync in flight, or one whose
        process died in it (one map read)."""
        mm = self.map
        if mm is None:
            return []
        w = _SLOT_WORDS.unpack_from(mm, SLOTS_OFFSET)
        return [i for i in range(SLOTS) if w[3 * i] and i != mine]

    def wait_slot(self, i: int, deadline: Optional[float] = None) -> bool:
        """wait_slot takes slot ``i``'s lock shared, waiting while its sync runs (its holder lets it
        go once the outcome is recorded, or dies); ``release_slot`` lets it go. Not under LOCK_SYNC.

        ``deadline`` (a ``time.monotonic()``): wait no longer; False (nothing held) when the slot
        is still held then: its process may be stopped (SIGSTOP) in its fsync, or its disk hung,
        for any length of time. Polled (``poll_lock``), as the write lock's wait is: a blocking
        ``F_OFD_SETLKW`` takes no timeout. None: wait as long as it takes."""
        if deadline is None:
            lock(self.fd, LOCK_SLOT + i, 1)
            return True
        # Each nap ends early when a sync lets its slot go (``release_slot`` bumps ``ends``: a
        # futex), so the waiter is not late by a poll; the lock stays the truth (a holder that
        # dies wakes nobody: the next try finds its lock gone).
        return self._until_a_sync_ends(lambda: True if try_lock(self.fd, LOCK_SLOT + i, 1) else None,
                                       deadline) is not None

    def _until_a_sync_ends(self, attempt: Callable[[], Optional[_T]], deadline: float) -> Optional[_T]:
        """_until_a_sync_ends calls ``attempt`` until it returns something (returned) or ``deadline``
        (a ``time.monotonic()``) passes (None). Between tries it naps on the ``ends`` word (a
        futex that ``release_slot`` bumps: a sync letting its slot go ends the nap), read before
        each try, so a release after the try ends the next nap; naps double up to LOCK_POLL_MAX.
        Callers: ``claim_slot``, ``wait_slot``."""
        nap = LOCK_POLL_MAX if FUTEXES else LOCK_POLL_FIRST
        while True:
            seen = self.word(SYNC_ENDS_OFFSET)
            got = attempt()
            if got is not None:
                return got
            now = time.monotonic()
            if now >= deadline:
                return None
            self.sleep(SYNC_ENDS_OFFSET, seen, min(nap, deadline - now))
            nap = min(nap * 2, LOCK_POLL_MAX)

    def fold_dead(self, held: Iterable[int] = (), *, probe: bool = True) -> bool:
        """fold_dead: a slot whose record is set while nobody holds its lock exclusively belongs to a
        process that died in its sync (kill -9): whether its fsync failed is unknown, so it counts
        as a failed one: the unsynced word takes its offset (``mark_unsynced``), ``failures`` goes
        up, the record is cleared. ``held``: slots whose lock this open holds (shared by
        ``wait_slot``, or exclusive by ``claim_slot``, before its own record is set), whose record
        set means exactly that; with ``probe`` the other busy ones are probed too (a lock taken
        shared without waiting, and let go). Returns whether one was found. Under LOCK_SYNC."""
        found = False
        held = set(held)
        for i in (self.busy_slots() if probe else sorted(held)):
            if i not in held:
                if i in self._claimed:
                    # A sync of this open's, on another thread: fcntl locks of one open file
                    # description never conflict, so a probe would take (convert) its lock and
                    # the unlock let it go, and its record would count as a dead one's.
                    continue
                if not try_lock(self.fd, LOCK_SLOT + i, 1):
                    continue  # its sync runs
                unlock(self.fd, LOCK_SLOT + i, 1)
            rec = self.slot(i)
            if rec is None:
                continue
            self.mark_unsynced(rec[0], rec[1])
            self.bump(FAILURES_OFFSET, 0)
            self.clear_slot(i)
            found = True
        return found

    def settled(self) -> bool:
        """settled: the unsynced word is clear and no sync slot's record is set (none runs, none died
        in one): the index may go with the last open (readers.py ``unsynced``)."""
        return self.unsynced() is None and not self.busy_slots()

    # ---- the wake-up words (see "Turns" in the module docstring) ----

    def word(self, offset: int) -> int:
        """word: the 32-bit word at ``offset`` (TURNS_OFFSET, ASKS_OFFSET, FAILURES_OFFSET); 0 once
        the index is closed (a waiter racing the store's close: its next try says so)."""
        mm = self.map
        if mm is None:
            return 0
        return int(_U32.unpack_from(mm, offset)[0])

    def bump(self, offset: int, wake: int) -> None:
        """bump adds one to the word at ``offset`` and wakes up to ``wake`` processes sleeping on it
        (``sleep``). Not atomic: two bumps at once may count one, and the word still changes,
        which is all a sleeper looks at."""
        mm = self.map
        if mm is None:
            return
        _U32.pack_into(mm, offset, (_U32.unpack_from(mm, offset)[0] + 1) & 0xFFFFFFFF)
        if _FUTEX is not None:
            _FUTEX(self._address(offset, mm), _FUTEX_WAKE, wake, None, None, 0)

    def sleep(self, offset: int, seen: int, seconds: float) -> None:
        """sleep waits up to ``seconds`` while the word at ``offset`` is still ``seen`` (a value read
        before the caller last looked at what the word announces): returns early when a ``bump``
        wakes it, at once if the word has changed already. A plain sleep without futexes."""
        # The map is read once: the turn watcher sleeps here while the store's close may
        # set it to None (it then raises ValueError below, which the watcher takes as the
        # end; read twice, a close between the reads made it a TypeError in the thread).
        mm = self.map
        if _FUTEX is None or mm is None:
            time.sleep(seconds)
            return
        whole = int(seconds)
        ts = _Timespec(whole, int((seconds - whole) * 1e9))
        # EAGAIN (changed already), EINTR, ETIMEDOUT: each is a wake-up; the caller looks again.
        _FUTEX(self._address(offset, mm), _FUTEX_WAIT, seen, ctypes.addressof(ts), None, 0)

    def _address(self, offset: int, mm: mmap.mmap) -> int:
        """_address: where byte ``offset`` of the map ``mm`` (the current one) is in memory (a futex
        names it). The buffer export is let go at once, so that the map can still be closed; a map
        replaced (``_remap``) forgets the addresses of the old one. ValueError: ``mm`` is closed."""
        addr = self._addresses.get(offset)
        if addr is None:
            view = ctypes.c_uint32.from_buffer(mm, offset)
            addr = self._addresses[offset] = ctypes.addressof(view)
            del view
        return addr

    # ---- the frame array ----

    def durable(self) -> Optional[Tuple[int, int]]:
        """durable: (salt, end) when a sync that returned made the log of that salt durable up to
        ``end``; None before any. Read and written under LOCK_SYNC only."""
        mm = self.map
        assert mm is not None
        (end,) = _U64.unpack_from(mm, DURABLE_OFFSET)
        if not end:
            return None
        return _U32.unpack_from(mm, DURABLE_OFFSET + 8)[0], end

    def set_durable(self, salt: int, end: int, old: Optional[Tuple[int, int]] = None, *, read: bool = True) -> None:
        """set_durable: a sync that returned made the log of ``salt`` durable up to ``end``; keeps a
        larger end of the same log. Under LOCK_SYNC only. ``read=False``: ``old`` is the word as
        the caller read it under the same hold of LOCK_SYNC (``durable``'s value), not read again."""
        mm = self.map
        assert mm is not None
        if read:
            old = self.durable()
        if old is not None and old[0] == salt and old[1] >= end:
            return
        if old is None or old[0] != salt:
            # Another log's: its end goes first (a process killed between the two stores below
            # must not leave that end claimed for this salt), then this salt, then the end.
            mm[DURABLE_OFFSET : DURABLE_OFFSET + 8] = bytes(8)
            mm[DURABLE_OFFSET + 8 : DURABLE_OFFSET + 16] = _U32.pack(salt) + bytes(4)
            mm[DURABLE_OFFSET : DURABLE_OFFSET + 8] = _U64.pack(end)
            return
        _U64.pack_into(mm, DURABLE_OFFSET, end)  # the same log's: one aligned 8-byte store

    def last_frame(self, salt: int) -> Optional[Tuple[int, int]]:
        """last_frame: (offset, payload size) of the last published frame of the log of ``salt``
        (written before it was published), or None when the header is not readable, publishes
        another log, or no frame."""
        head = self.read_header()
        if head is None or head.salt != salt or head.frames == 0:
            return None
        mm = self.map
        assert mm is not None
        at = ARRAY_OFFSET + ENTRY_SIZE * (head.frames - 1)
        if at + ENTRY_SIZE > len(mm):
            self._remap()  # grown by the writer that published it
            mm = self.map
            assert mm is not None
            if at + ENTRY_SIZE > len(mm):
                return None  # a header that lies
        word, off = _ENTRY.unpack_from(mm, at)
        return off, word >> 32

    def set_frames(self, first: int, entries: "Union[array[int], bytes]") -> None:
        """set_frames records the entries of frames ``first``, ``first + 1``, ... (two integers
        each, as ``WAL.entries`` makes them: page number | size << 32, offset). Writer only.
        ``entries``: the integers, or their bytes as laid out here (little-endian u64s: what
        the log's ``log_append`` returns)."""
        if type(entries) is bytes:
            raw: "Union[array[int], bytes]" = entries
            count = len(entries) // ENTRY_SIZE
        else:
            data = entries if type(entries) is array and entries.typecode == "Q" else array("Q", entries)
            if sys.byteorder != "little":  # pragma: no cover
                data = array("Q", data)  # a copy: the caller's stays in host order
                data.byteswap()
            raw, count = data, len(data) // 2
        if first + count > self._capacity:  # ``_ensure``'s test, inline: ``reserve`` made room already
            self._ensure(first + count)
        mm = self.map
        assert mm is not None
        off = ARRAY_OFFSET + ENTRY_SIZE * first
        mm[off : off + ENTRY_SIZE * count] = raw  # the buffer, not a copy of it

    def frame_entries(self, lo: int, hi: int) -> "array[int]":
        """frame_entries returns the entries of frames [lo, hi), two integers each (see ``set_frames``).

        The writer wrote them (growing the file) before it published ``hi``: a reader
        remaps, and never grows the file for a header that claims more.

        Raises:
            CorruptionError: the file holds fewer entries than ``hi`` (a header that lies).
        """
        if hi > self.capacity():
            self._remap()
            if hi > self.capacity():
                raise CorruptionError(None, f"{self.path}: the shared index names {hi} frames but holds {self.capacity()}")
        mm = self.map
        assert mm is not None
        out = array("Q")
        out.frombytes(mm[ARRAY_OFFSET + ENTRY_SIZE * lo : ARRAY_OFFSET + ENTRY_SIZE * hi])
        if sys.byteorder != "little":  # pragma: no cover
            out.byteswap()
        return out

    # ---- locks ----

    def try_lock(self, start: int, length: int = 1, *, exclusive: bool = False) -> bool:
        """try_lock: ``try_lock`` on this file."""
        return try_lock(self.fd, start, length, exclusive=exclusive)

    def lock(self, start: int, length: int = 1, *, exclusive: bool = False) -> None:
        """lock: ``lock`` on this file."""
        lock(self.fd, start, length, exclusive=exclusive)

    def lock_within(self, start: int, deadline: Optional[float], *, exclusive: bool = False) -> bool:
        """lock_within: ``lock`` on this file, waiting no longer than ``deadline`` (a
        ``time.monotonic()``; None: as long as it takes): False then, nothing taken
        (``poll_lock``). LOCK_RECOVER: its holder may be stopped (SIGSTOP) in a recovery."""
        if deadline is None:
            lock(self.fd, start, 1, exclusive=exclusive)
            return True
        fd = self.fd
        return poll_lock(lambda: try_lock(fd, start, 1, exclusive=exclusive), deadline)

    def unlock(self, start: int, length: int = 1) -> None:
        """unlock: ``unlock`` on this file."""
        if self.fd >= 0:
            unlock(self.fd, start, length)

    def lock_sync(self, deadline: Optional[float] = None) -> bool:
        """lock_sync: ``lock(LOCK_SYNC, exclusive=True)``, its argument packed once (every sync takes it).

        ``deadline`` (a ``time.monotonic()``): wait no longer; False (nothing held) when another
        open still holds it then. Its holder keeps it only for a sync's bookkeeping, but a
        process stopped (SIGSTOP) or on a hung disk (the writes again after a failure, a new
        log's header) may keep it for any length of time. Tried without waiting first (one
        system call when free, as the blocking call), then polled (``poll_lock``). None: wait
        as long as it takes."""
        if deadline is not None:
            return self._try_sync() or poll_lock(self._try_sync, deadline)
        while True:
            try:
                fcntl.fcntl(self.fd, _SETLKW, _SYNC_LOCK)
                return True
            except InterruptedError:  # pragma: no cover - a signal
                continue

    def _try_sync(self) -> bool:
        """_try_sync takes LOCK_SYNC without waiting; False when another open holds it."""
        try:
            fcntl.fcntl(self.fd, _SETLK, _SYNC_LOCK)
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise

    def unlock_sync(self) -> None:
        """unlock_sync: ``unlock(LOCK_SYNC)``, its argument packed once."""
        if self.fd >= 0:
            fcntl.fcntl(self.fd, _SETLK, _SYNC_UNLOCK)

    def lock_mark(self, m: int) -> bool:
        """lock_mark takes read mark ``m`` (a frame count; -1: LOCK_READ0) shared, without waiting;
        False if the writer holds it (it is starting a new log). The readers' hot path: one
        system call, its argument packed once per mark."""
        arg = self._packed.get(m)
        if arg is None:
            arg = self._pack(m)
        try:
            fcntl.fcntl(self.fd, _SETLK, arg[0])
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True

    def unlock_mark(self, m: int) -> None:
        """unlock_mark lets go of read mark ``m`` (see ``lock_mark``)."""
        if self.fd >= 0:
            arg = self._packed.get(m)
            fcntl.fcntl(self.fd, _SETLK, (arg if arg is not None else self._pack(m))[1])

    def _pack(self, m: int) -> "tuple[bytes, bytes]":
        start = LOCK_READ0 if m < 0 else READ_BASE + m
        arg = (_FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, start, 1, 0), _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, start, 1, 0))
        if len(self._packed) > 4096:
            self._packed.clear()
        self._packed[m] = arg
        return arg

    def held_by_others(self, start: int, length: int) -> Optional[int]:
        """held_by_others: ``held_by_others`` on this file."""
        return held_by_others(self.fd, start, length)

    def oldest_mark(self, below: int) -> Optional[int]:
        """oldest_mark returns the smallest read mark (frame count) another process holds at or
        below ``below``, or None; 0 for LOCK_READ0 (nothing more may be copied). A few lock
        probes (each narrows the range)."""
        if self.held_by_others(LOCK_READ0, 1) is not None:
            return 0
        hi = below  # inclusive
        found = self.held_by_others(READ_BASE, hi + 1)
        if found is None:
            return None
        best = found - READ_BASE
        while best > 0:
            lower = self.held_by_others(READ_BASE, best)
            if lower is None:
                break
            best = lower - READ_BASE
        return best

    def identity(self) -> Tuple[int, int]:
        """identity: (device, inode) of the index file (``DataLock.claim_name``)."""
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    # ---- closing ----

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        """close unmaps the file and closes it (its locks go with it)."""
        self._addresses = {}
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:  # pragma: no cover - a view is alive: leave the map to the GC
                pass
            self.map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---- growing the file with real blocks ----


class IndexGrowError(OSError):
    """IndexGrowError: the shared index could not grow (a full disk). An OSError like any other,
    with one difference the pager relies on: it comes before the log or the data file is
    written (``SharedIndex.reserve``), so nothing on disk changed and the store is not
    poisoned (pager.py, ``_Poisons``): the commit is rolled back and the next one may succeed."""


def _grow(fd: int, size: int, new: int, path: str) -> None:
    """_grow extends the file from ``size`` to ``new`` bytes with zeros written, not a hole.

    The file is written through a shared map, and a store in a hole that the
    disk has no block for kills the process with SIGBUS; written zeros have their
    blocks, so a full disk is an OSError here instead, where the caller can
    handle it. (SQLite's unix VFS writes one byte per block of a new ``-shm``
    region for the same reason.) 64 KiB per 4,096 frames.

    Raises:
        OSError: the disk is full (ENOSPC) or refused the write, named after ``path``;
            the file may have grown part of the way (zeros: the next grow goes on from there).
    """
    zeros = bytes(min(new - size, GROW_BYTES))
    pos = size
    try:
        while pos < new:
            n = os.pwrite(fd, zeros[: new - pos], pos)
            if n <= 0:  # pragma: no cover - a write that wrote nothing and said nothing
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            pos += n
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror}: cannot grow the shared index to {new} bytes", path) from exc
