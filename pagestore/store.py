"""store: the public API, an ordered ``MutableMapping[bytes, bytes]`` in one file.

    >>> import pagestore
    >>> with pagestore.open("data.ps") as db:
    ...     db[b"apple"] = b"red"
    ...     with db.transaction() as txn:
    ...         txn[b"banana"] = b"yellow"
    ...         del txn[b"apple"]
    ...     list(db.items(prefix=b"b"))
    [(b'banana', b'yellow')]

Layers (imports point one way): store -> btree, heap -> pager, wal -> page ->
_native. The B+tree maps keys to record ids; the heap maps record ids to
values; the pager turns both into pages and commits them through the log.

Concurrency: one process writes a store at a time (``StoreLockedError``
otherwise). Threads may share a Store. Two locks (locks.py): every operation
holds the operation lock (``_lock``) while it reads or commits; scans take it
once per leaf and once per short run of values, so a long scan never blocks
writers for long. Everything that changes the store holds the write lock
(``_wlock``) first: a transaction from its start to its commit or rollback,
so a read-modify-write in it is never lost; update(), put_many(), clear(),
delete_range() and compact() for their length; single writes while their
group commit is applied (group.py). Waits for it are bounded by the store's
``timeout`` (``StoreLockedError``); a thread that holds it and writes through
the store gets ``ReentrantWriteError``.

Snapshots: ``snapshot()`` is a read-only view as of the last commit (a read
mark: the data file plus the log's committed frames up to that commit; see
pager.ReadMark and snapshot.py), and every iteration runs on one taken when
it starts, so writes made while it runs (its own loop's too) are not seen.
"""
from __future__ import annotations

import functools
import operator
import os
import re
import stat
import sys
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Mapping, MutableMapping
from itertools import chain, islice, repeat
from typing import Any, Callable, Dict, Generator, Iterable, Iterator, List, NoReturn, Optional, Set, SupportsIndex, Tuple, TypeVar, Union


from . import codecs, fileio, shm
from . import format as fmt
from .btree import BTree, Rid
from .bulk import Builder
from .errors import (
    CorruptionError,
    InvalidFileError,
    NotFoundError,
    PageStoreError,
    ReentrantWriteError,
    StoreClosedError,
    StoreLockedError,
    TransactionClosedError,
)
from .group import CommitQueue
from .interrupts import run_through
from .heap import MAX_VALUE, Heap
from .locks import WriteLock
from .page import as_bytes_like
from .pager import DEFAULT_CACHE_BYTES, DEFAULT_WAL_LIMIT, Pager, discard, side_file_undo
from .storefiles import files_path
from .readers import ReadMark
from .snapshot import SnapshotPager, begin_backup
from .storecheck import check_store
from .views import ItemsView, KeysView, ValuesView

T = TypeVar("T")
#: What ``open`` and ``Store`` take as a path: text, bytes (decoded with
#: os.fsdecode, as the os module does) or a path-like of either.
StorePath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: get_many reads records in runs of this many per pager operation (pages stay pinned within one).
_GET_MANY_RUN = 256
_BYTES_ONLY = {bytes}
_first_of = operator.itemgetter(0)
_second_of = operator.itemgetter(1)
_DELETED = object()
#: A scan slices values in runs that start at _FIRST_RUN and grow _RUN_GROWTH
#: times up to _MAX_RUN, each under the lock (see _scan_leaves): 4, 12, 36, 64,
#: ... A range of 50 takes three runs and reads 52 values (doubling from 1 took
#: six and read 63: each value is a heap page touched, each run a call under
#: the lock); a scan stopped early has read at most three times what it yielded.
_MAX_RUN = 64
_FIRST_RUN = 4
_RUN_GROWTH = 3
#: A scan with ``limit=`` at most this (_MAX_RUN: the most values one run holds) reads every
#: entry under one hold of the store's lock, keys and values in one call each, and with no
#: snapshot while the store's own tree reads its last commit (see _scan_few).
_FEW = _MAX_RUN
#: The node cache of a snapshot's tree holds at least this many pages (an
#: eighth of the store's node cache when that is more).
_VIEW_NODE_CACHE = 64
#: delete_range frees the values of this many records at a time (a few dozen leaves' worth).
_DELETE_BATCH = 8192
#: The default of ``open(timeout=)``: seconds a write waits for the store's write lock.
DEFAULT_TIMEOUT = 5.0
#: transaction(timeout=) left out: the store's timeout.
_STORE_TIMEOUT: Any = object()
#: The value codecs ``incr`` accepts: what they hold as an int, and how (docs/api.md).
#: What incr() reads back as an int in a "bytes" or "str" store: what b"%d" writes.
_DECIMAL = re.compile(rb"-?[0-9]+")
_INT_VALUE_CODECS = ("bytes", "str", "json", "pickle")


def prefix_end(prefix: bytes) -> Optional[bytes]:
    """prefix_end returns the smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


#: The process this module runs in; a forked child sets its own (see _after_fork).
_PID = os.getpid()
#: Every Store opened in this process and not yet closed: a second open of
#: the same file here is refused by name, not blamed on another process.
_open_stores: "weakref.WeakValueDictionary[int, Store]" = weakref.WeakValueDictionary()  # by id(): a Store is unhashable


def _after_fork() -> None:
    global _PID, _opening_guard
    _PID = os.getpid()
    _open_stores.clear()  # the parent's stores are not this process's to share
    _opening.clear()  # an open under way in another thread of the parent does not go on here
    _opening_guard = threading.Lock()  # (another thread may have held it at the fork)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


#: Opens under way in this process, by their file's real path: [its lock, how many opens wait on it].
_opening: Dict[str, List[Any]] = {}
_opening_guard = threading.Lock()


class _OpeningOne:
    """_OpeningOne holds the lock of one real path's opens in this process (``_opening_of``)."""

    def __init__(self, key: str, entry: List[Any]) -> None:
        self._key = key
        self._entry = entry

    def release(self) -> None:
        """release lets the next open of the path go on, and forgets the path when none waits."""
        self._entry[0].release()
        with _opening_guard:
            self._entry[1] -= 1
            if self._entry[1] == 0 and _opening.get(self._key) is self._entry:
                del _opening[self._key]


class _NotGuarded:
    """_NotGuarded: no opening lock (a test's own opener, which the check of the opens here skips too)."""

    def release(self) -> None:
        pass


_NOT_GUARDED = _NotGuarded()


def _opening_of(path: str) -> _OpeningOne:
    """_opening_of waits until no other thread of this process is opening the file at ``path``
    (its real path: a symbolic link's target; a hard link is another name, told apart by the
    pager's name claim), then holds that until ``release``. Store.__init__ holds it from its
    check of the opens here (``_refuse_if_open_here``) to its registration in ``_open_stores``:
    four threads opening one store for writing at once all passed the check before, and the
    process had four writable Stores of it, which the check exists to refuse. Opens of other
    files do not wait on it."""
    key = os.path.realpath(path)
    with _opening_guard:
        entry = _opening.get(key)
        if entry is None:
            entry = _opening[key] = [threading.RLock(), 0]  # (re-entered by a signal handler in an open: no deadlock)
        entry[1] += 1
    try:
        entry[0].acquire()
    except BaseException:  # an interrupt in the wait: it no longer waits
        with _opening_guard:
            entry[1] -= 1
            if entry[1] == 0 and _opening.get(key) is entry:
                del _opening[key]
        raise
    return _OpeningOne(key, entry)


def _opens_here(st: os.stat_result) -> Iterator["Store"]:
    """_opens_here yields the open Stores of this process whose file is the one ``st`` describes.

    Each is matched by its path's inode now, not the inode it opened: compact() gives a store a new file.
    """
    for other in list(_open_stores.values()):
        if other._closed or other._pid != _PID:
            continue
        try:
            ost = os.stat(other._abspath)
        except OSError:
            continue
        if (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
            yield other


def _refuse_if_open_here(path: str, readonly: bool, opener: fileio.Opener) -> None:
    """_refuse_if_open_here raises if this process already has ``path`` open in a way that excludes this open.

    Files are compared by (st_dev, st_ino), so another name for the same
    file (a link, a relative path) is caught too. Two read-only opens share,
    and so do a read-only open and a writer where there is a shared index.
    Only real OS files count: a test's own opener keeps its own locks.

    Raises:
        StoreLockedError: saying that the store is already open in this process.
    """
    if opener is not fileio.open_file:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    # With the shared index (shm.py), readers open beside a writer as they do from other processes.
    shares = shm.SUPPORTED
    for other in _opens_here(st):
        if (readonly and other.readonly) or other._opener is not opener:
            continue
        if shares and (readonly or other.readonly):
            continue
        how = "read-only" if other.readonly else "for writing"
        raise StoreLockedError(
            f"{path}: already open in this process ({how}, as {other.path!r}); "
            "share that Store between threads rather than opening the file twice"
        )


def _files_of_open_here(path: str, files: str, opener: fileio.Opener) -> str:
    """_files_of_open_here returns the name another open of this process has the same file
    under (its log's and shared index's, ``Pager.path``), else ``files``: another name for it
    (a hard link, a renamed directory on the way) must meet the same ``-wal`` and ``-shm``, or
    a reader beside the writer read the data file without the writer's log. Across processes
    no name tells a hard link apart (docs/api.md)."""
    if opener is not fileio.open_file:
        return files
    try:
        st = os.stat(path)
    except OSError:
        return files
    for other in _opens_here(st):
        if other._opener is opener:
            return other._pager.path
    return files


def _check_size(name: str, value: Any, minimum: int) -> int:
    """_check_size refuses a size option of the wrong type or below ``minimum``, before any file is touched."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_timeout(value: Any) -> Optional[float]:
    """_check_timeout refuses a timeout that is not None or a number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(value).__name__} ({value!r})")
    if not value >= 0:
        raise ValueError(f"timeout must be at least 0 seconds, got {value}")
    if value >= threading.TIMEOUT_MAX:
        # A lock's wait takes no infinite number, nor one past TIMEOUT_MAX (about 292 years:
        # OverflowError at the first write); a wait that long is no limit: None.
        return None
    return float(value)


def _check_flag(name: str, value: Any) -> None:
    """_check_flag refuses a yes/no option that is not a bool (``mmap="no"`` would be true)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__} ({value!r})")


def _check_path(path: str, *, create: bool, readonly: bool) -> bool:
    """_check_path says whether ``path`` exists, refusing what cannot be a store before the pager opens it.

    Raises:
        FileNotFoundError: its directory does not exist, or it does not and may not be created.
        InvalidFileError: it is not a regular file (a device, a pipe), or an
            empty file that may not be made a store (``create=False``).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(2, f"directory {parent} does not exist", path) from None
        if readonly:
            raise FileNotFoundError(2, "no such store", path) from None
        if not create:
            raise FileNotFoundError(2, "no such store (open with create=True to make one)", path) from None
        return False
    if stat.S_ISDIR(st.st_mode):
        return True  # the pager's own error says so
    if not stat.S_ISREG(st.st_mode):
        raise InvalidFileError(f"{path}: not a regular file, so not a pagestore file")
    if st.st_size == 0 and not create and not readonly:
        raise InvalidFileError(f"{path}: empty file, not a pagestore file (create=True makes a new store in it)")
    return True


def _bounds(start: Optional[bytes], stop: Optional[bytes], prefix: Optional[bytes]) -> Tuple[Optional[bytes], Optional[bytes]]:
    lo = None if start is None else bytes(as_bytes_like(start, "start"))
    hi = None if stop is None else bytes(as_bytes_like(stop, "stop"))
    if prefix is not None:
        prefix = bytes(as_bytes_like(prefix, "prefix"))
    return _clip(lo, hi, prefix)


def _clip(lo: Optional[bytes], hi: Optional[bytes], prefix: Optional[bytes]) -> Tuple[Optional[bytes], Optional[bytes]]:
    """_clip narrows the encoded range [lo, hi) to the keys starting with the encoded ``prefix``."""
    if prefix is not None:
        if lo is None or lo < prefix:
            lo = prefix
        end = prefix_end(prefix)
        if end is not None and (hi is None or hi > end):
            hi = end
    return lo, hi


class Store(MutableMapping[Any, Any]):
    """Store is an open pagestore file; use ``pagestore.open`` to get one.

    Keys and values are bytes-like; keys order bytewise. ``len(db)`` is O(1);
    a get, put or delete is O(log n) page reads. Writes outside a transaction
    each commit on their own (durably, unless opened with ``sync=False``).
    """

    def __init__(
        self,
        path: StorePath,
        *,
        create: bool = True,
        readonly: bool = False,
        page_size: int = 4096,
        cache_size: int = DEFAULT_CACHE_BYTES,
        sync: bool = True,
        wal_limit: int = DEFAULT_WAL_LIMIT,
        strict: bool = False,
        keys: Any = None,
        values: Any = None,
        mmap: bool = True,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        _opener: fileio.Opener = fileio.open_file,
    ) -> None:
        try:
            self.path: str = os.fsdecode(path)
        except TypeError:
            raise TypeError(f"path must be str, bytes or os.PathLike, not {type(path).__name__}") from None
        _check_size("page_size", page_size, 1)
        _check_size("cache_size", cache_size, 0)
        _check_size("wal_limit", wal_limit, 0)
        self.timeout = _check_timeout(timeout)
        for flag, value in (("create", create), ("readonly", readonly), ("sync", sync), ("strict", strict), ("mmap", mmap)):
            _check_flag(flag, value)
        self.readonly = readonly
        self._abspath = os.path.abspath(self.path)
        self._pid = _PID
        self.strict = strict
        # The operation lock. A reader beside a writer ends each operation's read mark when its outermost holder lets go.
        self._lock: Any = threading.RLock()
        if readonly:
            self._lock = _OpLock()
        # The write lock (locks.py): taken before the operation lock, never while holding it.
        self._wlock = WriteLock(self.path)
        #: writers in several processes: the write lock's share of LOCK_WRITE (None: not taking turns)
        self._turns: Optional[_Turns] = None
        self._closed = True
        #: the thread consuming an ``update()``'s input under the locks (``_write_stream``), or None
        self._streaming: Optional[int] = None
        self._opener = _opener
        self._view: Optional[_ReadView] = None  # the tree and heap of the last snapshot's committed state
        self._fsm_stale = False  # a reader beside a writer: the heap's free-space map is not this view's
        # One memory budget, so memory stays near cache_size: half holds the
        # B+tree's nodes (raw pages), half is the pager's page cache. Every
        # get reads one leaf and one heap page, and heap pages outnumber
        # leaves about fifteen to one, so a byte of leaf cache saves more
        # reads than a byte of heap cache (measured at 200k records: point
        # reads +15% over a quarter for the tree, other phases unchanged).
        # What the tree's half does not hold yet it lends to the pager.
        self._cache_size = cache_size
        # Codec arguments are checked before the disk is touched (against the header after).
        codecs.key_codec(keys, None)
        codecs.value_codec(values, None)
        # Opens of one file in this process, one at a time: the check that refuses a second
        # writer here, and the name of the files the first uses, are only as good as the
        # registration that ends this open (threads opening at once all passed the check).
        guard = _opening_of(self.path) if _opener is fileio.open_file else _NOT_GUARDED  # (as the check: real files only)
        try:
            existed = _check_path(self.path, create=create, readonly=readonly)
            _refuse_if_open_here(self.path, readonly, _opener)
            # a symbolic link's target, or the name another open here has the file by: the pager's name for the files
            files = _files_of_open_here(self.path, files_path(self.path), _opener)
            undo_side_files = side_file_undo(files)
            try:
                try:
                    self._pager = Pager(
                        files,
                        create=create,
                        readonly=readonly,
                        page_size=page_size,
                        opener=_opener,
                        cache_size=cache_size - cache_size // 2,
                        sync=sync,
                        wal_limit=wal_limit,
                        mmap=mmap,
                        share_writes=not readonly,
                        keep_turn=True,
                        timeout=self.timeout,
                    )
                except IsADirectoryError as exc:
                    side = exc.filename if isinstance(exc.filename, str) else None
                    if side and os.path.abspath(side) not in (self._abspath, os.path.abspath(files)):
                        # The store file opened; a directory stands where its log or index goes.
                        raise PageStoreError(f"{side}: is a directory, where the store's "
                                             f"{'log' if side.endswith('-wal') else 'side file'} belongs") from exc
                    raise PageStoreError(f"{self.path}: is a directory, not a store file") from exc
                except FileNotFoundError as exc:
                    raise FileNotFoundError(2, "no such store (open with create=True to make one)", self.path) from exc
                except PermissionError as exc:
                    side = exc.filename if isinstance(exc.filename, str) else None
                    if side and os.path.abspath(side) not in (self._abspath, os.path.abspath(files)):
                        # The store file opened; its log or shared index could not be made beside it.
                        if os.path.lexists(side):
                            # It is there, and not ours to write (another user's, or read-only), or to
                            # read (a reader's open): the directory may well be writable, so do not say
                            # it is not.
                            raise PermissionError(13, "permission denied: the store's "
                                                      f"{'log' if side.endswith('-wal') else 'side file'} "
                                                      f"exists and this process may not {'read' if readonly else 'write'} it",
                                                  side) from exc
                        where = os.path.dirname(self._abspath)
                        raise PermissionError(13, f"permission denied: a writer creates its log ({os.path.basename(side)}) "
                                                  f"in the store's directory, and this directory is not writable",
                                              where) from exc
                    raise PermissionError(13, "permission denied", self.path) from exc
                if self._pager.turns:
                    # Writers in several processes (issue 26): between its turns this writer reads
                    # as a reader beside a writer does (a read mark per operation, ended when the
                    # operation lock is let go), and its write lock takes LOCK_WRITE too.
                    self._lock = _OpLock()
                    self._turns = _Turns(self)
                    self._wlock.share(self._turns)
                    if self._pager.writing:
                        # The open's turn (recovery, checkpoint), taken while no other writer had
                        # it and none waited: kept, so that a writer that only reads after its
                        # open reads as a single writer does (_Turns).
                        self._turns._keep()
                try:
                    self._tree = BTree(self._pager, node_cache=self._tree_node_cache(), lend=True)
                    # reads the free-space map: may raise CorruptionError (a reader beside a writer
                    # reads it again for check() once the writer changed it: _fsm_stale)
                    self._heap = Heap(self._pager)
                except BaseException:
                    # Nobody will ever hold this Store to close it: release the file and its lock now,
                    # and remove a log and shared index this writer made (nothing was committed to
                    # them), while its lock still keeps other opens out.
                    if not readonly and _opener is fileio.open_file:
                        undo_side_files()
                    self._pager.close(checkpoint=False)
                    raise
            except StoreLockedError:
                raise  # someone else's file now, even if it was not there a moment ago
            except BaseException as exc:
                if isinstance(exc, CorruptionError) and not str(exc).startswith(self.path):
                    exc.args = (f"{self.path}: {exc}",)  # which file, for a caller opening several
                if not existed:  # a failed open leaves no new file behind
                    try:
                        discard(files)
                    except OSError:
                        pass
                raise
            self._closed = False
            _open_stores[id(self)] = self
        finally:
            guard.release()
        if self._turns is not None and self._turns.kept:
            self._turns.watch()
        self.max_key = self._tree.max_key
        # Writes from threads that commit at the same time share one commit and one sync.
        self._commits = CommitQueue(self._wlock, self._lock, self._write_batch, self._write_batch_deferred, self._owed,
                                    functools.partial(self._write, defer=True))  # ``_write_deferred``: a call fewer
        if self._pager.shared or self._pager.turns:
            self._pager.on_change.append(self._changed)
            assert isinstance(self._lock, _OpLock)
            self._lock.on_idle = self._pager.end_operation if self._turns is None else self._idle
            self._pager.end_operation()  # the view the pager opened with, for building the tree and heap
        try:
            self._use_codecs(keys, values)
        except BaseException:
            self.close()
            raise

    def _idle(self) -> None:
        """_idle ends an operation of a writer taking turns (the operation lock's ``on_idle``): one
        that keeps its turn reads with no read mark, and looks whether another process asks for
        the turn (``_Turns.look``); otherwise the operation's read mark goes."""
        turns = self._turns
        pager = self._pager
        if self._pid != _PID:
            return  # a forked child: the locks are the parent's (the operation raised already)
        if turns is not None and turns.kept:
            turns.look()
            if turns.kept:
                sharing = pager.sharing
                if sharing is None or not sharing.locked:
                    # Nothing to end: the operations after this one end with no call at all,
                    # until the watcher sees another process ask (``_watch``) or a snapshot
                    # locks a mark (``snapshot``).
                    self._lock.on_idle = None
                    return
        pager.end_operation()

    def _unlock_marks(self) -> None:
        """_unlock_marks lets go of the shared index's read marks no live snapshot needs any more
        (a snapshot was closed): now, if the operation lock is free, else at the end of the
        operation that holds it. Never waits (a finalizer may call it, on any thread).

        A reader beside a writer, or a writer between its turns: the operation lock's release
        does it (``on_idle``). A writer keeping its turn ends its operations with no call at all
        (``_idle``): the marks its snapshots locked (``Pager.read_mark``) are let go here, not
        when the turn is given up."""
        lock = self._lock
        if not isinstance(lock, _OpLock) or self._pid != _PID:
            return
        held = -1
        try:
            if not lock.acquire(blocking=False):
                lock.on_idle = self._pager.end_operation if self._turns is None else self._idle
                return
            held = lock._depth - 1  # no call since the acquire: what ``__enter__`` would return
            try:
                turns = self._turns
                if turns is not None and turns.kept and not self._closed:
                    # Kept: no operation holds a mark (``begin_write`` ended it), so ending one here,
                    # even inside another operation of this thread, only unlocks snapshots' marks.
                    self._pager.end_operation()
            finally:
                lock.release()  # a reader beside a writer: its mark goes now, not at the next operation
        except KeyboardInterrupt:  # in ``acquire`` past its take, or at ``release``'s start: as a read's
            try:
                _settle(lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(lock, held)
            raise

    def _changed(self, pgnos: Optional[Set[int]]) -> None:
        """_changed drops what the tree cached of pages another process's writer changed (a reader
        beside a writer, or a writer catching up: issue 26), and the heap's free-space map when
        its pages changed (a writer places records by it; a reader reads it again for check())."""
        self._tree.forget(pgnos)
        if self.readonly:
            self._fsm_stale = True
            return
        if pgnos is None or not self._heap.fsm.reload(pgnos):
            self._heap.reset()

    # ---- codecs ----

    def _use_codecs(self, keys: Any, values: Any) -> None:
        """_use_codecs picks the codecs (named, else recorded in the header) and records a new store's.

        A store that has never committed (``lsn == 0``) has recorded nothing
        yet: it takes the codecs named and writes them into its header at
        once, with one commit. Any other store keeps the ones it recorded.

        Raises:
            ValueError: codecs other than the recorded ones, an unknown name,
                a recorded custom codec not passed, a recorded "pickle" not named.
        """
        meta = self._pager.meta
        fresh = meta.lsn == 0 and meta.page_count == 1
        kc = codecs.key_codec(keys, None if fresh else meta.key_codec)
        vc = codecs.value_codec(values, None if fresh else meta.value_codec)
        self.key_codec: Any = kc
        self.value_codec: Any = vc
        # None for bytes (and codecs.RAW): the bytes-to-bytes paths stay as they were, no call added.
        kplain = kc is codecs.KEY_CODECS["bytes"] or getattr(kc, "raw", False)
        vplain = vc is codecs.VALUE_CODECS["bytes"] or getattr(vc, "raw", False)
        self._kenc: Optional[Callable[[Any], bytes]] = None if kplain else kc.encode
        self._kdec: Optional[Callable[[bytes], Any]] = None if kplain else kc.decode
        self._venc: Optional[Callable[[Any], bytes]] = None if vplain else vc.encode
        self._vdec: Optional[Callable[[bytes], Any]] = None if vplain else vc.decode
        if fresh and not self.readonly and (meta.key_codec, meta.value_codec) != (kc.name, vc.name):
            self._hold_write("recording the codecs")
            try:
                with self._lock:
                    self._begin()
                    meta = self._pager.meta
                    if not (meta.lsn == 0 and meta.page_count == 1):
                        fresh = False  # another process's writer recorded its codecs first: check against them
                    else:

                        def record() -> None:
                            self._pager.meta.key_codec, self._pager.meta.value_codec = kc.name, vc.name

                        self._write(record)
            finally:
                self._wlock.release()
            if not fresh:
                self._use_codecs(keys, values)

    def _typed_key(self, key: Any) -> bytes:
        assert self._kenc is not None
        k = self._kenc(key)
        if type(k) is not bytes:
            k = bytes(as_bytes_like(k, f"keys={self.key_codec.name!r} codec's encoding"))
        if len(k) > self.max_key:
            raise ValueError(
                f"keys={self.key_codec.name!r} store: key encodes to {len(k)} bytes, over the maximum of "
                f"{self.max_key} for {self._pager.page_size}-byte pages"
            )
        return k

    def _typed_value(self, value: Any) -> bytes:
        assert self._venc is not None
        v = self._venc(value)
        if type(v) is not bytes:
            v = bytes(as_bytes_like(v, f"values={self.value_codec.name!r} codec's encoding"))
        if len(v) > MAX_VALUE:
            raise ValueError(f"values={self.value_codec.name!r} store: value encodes to {len(v)} bytes, over the maximum of {MAX_VALUE}")
        return v

    def _range(self, start: Any, stop: Any, prefix: Any) -> Tuple[Optional[bytes], Optional[bytes]]:
        """_range encodes scan bounds with the key codec (a prefix through its ``prefix_range``)."""
        if self._kenc is None:
            return _bounds(start, stop, prefix)
        enc = self._kenc
        lo = None if start is None else enc(start)
        hi = None if stop is None else enc(stop)
        if prefix is not None:
            ranged = getattr(self.key_codec, "prefix_range", None)
            plo, phi = codecs.byte_prefix_range(enc(prefix)) if ranged is None else ranged(prefix)
            if lo is None or lo < plo:
                lo = plo
            if phi is not None and (hi is None or hi > phi):
                hi = phi
        return lo, hi

    # ---- plumbing ----

    def _usable(self) -> None:
        """_usable raises what ``_begin`` raises (a closed store; a forked child's) without
        beginning an operation: for the checks a write makes before it takes the write lock,
        which hold no operation lock. ``_begin`` there let a writer between its turns catch up
        with the shared index (``Pager.begin_operation``: the log's index, the header, the
        caches) while another thread of the process caught up or committed under the lock: two
        processes of three threads each, counting in transactions, lost increments, and the log
        held fewer frames than the index published (CorruptionError)."""
        if self._pid != _PID or self._closed:
            self._begin()  # raises

    def _begin(self) -> Pager:
        if self._pid != _PID:
            raise PageStoreError(
                f"{self.path}: store was opened in process {self._pid}; open it again in the child "
                f"(process {os.getpid()}): a store is not shared across fork()"
            )
        if self._closed:
            raise StoreClosedError(f"{self.path}: store is closed")
        self._pager.begin_operation()
        return self._pager

    def _key(self, key: Any) -> bytes:
        if self._kenc is not None:
            return self._typed_key(key)
        k = as_bytes_like(key, "key")
        if len(k) > self.max_key:
            raise ValueError(f"key of {len(k)} bytes exceeds the maximum of {self.max_key} for {self._pager.page_size}-byte pages")
        return bytes(k)

    def _value(self, value: Any) -> bytes:
        if self._venc is not None:
            return self._typed_value(value)
        v = as_bytes_like(value, "value")
        if len(v) > MAX_VALUE:
            raise ValueError(f"value of {len(v)} bytes exceeds the maximum of {MAX_VALUE}")
        return bytes(v)

    def _write(self, fn: Callable[[], T], sync: Optional[bool] = None, defer: bool = False) -> T:
        """_write runs ``fn`` (which changes pages) and commits it, or undoes it all on any error.

        ``defer``: a durable commit leaves its sync to the commit queue (``_owed``), which runs
        it outside the store's locks and acknowledges the writes only after it."""
        self._begin()
        pager = self._pager
        pager.check_writable()
        pager.checkpointer.restart_if_idle()  # ``Pager.restart_if_idle``, a call fewer
        try:
            result = fn()
            self._tree.flush()
            self._heap.flush()
            committed = self._pager.commit(sync, True) if defer else self._pager.commit(sync)
        except BaseException:
            try:
                self._abort()
            except KeyboardInterrupt:
                # A second Ctrl-C at ``_abort``'s start (one inside it, it handles): not undone,
                # the write's half-made changes went into the next commit ("header counts 1008
                # live bytes, records hold 1024").
                run_through(self._abort)
                raise
            raise
        if self.strict and committed:
            # bbolt's StrictMode: the whole check after every commit, so a bug
            # shows at the commit that made it, not pages and hours later.
            self.check()
        return result

    def _submit(self, fn: Callable[[], T], sync: Optional[bool]) -> T:
        """_submit runs a write through the commit queue (group commit); see group.py.

        Raises:
            ReentrantWriteError: this thread holds the write lock (its own transaction is open).
            StoreLockedError: the write lock stayed held for the store's timeout.
        """
        if self._pid != _PID or self._closed:
            self._begin()  # raises: closed, or a Store inherited across fork() (its queue may be mid-commit forever)
        if self._wlock._owner == threading.get_ident():  # ``WriteLock.owned`` inline: two calls fewer per put
            self._refuse_reentry()  # raises, naming what holds it
        result: T = self._commits.submit(fn, sync, self.timeout)
        return result

    def _refuse_reentry(self) -> None:
        """_refuse_reentry raises if this thread holds the write lock: a write through the store would
        then commit (or corrupt) the change that holds it half-way (issue 20, finding 4).

        Raises:
            ReentrantWriteError: saying what holds it.
        """
        if self._wlock.owned():
            raise ReentrantWriteError(
                f"{self.path}: a write through the store while this thread's own {self._wlock.holder} is open; "
                "write through the transaction (txn[k] = v) instead, or after it has ended: "
                "nothing was written"
            )

    def _hold_write(self, holder: str, timeout: Any = _STORE_TIMEOUT) -> None:
        """_hold_write takes the write lock for ``holder`` (released by the caller: ``self._wlock.release()``).

        Raises:
            ReentrantWriteError: this thread holds it already.
            StoreLockedError: another writer held it for the whole timeout.
        """
        self._refuse_reentry()
        self._wlock.acquire(self.timeout if timeout is _STORE_TIMEOUT else _check_timeout(timeout), holder)

    def _exclusive(self, holder: str, fn: Callable[[], T], sync: Optional[bool], join: bool) -> T:
        """_exclusive runs ``fn`` as one commit under the write lock, as ``holder``.

        ``join``: writes queued for the lock meanwhile join the commit
        (``CommitQueue.commit_holding``); a failed one is then retried once
        alone, so ``fn`` must be safe to run again after a rollback. Without
        it (a stream read once), the commit is this ``fn`` alone.
        """
        self._usable()
        self._hold_write(holder)
        try:
            if join:
                result: T = self._commits.commit_holding(fn, sync)
                return result
            with self._lock:
                return self._write(fn, sync)
        finally:
            try:
                self._wlock.release()
            except KeyboardInterrupt:  # at its start (a Ctrl-C lands at a call): held for good
                if self._wlock.owned():
                    self._wlock.release()
                raise

    def _write_batch(self, fns: List[Callable[[], Any]], sync: Optional[bool], defer: bool = False) -> List[Any]:
        """_write_batch runs several writes as one commit (see group.py); returns their results."""

        def run() -> List[Any]:
            out = []
            for fn in fns:
                self._pager.begin_operation()
                out.append(fn())
            return out

        return self._write(run, sync, defer)

    def _write_batch_deferred(self, fns: List[Callable[[], Any]], sync: Optional[bool]) -> List[Any]:
        """_write_batch_deferred: ``_write_batch`` for single writes, leaving a durable commit's sync
        to the commit queue (``_owed``), which runs it outside the locks (issue 23)."""
        return self._write_batch(fns, sync, True)

    def _write_deferred(self, fn: Callable[[], T], sync: Optional[bool]) -> T:
        """_write_deferred: ``_write_batch_deferred`` for one write (the commit queue's lone write,
        ``CommitQueue._direct``): ``_write`` with its sync deferred, without the batch's list, loop
        and second ``begin_operation`` (``_write`` began the operation). The queue calls
        ``functools.partial(self._write, defer=True)``, this without its own frame."""
        return self._write(fn, sync, True)

    def _owed(self) -> "Optional[Callable[[], None]]":
        """_owed: the log sync the queue's commits deferred (``Pager.commit(defer=True)``) and no sync
        has run for yet, or None. Called by the commit queue under the store's lock; the queue runs
        it after letting the locks go (``Pager.sync``: thread-safe, and poisoned by a failure)."""
        pager = self._pager
        upto = pager.owed
        wal = pager.wal
        if not upto or wal is None or wal._synced_appends >= upto:  # ``pager.synced_through(upto)``, inline
            return None
        return functools.partial(pager.sync, upto)

    def _abort(self) -> None:
        """_abort undoes an uncommitted write: the pager's pages, the tree's cached nodes, the heap's
        free-space map. A Ctrl-C landing inside it (a KeyboardInterrupt while the map reloads, say)
        does not leave it half done: the step it cut runs again (each is idempotent), the rest
        runs, and the interrupt goes on afterwards. Half done, the map kept entries of the write
        undone, and the next commit stored them (a Ctrl-C storm's "free-space map entry does not
        match the page")."""
        interrupted: Optional[BaseException] = None
        for step in (self._pager.rollback, self._tree.reset, self._heap.reset):
            while True:
                try:
                    step()
                    break
                except KeyboardInterrupt as exc:
                    interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _put(self, key: bytes, value: bytes) -> None:
        meta = self._pager.meta
        tree = self._tree
        # lookup remembers the leaf it searched: the put starts there (one descent)
        old = tree.lookup(key)
        if old is None:
            rid = self._heap.insert(value)
            tree.put_valid(key, rid)
            meta.record_count += 1
            meta.live_bytes += len(key) + len(value)
        else:
            self._replace(key, value, old)

    def _replace(self, key: bytes, value: bytes, old: Rid) -> None:
        """_replace is ``_put`` of a key the tree's ``lookup`` just found at ``old``."""
        rid, old_len = self._heap.update(old, value)
        if rid != old:
            self._tree.put_valid(key, rid)
        self._pager.meta.live_bytes += len(value) - old_len

    def _delete(self, key: bytes) -> bool:
        rid = self._tree.delete(key)
        if rid is None:
            return False
        n = self._heap.delete(rid)
        meta = self._pager.meta
        meta.record_count -= 1
        meta.live_bytes -= len(key) + n
        return True

    # ---- the mapping ----

    def __getitem__(self, key: Any) -> Any:
        # bytes keys of a store without codecs skip _key's conversions (a third of a get's own code)
        if type(key) is bytes and self._kenc is None and len(key) <= self.max_key:
            k = key
        else:
            k = self._key(key)
        lock = self._lock
        if type(lock) is not _OpLock:
            with lock:
                if self._pid != _PID or self._closed:
                    self._begin()  # raises
                self._pager.begin_operation()
                rid = self._tree.get(k)
                if rid is None:
                    raise NotFoundError(k if self._kenc is None else key)
                v = self._heap.read(rid)
        else:
            # ``with lock`` inline (_OpLock's __enter__ and __exit__ are two Python frames, a
            # tenth of a get): its RLock taken directly, and on_idle called as __exit__ does,
            # when this is the outermost hold. Its depth count, which only the exit of a hold
            # nested inside this one reads, is left alone: nothing below takes the lock.
            # The acquire inside the try: an interrupt as it returns (CPython may run a signal's
            # handler there) would leave the hold with no try to let it go. One in its wait
            # leaves nothing held, and the handler (``settle``) lets go only of a hold this
            # thread has beyond those its depth counts.
            rlock = lock._rlock
            try:
                rlock.acquire()
                if self._pid != _PID or self._closed:
                    self._begin()  # raises
                pager = self._pager
                if pager.writing:
                    pager.epoch += 1  # begin_operation's whole work for a writer in its turn
                else:
                    pager.begin_operation()
                rid = self._tree.get(k)
                if rid is None:
                    raise NotFoundError(k if self._kenc is None else key)
                v = self._heap.read(rid)
            except NotFoundError:
                if lock._depth == 0 and lock.on_idle is not None:
                    try:
                        lock.on_idle()
                    finally:
                        rlock.release()
                else:
                    rlock.release()
                raise
            except BaseException:
                # Maybe held, maybe not (an interrupt in the acquire's wait); ``settle`` lets go
                # of the hold if this thread has it, again through further interrupts at its start.
                stop: Optional[BaseException] = None
                while True:
                    try:
                        lock.settle()
                        break
                    except KeyboardInterrupt as exc:
                        stop = exc
                if stop is not None:
                    raise stop
                raise
            if lock._depth == 0 and lock.on_idle is not None:
                try:
                    lock.on_idle()
                finally:
                    rlock.release()
            else:
                rlock.release()
        if self._vdec is None:
            return v
        return self._vdec(v)

    def _raw_get(self, k: bytes) -> Optional[bytes]:
        """_raw_get returns the encoded value of the encoded key ``k``, or None (views, transactions)."""
        held = -1
        try:
            with self._lock as held:
                self._begin()
                rid = self._tree.get(k)
                return None if rid is None else self._heap.read(rid)
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._lock, held)
            raise

    def _raw_contains(self, k: bytes) -> bool:
        lock = self._lock
        if type(lock) is not _OpLock or self._pid != _PID or self._closed:
            held = -1
            try:
                with lock as held:
                    self._begin()
                    return self._tree.get(k) is not None
            except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
                try:
                    _settle(lock, held)
                except KeyboardInterrupt:  # a second one, at its start
                    _settle(lock, held)
                raise
        # __getitem__'s inline hold of the lock (a transaction's delete asks this of every key),
        # interrupt-safe as there: the acquire inside the try, and any exception lets go of the
        # hold through ``settle``, again through further interrupts at its start.
        rlock = lock._rlock
        try:
            rlock.acquire()
            pager = self._pager
            if pager.writing:
                pager.epoch += 1  # begin_operation's whole work for a writer in its turn
            else:
                pager.begin_operation()
            found = self._tree.get(k) is not None
        except BaseException:
            stop: Optional[BaseException] = None
            while True:
                try:
                    lock.settle()
                    break
                except KeyboardInterrupt as exc:
                    stop = exc
            if stop is not None:
                raise stop
            raise
        if lock._depth == 0 and lock.on_idle is not None:
            try:
                lock.on_idle()
            finally:
                rlock.release()
        else:
            rlock.release()
        return found

    def get(self, key: Any, default: Any = None) -> Any:
        """get returns the value of ``key``, or ``default`` when it is missing."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        """``key in db``: False for a key the store could not hold (of another type, too long),
        as a dict answers for a key of a type it has none of."""
        try:
            k = self._key(key)
        except (TypeError, ValueError):
            return False
        held = -1
        try:
            with self._lock as held:
                self._begin()
                return self._tree.get(k) is not None
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._lock, held)
            raise

    def __or__(self, other: Any) -> Dict[Any, Any]:
        """``db | mapping``: a new dict of the store's items, then ``mapping``'s (dict's ``|``,
        Python 3.9). The store is unchanged; O(n) memory: the whole store is read into the dict."""
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(self.items())
        out.update(other)
        return out

    def __ror__(self, other: Any) -> Dict[Any, Any]:
        """``mapping | db``: a new dict of ``mapping``'s items, then the store's."""
        if not isinstance(other, Mapping):
            return NotImplemented
        out = dict(other)
        out.update(self.items())
        return out

    def __ior__(self, other: Any) -> "Store":
        """``db |= items``: ``update(items)``, in one atomic commit; returns the store."""
        self.update(other)
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        # bytes of a store without codecs skip _key's and _value's conversions and copies (four
        # Python calls and two copies of a lone put's), as ``__getitem__`` does for its key
        if type(key) is bytes and self._kenc is None and len(key) <= self.max_key:
            k = key
        else:
            k = self._key(key)
        if type(value) is bytes and self._venc is None and len(value) <= MAX_VALUE:
            v = value
        else:
            v = self._value(value)
        self._submit(functools.partial(self._put, k, v), None)  # a partial: a Python frame fewer than a lambda

    def __delitem__(self, key: Any) -> None:
        k = self._key(key)
        if not self._submit(lambda: self._delete(k), None):
            raise NotFoundError(k if self._kenc is None else key)

    def update(self, other: Any = (), /, **kwds: Any) -> None:
        """update writes every item, as a dict's update does, in ONE atomic commit.

        Not one commit per item: either every item is in the store afterwards
        or (on any error, a bad key included) none is. Items may come from a
        mapping, an iterable of pairs, or keywords; a later duplicate key wins.
        Input read in key order into a store with no records is built bottom-up
        (pagestore/bulk.py: each leaf and heap page filled once, in order);
        anything else goes in item by item. Memory stays bounded for an input
        of any length: the input is read as a stream, and the pages it fills
        are spilled to the log when the cache is full (the log grows by about
        the size of the data until the commit's checkpoint).

        Raises:
            TypeError, ValueError: a key or value the store refuses (nothing is written).
            ReadOnlyError: the store is read-only.
        """
        if isinstance(other, Mapping):
            pairs: Iterable[Tuple[Any, Any]] = ((k, other[k]) for k in other)
        elif hasattr(other, "keys"):
            pairs = ((k, other[k]) for k in other.keys())
        else:
            pairs = other
        if kwds:
            pairs = _chain(pairs, kwds.items())
        self._write_stream(pairs, None)

    # ---- atomic read-modify-writes ----

    def _decoded(self, v: bytes) -> Any:
        return v if self._vdec is None else self._vdec(v)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """setdefault returns the value of ``key``; if it is missing, stores ``default`` first. One atomic commit.

        Two threads' setdefault of the same missing key store one value, and
        both return it. O(log n); a key already present costs a read, no commit.

        Raises:
            TypeError, ValueError: a key or default the codecs refuse.
            ReentrantWriteError: this thread's own transaction is open (use ``txn.setdefault``).
        """
        k = self._key(key)
        v = self._raw_get(k)
        if v is not None:
            return self._decoded(v)
        enc = self._value(default)

        def run() -> Optional[bytes]:
            rid = self._tree.get(k)
            if rid is not None:
                return self._heap.read(rid)
            self._put(k, enc)
            return None

        got = self._submit(run, None)
        return default if got is None else self._decoded(got)

    def pop(self, key: Any, default: Any = _DELETED) -> Any:
        """pop removes ``key`` and returns its value (``default`` if it is missing). One atomic commit.

        Of threads popping the same key, exactly one gets its value.

        Raises:
            NotFoundError: (a KeyError) the key is missing and no default was given.
            ReentrantWriteError: this thread's own transaction is open (use ``txn.pop``).
        """
        k = self._key(key)

        def run() -> Optional[bytes]:
            rid = self._tree.get(k)
            if rid is None:
                return None
            v = self._heap.read(rid)
            self._delete(k)
            return v

        got = self._submit(run, None) if self._raw_contains(k) else None
        if got is None:
            if default is _DELETED:
                raise NotFoundError(k if self._kenc is None else key)
            return default
        return self._decoded(got)

    def popitem(self) -> Tuple[Any, Any]:
        """popitem removes the item with the smallest key and returns it. One atomic commit.

        Raises:
            NotFoundError: (a KeyError) the store is empty.
        """

        def run() -> Optional[Tuple[bytes, bytes]]:
            keys, pgnos, slots = self._tree.range_leaf(None, None)
            if not keys:
                return None
            v = self._heap.read((pgnos[0], slots[0]))
            self._delete(keys[0])
            return keys[0], v

        got = self._submit(run, None)
        if got is None:
            raise NotFoundError("popitem(): the store is empty")
        k, v = got
        return (k if self._kdec is None else self._kdec(k)), self._decoded(v)

    def incr(self, key: Any, delta: int = 1, default: int = 0) -> int:
        """incr adds ``delta`` to the int stored under ``key`` (``default`` if it is missing) and returns the sum.

        One atomic commit, as diskcache's ``incr``: of threads incrementing one
        key, none loses another's increment. For stores whose value codec
        holds ints: "json" and "pickle" (the value is an int), "bytes" and
        "str" (the value is the int in decimal, as ``b"%d" % n`` writes it).

        Raises:
            TypeError: ``delta`` or ``default`` is not an int.
            CodecError: the value codec holds no ints ("numpy", a custom
                codec), or the value stored under ``key`` is not an int.
            ReentrantWriteError: this thread's own transaction is open.
        """
        for arg, n in (("delta", delta), ("default", default)):
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"incr: {arg} must be an int, not {type(n).__name__} ({n!r})")
        name = getattr(self.value_codec, "name", None)
        if name not in _INT_VALUE_CODECS or codecs.VALUE_CODECS[name] is not self.value_codec:
            raise codecs.CodecError(
                f"incr needs a store whose values are ints: values=\"json\", \"pickle\", \"bytes\" or \"str\" "
                f"(decimal text); this store's value codec is {name or self.value_codec!r}"
            )
        k = self._key(key)
        text = name in ("bytes", "str")

        def run() -> Any:
            n: Any
            rid = self._tree.get(k)
            if rid is None:
                n = default
            else:
                raw = self._heap.read(rid)
                try:
                    # Decimal text exactly as b"%d" writes it: int() alone would also take
                    # " 5\n", "+5" and "1_000" and store them back rewritten.
                    n = (int(raw) if _DECIMAL.fullmatch(raw) else None) if text else self._decoded(raw)
                except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
                    n = None
                if isinstance(n, bool) or not isinstance(n, int):
                    # Returned, not raised: a write that raises fails its whole group commit.
                    return codecs.CodecError(f"incr: the value under {key!r} is not an int: {bytes(raw[:40])!r}")
            n += delta
            try:
                enc = b"%d" % n if text else self._value(n)
            except ValueError as exc:  # past int->str's digit limit: a value nothing could read back
                return codecs.CodecError(f"incr: the sum under {key!r} cannot be stored: {exc}")
            self._put(k, enc)
            return n

        out = self._submit(run, None)
        if isinstance(out, BaseException):
            raise out
        return int(out)

    # ---- bulk deletes ----

    def clear(self) -> None:
        """clear deletes every record in ONE commit, at the speed of freeing pages, not keys.

        Every page of the tree, the heap and the overflow chains goes back to
        the free list, none of them read or written (the list takes them as a
        few extents: the commit writes its trunk page, the free-space map's
        pages and the header), and the tree starts empty; the file keeps its
        size and later writes reuse its pages, lowest first. Snapshots taken
        before still see every record. O(free-space map + cache), not O(records).

        Raises:
            ReadOnlyError: the store is read-only.
            ReentrantWriteError: this thread's own transaction is open (use ``txn.clear()``).
            StoreLockedError: another writer held the write lock for the store's timeout.
        """
        self._usable()
        self._pager.check_writable()
        self._exclusive("clear()", self._clear_all, None, join=True)

    def delete_range(self, start: Any = None, stop: Any = None, *, prefix: Any = None) -> int:
        """delete_range deletes the records ``items(start, stop, prefix=prefix)`` holds, in ONE commit; returns how many.

        A leaf at a time: its run of keys is cut out in one go (one descent
        and at most one merge per leaf, so a leaf the range covers is freed),
        and its records' values are freed a heap page at a time, with their
        overflow chains. A range that covers the whole store is ``clear()``.
        O(log n + leaves + records in the range).

        Raises:
            TypeError, ValueError: a bound the key codec refuses (nothing is deleted).
            ReadOnlyError: the store is read-only.
            ReentrantWriteError: this thread's own transaction is open.
        """
        lo, hi = self._range(start, stop, prefix)
        self._usable()
        self._pager.check_writable()
        return self._exclusive("delete_range()", lambda: self._delete_range(lo, hi), None, join=True)

    def _clear_all(self) -> int:
        """_clear_all frees every page but the header, the free-space map's and the free list's; returns the records dropped.

        No page of records is read or written: the free list takes them as a few extents
        (``Pager.free_all_but``), and the commit writes its trunk, the map's pages and page 0.
        """
        pager = self._pager
        meta = pager.meta
        dropped = meta.record_count
        self._tree.reset()  # every cached node's page is freed below; nothing of them may be written
        self._heap.drop_all()
        pager.free_all_but(self._heap.fsm.pages)
        meta.root = 0
        meta.tree_height = 0
        meta.record_count = 0
        meta.live_bytes = 0
        return dropped

    def _delete_range(self, lo: Optional[bytes], hi: Optional[bytes]) -> int:
        """_delete_range deletes the encoded range [lo, hi) a leaf at a time; returns the records deleted."""
        pager = self._pager
        meta = pager.meta
        tree = self._tree
        if meta.record_count and self._covers_all(lo, hi):
            return self._clear_all()
        n = 0
        pending: List[Tuple[int, int]] = []
        while True:
            pager.begin_operation()
            keys, rids = tree.delete_run(lo, hi)
            if keys:
                pending += rids
                n += len(keys)
                meta.record_count -= len(keys)
                meta.live_bytes -= sum(map(len, keys))
                lo = keys[-1]
            # The values of many leaves at once: a heap page whose records two leaves share is
            # then mostly emptied in one go and freed whole, not rewritten once per leaf.
            if pending and (not keys or len(pending) >= _DELETE_BATCH):
                meta.live_bytes -= self._heap.delete_many(pending)
                pending = []
            if not keys:
                return n

    def _covers_all(self, lo: Optional[bytes], hi: Optional[bytes]) -> bool:
        """_covers_all: every key of the store lies in [lo, hi)."""
        tree = self._tree
        if lo is not None:
            first = tree.range_leaf(None, None)[0]
            if not first or first[0] < lo:
                return False
        if hi is not None:
            last = tree.range_leaf(None, None, reverse=True)[0]
            if not last or last[0] >= hi:
                return False
        return True

    def _write_stream(self, pairs: Iterable[Tuple[Any, Any]], sync: Optional[bool]) -> None:
        """_write_stream writes a stream of (key, value) pairs as one commit: the bulk entry point.

        Bottom-up (bulk.Builder) while the store has no records and the keys
        ascend; from the first key that does not, and for a store with records,
        one put per item. Not through the commit queue: a stream can be read
        only once, so it cannot be retried the way a queued write is.
        """
        key, value = self._key, self._value
        plain = self._kenc is None and self._venc is None

        def run() -> None:
            self._streaming = threading.get_ident()
            try:
                stream()
            finally:
                self._streaming = None

        def stream() -> None:
            pager = self._pager
            it = iter(pairs)
            if pager.meta.record_count == 0:
                builder = Builder(pager, self._heap, self._tree)
                # bytes pass as they are into a store without codecs (what
                # _key and _value would return: the same object); anything
                # else goes through them. The builder makes that test itself,
                # in its loop: a generator here cost a resumption and a tuple
                # per record (bench/bulk_load.py, 50k: about 10 ms of 0.18 s).
                if plain:
                    refused = builder.extend(it, lambda k, v: (key(k), value(v)))
                else:
                    refused = builder.extend((key(k), value(v)) for k, v in it)
                builder.finish()
                if refused is not None:
                    pager.begin_operation()
                    self._put(*refused)  # the rest of ``it``, after it, goes in below
            for k, v in it:
                pager.begin_operation()
                self._put(key(k), value(v))

        self._exclusive("update()", run, sync, join=False)

    def __len__(self) -> int:
        held = -1
        try:
            with self._lock as held:
                self._begin()
                return self._pager.meta.record_count
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._lock, held)
            raise

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self.keys())

    def __bool__(self) -> bool:
        return len(self) > 0

    # ---- ordered scans ----

    def _scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
              limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        """_scan yields entries lazily, one leaf at a time, from a snapshot taken when it starts.

        Every iteration over the store runs here: it sees the store as of the
        last commit before its first item, whatever is written meanwhile (the
        loop's own writes too), and releases its snapshot when it is exhausted,
        closed or collected. ``limit``: at most that many entries. See ``_scan_leaves``.
        """
        return _scan_leaves(self, None, lo, hi, reverse, values, limit)

    # ---- views.ViewSource: what the views ask of their owner ----

    def _reader(self, snap: "Snapshot") -> Tuple[BTree, Heap]:
        """_reader: the tree and heap a read of ``snap``'s state goes through now, under the store's
        lock: the store's own while they read exactly that state (``Pager.reads_as_of``, and no
        change held in the tree), else the snapshot's. Raises as ``Snapshot._enter``."""
        view = snap._enter()
        if self._pager.reads_as_of(snap._mark) and not self._tree.changed:
            return self._tree, self._heap
        return view.tree, view.heap

    def _view_key(self, key: Any) -> bytes:
        return self._key(key)

    def _view_get(self, k: bytes) -> Optional[bytes]:
        return self._raw_get(k)

    def _view_scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
                   limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        return self._scan(lo, hi, reverse, values, limit)

    def _view_count(self, lo: Optional[bytes], hi: Optional[bytes]) -> Optional[int]:
        return _count_range(self, None, lo, hi)

    def _view_decoders(self) -> Tuple[Optional[Callable[[bytes], Any]], Optional[Callable[[bytes], Any]]]:
        return self._kdec, self._vdec

    def items(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
              limit: Optional[int] = None) -> ItemsView:
        """items returns a view of ``(key, value)`` with ``start <= key < stop`` (and the prefix), in key order.

        A view as a dict's: iterable more than once, ``len()``, ``in``,
        ``reversed()``. Iterating it is lazy: memory is bounded by one leaf,
        however large the store. ``reverse=True`` gives the same range in
        descending order. Bounds and prefix are keys of the store's codec; for
        tuple keys, ``prefix=("user",)`` is every key whose leading elements
        are ``("user",)``. ``limit=n``: only the first ``n`` entries of that
        order (SQL's ``LIMIT``; ``islice`` of the view, read no further: a
        range of up to 64 is read in one hold of the lock).

        Raises:
            TypeError: a bound the key codec refuses, a limit that is not an int.
            ValueError: ``prefix`` with int keys, a negative limit.
        """
        lo, hi = self._range(start, stop, prefix)
        return ItemsView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def keys(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
             limit: Optional[int] = None) -> KeysView:
        """keys returns a view of the keys of ``items(...)``; iterating it reads no values."""
        lo, hi = self._range(start, stop, prefix)
        return KeysView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def values(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
               limit: Optional[int] = None) -> ValuesView:
        """values returns a view of the values of ``items(...)``."""
        lo, hi = self._range(start, stop, prefix)
        return ValuesView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def first(self) -> Tuple[Any, Any]:
        """first returns the item with the smallest key. O(log n).

        Raises:
            NotFoundError: (a KeyError) the store is empty.
        """
        for item in self.items(limit=1):
            return item
        raise NotFoundError("first(): the store is empty")

    def last(self) -> Tuple[Any, Any]:
        """last returns the item with the largest key. O(log n).

        Raises:
            NotFoundError: (a KeyError) the store is empty.
        """
        for item in self.items(reverse=True, limit=1):
            return item
        raise NotFoundError("last(): the store is empty")

    # ---- bulk operations ----

    def _encoded_keys(self, keys: Any) -> List[bytes]:
        """_encoded_keys encodes a batch of keys; a 1-d numpy array goes through ``tolist()`` first.
        A list of bytes (no key codec) comes back as it is, not copied: callers read it, never change it."""
        np = sys.modules.get("numpy")
        if np is not None and isinstance(keys, np.ndarray):
            if keys.ndim != 1:
                raise ValueError(f"keys must be a 1-d array, got {keys.ndim} dimensions")
            keys = keys.tolist()
        if self._kenc is None:  # bytes keys: check them all at once
            if type(keys) is list and set(map(type, keys)) <= _BYTES_ONLY:  # at C speed; not copied
                ks = keys
            else:
                ks = [k if type(k) is bytes else bytes(as_bytes_like(k, "key")) for k in keys]
            longest = max(map(len, ks), default=0)
            if longest > self.max_key:
                raise ValueError(f"key of {longest} bytes exceeds the maximum of {self.max_key} for {self._pager.page_size}-byte pages")
            return ks
        key = self._key
        return [key(k) for k in keys]

    def get_many(self, keys: Any, default: Any = None) -> List[Any]:
        """get_many returns the values of ``keys``, in their order (``default`` for a missing one).

        ``keys`` is any iterable of keys (with ``keys="int"``, a numpy integer
        array too). The keys are sorted, so each leaf is searched once for all
        its keys, and the records are read in page order, so each heap page
        is read once: much faster than a loop of ``db[k]`` for large batches.
        The store's lock is held throughout: the values are one committed
        state. Memory: O(len(keys)).

        Raises:
            TypeError: a key the key codec refuses (nothing is read).
        """
        ks = self._encoded_keys(keys)
        # The positions in key order (one sort; no set, no dict): duplicates sit side by side
        # and are each looked up, in the same leaf call.
        order = sorted(range(len(ks)), key=ks.__getitem__)
        out: List[Any] = [default] * len(ks)
        found: List[int] = []  # positions of out that hold a value
        held = -1
        try:
            with self._lock as held:
                pager = self._begin()
                rids = self._tree.get_sorted([ks[i] for i in order])
                if pager.map is not None:
                    # the values in the map in one C call per run, in key order; the rest through the
                    # pager. Every key found (the common case, checked at C speed): no list of the
                    # found ones, and the rids split into pages and slots by C-speed maps.
                    if None in rids:
                        have = [t for t, rid in enumerate(rids) if rid is not None]
                        where = [order[t] for t in have]
                        rids = [rids[t] for t in have]
                    else:
                        where = order
                    pgnos = list(map(_first_of, rids))  # type: ignore[arg-type]
                    slots = list(map(_second_of, rids))  # type: ignore[arg-type]
                    read_run = self._heap.read_run
                    # Pages read through the pager stay pinned until the operation ends, so reads
                    # go in runs; with no page overlaid (every page's newest image in the map),
                    # none is read through the pager (but a damaged one): one run, one C call.
                    run = _GET_MANY_RUN if pager.overlaid else len(where)
                    for at in range(0, len(where), run or 1):
                        pager.begin_operation()  # unpin the previous run's pages
                        end = at + run
                        for i, v in zip(where[at:end], read_run(pgnos[at:end], slots[at:end])):
                            out[i] = v
                    if self._vdec is not None:
                        found = where
                else:
                    have = [t for t, rid in enumerate(rids) if rid is not None]
                    # Records in page order: one int per record sorts much faster than (rid, index) tuples.
                    shift = len(rids).bit_length()
                    by_page = sorted([(((rids[t][0] << 16) | rids[t][1]) << shift) | t for t in have])  # type: ignore[index]
                    mask = (1 << shift) - 1
                    read_many = self._heap.read_many
                    for at in range(0, len(by_page), _GET_MANY_RUN):
                        part = [x & mask for x in by_page[at : at + _GET_MANY_RUN]]
                        pager.begin_operation()  # unpin the previous run's pages
                        for t, v in zip(part, read_many([rids[t] for t in part])):  # type: ignore[misc]
                            out[order[t]] = v
                    if self._vdec is not None:
                        found = [order[t] for t in have]
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._lock, held)
            raise
        dec = self._vdec
        if dec is not None:
            for i in found:
                out[i] = dec(out[i])
        return out

    def put_many(self, items: Any, values: Any = None, *, sync: Optional[bool] = None) -> None:
        """put_many writes many items in one atomic commit.

        ``put_many(items)``: a mapping or an iterable of ``(key, value)``;
        ``put_many(keys, values)``: two sequences of equal length (numpy
        arrays welcome: an integer array of keys, a 2-d array of rows as
        values). Every key and value is encoded first, so one the codecs
        refuse raises before anything is written; then they are written in
        key order (a later duplicate key wins), so each leaf is changed in
        one run. Memory: O(items).

        Raises:
            TypeError, ValueError: an item the codecs refuse, or a ``sync`` that is neither
                None nor a bool (nothing is written).
            ReadOnlyError: the store is read-only.
        """
        self._usable()
        if sync is not None:
            _check_flag("sync", sync)
        self._pager.check_writable()
        self._refuse_reentry()
        if values is not None:
            ks = self._encoded_keys(items)
            vs = [self._value(v) for v in values]
            if len(ks) != len(vs):
                raise ValueError(f"put_many: {len(ks)} keys but {len(vs)} values")
            writes = dict(zip(ks, vs))
        else:
            pairs = items.items() if isinstance(items, Mapping) else items
            key, value = self._key, self._value
            writes = {key(k): value(v) for k, v in pairs}
        if not writes:
            return

        def run() -> None:
            for k in sorted(writes):
                self._pager.begin_operation()
                self._put(k, writes[k])

        self._exclusive("put_many()", run, sync, join=True)

    def sync(self) -> None:
        """sync makes every commit so far durable now (those made with ``sync=False`` too).

        Raises:
            OSError: the disk refused the sync.
        """
        with self._lock:
            self._begin()
            self._pager.sync()

    # ---- snapshots ----

    def snapshot(self) -> "Snapshot":
        """snapshot returns a read-only view of the store as of the last commit: ``with db.snapshot() as snap``.

        ``snap[k]``, ``snap.get(k)``, ``k in snap``, ``len(snap)`` and
        ``snap.items/keys/values(start, stop, *, prefix, reverse)`` see that
        commit and nothing after it; writes buffered in an open transaction
        are not part of it either. It ends at the ``with`` block's end, at
        ``snap.close()``, or when it is garbage-collected. O(1) after the first
        snapshot since the last commit (that one copies the log's index).

        Cost: while any snapshot is open the store does not checkpoint, so the
        log grows by every commit made meanwhile (the data each commit
        changes); the first commit after the last snapshot closes
        checkpoints it back. ``stats()["oldest_snapshot"]`` says how far the
        oldest one is behind.

        Raises:
            StoreClosedError: the store is closed.
        """
        held = -1
        try:
            with self._lock as held:
                pager = self._begin()
                mark = pager.read_mark()
                try:
                    view = self._view
                    if view is None or not view.pager.serves(mark):
                        view = self._view = _ReadView(pager, mark, max(_VIEW_NODE_CACHE, self._tree_node_cache() // 8))
                except BaseException:
                    pager.release(mark)
                    raise
                return Snapshot(self, mark, view)
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._lock, held)
            raise

    def backup(self, path: StorePath, *, overwrite: bool = False) -> int:
        """backup writes a consistent copy of the store, as of one snapshot, to the file ``path``.

        Writers go on meanwhile (the store's lock is taken for a run of 64
        pages at a time); the copy holds exactly the records of the last
        commit before the call, opens as a store of its own (no log: it is
        checkpointed), and passes ``check()``. Every page is verified as it is
        copied. The copy is written beside ``path``, synced and renamed into
        place: ``path`` is never left half written. sqlite3's ``backup`` and
        LMDB's ``copy`` are the counterparts. Returns the number of records
        copied (the snapshot's).

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
            StoreLockedError: ``path`` is a store that some open has, in this process or
                another (``overwrite``): its writer's later commits would go into the file
                replaced.
            PageStoreError: ``path`` is this store's own file, or its log or shared index
                (``-wal``, ``-shm``: a copy there would be taken for one, and removed).
            CorruptionError: a page of this store is damaged (no copy is left).
            StoreClosedError: the store is closed.
            OSError: the copy could not be written (no copy is left).
        """
        try:
            dest = os.fsdecode(path)
        except TypeError:
            raise TypeError(f"path must be str, bytes or os.PathLike, not {type(path).__name__}") from None
        with self._lock:
            job = begin_backup(self._begin(), dest, overwrite)
        # A store at ``dest`` that some open has (here or in another process) is not replaced:
        # its writer would go on acknowledging commits into the file renamed away, and its log
        # is removed with it. Held until the copy is in place: no open of the old file meanwhile.
        claim = None
        try:
            try:
                if overwrite:
                    claim = _claim_unopened(dest, "back up over it", unreadable_ok=True)
                while not job.done:
                    with self._lock:
                        self._begin()
                        job.copy()
                with self._lock:
                    self._begin()
                    job.finish()
            except BaseException:
                job.abort()
                raise
        finally:
            if claim is not None:
                claim.close()
        return job.records

    # ---- transactions ----

    def transaction(self, *, sync: Optional[bool] = None, timeout: Any = _STORE_TIMEOUT) -> "Transaction":
        """transaction returns a Transaction: use it as ``with db.transaction() as txn``.

        It takes the store's write lock now and holds it until it commits or
        rolls back (as SQLite's ``BEGIN IMMEDIATE`` and LMDB's write
        transactions do): write transactions run one at a time, so what one
        reads stays as it read it until it commits, and a read-modify-write
        is never lost. Reads (``db[k]``, scans, snapshots) take no write lock
        and go on meanwhile. Its writes are buffered and applied as one
        atomic commit on normal exit; an exception rolls it back and nothing
        of it is visible. On a read-only store it takes no lock.

        ``timeout``: seconds to wait for the write lock (None: no limit);
        left out, the store's ``timeout``.

        Raises:
            StoreLockedError: another thread's transaction (or bulk write) held
                the lock for the whole timeout.
            ReentrantWriteError: this thread's own transaction is still open.
            TypeError: ``sync`` is neither None nor a bool.
        """
        self._usable()
        if sync is not None:
            _check_flag("sync", sync)  # sync="no" would be true, as in open()
        if self.readonly:
            return Transaction(self, sync)
        self._hold_write("transaction", timeout)
        try:
            return Transaction(self, sync, locked=True)
        except BaseException:
            self._wlock.release()
            raise

    def _apply(self, writes: Dict[bytes, Any], sync: Optional[bool], locked: bool,
               release: Optional[Callable[[], None]] = None) -> None:
        """_apply commits a transaction's writes, in key order (neighbouring keys share leaves and
        the descent's cached nodes). ``locked``: the transaction holds the write lock
        (taken on whichever thread began it); else the store is read-only and the commit raises."""
        order = sorted(writes)

        def run() -> None:
            # ``_put``, inline for a new key (most of a transaction's puts): a Python frame less
            # per record; and ``begin_operation``'s whole work for a writer in its turn (the
            # pinning epoch), as ``_raw_contains`` does it.
            pager = self._pager
            begin = pager.begin_operation
            # a writer that takes no turns and reads no other writer's log: the epoch is all
            lean = not pager.turns and not pager.shared
            replace, delete = self._replace, self._delete
            lookup, insert, put_valid = self._tree.lookup, self._heap.insert, self._tree.put_valid
            for k in order:
                v = writes[k]
                if lean or pager.writing:
                    pager.epoch += 1
                else:
                    begin()
                if v is _DELETED:
                    delete(k)
                    continue
                old = lookup(k)  # remembers the leaf it searched: the put starts there (one descent)
                if old is None:
                    put_valid(k, insert(v))
                    meta = pager.meta
                    meta.record_count += 1
                    meta.live_bytes += len(k) + len(v)
                else:
                    replace(k, v, old)

        if locked:
            # The write lock goes before the commit's sync (``release``), so the next
            # transaction applies while this one's sync runs; ``commit`` returns after it.
            self._commits.commit_holding(run, sync, release)
        else:
            self._submit(run, sync)  # a read-only store: its commit raises ReadOnlyError

    # ---- introspection and maintenance ----

    def stats(self) -> Dict[str, Any]:
        """stats returns figures about the store. O(pages): it reads every page header.

        Keys: page_size, file_size (the data file's bytes only: committed pages
        may still be in the log), disk_size (data file plus log file), free_bytes
        (bytes a write could reuse without growing the file: the free pages'
        and the free space inside pages in use, after compaction), free_in_pages
        (that second part alone), fragmentation (free_bytes over the bytes of
        pages 1 and up, 0 to 1), page_count, free_pages, records, live_bytes,
        tree_height, average_fill, page_types, overflow_pages, wal_size (the
        log file's bytes on disk), log_size (bytes of it in use), snapshots
        (open snapshots and iterations), oldest_snapshot (None, or
        ``{"seconds", "commits"}``: how long ago, and how many commits
        before the last, the oldest open one was taken), log_frames (committed
        frames in the log), backfilled_frames (how many of them the data file
        holds already; None on a read-only store), oldest_mark (the oldest read
        mark a reader in another process holds, as a frame count; None if none),
        bytes_written (to the data file and log since the store was opened),
        cache_bytes (private memory: the page cache and the tree's node
        cache, counted in pages, as ``cache_size`` bounds them) and
        mapped_bytes (the data file mapped read-only: shared with the OS page
        cache, which may reclaim it; 0 with ``mmap=False``). Both as they
        were before this call, which reads every page through the cache.
        """
        with self._lock:
            pager = self._begin()
            memory = pager.memory()
            memory["cache_bytes"] += self._tree.cache_pages() * pager.page_size + self._heap.fsm.memory()
            meta = pager.meta
            types: Dict[str, int] = {}
            used = 0
            counted = 0
            free_pages = 0
            # The free list's pages are not read: a freed page keeps its old bytes (freelist.py).
            on_free_list = set(pager.freelist())
            for pgno in range(1, meta.page_count):
                if pgno in on_free_list:
                    types["free"] = types.get("free", 0) + 1
                    free_pages += 1
                    continue
                pager.begin_operation()
                page = pager.read(pgno)
                name = fmt.PAGE_TYPE_NAMES.get(page.page_type, str(page.page_type))
                types[name] = types.get(name, 0) + 1
                if page.page_type != fmt.PAGE_FREE:
                    used += pager.page_size - page.free_space
                    counted += 1
                else:
                    free_pages += 1
            ps = pager.page_size
            in_pages = counted * ps - used  # free inside pages in use, after compaction
            data = (meta.page_count - 1) * ps
            free = in_pages + free_pages * ps
            file_size, wal_size = pager.file_size(), pager.wal_size()
            return {
                "path": self.path,
                "page_size": pager.page_size,
                "file_size": file_size,
                "disk_size": file_size + wal_size,
                "free_bytes": free,
                "free_in_pages": in_pages,
                "fragmentation": free / data if data else 0.0,
                "page_count": meta.page_count,
                "free_pages": meta.freelist_count,
                "records": meta.record_count,
                "live_bytes": meta.live_bytes,
                "tree_height": meta.tree_height,
                "average_fill": (used / (counted * pager.page_size)) if counted else 0.0,
                "page_types": types,
                "overflow_pages": types.get("overflow", 0),
                "wal_size": wal_size,
                "bytes_written": pager.bytes_written(),
                "log_size": pager.log_size(),
                "snapshots": len(pager.readers),
                "oldest_snapshot": _oldest(pager),
                **pager.log_state(),
                **memory,
            }

    def check(self) -> Dict[str, int]:
        """check verifies every invariant of the store and returns what it counted.

        Each layer's own check (the B+tree's, with its node cache; the
        heap's free-space map; the pager's free list and cache, and the
        log's), then what only the store sees across them: every record id
        live and referenced once, overflow chains, and that every page is
        accounted for exactly once (header, tree, heap, overflow, map, free
        list): ``storecheck.check_store``. Memory: one bit per heap slot. With
        ``strict`` it runs after every commit.

        Raises:
            CorruptionError: naming the first page found wrong.
            ReentrantWriteError: called from the input (or a codec) of this thread's own
                ``update()``: it would check the half-built state (a sound store reported a
                free-space map entry that did not match its page).
        """
        if self._streaming == threading.get_ident():
            raise ReentrantWriteError(f"{self.path}: check() inside this thread's own update(): "
                                      "it would see the write half-made; check after it has ended")
        with self._lock:
            pager = self._begin()
            if self._fsm_stale:  # a reader beside a writer: the map as of this view
                self._heap.fsm.load()
                self._fsm_stale = False
            return check_store(pager, self._tree, self._heap)

    def compact(self) -> int:
        """compact rewrites the store densely and shrinks the file; returns the bytes returned to the OS.

        The live records are copied in key order into a new store beside this
        one (``Pager.compaction_path``), built bottom-up by ``bulk.Builder``
        (each page filled once), which is closed (checkpointed and
        synced), and then the pager adopts it in place of the old file
        (``Pager.adopt``: a rename). A crash before the rename leaves the old
        store as it was; after it, the new one. The Store object stays usable
        throughout (other threads wait).
        """
        self._usable()
        self._pager.check_writable()
        self._hold_write("compact()")
        try:
            return self._compact()
        finally:
            try:
                self._wlock.release()
            except KeyboardInterrupt:  # at its start (as in ``_exclusive``): held for good
                if self._wlock.owned():
                    self._wlock.release()
                raise

    def _compact(self) -> int:
        with self._lock:
            pager = self._begin()
            if pager.readers:
                raise PageStoreError(
                    f"{self.path}: compact() while {len(pager.readers)} snapshots or iterations are open; "
                    "close them (or finish the loop) first"
                )
            if not pager.alone():
                here = self._also_open_here()
                if here is not None:
                    raise PageStoreError(f"{self.path}: compact() while this process also has the store open "
                                         f"(read-only, as {here.path!r}); close that Store first (compact replaces "
                                         "the file it reads)")
                raise PageStoreError(f"{self.path}: compact() while other processes have the store open (it replaces the file they read)")
            before = pager.file_size() + pager.wal_size()
            pager.checkpoint()
            tmp = pager.compaction_path()
            self._build_copy(pager, tmp)
            try:
                pager.adopt(tmp)
            except BaseException:
                discard(tmp)
                raise
            finally:
                # Whatever happened, nothing cached of the old file may be trusted.
                self._tree = BTree(pager, node_cache=self._tree_node_cache(), lend=True)
                self._heap = Heap(pager)
            after = pager.file_size() + pager.wal_size()
            return max(0, before - after)

    def _build_copy(self, pager: Pager, tmp: str) -> None:
        """_build_copy writes this store's records into a new store file at ``tmp``, bottom-up
        (bulk.Builder: each page filled once, in key order), as one commit, and closes it
        (checkpointed and synced, its log removed). On any error the copy is discarded.

        The copy records this store's codec names; its bytes are copied as they are.
        """
        new = Pager(tmp, create=True, page_size=pager.page_size, opener=self._opener,
                    cache_size=DEFAULT_CACHE_BYTES // 2, sync=False, mmap=False)
        try:
            tree = BTree(new, node_cache=max(64, DEFAULT_CACHE_BYTES // 2 // pager.page_size))
            heap = Heap(new)
            new.meta.key_codec, new.meta.value_codec = pager.meta.key_codec, pager.meta.value_codec
            source, read = self._tree.entries(), self._heap.read

            def records() -> Iterator[Tuple[bytes, bytes]]:
                for key, rid in source:
                    pager.begin_operation()
                    yield key, read(rid)

            builder = Builder(new, heap, tree)
            refused = builder.extend(records())
            assert refused is None, "the tree's keys ascend strictly"
            builder.finish()
            tree.flush()
            heap.flush()
            new.commit(False)  # close() syncs the file; a crash before the adopt leaves the old store
            new.close()  # checkpoints and syncs the new file, removes its log
        except BaseException:
            new.close(checkpoint=False)
            discard(tmp)
            raise

    def checkpoint(self, wait: float = 0.0) -> Dict[str, Any]:
        """checkpoint copies the log's committed pages into the data file as far as readers allow,
        and starts the log afresh when it copied everything and nobody reads the log (SQLite's
        ``wal_checkpoint``). Commits do this on their own once the log passes a threshold
        (``wal_limit``, as SQLite's ``wal_autocheckpoint``); call it to bound the log now, say
        after a burst of writes or once a long-lived snapshot is closed.

        A snapshot or an unfinished scan, here or in another process, reads the log up to its
        own commit: the copy stops there and the log is not restarted. ``wait``: seconds to wait
        for readers in other processes to let the log restart. O(pages in the log).

        Returns:
            ``{"log_frames", "copied", "restarted", "log_size"}``: committed frames in the log
            before, how many of them the data file holds after, whether the log was started
            afresh, and the log's bytes in use after.

        Raises:
            ReadOnlyError: a read-only store (only a writer checkpoints).
            StoreClosedError: the store is closed.
        """
        if isinstance(wait, bool) or not isinstance(wait, (int, float)):
            raise TypeError(f"wait must be a number of seconds, not {type(wait).__name__}")
        if not wait >= 0:
            raise ValueError(f"wait must be at least 0, got {wait}")
        self._usable()
        self._pager.check_writable()
        self._hold_write("checkpoint()")
        try:
            return self._checkpoint(wait)
        finally:
            try:
                self._wlock.release()
            except KeyboardInterrupt:  # at its start (as in ``_exclusive``): held for good
                if self._wlock.owned():
                    self._wlock.release()
                raise

    def _checkpoint(self, wait: float) -> Dict[str, Any]:
        with self._lock:
            pager = self._begin()
            before = pager.log_state()["log_frames"] or 0
            pager.checkpoint(wait)
            after = pager.log_state()
            restarted = before > 0 and not after["log_frames"]
            copied = before if restarted else int(after["backfilled_frames"] or 0)
            log_size = pager.log_size()
            return {"log_frames": before, "copied": copied, "restarted": restarted, "log_size": log_size}

    def _also_open_here(self) -> Optional["Store"]:
        """_also_open_here: another open Store of this process on this store's file, or None."""
        try:
            st = os.stat(self._abspath)
        except OSError:
            return None
        return next((other for other in _opens_here(st) if other is not self), None)

    def _tree_node_cache(self) -> int:
        return max(64, self._cache_size // 2 // self._pager.page_size)

    # ---- lifecycle ----

    def close(self) -> None:
        """close checkpoints, removes the log and releases the file. Closing twice is harmless.

        Raises:
            ReentrantWriteError: called from the input (or a codec) of this thread's own
                ``update()`` or other bulk write, which runs under the store's locks: closing
                the files under it half-way broke it with an AssertionError. Nothing is closed;
                the bulk write then fails whole. (Inside this thread's own transaction, whose
                writes are buffered, close() closes and the transaction's commit raises
                StoreClosedError.)
        """
        if self._pid != _PID:
            return  # a forked child: the files, log and lock are the parent's; touch nothing
        if self._wlock.owned() and self._wlock.holder != "transaction" and not self._closed:
            raise ReentrantWriteError(f"{self.path}: close() inside this thread's own {self._wlock.holder}: "
                                      "close the store after it has ended; nothing was closed")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _open_stores.pop(id(self), None)
            self._view = None
            self._pager.close(checkpoint=not self.readonly)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Store":
        if self._closed:
            raise StoreClosedError(f"{self.path}: store is closed")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._pager.meta.record_count} records"
        return f"<pagestore.Store {self.path!r} {state}>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        """A Store is its open file, lock and caches: copy.copy, copy.deepcopy and pickle refuse it
        (a shallow copy shared them, and closing it broke the original).

        Raises:
            TypeError: always.
        """
        raise TypeError(f"{self.path}: a Store cannot be copied or pickled; share this one, "
                        "or open the file again (in another process, once this one is closed)")

    # ---- rescue ----

    def salvage(self, damaged: Optional[List[int]] = None) -> Iterator[Tuple[bytes, bytes]]:
        """salvage yields every ``(key, value)`` still readable, in key order, as encoded bytes.

        For rescuing a damaged store (``pagestore dump --salvage``); on a
        sound store it yields what ``items()`` yields (encoded). It reads
        every page on its own, as SQLite's ``.recover`` does, and needs
        neither the root nor the free-space map: each intact leaf's keys,
        each intact heap page's values, each whole overflow chain; a record
        comes out when its key and value are both intact (pagestore/salvage.py).
        Every page is read as of the last commit before the call (a snapshot,
        held until the sweep ends or the iterator is dropped: writers beside it
        go on, and the log is not checkpointed past it meanwhile).
        Each damaged page's number is appended to ``damaged`` (once) when
        found. Lazy; memory proportional to the number of keys (pass 1
        collects each key's record id), not to the file or the values.
        For a file ``open`` refuses (a damaged header): ``pagestore.salvage.salvage_path``.

        Raises:
            StoreClosedError: the store is closed.
        """
        from . import salvage

        # Every page as of one commit (a snapshot's mark, held to the end of the sweep): read
        # page by page at the newest commit, a writer's commits meanwhile lost records.
        snap = self.snapshot()

        def run(read: Callable[[], Optional[bytes]]) -> Optional[bytes]:
            with self._lock:
                snap._enter()
                return read()

        def sweep() -> Iterator[Tuple[bytes, bytes]]:
            try:
                source = salvage.PagerSource(self._pager, snap._mark, run)
                yield from salvage.salvage_source(source, damaged)
            finally:
                snap.close()

        return sweep()


def _check_limit(limit: Any) -> Optional[int]:
    """_check_limit: a scan's ``limit=`` as an int >= 0, or None (no limit).

    Raises:
        TypeError: not an int (a bool is refused too).
        ValueError: negative.
    """
    if limit is None:
        return None
    if isinstance(limit, bool):
        raise TypeError("limit must be an int or None, not bool")
    try:
        n = operator.index(limit)
    except TypeError:
        raise TypeError(f"limit must be an int or None, not {type(limit).__name__}") from None
    if n < 0:
        raise ValueError(f"limit must be >= 0, got {n}")
    # A limit past any count is no limit, but islice and the scan's counters take at most
    # sys.maxsize (2**70 raised OverflowError).
    return min(n, sys.maxsize)


def _chain(*parts: Iterable[Tuple[Any, Any]]) -> Iterator[Tuple[Any, Any]]:
    for part in parts:
        yield from part


def _oldest(pager: Pager) -> Optional[Dict[str, Any]]:
    """_oldest: how far behind the oldest open snapshot is (``stats()["oldest_snapshot"]``), or None."""
    readers = list(pager.readers)
    if not readers:
        return None
    mark = min(readers, key=lambda m: m.taken)
    return {"seconds": max(0.0, time.monotonic() - mark.taken), "commits": pager.committed.lsn - mark.meta.lsn}


#: A writer that has not been asked for its turn for this long keeps the next one it takes
#: (``_Turns``): after giving a turn up it takes turns one write at a time for a while.
KEEP_AFTER = 0.5
#: How often a writer keeping its turn looks whether another process asks for it: at the end
#: of an operation (at most once per LOOK_EVERY s) and, while idle, from its watcher thread.
LOOK_EVERY = 0.001
#: The watcher's poll: 20 ms, 50 wake-ups a second while the turn is kept (about 0.2 % of a
#: core; 2 ms cost 1.65 % and kept an idle process's CPU from sleeping). A writer that asks
#: an idle keeper waits up to this long for the turn. With futexes (shm.py, "Turns") the
#: watcher sleeps until a writer begins to wait, or WATCH_IDLE s at most (a writer that
#: asks without waking it: an older pagestore).
WATCH_EVERY = 0.02
WATCH_IDLE = 0.1
#: A turn taken while other writers wait in line is kept for up to this many writes of this
#: process in a row (a batch), while its syncs are fast (the last one took less than
#: BATCH_SYNC s): its writes after the first pay no catch-up and no hand-off, and its syncs
#: run while it holds the turn, as one writer's do (bench/multiproc_floor.py ``--sync batch``:
#: 0.43 -> 0.93 of one process on /dev/shm at pagestore's turn cost; on a disk whose sync
#: takes longer than a turn, the others' commits overlapping it pay more: 5.06 -> 0.36). 1: no
#: batches. Each writer then waits in line again, so every one gets its batches in turn.
#: Off (1) by default: four processes of one-put commits with fast syncs on a loaded 2-core VM
#: shared the commits less evenly with batches of 4 (the fewest 0.58-0.84 of the mean share, and
#: 0.46 once in CI) than without (0.82-0.89), for no more commits in all: issue 26 asks that no
#: writer starve first. Set it above 1 to measure batches (bench/multiproc_floor.py ``--sync batch``).
BATCH_COMMITS = 1
BATCH_SYNC = 0.0002
#: A batch's turn is given up (by the watcher) once this process has begun no write for this
#: long after its last one ended.
BATCH_WAIT = 0.001
#: A watcher whose turn was given up waits this long for this process to keep one again (a
#: batch's, at every few writes while others wait) before its thread ends.
WATCH_LINGER = 1.0


class _Turns:
    """_Turns is the store's write lock's share with writers in other processes (locks.ProcessLock):
    LOCK_WRITE, taken and let go under the operation lock (write lock first, then the operation
    lock, as everywhere), and the catch-up on taking it (``Pager.begin_write``).

    Keeping the turn (issue 26, the read floor of issue 22): a writer that no other writer process
    has asked for its turn lately (KEEP_AFTER) keeps LOCK_WRITE when its write ends
    (``kept``). It then reads as a single writer does, with no read mark and no system call
    per read. Another process asks by waiting in line (LOCK_WAITING, locks.py ``_poll``, which
    wakes the watcher: shm.py "Turns"); the keeper gives the turn up at the end of its current
    write or operation (``look``: one lock probe at most every LOOK_EVERY s) or, idle, at once
    from a daemon thread (``_watch``), which runs while the turn is kept (and WATCH_LINGER s
    after, for the next). From then on the writer takes turns one write at a time until
    nobody has asked for KEEP_AFTER s, or in batches (BATCH_COMMITS writes a turn) while its
    syncs are fast (``unlock``).
    Kept or not, a group commit syncs after the locks are let go, as in one process (the
    syncs of several processes overlap: ``WAL._sync_round``). Readers in other
    processes do not ask: they read beside the keeper with their marks, as beside a single
    writer."""

    __slots__ = ("store", "kept", "_given", "_next_look", "_watcher", "_batch_left", "_batch_until", "_kick",
                 "_watch_lock", "__weakref__")

    def __init__(self, store: Store) -> None:
        self.store = store
        #: this process keeps LOCK_WRITE between its writes
        self.kept = False
        self._given = -KEEP_AFTER  # when the turn was last given up (time.monotonic)
        self._next_look = 0.0
        self._watcher: Optional[threading.Thread] = None
        #: writes this turn may still keep it for while others wait (BATCH_COMMITS), and until
        #: when a batch's turn waits for this process's next write (time.monotonic; 0: none)
        self._batch_left = 0
        self._batch_until = 0.0
        #: set when a turn is kept, for a watcher waiting for one (``_watch``); the lock orders
        #: a keep's look at the watcher with the watcher's decision to end
        self._kick = threading.Event()
        self._watch_lock = threading.Lock()

    def try_lock(self) -> bool:
        if self.kept:
            return True
        pager = self.store._pager
        if self.store._closed:
            raise StoreClosedError(f"{self.store.path}: store is closed")
        return pager.try_lock_write()

    def waiting(self, on: bool) -> None:
        self.store._pager.wait_write(on)

    def others_waiting(self) -> bool:
        return not self.kept and self.store._pager.others_wait_write()

    def ticket(self) -> int:
        return self.store._pager.turns_seen()

    def nap(self, ticket: int, seconds: float) -> None:
        self.store._pager.await_turn(ticket, seconds)

    @property
    def prompt(self) -> bool:
        return shm.FUTEXES  # a release bumps *turns* and wakes a nap (shm.py "Turns")

    def taken(self) -> None:
        if self.kept:
            return  # nobody else has written since: nothing to catch up with
        pager = self.store._pager
        with self.store._lock:
            pager.begin_write()
            self._batch_left = BATCH_COMMITS - 1
            if time.monotonic() - self._given >= KEEP_AFTER and not pager.others_wait_write():
                self._keep()

    def unlock(self) -> None:
        if self.kept:
            sharing = self.store._pager.sharing
            if sharing is None or not sharing.others_wait_write():  # ``Pager.others_wait_write``, inline
                return
            if self._batch_left > 0 and self._fast():
                self._batch_left -= 1
                self._batch_until = time.monotonic() + BATCH_WAIT
                return
        elif self._batch_left > 0 and self._fast() and self.store._pager.others_wait_write():
            # Others wait: this turn is kept for this process's next write (a batch), whose
            # sync runs while it is held; the watcher gives it up if none begins in BATCH_WAIT.
            with self.store._lock:
                self._batch_left -= 1
                self._batch_until = time.monotonic() + BATCH_WAIT
                self._keep()
            return
        with self.store._lock:
            self._give_up()

    def _fast(self) -> bool:
        """_fast: this process's last sync of the log took less than BATCH_SYNC s (none yet: fast)."""
        wal = self.store._pager.wal
        return wal is not None and wal.sync_seconds < BATCH_SYNC

    def look(self) -> None:
        """look: at the end of an operation (the operation lock's ``on_idle``, which holds it), gives
        the kept turn up if another process asks for it and no write is under way here."""
        now = time.monotonic()
        if now < self._next_look or now < self._batch_until:
            return
        self._next_look = now + LOOK_EVERY
        if not self.store._pager.others_wait_write():
            return
        wlock = self.store._wlock._lock
        if wlock.acquire(False):  # never waits: the operation lock is held (order: write lock first)
            try:
                self._give_up()
            finally:
                wlock.release()
        # else a write holds it: its end gives the turn up (``unlock``)

    def _keep(self) -> None:
        self.kept = True
        self._next_look = 0.0
        self.store._lock.on_idle = self.store._idle  # the first operation's end turns it off
        if not self.store._closed:
            self.watch()

    def watch(self) -> None:
        """watch starts the watcher thread (``_watch``) if none runs. Callers: ``_keep``, and the
        store once its open is done (the open's kept turn)."""
        with self._watch_lock:
            self._kick.set()  # a watcher waiting for a kept turn goes on (``_watch``)
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=_watch, args=(weakref.ref(self),), daemon=True,
                                                 name=f"pagestore turn watcher {self.store.path}")
                self._watcher.start()

    def _give_up(self) -> None:
        """_give_up lets LOCK_WRITE go (``Pager.end_write``). Callers hold the
        operation lock, and the write lock's thread lock or its turn."""
        if self.kept:
            self.kept = False
            self._given = time.monotonic()
        self._batch_left, self._batch_until = 0, 0.0
        self.store._lock.on_idle = self.store._idle  # each operation's read mark ends again
        pager = self.store._pager
        pager.end_write()
        pager.end_operation()  # the marks of snapshots closed while the turn was kept go now


def _watch(ref: "weakref.ref[_Turns]") -> None:
    """_watch is the thread of a writer that keeps its turn (``_Turns``): it looks whether another
    process asks for the turn and, if no write is under way, gives it up under the write lock's
    thread lock and the operation lock; then it sleeps until a writer begins to wait (a futex:
    ``Pager.ask_watch``; at most WATCH_IDLE s), or WATCH_EVERY s where there are no futexes.
    Once the turn is given up it waits WATCH_LINGER s for this process to keep one again (a
    batch's: ``_Turns.unlock``; a thread started per batch cost ~80 us of CPU and ~0.5 ms
    before it ran), and ends if none is, or when the store is closed (a forked child has no
    such thread: it may not use the store)."""
    every = WATCH_IDLE if shm.FUTEXES else WATCH_EVERY
    while True:
        turns = ref()
        if turns is None or turns.store._closed:
            return
        if not turns.kept:
            kick, lock = turns._kick, turns._watch_lock
            del turns
            kick.wait(WATCH_LINGER)
            turns = ref()
            if turns is None:
                return
            with lock:
                if kick.is_set():
                    kick.clear()
                    continue
                if not turns.kept:
                    turns._watcher = None  # the next keep starts a thread (``watch``)
                    return
            continue
        store = turns.store
        try:
            nap = store._pager.ask_watch()  # first: an ask after this look ends the nap below
            asked = store._pager.others_wait_write(probe=True)  # an older pagestore's waiter bumps no word
        except (OSError, ValueError):
            return  # the index is closed under it (the store is closing)
        wait = turns._batch_until - time.monotonic()
        if asked and wait > 0:
            # A batch's turn: this process's next write may begin yet (``unlock``).
            del turns, store
            time.sleep(wait)
            continue
        if asked:
            # The end of the operation running now gives the turn up (``_idle``, ``look``);
            # if none runs, this thread does, unless a write holds the write lock (its end
            # gives it up: ``unlock``). Never waiting for the operation lock: a thread
            # reading in a loop would keep it from this one for long.
            turns._next_look = 0.0
            store._lock.on_idle = store._idle
            wlock = store._wlock._lock
            if wlock.acquire(False):
                try:
                    if store._lock.acquire(False):
                        try:
                            if turns.kept and not store._closed:
                                turns._give_up()
                        finally:
                            store._lock.release()
                finally:
                    wlock.release()
            if not turns.kept:
                continue  # waits for the next kept turn
        del turns, store
        try:
            nap(every)
        except (OSError, ValueError):
            return  # the index closed under it (the store is closing)


def _holds(rlock: Any) -> int:
    """_holds: how many times the calling thread holds ``rlock`` (a ``threading.RLock``; 0 if another
    thread holds it or none does)."""
    count = getattr(rlock, "_recursion_count", None)
    if count is not None:  # Python 3.11 and later
        return int(count())
    if not rlock._is_owned():
        return 0
    n, owner = rlock._release_save()  # an older Python: let go of all and take them back at once
    rlock._acquire_restore((n, owner))
    return int(n)


def _settle(lock: Any, held: Any) -> None:
    """_settle: for a read's handler of a KeyboardInterrupt out of ``with lock as held`` (``held``
    set to -1 before it): the hold the interrupt left goes (``_OpLock.settle``). The handler calls
    it again if a second interrupt lands at its start. Nothing for the
    plain RLock of a single writer, whose ``__enter__`` and ``__exit__`` are C (no interrupt lands
    between the acquire and the block, or at the release's start)."""
    if type(lock) is _OpLock:
        while True:  # through further interrupts at its start (the caller raises the first)
            try:
                lock.settle(held)
                return
            except KeyboardInterrupt:
                pass


class _OpLock:
    """_OpLock is the store's re-entrant lock for a reader beside a writer: when its outermost
    holder lets go, ``on_idle`` (the pager's ``end_operation``) ends the operation's read mark,
    so that a reader holds the writer's log back only while it reads."""

    __slots__ = ("_rlock", "_depth", "on_idle")

    def __init__(self) -> None:
        self._rlock = threading.RLock()
        self._depth = 0
        self.on_idle: Optional[Callable[[], None]] = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ok = self._rlock.acquire(blocking, timeout)
        if ok:
            self._depth += 1
        return ok

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self.on_idle is not None:
                self.on_idle()
        finally:
            self._rlock.release()

    def release_own(self) -> None:
        """release_own lets go of every hold the calling thread still has, ending the operation
        (``on_idle``) first, as the outermost ``__exit__`` does. For a write path's handler of an
        interrupt (group.py), where the thread holds the lock no more by then: a Ctrl-C at the
        start of ``__exit__`` (or in ``__enter__`` just after the acquire) left a hold nobody
        lets go, and every other thread's next operation waited forever."""
        rlock = self._rlock
        if not rlock._is_owned():  # type: ignore[attr-defined]
            return
        try:
            if self.on_idle is not None:
                self.on_idle()
        except Exception:  # noqa: BLE001 - the operation failed already; the lock must go
            pass
        finally:
            self._depth = 0
            while rlock._is_owned():  # type: ignore[attr-defined]
                rlock.release()

    def settle(self, held: int = -1) -> None:
        """settle lets go of the hold of the operation lock that a KeyboardInterrupt (or, inline,
        an error) left to a read: ``held`` is what ``__enter__`` returned to the read's ``with``,
        the holds this thread had before it; -1 (``__enter__`` did not return, or the hold
        ``Store.__getitem__`` takes inline): the holds its depth does not count. An interrupt at
        the start of ``__exit__`` (a Python function: the signal's handler may run before its
        first line), or a second one there after one in the read, leaves the read's hold and its
        depth; one in ``__enter__`` just past the acquire, the hold without its depth. Either kept
        every other thread's next operation waiting for good. The operation ends first
        (``on_idle``) when the thread holds no other. Idempotent: a second interrupt cutting it
        short, the caller runs it again. Callers: ``_settle``, ``Store.__getitem__``."""
        rlock = self._rlock
        if not rlock._is_owned():  # type: ignore[attr-defined]
            return  # an interrupt in the acquire's wait: nothing taken
        if 0 <= held < self._depth:
            self._depth = held
        # what the thread held before the read: every hold a user's code may run under (a
        # write's iterator) is counted in the depth; the inline hold of ``__getitem__`` is not
        target = self._depth if held < 0 else held
        if _holds(rlock) <= target:
            return
        if target == 0 and self.on_idle is not None:
            try:
                self.on_idle()
            except Exception:  # noqa: BLE001 - the read failed already; the lock must go
                pass
        while _holds(rlock) > target:
            rlock.release()

    def __enter__(self) -> int:
        # ``acquire`` and ``release`` inlined: every read of a writer taking turns passes here.
        # Returns the holds this thread had before this one (for ``settle``).
        self._rlock.acquire()
        self._depth += 1
        return self._depth - 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self.on_idle is not None:
            try:
                self.on_idle()
            finally:
                self._rlock.release()
        else:
            self._rlock.release()


class _ReadView:
    """_ReadView: a read-only tree and heap over one committed state (a SnapshotPager).

    Every snapshot taken at that state shares it, and its caches, under the
    store's lock; the store keeps the last one, so scans with no commit
    between them find the tree's upper levels already decoded.
    """

    __slots__ = ("pager", "tree", "heap")

    def __init__(self, pager: Pager, mark: ReadMark, node_cache: int) -> None:
        self.pager = SnapshotPager(pager, mark)
        self.tree = BTree(self.pager, node_cache=node_cache)
        self.heap = Heap(self.pager, read_only=True)


class _StoreCodecs:
    """_StoreCodecs: the store's key and value decoders, as the views (views.ViewSource) ask a
    Snapshot or a Transaction for them; and their ``_view_key`` and ``_view_get``, which are
    their own ``_key`` and ``_raw_get``."""

    _store: Store

    def _key(self, key: Any) -> bytes:
        raise NotImplementedError

    def _raw_get(self, k: bytes) -> Optional[bytes]:
        raise NotImplementedError

    def _view_key(self, key: Any) -> bytes:
        return self._key(key)

    def _view_get(self, k: bytes) -> Optional[bytes]:
        return self._raw_get(k)

    def _view_decoders(self) -> Tuple[Optional[Callable[[bytes], Any]], Optional[Callable[[bytes], Any]]]:
        return self._store._kdec, self._store._vdec


class Snapshot(_StoreCodecs, Mapping[Any, Any]):
    """Snapshot is a read-only view of a store as of one commit; see ``Store.snapshot``.

    A mapping with the store's codecs: ``snap[k]``, ``get``, ``in``, ``len``
    (O(1)), and ``items/keys/values(start, stop, *, prefix, reverse)`` views
    that stream, as the store's do. Threads may share one. Close it (or use
    ``with``): while it is open the store's log cannot be checkpointed.
    """

    def __init__(self, store: Store, mark: ReadMark, view: _ReadView) -> None:
        self._store = store
        self._mark = mark
        self._view = view
        self._closed = False

    def _enter(self) -> _ReadView:
        """_enter: the view, after checking that the snapshot and its store are open. Under the store's lock."""
        if self._closed or not self._mark.live:
            self._store._begin()  # a closed store says so
            raise StoreClosedError("snapshot is closed")
        self._store._begin()
        return self._view

    @property
    def closed(self) -> bool:
        return self._closed or not self._mark.live

    @property
    def lsn(self) -> int:
        """lsn: the number of the commit this snapshot shows (commits so far, then)."""
        return self._mark.meta.lsn

    def close(self) -> None:
        """close ends the snapshot (closing twice is harmless). Takes no lock."""
        if not self._closed:
            self._closed = True
            self._store._pager.release(self._mark)
            self._store._unlock_marks()

    def __enter__(self) -> "Snapshot":
        if self.closed:
            raise StoreClosedError("snapshot is closed")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._mark.meta.record_count} records"
        return f"<pagestore.Snapshot of {self._store.path!r} at commit {self._mark.meta.lsn}, {state}>"

    # ---- what the views ask of their owner (views.ViewSource; _view_decoders in _StoreCodecs) ----

    def _key(self, key: Any) -> bytes:
        return self._store._key(key)

    def _raw_get(self, k: bytes) -> Optional[bytes]:
        held = -1
        try:
            with self._store._lock as held:
                view = self._enter()
                rid = view.tree.get(k)
                return None if rid is None else view.heap.read(rid)
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._store._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._store._lock, held)
            raise

    def _view_scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
                   limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        return self._scan(lo, hi, reverse, values, limit)

    def _view_count(self, lo: Optional[bytes], hi: Optional[bytes]) -> Optional[int]:
        return _count_range(self._store, self, lo, hi)

    # ---- the mapping ----

    def __getitem__(self, key: Any) -> Any:
        k = self._store._key(key)
        v = self._raw_get(k)
        if v is None:
            raise NotFoundError(k if self._store._kenc is None else key)
        dec = self._store._vdec
        return v if dec is None else dec(v)

    def __contains__(self, key: object) -> bool:
        try:
            k = self._store._key(key)
        except (TypeError, ValueError):
            return False  # a key the store could not hold, as a dict answers
        held = -1
        try:
            with self._store._lock as held:
                return self._enter().tree.get(k) is not None
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._store._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._store._lock, held)
            raise

    def __len__(self) -> int:
        held = -1
        try:
            with self._store._lock as held:
                self._enter()
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(self._store._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(self._store._lock, held)
            raise
        return self._mark.meta.record_count

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self.keys())

    def items(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
              limit: Optional[int] = None) -> ItemsView:
        """items: a view (as ``Store.items``) of the snapshot's ``(key, value)`` pairs."""
        lo, hi = self._store._range(start, stop, prefix)
        return ItemsView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def keys(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
             limit: Optional[int] = None) -> KeysView:
        """keys: a view of the keys of ``items(...)``; iterating it reads no values."""
        lo, hi = self._store._range(start, stop, prefix)
        return KeysView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def values(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
               limit: Optional[int] = None) -> ValuesView:
        """values: a view of the values of ``items(...)``."""
        lo, hi = self._store._range(start, stop, prefix)
        return ValuesView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def _scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
              limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        """_scan yields the snapshot's entries in [lo, hi), a leaf at a time (``_scan_leaves``)."""
        return _scan_leaves(self._store, self, lo, hi, reverse, values, limit)


class _Scan(chain):  # type: ignore[type-arg]
    """_Scan is the iterator a scan returns: ``itertools.chain`` over the zips of keys and values
    that ``_scan_runs`` yields, one a run, so that an item passes no Python frame on its way to
    the caller (a generator's ``yield from`` cost about 80 ns an item, half a full scan's own
    time per item); ``close`` ends the scan early, as a generator's does, releasing its snapshot."""

    __slots__ = ("_runs",)
    _runs: Generator[Iterator[Tuple[bytes, Optional[bytes]]], None, None]

    def close(self) -> None:
        self._runs.close()


def _scan_leaves(store: Store, snap: Optional[Snapshot], lo: Optional[bytes], hi: Optional[bytes], reverse: bool,
                 values: bool, limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
    """_scan_leaves returns an iterator of the entries in [lo, hi) of ``snap`` (None: of a
    snapshot of ``store`` taken at the first item and closed at the end), at most ``limit``
    of them: a ``_Scan`` over ``_scan_runs`` (``_scan_few`` for a limit up to _FEW)."""
    if limit is not None and limit <= _FEW:
        runs = _scan_few(store, snap, lo, hi, reverse, values, limit)
    else:
        runs = _scan_runs(store, snap, lo, hi, reverse, values, limit)
    scan: _Scan = _Scan.from_iterable(runs)  # type: ignore[assignment]
    scan._runs = runs
    return scan


def _count_range(store: Store, snap: Optional[Snapshot], lo: Optional[bytes], hi: Optional[bytes]) -> int:
    """_count_range: how many keys of ``snap`` (None: of the store's last commit) lie in [lo, hi),
    under one hold of the store's lock (``BTree.count_range``: one C call a leaf, no key copied
    out), through the tree a scan of that state would read (as ``_scan_few`` chooses it)."""
    own: Optional[Snapshot] = None
    try:
        held = -1
        try:
            with store._lock as held:
                if snap is None:
                    pager = store._begin()
                    if pager.reads_committed() and not store._tree.changed:
                        return store._tree.count_range(lo, hi)
                    snap = own = store.snapshot()
                return store._reader(snap)[0].count_range(lo, hi)
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(store._lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(store._lock, held)
            raise
    finally:
        if own is not None:
            own.close()


def _scan_few(store: Store, snap: Optional[Snapshot], lo: Optional[bytes], hi: Optional[bytes], reverse: bool,
              values: bool, limit: int) -> Generator[Iterator[Tuple[bytes, Optional[bytes]]], None, None]:
    """_scan_few yields the first ``limit`` (<= _FEW) entries in [lo, hi) of ``snap`` (see
    ``_scan_leaves``) as one run, read at the first item under one hold of the store's lock:
    the keys leaf after leaf (one C call a leaf, each copying only the keys the limit leaves
    room for), then every value in one ``Heap.read_run``. A range of 50 pays one lock round,
    not one a run, and as many values as it yields.

    Without ``snap``, while the store's own tree and heap read its last commit
    (``Pager.reads_committed``, and no change held in the tree) the entries are
    that commit's, read whole under the lock: a snapshot would show the same,
    so none is taken (its read mark costs two ``fcntl`` calls). Otherwise a
    snapshot is taken as ``_scan_runs`` takes it. Memory: ``limit`` entries.
    """
    if not limit:
        return
    lock = store._lock
    own: Optional[Snapshot] = None
    try:
        held = -1
        try:
            with lock as held:
                if snap is None:
                    pager = store._begin()
                    if pager.reads_committed() and not store._tree.changed:
                        tree, heap = store._tree, store._heap
                    else:
                        snap = own = store.snapshot()
                        tree, heap = store._reader(snap)
                else:
                    tree, heap = store._reader(snap)
                path: List[Any] = []  # kept from leaf to leaf: nothing writes while the lock is held
                keys, pgnos, slots = tree.range_leaf(lo, hi, reverse, None, path, limit)
                while keys and len(keys) < limit:
                    more = tree.range_leaf(lo, hi, reverse, keys[-1], path, limit - len(keys))
                    if not more[0]:
                        break
                    keys += more[0]
                    pgnos += more[1]
                    slots += more[2]
                if keys and values:
                    vals = heap.read_run(pgnos, slots)
        except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
            try:
                _settle(lock, held)
            except KeyboardInterrupt:  # a second one, at its start
                _settle(lock, held)
            raise
    finally:
        if own is not None:
            own.close()
    if keys:
        yield zip(keys, vals) if values else zip(keys, repeat(None))


def _scan_runs(store: Store, snap: Optional[Snapshot], lo: Optional[bytes], hi: Optional[bytes], reverse: bool,
               values: bool, limit: Optional[int] = None) -> Generator[Iterator[Tuple[bytes, Optional[bytes]]], None, None]:
    """_scan_runs yields the entries in [lo, hi) of ``snap`` (see ``_scan_leaves``) as runs, each
    an iterator of ``(key, value or None)``, a leaf at a time; at most ``limit`` entries.

    Under the store's lock once per run of values (``Heap.read_run``, one C
    call for the values in the map), the first run of a leaf with its keys
    and rids (``BTree.range_leaf``); runs of _FIRST_RUN, growing up to
    _MAX_RUN, so a scan stopped early has read little more than it yielded
    (with a limit, which says how far the caller goes, runs of _MAX_RUN at
    once, and no key past the limit copied out of its leaf).
    Memory: one leaf.

    Each of those reads goes through the store's own tree and heap while they
    read the snapshot's state (``Store._reader``: nothing committed since it,
    nothing uncommitted): their caches are warm (right after writes most
    leaves are newest in the log and cached raw in the store's node cache,
    which a snapshot's tree would copy from the log again). Otherwise it goes
    through the snapshot's, whose path to the leaf is kept from one leaf to
    the next (nothing under a snapshot changes); the store's tree descends
    afresh for each leaf, since a write between two leaves may change its nodes.
    """
    if limit == 0:
        return
    own = snap is None
    if snap is None:
        snap = store.snapshot()
    try:
        lock = store._lock
        # the run's size, and what is left of it (a run goes on in the next leaf)
        run = left = _FIRST_RUN if limit is None else _MAX_RUN
        path: List[Any] = []  # the snapshot's tree's path, kept from one leaf to the next
        resume: Optional[bytes] = None
        rest = -1 if limit is None else limit  # entries the limit leaves (-1: no limit)
        while rest:
            held = -1
            try:
                with lock as held:
                    tree, heap = store._reader(snap)
                    if tree is store._tree:
                        path = []
                        keys, pgnos, slots = tree.range_leaf(lo, hi, reverse, resume, [], rest)
                    else:
                        keys, pgnos, slots = tree.range_leaf(lo, hi, reverse, resume, path, rest)
                    n = len(keys)
                    if n and values:  # the leaf's first run of values under the same hold
                        i = min(left, n)
                        vals = heap.read_run(pgnos[:i], slots[:i])
            except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
                try:
                    _settle(lock, held)
                except KeyboardInterrupt:  # a second one, at its start
                    _settle(lock, held)
                raise
            if not keys:
                return
            resume = keys[-1]
            if rest > 0:
                rest -= n  # 0: this is the last leaf (its run may end inside it)
            if not values:
                yield zip(keys, repeat(None))
                continue
            yield zip(keys[:i], vals)
            left -= i
            if not left:
                run = left = min(_RUN_GROWTH * run, _MAX_RUN)
            while i < n:
                j = min(i + left, n)
                held = -1
                try:
                    with lock as held:
                        vals = store._reader(snap)[1].read_run(pgnos[i:j], slots[i:j])
                except KeyboardInterrupt:  # the hold an interrupt at __exit__'s start left goes
                    try:
                        _settle(lock, held)
                    except KeyboardInterrupt:  # a second one, at its start
                        _settle(lock, held)
                    raise
                yield zip(keys[i:j], vals)
                left -= j - i
                i = j
                if not left:
                    run = left = min(_RUN_GROWTH * run, _MAX_RUN)
    finally:
        if own:
            snap.close()


class Transaction(_StoreCodecs, MutableMapping[Any, Any]):
    """Transaction buffers writes and applies them atomically at commit.

    It is a mapping that sees its own writes over the store's committed
    state. Outside readers see nothing of it until it commits. It holds the
    store's write lock from ``Store.transaction`` until it commits or rolls
    back, so no other write changes what it reads meanwhile.
    """

    def __init__(self, store: Store, sync: Optional[bool], locked: bool = False) -> None:
        self._store = store
        self._sync = sync
        # buffered writes, a plain dict: sorted once at commit (and for a scan), not kept
        # sorted per write as a SortedDict was (a fifth of a buffered write's cost)
        self._writes: Dict[bytes, Any] = {}
        self._sorted: Optional[List[bytes]] = None  # sorted(self._writes), until the next write
        self._locked = locked  # holds the store's write lock until it ends
        self._token = store._wlock.token() if locked else -1  # which hold of it (``_end``)
        self._open = True

    def _end(self) -> None:
        """_end closes the transaction and lets the write lock go."""
        self._open = False
        self._writes = {}
        self._sorted = None
        if self._locked:
            self._locked = False
            wlock = self._store._wlock
            try:
                wlock.release()
            except KeyboardInterrupt:
                # At its start (a Ctrl-C lands at a call), the lock stayed held by this transaction
                # for good (``_locked`` said otherwise): every later write waited or timed out.
                run_through(lambda: wlock.release_taken(self._token))
                raise

    def _check(self) -> None:
        if not self._open:
            raise TransactionClosedError("transaction already committed or rolled back")

    def __getitem__(self, key: Any) -> Any:
        self._check()
        store = self._store
        k = store._key(key)
        v = self._raw_get(k)
        if v is None:
            raise NotFoundError(k if store._kenc is None else key)
        return v if store._vdec is None else store._vdec(v)

    def _raw_get(self, k: bytes) -> Optional[bytes]:
        v = self._writes.get(k)
        if v is _DELETED:
            return None
        if v is not None:
            return v  # type: ignore[no-any-return]
        return self._store._raw_get(k)

    def _raw_contains(self, k: bytes) -> bool:
        v = self._writes.get(k)
        if v is not None:
            return v is not _DELETED
        return self._store._raw_contains(k)

    def _key(self, key: Any) -> bytes:
        self._check()
        return self._store._key(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check()
        store = self._store
        pager = store._pager
        if pager.readonly or pager.poisoned is not None:
            pager.check_writable()  # raises
        # bytes in, no codecs: _key's and _value's conversions are a third of a buffered write
        if type(key) is not bytes or store._kenc is not None or len(key) > store.max_key:
            key = store._key(key)
        if type(value) is not bytes or store._venc is not None or len(value) > MAX_VALUE:
            value = store._value(value)
        self._writes[key] = value
        self._sorted = None

    def __delitem__(self, key: Any) -> None:
        self._check()
        store = self._store
        # bytes in, no codecs: __setitem__'s shortcut past _key's conversions
        if type(key) is bytes and store._kenc is None and len(key) <= store.max_key:
            k = key
        else:
            k = store._key(key)
        v = self._writes.get(k)
        if v is None:
            present = store._raw_contains(k)
        else:
            present = v is not _DELETED
        if not present:
            raise NotFoundError(k if store._kenc is None else key)
        self._writes[k] = _DELETED
        self._sorted = None

    def __contains__(self, key: object) -> bool:
        self._check()
        try:
            k = self._store._key(key)
        except (TypeError, ValueError):
            return False  # a key the store could not hold, as a dict answers
        return self._raw_contains(k)

    def clear(self) -> None:
        """clear deletes every key, in the one scan of the store's keys: O(n), no value read.

        (``MutableMapping.clear`` pops one key at a time, and each pop began a
        new merged scan that stepped over every key deleted so far: O(n^2).)
        """
        self._check()
        writes: Dict[bytes, Any] = {}
        for k, _ in self._store._scan(None, None, False, False):
            writes[k] = _DELETED  # a key only this transaction wrote is simply dropped
        self._writes = writes
        self._sorted = None

    def __len__(self) -> int:
        self._check()
        n = len(self._store)
        for k, v in self._writes.items():
            present = self._store._raw_contains(k)
            if v is _DELETED and present:
                n -= 1
            elif v is not _DELETED and not present:
                n += 1
        return n

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self.keys())

    def _view_scan(self, lo: Optional[bytes], hi: Optional[bytes], reverse: bool, values: bool,
                   limit: Optional[int] = None) -> Iterator[Tuple[bytes, Optional[bytes]]]:
        self._check()
        # the store's scan unlimited: this transaction's deletes may drop some of its first entries
        merged = self._merge(self._store._scan(lo, hi, reverse, values), lo, hi, reverse)
        return merged if limit is None else islice(merged, limit)

    def _view_count(self, lo: Optional[bytes], hi: Optional[bytes]) -> Optional[int]:
        return None  # the committed count and this transaction's writes: the view merges them by scanning

    def items(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
              limit: Optional[int] = None) -> ItemsView:
        """items: a view (as ``Store.items``) of the store's committed entries merged with this transaction's writes."""
        self._check()
        lo, hi = self._store._range(start, stop, prefix)
        return ItemsView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def keys(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
             limit: Optional[int] = None) -> KeysView:
        """keys: a view of the keys of ``items(...)``."""
        self._check()
        lo, hi = self._store._range(start, stop, prefix)
        return KeysView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def values(self, start: Any = None, stop: Any = None, *, prefix: Any = None, reverse: bool = False,
               limit: Optional[int] = None) -> ValuesView:
        """values: a view of the values of ``items(...)``."""
        self._check()
        lo, hi = self._store._range(start, stop, prefix)
        return ValuesView(self, lo, hi, reverse, start is None and stop is None and prefix is None, _check_limit(limit))

    def _merge(self, base: Iterator[Tuple[bytes, Optional[bytes]]], lo: Optional[bytes], hi: Optional[bytes], reverse: bool) -> Iterator[Tuple[bytes, bytes]]:
        keys = self._sorted
        if keys is None:
            keys = self._sorted = sorted(self._writes)
        i = 0 if lo is None else bisect_left(keys, lo)
        j = len(keys) if hi is None else bisect_left(keys, hi)
        run = keys[i:j]  # a copy: writes during the scan do not move it
        if reverse:
            run.reverse()
        mine: Iterator[bytes] = iter(run)
        before: Callable[[bytes, bytes], bool] = operator.gt if reverse else operator.lt
        b = next(base, None)
        m = next(mine, None)
        while b is not None or m is not None:
            if m is None or (b is not None and before(b[0], m)):
                yield b  # type: ignore[misc]
                b = next(base, None)
                continue
            if b is not None and b[0] == m:
                b = next(base, None)
            v = self._writes[m]
            if v is not _DELETED:
                yield m, v
            m = next(mine, None)

    def commit(self) -> None:
        """commit applies every write as one atomic, durable (by default) commit, and releases the write lock.

        Single writes of other threads waiting for the lock join this commit
        (one sync for all). Whether it succeeds or raises, the transaction is
        over afterwards.
        """
        self._check()
        self._open = False
        try:
            if self._writes:
                self._store._apply(self._writes, self._sync, self._locked, self._release)
        finally:
            self._end()

    def _release(self) -> None:
        """_release lets the write lock go once the commit's frames are written, before its deferred
        sync (``CommitQueue.commit_holding``); ``_end`` then has nothing left to release."""
        if self._locked:
            self._locked = False
            wlock = self._store._wlock
            try:
                wlock.release()
            except KeyboardInterrupt:  # at its start: see ``_end``
                run_through(lambda: wlock.release_taken(self._token))
                raise

    def rollback(self) -> None:
        """rollback discards every write and releases the write lock; the store is as if the transaction never began."""
        self._check()
        self._end()

    def _let_go(self) -> Optional[BaseException]:
        """_let_go ends the transaction and lets its hold of the write lock go if it still has it,
        whatever an interrupt cut before; returns an interrupt that cut this (``run_through``)."""
        self._open = False
        self._locked = False
        token = getattr(self, "_token", -1)
        if token < 0:
            return None
        wlock = self._store._wlock
        return run_through(lambda: wlock.release_taken(token))

    def __del__(self) -> None:
        # A transaction dropped without commit or rollback must not keep the write lock.
        if getattr(self, "_locked", False):
            try:
                self._end()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._open:
            return
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        except KeyboardInterrupt:
            # A Ctrl-C in commit or rollback before they let the lock go (at their calls, between
            # their first lines): the transaction stayed open, holding it, and every later write
            # of this thread raised ReentrantWriteError. The commit itself is whole or absent.
            self._let_go()
            raise


def remove(path: StorePath) -> None:
    """remove deletes a store that nobody has open: its data file, its log and its shared index.

    For tools that made a store and must not leave it behind (the CLI's
    ``put`` and ``load`` when they fail before their first commit), and for
    anyone deleting a store: unlike unlinking the files, it refuses while an
    open holds the store, here or in another process (a writer's lock, or a
    reader's LOCK_DMS; shm.py), whose later writes would otherwise "succeed"
    into a file no longer there. Missing files are not an error.

    Raises:
        StoreLockedError: the store is open, in this process or another.
        IsADirectoryError: ``path`` is a directory.
    """
    p = os.fsdecode(path)
    if os.path.isdir(p):
        raise IsADirectoryError(21, "Is a directory (a store is a file)", p)
    f = _claim_unopened(p, "remove the store")
    if f is None:
        discard(p)  # a log or shared index left without its store
        return
    try:
        discard(p)
    finally:
        f.close()


def _claim_unopened(p: str, doing: str, *, unreadable_ok: bool = False) -> Optional[fileio.File]:
    """_claim_unopened opens the file at ``p`` read-only and takes its whole-file lock
    exclusively, so that no writer opens it until the returned file is closed, after the caller
    has removed or replaced it (``remove``; a backup over it, ``Store.backup``). None when
    nothing is at ``p``, or (``unreadable_ok``) when this user may not read what is: no store
    this user could have open, which a rename may still replace as the directory allows.

    Raises:
        PermissionError: this user may not read the file at ``p`` (unless ``unreadable_ok``).
        StoreLockedError: the file is a store open here or in another process (a writer's lock,
            or a reader's LOCK_DMS), whose later writes would "succeed" into a file no longer
            there; the message says it cannot ``doing``.
    """
    try:
        f = fileio.open_file(p, readonly=True)
    except FileNotFoundError:
        return None
    except PermissionError:
        if unreadable_ok:
            return None
        raise
    try:
        st = os.fstat(f.fd)
        for other in _opens_here(st):
            how = "read-only" if other.readonly else "for writing"
            raise StoreLockedError(f"{p}: cannot {doing}: it is open in this process ({how}, as "
                                   f"{other.path!r}); close it first")
        try:
            f.lock(exclusive=True)  # held until the file is gone: no writer opens meanwhile
        except StoreLockedError:
            raise StoreLockedError(f"{p}: cannot {doing}: another process has it open") from None
        if shm.SUPPORTED and f.range_held_by_others(shm.LOCK_DMS, 1) is not None:
            raise StoreLockedError(f"{p}: cannot {doing}: another process has it open (reading)")
    except BaseException:
        f.close()
        raise
    return f


def open(
    path: StorePath,
    *,
    create: bool = True,
    readonly: bool = False,
    page_size: int = 4096,
    cache_size: int = DEFAULT_CACHE_BYTES,
    sync: bool = True,
    strict: bool = False,
    keys: Any = None,
    values: Any = None,
    mmap: bool = True,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    wal_limit: int = DEFAULT_WAL_LIMIT,
) -> Store:
    """open opens (or creates) a store file and returns a Store.

    Args:
        path: the store's file (str, bytes or path-like); its log and the
            log's shared index live beside it as ``<path>-wal`` and ``<path>-shm``.
        create: make the file if it does not exist (else ``FileNotFoundError``),
            and make a new store in an existing empty file (else
            ``InvalidFileError``).
        readonly: open for reading only; writes raise ``ReadOnlyError``. Works
            beside a writer (in another process, or this one): each operation
            reads the latest commit (docs/api.md, Concurrency).
        page_size: for a new file (a power of two, 512 to 65536); an existing
            file keeps the page size it was made with.
        cache_size: bytes of private memory for pages (the page cache and
            the tree's node cache); it stays near this however large the
            store is.
        sync: make each commit durable before it returns (fdatasync). With
            False, a crash may lose the latest commits but never consistency.
        strict: run ``check()`` after every commit (as bbolt's StrictMode):
            O(store) per commit, for tests and debugging. A failed check
            raises ``CorruptionError`` after the commit it follows.
        keys: the key codec: "bytes", "str", "int", "tuple" or a codec object
            (see pagestore.codecs). None: the one the store recorded (a new
            store: "bytes"). A new store records the one named.
        values: the value codec: "bytes", "str", "json", "pickle", "numpy" or
            a codec object; None as for keys. "pickle" must be named to open
            a store that recorded it: unpickling runs code from the file.
        mmap: also map the data file read-only, and read the pages whose
            newest committed image is there in place (no copy, no private
            memory: they are the operating system's page cache, shared and
            reclaimable). False reads every page into the private cache, for
            file systems without a coherent mmap (network file systems).
        timeout: seconds a write waits for the store's write lock while
            another thread's transaction or bulk write holds it, as sqlite3's
            ``timeout``; past it, ``StoreLockedError``. None: wait without
            limit. ``transaction(timeout=)`` overrides it for one transaction.
        wal_limit: the most bytes of log a commit leaves before it
            checkpoints (SQLite's ``wal_autocheckpoint``): a commit checkpoints
            once the log passes an eighth of the data file, but not before
            4 MiB and always past ``wal_limit`` (default 32 MiB). Smaller
            bounds the log's disk space; larger, the checkpoints' syncs.
            ``checkpoint()`` copies the log now.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range
            (checked before any file is touched).
        FileNotFoundError: the file (with ``create=False`` or ``readonly``)
            or its directory does not exist.
        InvalidFileError: the file is not a pagestore file (also: not a
            regular file; empty and ``create=False``).
        VersionMismatchError: written by a newer format.
        StoreLockedError: another process has it open for writing.
        CorruptionError: the header or log is damaged beyond recovery.
        ValueError: codecs other than the ones the store recorded.
    """
    return Store(
        path,
        create=create,
        readonly=readonly,
        page_size=page_size,
        cache_size=cache_size,
        sync=sync,
        strict=strict,
        keys=keys,
        values=values,
        mmap=mmap,
        timeout=timeout,
        wal_limit=wal_limit,
    )
