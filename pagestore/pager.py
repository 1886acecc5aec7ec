"""pager: the data file, a bounded page cache, the free-page list, commits.

The pager is the only code that reads or writes the data file, and the only
user of the write-ahead log. The layers above ask it for pages by number:

    read(pgno)      -> SlottedPage   a cached, verified page; do not mutate
    write(pgno)     -> SlottedPage   the same page, marked dirty
    allocate(type)  -> SlottedPage   a fresh page (from the free list first)
    free(pgno)                       give a page back to the free list
    commit() / rollback()            end the transaction

Every page read from disk is verified (CRC32C, stamped page number, page
structure) before anything sees it; a failure raises ``CorruptionError``
naming the page. A read looks in the cache, then in the log (uncommitted
frames of the open transaction, then committed frames), then in the data
file.

Cache and pinning: the cache holds at most ``cache_pages`` pages: its own
share of the store's memory, plus what the tree's node cache lends (``lend``). A page
touched during the current operation (the ``epoch``, which the store
advances at the start of each operation) is pinned: the layers above may
hold its SlottedPage until the operation ends. Other pages leave in LRU
order; a dirty one is first spilled to the log as an uncommitted frame, so a
transaction larger than the cache still commits, and memory stays bounded.

Mapped reads (``mmap=True``, the default of ``pagestore.open``): the data
file is also mapped read-only and shared, by the pager's ``PageMap``
(pagemap.py: the map, its C description, the verified bits, retired maps). A
page whose newest committed image is in the data file can then be read in
place by the layers above, through ``fast_map`` (handed to ``_native.fast``'s
map calls with a page number), ``map_node`` and ``map_records`` (Python
values), ``map_calls`` (the tree's lean map calls) and ``map`` (sliced into
``bytes``), with no pread, no copy and no cache entry. ``overlaid`` holds the pages for which
that is not true: dirty pages, pages spilled by the open transaction and
pages whose newest committed image is in the log. One set lookup
(``pgno in pager.overlaid``) decides which way a read goes; an overlaid page
goes through ``read`` as before. The pager remaps when a checkpoint grows the
file (``_remap``) and unmaps before anything could shrink it (``_unmap``).

Free-page list (``freelist.FreeList``): extents of free pages listed in a
few trunk pages, headed by ``meta.freelist_head``. Freeing a page writes
nothing but the list in memory; the commit writes the trunks that changed.
A page taken off the list is handed out fresh, never read.

Checkpoints: the writer's ``Checkpointer`` (checkpointer.py) copies the log
into the data file and restarts the log; ``checkpoint`` and ``restart_if_idle``
call it, and it changes the pager only through ``cut_tail``,
``log_restarted`` and ``remap``.

Read marks: a snapshot (snapshot.py) reads the store as of one commit
through a ``ReadMark`` (``read_mark``): that commit's header, and the log's
committed frames up to it (a copy of the log's index), over the data file.
The marks (``readers.Marks``: ``readers`` is their list) belong to the
log layer, with the shared index's (``readers.SharedLog``, readers in other
processes: the pager calls it, and never touches the index itself). While
any mark is held the checkpoint copies no further than the oldest
(``Marks.copy_limit``): a checkpoint overwrites data-file pages a mark may
still read, and restarts the log over the frames it reads. The automatic checkpoint waits until the
first commit after the last mark is released, and the log grows meanwhile:
a reader that stays behind costs log space, never correctness.

Failures: a write or sync of the data file or the log that fails poisons the
pager (``_poison``, PostgreSQL's PANIC on a failed fsync): the call that ran
into it raises the OSError, and every later write, commit, checkpoint and sync
raises StorePoisonedError until the store is opened again. Memory stays as the
last good commit left it (a failed commit is undone in the log's memory and
rolled back by the caller), so reads go on; close writes nothing; the next
open recovers from what is durable. (A checkpoint that fails after a commit
does not fail the commit: it is in the log; the next write raises.)

Files: the pager owns the data file's lifecycle (create, lock, replace by a
compacted copy: ``adopt``) and asks the log for its own (``wal.log_path``
names it, ``WAL.remove`` deletes it). Opening (the data file's locks, the log's
recovery, a reader's seat beside a writer) is ``PagerFiles`` (pagerfiles.py,
the pager's base class); the work on whole files (a compacted copy moved into
place or discarded, a backup's copy, the side files of a failed open) is
storefiles.py's. Nothing above the pager renames or unlinks a store's files.
"""
from __future__ import annotations

import mmap as _mmap
import sys
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

from . import fileio
from . import format as fmt
from .errors import CorruptionError, PageStoreError, ReadOnlyError, StoreLockedError, StorePoisonedError
from .freelist import FreeList
from .page import SlottedPage, seal_pages
from .pagemap import PageMap
from .pagerfiles import PagerFiles
from . import storefiles
# What the store calls to remove a store's files: importable from the pager, as before.
from .storefiles import discard as discard, side_file_undo as side_file_undo
from .wal import WAL, EarlierSyncFailed, Frame, log_path, remove_log
from .checkpointer import CHECKPOINT_RUN, Checkpointer
from .readers import LOCK_WRITERS, DataLock, IndexGrowError, Marks, ReadMark, SharedLog, remove_shm

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
DEFAULT_WAL_LIMIT = 16 * 1024 * 1024
MIN_CACHE_PAGES = 32
_NODE_TYPES = (fmt.PAGE_LEAF, fmt.PAGE_INTERNAL)
#: A durable commit with at least this many new pages (past the committed end
#: of the file) writes them straight into the data file, not the log.
DIRECT_PAGES = 64
#: A bulk build's new pages are written out this many bytes at a time while it runs
#: (see ``_write_back``), and the disk is started on them, so that the commit's sync
#: finds little left to write.
WRITEBACK_BYTES = 4 << 20
#: The newest pages a write-back leaves dirty in the cache: a bulk build still places
#: values in its recent heap pages (best fit), and a page written out and then changed
#: is written twice. On bench/bulk_load.py 88% of stubs land within 2,048 pages.
WRITEBACK_LAG = 2048


class _Poisons:
    """_Poisons is the pager's guard around its writes and syncs: an OSError leaving the block
    poisons the pager (``Pager._poison``) and goes on up, unless it is the shared index's
    ``IndexGrowError`` (raised before the log or the data file is written). A class, not a generator context
    manager: it wraps every commit."""

    __slots__ = ("pager",)

    def __init__(self, pager: "Pager") -> None:
        self.pager = pager

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException], tb: Any) -> None:
        # A shared index that could not grow failed before anything was written: no poison.
        if isinstance(exc, OSError) and not isinstance(exc, IndexGrowError):
            # A sync refused after another thread's failed one: that one is the cause.
            self.pager._poison(exc.first if isinstance(exc, EarlierSyncFailed) else exc)


class _Frame:
    """_Frame is one cached page: its buffer, its SlottedPage view, and state.

    ``base``: while the page is dirty, its image as of its newest log frame (the
    log may then write only what changed since: WAL deltas), or None.
    """

    __slots__ = ("buf", "page", "dirty", "epoch", "base")

    def __init__(self, buf: bytearray, page: SlottedPage, epoch: int) -> None:
        self.buf = buf
        self.page = page
        self.dirty = False
        self.epoch = epoch
        self.base: Optional[bytes] = None


_refcount: Optional[Callable[[object], int]] = getattr(sys, "getrefcount", None)


def _unshared_refcounts() -> Optional[Tuple[int, int]]:
    """_unshared_refcounts: what ``_refcount`` says of a frame's page and buffer that nobody else holds.

    Measured on a sample frame, in the same expression ``_evict`` uses, so
    that it follows the interpreter and cffi (which keeps a reference to a
    buffer it wraps). None where there is no reference count to ask.
    """
    if _refcount is None:  # pragma: no cover - not CPython
        return None
    buf = bytearray(fmt.MIN_PAGE_SIZE)
    f = _Frame(buf, SlottedPage(buf, validate=False), 0)
    del buf
    return _refcount(f.page), _refcount(f.buf)


_UNSHARED = _unshared_refcounts()


class Pager(PagerFiles):
    """Pager owns the data file and its log; see the module docstring."""

    def __init__(
        self,
        path: str,
        *,
        create: bool = True,
        readonly: bool = False,
        page_size: int = 4096,
        cache_size: int = DEFAULT_CACHE_BYTES,
        sync: bool = True,
        wal_limit: int = DEFAULT_WAL_LIMIT,
        opener: fileio.Opener = fileio.open_file,
        mmap: bool = True,
        share_writes: bool = False,
        keep_turn: bool = False,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._opener = opener
        self.sync_default = sync
        self.wal_limit = wal_limit
        self.epoch = 0
        self.cache: "OrderedDict[int, _Frame]" = OrderedDict()
        self.dirty: Dict[int, _Frame] = {}
        # A clean frame the last eviction dropped, kept for the next miss to
        # refill: a fresh bytearray, SlottedPage and _Frame per miss (and
        # freeing the old ones, cold in the CPU cache by then) cost a third
        # of a miss. Only a frame nobody else refers to is kept (see _evict).
        self._spare: Optional[_Frame] = None
        # pages of the open transaction written straight into the data file (see _write_direct)
        self._direct = False
        self._written_back = 0  # see _written_back_to
        self.file: Optional[fileio.File] = None
        self._read_into: Optional[Callable[[int, bytearray], int]] = None
        self.wal: Optional[WAL] = None
        #: the data file's clean pages mapped read-only, and their verified bits (pagemap.py)
        self.pagemap = PageMap(page_size, use=mmap)
        #: pages whose newest image is not the data file's (see the module docstring)
        self.overlaid: Set[int] = set()
        #: ``pagemap.map``, the data file mapped read-only, or None (mmap=False, or nothing to map
        #: yet): the read path's one attribute lookup, kept in step by ``_remap`` and ``_unmap``
        self.map: Optional[_mmap.mmap] = None
        #: what ``_native.fast``'s map calls take (``PageMap.handle``), for the pager's life
        self.fast_map: Any = self.pagemap.handle
        #: the lean calls on the map (``_native.MapCalls``): pages read by number, Python values only
        self.map_calls = self.pagemap.calls
        #: the read marks held (``read_mark``): while there is one, no checkpoint. A list,
        #: so that a snapshot's finalizer releases its mark with one atomic ``remove``.
        self.marks = Marks()
        self.readers: List[ReadMark] = self.marks.live  # the same list
        #: the log's share with readers in other processes (readers.py: the shared index, the
        #: read marks locked there, the read protocol). None without one.
        self.sharing: Optional[SharedLog] = None
        #: a reader beside a writer: each operation reads the writer's latest commit (``begin_operation``)
        self.shared = False
        #: called with the pages a shared reader's new view changed (None: any page may have)
        self.on_change: List[Callable[[Optional[Set[int]]], None]] = []
        #: writer: (log offset, bytes) of the header frame of the last commit, so that the next
        #: commit's header frame may be a delta from it (only while it is still page 0's newest)
        self._logged_header: Optional[Tuple[int, bytes]] = None
        self._data_lock: Optional[DataLock] = None  # LOCK_DMS on the data file, when held
        self._solo_lock: Optional[DataLock] = None  # LOCK_SOLO: a reader without the shared index
        #: the first failed write or sync of the data file or the log (an OSError), or None:
        #: once set, every write raises StorePoisonedError until the store is opened again
        self.poisoned: Optional[BaseException] = None
        self._guard = _Poisons(self)
        #: the log's ``append_count`` a sync must cover for the durable commits that deferred their
        #: sync to the caller (``commit(defer=True)``) since the caller last took it; 0: none
        self.owed = 0
        #: the writer's checkpoints and log restarts (checkpointer.py)
        self.checkpointer = Checkpointer(self, self._guard, self._publish)
        self.cache_pages = self.own_pages = MIN_CACHE_PAGES
        self._made_log = False  # this open created the log file (removed again if the open fails)
        self._free = FreeList(self)  # loaded on first use
        #: the log's append count through which deferred syncs are owed (``_sync_deferred``)
        self._deferred = 0
        #: writers in several processes take turns (issue 26; ``share_writes`` where the locks
        #: exist): a write holds LOCK_WRITE (``try_lock_write`` .. ``end_write``), and between
        #: turns the writer reads as a reader does (``begin_operation``)
        self.turns = False
        self._share_writes = share_writes
        #: ``keep_turn``: the open's turn (LOCK_WRITE, taken for recovery when free) is not let go
        #: at the end of the open if nobody waits for it: the store keeps it (store.py ``_Turns``)
        #: this process holds LOCK_WRITE and has caught up (``begin_write``)
        self.writing = False
        try:
            self._open(path, create, readonly, page_size, opener)
            self.pagemap.set_page_size(self.page_size)
            self._remap()
            self.cache_pages = self.own_pages = max(MIN_CACHE_PAGES, cache_size // self.page_size)
            if self.writing and not (keep_turn and not self.others_wait_write()):
                self.end_write()  # kept (``keep_turn``): the caller keeps the open's turn or ends it
            if self.shared or self.turns:
                self.begin_operation()  # the view the store builds itself on; the store ends it
        except BaseException:
            alone = self._data_lock is None or self._data_lock.try_exclusive()
            if self.sharing is not None and self._data_lock is not None and alone:
                # A failed open leaves no file it made: the index is rebuilt by the next open.
                remove_shm(path)
            made_log = self._made_log
            self._close_files()
            if made_log and alone:
                # A log this open created holds no commit (the log stays otherwise: it may).
                remove_log(path)
            raise

    # ---- the map ----

    def _remap(self) -> None:
        """_remap maps the data file's whole pages anew if it grew past the map (``PageMap.remap``)."""
        if self.file is not None:
            self.map = self.pagemap.remap(self.file, self.page_size)

    def _unmap(self) -> None:
        """_unmap closes the maps (``PageMap.unmap``): the file is closing or about to shrink."""
        self.map = None
        self.pagemap.unmap()

    def _unverify(self, pgno: int) -> None:
        """_unverify clears page ``pgno``'s verified bit: its bytes in the file are about to change."""
        self.pagemap.unverify(pgno)

    @property
    def verified(self) -> bytearray:
        """verified: the map's verified bits (``PageMap.verified``), a bit a page."""
        return self.pagemap.verified

    def _check_map(self) -> None:
        """_check_map verifies the map's bookkeeping: every page whose newest image is not the
        data file's is in ``overlaid``, and the map is the pagemap's and described to C
        (``PageMap.check``); and that the pages pinned by this operation are the tail of the
        cache's LRU order (``_evict`` relies on it). Callers: ``check``."""
        assert self.wal is not None
        # page 0, the header, is never read as a page (the map refuses it)
        missing = (set(self.dirty) | self.wal.pages() | set(self.wal.txn_index)) - self.overlaid - {0}
        if missing:
            raise PageStoreError(f"pager: pages {sorted(missing)[:10]} are newer than the data file but not marked overlaid")
        pinned = [f.epoch == self.epoch for f in self.cache.values()]
        if pinned != sorted(pinned):
            raise PageStoreError("pager: the pages pinned by this operation are not the LRU's tail")
        if self.map is not self.pagemap.map:
            raise PageStoreError("pager: the map read in place is not the pagemap's")
        self.pagemap.check()

    def map_node(self, pgno: int) -> bytes:
        """map_node: a copy of node page ``pgno`` from the map, verified once and checked as a node
        (``PageMap.node``). For a page not in ``overlaid``, while ``map`` is not None.

        Raises:
            CorruptionError: naming ``pgno``.
        """
        return self.pagemap.node(pgno)

    def map_records(self, pgnos: List[int], slots: List[int], page_type: int) -> Tuple[List[int], List[int], List[int]]:
        """map_records: offsets (from the map's start), lengths and states of records ``slots[i]`` of
        pages ``pgnos[i]`` in the map, in one C call (``PageMap.find_records``); page number 0 is
        skipped. For pages not in ``overlaid``, while ``map`` is not None."""
        return self.pagemap.find_records(pgnos, slots, page_type)

    def memory(self) -> Dict[str, int]:
        """memory: the pager's private bytes (its cache) and the bytes of the data file it maps."""
        return {"cache_bytes": len(self.cache) * self.page_size, "mapped_bytes": self.pagemap.mapped_bytes()}

    # ---- writers in several processes: turns on LOCK_WRITE (issue 26) ----

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

        Raises:
            CorruptionError: from reading the other writers' frames; LOCK_WRITE is then the
                caller's to let go.
        """
        assert self.sharing is not None and self.wal is not None and self.turns
        assert not self.dirty and not self.wal.txn_index, "a write turn begins outside a transaction"
        if self.sharing.mark is not None:
            self.sharing.end_read()  # the operation's read mark: from here this process reads the latest
        self.checkpointer.caught_up(self.sharing.catch_up(self.wal, self._follow))
        self.writing = True

    def end_write(self) -> None:
        """end_write lets LOCK_WRITE go: from the next operation on, this process reads as a reader
        beside the other writers. Callers: the store, under its operation lock."""
        self.writing = False
        if self.sharing is not None:
            try:
                self._sync_deferred()
            finally:
                self.sharing.unlock_write()

    def _sync_deferred(self) -> None:
        """_sync_deferred syncs the log through the commits that deferred their sync
        (``commit(defer=True)``), before LOCK_WRITE goes: another writer catches up onto
        what the log holds and builds on it, so every commit it finds must be durable
        (the group commit's own sync, outside the lock, then finds nothing to do). A
        failed sync poisons the pager and is not raised here: the deferred sync's caller
        (``sync(owed)``) raises StorePoisonedError, so none of those commits is acknowledged."""
        upto, self._deferred = self._deferred, 0
        if upto and self.wal is not None and not self.wal.synced_through(upto):
            try:
                self.sync(upto)
            except (OSError, PageStoreError):
                pass

    def wait_write(self, on: bool) -> None:
        """wait_write: this process waits in line for LOCK_WRITE, or no longer (locks.ProcessLock.waiting)."""
        if self.sharing is not None:
            self.sharing.wait_write(on)

    def others_wait_write(self) -> bool:
        """others_wait_write: another process waits in line for LOCK_WRITE."""
        return self.sharing is not None and self.sharing.others_wait_write()

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

    # ---- the cache ----

    def begin_operation(self) -> None:
        """begin_operation unpins the pages of the previous operation. Callers: the store.

        A reader beside a writer (``shared``) also takes a read mark on the writer's
        latest commit, and the log brings itself up to it (``SharedLog.begin_read``),
        then the pager its pages (``_follow``): the operation reads that commit, whole,
        until ``end_operation``.
        """
        self.epoch += 1
        sharing = self.sharing
        if sharing is not None and sharing.mark is None:
            if self.shared:
                sharing.begin_read(self.wal, self._follow)
            elif self.turns and not self.writing:
                # A writer between its turns reads as a reader does (issue 26).
                sharing.begin_read(self.wal, self._follow, writer=True)

    def end_operation(self) -> None:
        """end_operation lets go of the operation's read mark (a reader beside a writer, or a writer
        between its turns); a no-op otherwise. Callers: the store, when its lock is released by
        the outermost holder."""
        if (self.shared or self.turns) and self.sharing is not None:
            self.sharing.end_read()

    def _follow(self, changed: Optional[Set[int]], reset: bool, new_state: bool) -> None:
        """_follow brings this reader's pages (header, cache, map) to the state the log now holds
        (``SharedLog.begin_read``): ``changed`` the pages whose newest frame changed (None: any
        may have), ``reset``: the log's pages taken afresh. Only the changed pages are dropped
        from the caches; a new log generation drops them all."""
        assert self.wal is not None
        wal = self.wal
        if not new_state:
            # The same state, whole in the data file now: read it there. The file has
            # grown by the pages the copy wrote past its old end: map them too.
            self.overlaid = set()
            self._cover(self.meta)
            return
        header = wal.newest_frame(0)
        if header is not None:
            meta = fmt.decode_meta(wal.read_frame(header, 0), self.path)
        else:
            meta = self._read_disk_meta()
        self._check_extent(meta)
        self.meta = meta
        self.committed = meta.copy()
        # A writer catching up: its next header frame is logged whole (the last one it logged
        # is not the newest any more, and in a new log its offset may name another frame).
        self._logged_header = None
        if reset or changed is None:
            self.overlaid = wal.pages()
        else:
            self.overlaid.update(changed)  # O(new frames), not O(log)
        if changed is None:
            self.cache.clear()
            self._spare = None
            self.pagemap.unverify_all()
        else:
            for pgno in changed:
                self.cache.pop(pgno, None)
                self._unverify(pgno)
        self._cover(meta)
        for fn in self.on_change:
            fn(changed)

    def _cover(self, meta: fmt.Meta) -> None:
        """_cover makes the map cover this reader's view: remapped if the file grew (a checkpoint
        copied pages past its old end, or a large commit wrote new pages there), and any page
        it still does not reach is marked ``overlaid``, so that it is read, never looked up
        in the map (where C would report it outside the mapped file)."""
        if not self.pagemap.use:
            return
        ps = self.page_size
        if self.map is None or len(self.map) < meta.page_count * ps:
            self._remap()
        mapped = len(self.map) // ps if self.map is not None else 0
        if mapped < meta.page_count:
            self.overlaid.update(range(mapped, meta.page_count))

    def _load(self, pgno: int) -> bytes:
        assert self.file is not None and self.wal is not None
        off = self.wal.txn_index.get(pgno)
        if off is None:
            off = self.wal.newest_frame(pgno)
        if off is not None:
            return self.wal.read_frame(off, pgno)
        data = self.file.read(pgno * self.page_size, self.page_size)
        if len(data) != self.page_size:
            raise CorruptionError(pgno, "page lies past the end of the data file")
        return data

    def _load_into(self, pgno: int, buf: bytearray) -> None:
        """_load_into is _load writing into a page-sized buffer (straight from the file when it can)."""
        assert self.wal is not None
        read_into = self._read_into
        if read_into is None or pgno in self.wal.txn_index or self.wal.newest_frame(pgno) is not None:
            buf[:] = self._load(pgno)
        elif read_into(pgno * self.page_size, buf) != self.page_size:
            raise CorruptionError(pgno, "page lies past the end of the data file")

    def read_raw(self, pgno: int) -> bytes:
        """read_raw returns the newest committed bytes of page ``pgno`` WITHOUT verifying them.

        For decoders of damaged files (``pagestore inspect --page``) only;
        everything that acts on a page uses ``read``.
        """
        if pgno < 0 or pgno >= self.meta.page_count:
            raise CorruptionError(pgno, f"page {pgno} is outside the file ({self.meta.page_count} pages)")
        if pgno == 0:
            return bytes(self.meta.encode())
        f = self.cache.get(pgno)
        if f is not None and not f.dirty:
            return bytes(f.buf)
        return self._load(pgno)

    def read(self, pgno: int) -> SlottedPage:
        """read returns page ``pgno``, verified. Do not mutate it (use ``write``).

        A cached page costs a dict lookup; a miss reads the log or the file,
        verifies the page and may evict another.

        Raises:
            CorruptionError: bad checksum, wrong stamped number, bad structure,
                or a page number outside the file.
        """
        cache = self.cache
        f = cache.get(pgno)
        if f is not None:
            cache.move_to_end(pgno)
            f.epoch = self.epoch
            return f.page
        if pgno <= 0 or pgno >= self.meta.page_count:
            raise self._outside(pgno)
        f = self._spare
        if f is None:
            buf = bytearray(self._load(pgno))
            page = SlottedPage(buf, validate=False, pgno=pgno)
            f = _Frame(buf, page, self.epoch)
        else:
            self._spare = None
            self._load_into(pgno, f.buf)
            page = f.page
            page.pgno_hint = pgno
            f.epoch = self.epoch
        verified = self.pagemap.verified
        if pgno in self.overlaid or (pgno >> 3) >= len(verified):
            page.verify(pgno)
        elif not verified[pgno >> 3] & (1 << (pgno & 7)):
            # The data file's bytes, which the map shows too: verified once for
            # both. Not a node page, though: a bit also promises the node check,
            # which is the map's (ps_map_check) or the tree's to make.
            page.verify(pgno)
            if page.page_type not in _NODE_TYPES:
                verified[pgno >> 3] |= 1 << (pgno & 7)
        self._insert(pgno, f)
        return page

    def read_passing(self, pgno: int) -> SlottedPage:
        """read_passing is ``read`` for a page read once in passing: one not cached
        already is read into a buffer of its own, verified, and left out of the cache.

        For the overflow pages of a value being read. Each holds a chunk of one
        value and is wanted again only when that value is; through ``read``, a
        scan's overflow pages (several per large value) would push out the heap
        and tree pages that every read shares. The page is the caller's to drop.

        Raises:
            CorruptionError: as ``read``.
        """
        if pgno in self.cache:  # maybe dirty: this transaction's image is the one to see
            return self.read(pgno)
        if pgno <= 0 or pgno >= self.meta.page_count:
            raise self._outside(pgno)
        buf = bytearray(self.page_size)
        self._load_into(pgno, buf)
        page = SlottedPage(buf, validate=False, pgno=pgno)
        page.verify(pgno)
        return page

    def _outside(self, pgno: int) -> CorruptionError:
        return CorruptionError(pgno, f"reference to page {pgno} outside the file ({self.meta.page_count} pages)")

    def write(self, pgno: int) -> SlottedPage:
        """write returns page ``pgno`` marked dirty; its changes go to the log at commit."""
        self.check_writable()
        page = self.read(pgno)
        f = self.cache[pgno]
        if not f.dirty:
            f.dirty = True
            self.dirty[pgno] = f
            self.overlaid.add(pgno)
            wal = self.wal
            # The clean image is the page's newest log frame's, if it has one: kept, so
            # that the commit may log only what changes (a leaf's new key, not its 4 KiB).
            f.base = bytes(f.buf) if wal is not None and (wal.newest_frame(pgno) is not None or pgno in wal.txn_index) else None
        return page

    def lend(self, pages: int) -> None:
        """lend lets the cache hold ``pages`` more than its own ``own_pages``, until the next call.

        The store splits one memory budget between this cache and the tree's
        node cache; the tree lends the part of its share it is not using. A
        smaller loan takes effect at once, as far as pinning allows.
        """
        self.cache_pages = self.own_pages + pages
        if len(self.cache) > self.cache_pages:
            self._evict()

    def _insert(self, pgno: int, f: _Frame) -> None:
        cache = self.cache
        cache[pgno] = f
        if len(cache) > self.cache_pages:
            self._evict()

    def _evict(self) -> None:
        """_evict drops least-recently-used unpinned pages, spilling dirty ones to the log.

        Every touch moves a page to the end of the order and stamps it with
        the current epoch, so the pinned pages are the tail and the head is the
        least recently used page. The common case is a clean, unpinned head:
        drop it with one ``popitem``, and keep it as the spare frame when its
        page and buffer have no holder but the frame (an unpinned page has
        none unless a caller broke the pinning rule; then it is not reused).
        A dirty or pinned head takes the general path, which spills and skips.
        """
        cache = self.cache
        over = len(cache) - self.cache_pages
        epoch = self.epoch
        while over > 0:
            pgno, f = cache.popitem(last=False)
            if f.dirty or f.epoch == epoch:
                cache[pgno] = f
                cache.move_to_end(pgno, last=False)
                break
            over -= 1
            if (
                self._spare is None
                and _refcount is not None
                and (_refcount(f.page), _refcount(f.buf)) == _UNSHARED
            ):
                self._spare = f
        if over <= 0:
            return
        victims: List[int] = []
        end = self.committed.page_count if self.sync_default else 1 << 62
        for pgno, f in cache.items():
            if f.epoch == epoch:
                # Every touch moves a page to the end, so the pinned pages
                # are the tail: none past this one can go. (Skipping them
                # instead made an operation that pins more pages than the
                # cache holds, such as the tree's check, quadratic.)
                break
            if len(victims) >= over and not (f.dirty and pgno >= end and len(victims) < CHECKPOINT_RUN):
                break
            victims.append(pgno)
        # New pages past the committed end go straight into the data file (_spill); a bulk
        # load's leave the cache one at a time, so the run of them at the head goes now,
        # in one write, rather than one pwrite each (bulk_load.py: 0.24 s -> 0.21 s, 50k).
        fresh = sorted(p for p in victims if p >= end and cache[p].dirty)
        with self._guard:
            if len(fresh) > 1:
                self._write_direct(fresh, self.meta.lsn + 1)
            for pgno in victims:
                f = cache[pgno]
                if f.dirty:
                    # Spill before dropping: if the log write fails, the page must
                    # stay cached and dirty so that rollback can find and discard it.
                    self._spill(pgno, f)
                del cache[pgno]

    def _spill(self, pgno: int, f: _Frame) -> None:
        assert self.wal is not None
        txn = self.meta.lsn + 1
        if pgno >= self.committed.page_count and self.sync_default:
            self._write_direct([pgno], txn)
            return
        f.page.lsn = txn
        f.page.set_checksum()
        self.wal.append(pgno, f.buf, txn)
        f.dirty = False
        del self.dirty[pgno]

    def _write_direct(self, pgnos: List[int], txn: int) -> None:
        """_write_direct writes dirty pages past the committed end of the file straight into the data
        file (``pgnos`` ascending; adjacent ones in one write) instead of the log.

        A page past the committed end is outside the file as far as any
        committed header says, so writing it in place is safe before its
        transaction commits: a crash or a rollback leaves bytes no page number
        reaches (the next checkpoint truncates them). The data file is synced
        before the commit frame is written (see ``commit``), so a durable commit
        never names a page that is not on disk. What it saves: the log frame,
        the checkpoint's copy, and reading spilled pages back from the log.
        For bulk loads and large transactions (DIRECT_PAGES); a small commit
        would pay one more sync for it.
        """
        assert self.file is not None
        ps = self.page_size
        run: List[Union[bytes, bytearray]] = []
        start = 0
        for pgno in pgnos:
            f = self.dirty[pgno]
            f.page.lsn = txn
            f.page.set_checksum()
            self._unverify(pgno)  # past the committed end, but the map may still cover it
            if run and (pgno != start + len(run) or len(run) >= CHECKPOINT_RUN):
                self.file.write(start * ps, b"".join(run))
                run = []
            if not run:
                start = pgno
            run.append(f.buf)
        if run:
            self.file.write(start * ps, b"".join(run))
        for pgno in pgnos:
            self.dirty.pop(pgno).dirty = False
        self._direct = True

    # ---- allocation and the free list ----

    def allocate(self, page_type: int) -> SlottedPage:
        """allocate returns an empty, dirty page of ``page_type``: the lowest page of the free list
        (not read: its old bytes are of no use), or a new page at the end of the file."""
        self.check_writable()
        pgno = self._free.take()
        if pgno:
            return self.fresh(pgno, page_type)
        meta = self.meta
        pgno = meta.page_count
        meta.page_count += 1
        buf = bytearray(self.page_size)
        page = SlottedPage(buf, validate=False, pgno=pgno)
        page.init(pgno, page_type)
        f = _Frame(buf, page, self.epoch)
        f.dirty = True
        self.dirty[pgno] = f
        self.overlaid.add(pgno)
        self._insert(pgno, f)
        return page

    def fresh(self, pgno: int, page_type: int) -> SlottedPage:
        """fresh returns page ``pgno`` as an empty, dirty page of ``page_type`` without reading it:
        for a page whose old bytes are of no use (one taken off the free list, a new trunk).
        Callers: ``allocate``, the free list's ``flush``."""
        f = self.cache.get(pgno)
        cached = f is not None
        if f is None:
            buf = bytearray(self.page_size)
            f = _Frame(buf, SlottedPage(buf, validate=False, pgno=pgno), self.epoch)
        else:
            self.cache.move_to_end(pgno)
            f.epoch = self.epoch
        f.page.init(pgno, page_type)
        if not f.dirty:
            f.base = None  # logged whole: the old image is no base worth a delta
            f.dirty = True
            self.dirty[pgno] = f
            self.overlaid.add(pgno)
        if not cached:
            # Last, and dirty already: an eviction that fails here (a spill on a full disk)
            # leaves a dirty frame, which the rollback drops, never a blank clean one.
            self._insert(pgno, f)
        return f.page

    def allocate_run(self, n: int) -> int:
        """allocate_run numbers ``n`` new pages past the end of the file, in one go, for ``write_run``;
        returns the first, or 0 when the pages should come from ``allocate`` instead.

        For a bulk build, whose commit writes its new pages into the data file
        anyway (see ``_write_direct``): the caller builds the pages itself and
        hands them to ``write_run`` in the same operation, with no frame, cache
        entry or eviction per page; until then the pages hold nothing and must
        not be read. 0 when the free list has pages to give first, or the
        store is not durable (new pages then go through the cache and the log).
        O(1).
        """
        self.check_writable()
        meta = self.meta
        # Not the free list's runs: a free page may still be read by a snapshot, or have an
        # older frame in the log that a checkpoint would copy over a direct write.
        if self._free.count() or not self.sync_default:
            return 0
        first = meta.page_count
        meta.page_count += n
        return first

    def write_run(self, first: int, pages: bytearray) -> None:
        """write_run writes the pages ``first``.. numbered by ``allocate_run``, whose images the caller
        built in ``pages``, straight into the data file in one write.

        The pager stamps each with the transaction's number and its checksum,
        as ``_write_direct`` does for spilled new pages; the commit syncs the
        data file before its commit frame. Each WRITEBACK_BYTES of new pages,
        it writes back the older cached ones (``_write_back``).
        """
        assert self.file is not None
        ps = self.page_size
        n = len(pages) // ps
        seal_pages(pages, ps, self.meta.lsn + 1)
        if first < len(self.verified) << 3:
            for pgno in range(first, first + n):
                self._unverify(pgno)  # past the committed end, but the map may still cover it
        self.overlaid.update(range(first, first + n))
        with self._guard:
            self.file.write(first * ps, pages)
            self._direct = True
            if (self.meta.page_count - WRITEBACK_LAG - self._written_back_to()) * ps >= WRITEBACK_BYTES:
                self._write_back()

    def _written_back_to(self) -> int:
        """_written_back_to: the page below which this transaction's new pages are written back
        (``_write_back``); the committed end of the file when none are."""
        end, done = self.committed.page_count, self._written_back
        return done if end <= done <= self.meta.page_count else end

    def _write_back(self) -> None:
        """_write_back writes the cached new pages of a bulk build (past the committed end, not
        pinned), but for the newest WRITEBACK_LAG, straight into the data file, and starts the
        disk on everything new below that line (``File.start_writeback``, a hint).

        The commit must sync the data file whatever it holds; without this, a build of 45 MiB
        (bench/bulk_load.py) left its sync about 25 ms of writing to wait for. The range handed
        to the OS is whole (chains, written by ``write_run``, and the pages written here): on
        ext4, starting the disk on a range with holes made the writes slower and the sync no
        shorter. A page written back and then changed again is dirty again and written again.
        """
        end = self.committed.page_count
        line = self.meta.page_count - WRITEBACK_LAG
        start = self._written_back_to()
        if line <= start:
            return
        epoch = self.epoch
        old = sorted(p for p, f in self.dirty.items() if end <= p < line and f.epoch != epoch)
        if old:
            self._write_direct(old, self.meta.lsn + 1)
        self._written_back = line
        hint = getattr(self.file, "start_writeback", None)
        if hint is not None:
            ps = self.page_size
            hint(start * ps, (line - start) * ps)

    def free(self, pgno: int) -> None:
        """free puts page ``pgno`` on the free list; its contents are gone. The page is not written
        (its cached image, dirty or not, is dropped): only the list's trunks are, at commit.

        Raises:
            CorruptionError: the page is outside the file or on the free list already.
        """
        self.check_writable()
        if pgno <= 0 or pgno >= self.meta.page_count:
            raise CorruptionError(pgno, "freeing a page outside the file")
        self._free.put(pgno)
        self._drop(pgno)

    def free_many(self, pgnos: Iterable[int]) -> None:
        """free_many is ``free`` of every page of ``pgnos`` (distinct), a run of adjacent pages at a time.

        Raises:
            CorruptionError: a page outside the file, or on the free list already.
        """
        self.check_writable()
        pages = sorted(set(pgnos))
        if pages and (pages[0] <= 0 or pages[-1] >= self.meta.page_count):
            bad = pages[0] if pages[0] <= 0 else pages[-1]
            raise CorruptionError(bad, "freeing a page outside the file")
        self._free.put_many(pages)
        for pgno in pages:
            self._drop(pgno)

    def free_all_but(self, keep: Iterable[int]) -> None:
        """free_all_but puts every page of the file but page 0, the free list's own and ``keep`` on
        the free list, without reading, writing or even enumerating them: O(len(keep) + cache).
        For ``Store.clear``; the layers above must forget every page they held."""
        self.check_writable()
        keep_set = set(keep)
        self._free.set_all_but(keep_set, self.meta.page_count)
        keep_set.update(self._free.trunks())
        for pgno in [p for p in self.cache if p not in keep_set]:
            self._drop(pgno)

    def _drop(self, pgno: int) -> None:
        """_drop forgets the cached image of a freed page, dirty or not: it will not be written."""
        f = self.cache.pop(pgno, None)
        if f is not None and f.dirty:
            del self.dirty[pgno]
            f.dirty = False

    def freelist(self) -> Iterator[int]:
        """freelist yields the page numbers the free list owns: its trunk pages, then the free pages ascending.

        Raises:
            CorruptionError: the list is damaged (freelist.py: VALID), naming the page.
        """
        return self._free.pages()

    def free_extents(self) -> List[Tuple[int, int]]:
        """free_extents: the free pages (trunks not included) as ascending ``(first, count)`` runs."""
        return self._free.extents()

    def check(self) -> Dict[str, int]:
        """check verifies the pager's own invariants, the log's (``WAL.check``), the map's
        (``PageMap.check``) and the checkpointer's (``Checkpointer.check``). O(free list + cache).

        The free list is valid (freelist.py) and as long as the header
        says; every cached page lies inside the
        file and carries its own number; every dirty page is cached as dirty.

        Returns:
            ``{"pages", "free_pages", "cached", "dirty", "log_frames"}``.

        Raises:
            CorruptionError: naming the first page found wrong.
        """
        assert self.wal is not None
        free = self._free.check()
        for pgno, f in self.cache.items():
            if not 0 < pgno < self.meta.page_count:
                raise CorruptionError(pgno, f"cached page outside the file ({self.meta.page_count} pages)")
            if f.page.pgno != pgno:
                raise CorruptionError(pgno, f"cached page is stamped with number {f.page.pgno}")
        for pgno, f in self.dirty.items():
            if self.cache.get(pgno) is not f or not f.dirty:
                raise CorruptionError(pgno, "dirty page is not in the cache as dirty")
        log = self.wal.check()
        if not self.readonly:
            # What a delta frame is made against (the clean image, and the last commit's
            # header) must be the page's newest log image, or the log would be rebuilt wrong.
            wal = self.wal
            for pgno, f in self.cache.items():
                off = wal.txn_index.get(pgno, wal.newest_frame(pgno))
                if not f.dirty and off is not None and wal.read_frame(off, pgno) != f.buf:
                    raise CorruptionError(pgno, "cached page differs from its newest image in the log")
            logged = self._logged_header
            if logged is not None and wal.newest_frame(0) == logged[0] and wal.read_frame(logged[0], 0) != logged[1]:
                raise CorruptionError(0, "the last commit's header differs from its image in the log")
        self._check_map()
        self.checkpointer.check()
        return {"pages": self.meta.page_count, "free_pages": free, "cached": len(self.cache),
                "dirty": len(self.dirty), "log_frames": log["frames"]}

    # ---- transactions ----

    def check_writable(self) -> None:
        """check_writable raises ReadOnlyError for a read-only store, StorePoisonedError for a
        poisoned one (``_poison``). Callers: every writing path."""
        if self.readonly:
            raise ReadOnlyError(f"{self.path}: store is open read-only")
        if self.poisoned is not None:
            raise StorePoisonedError(self.path, self.poisoned) from self.poisoned

    def _poison(self, exc: BaseException) -> None:
        """_poison records the first failed write or sync of the data file or the log: from now on
        every write, commit, checkpoint and sync raises StorePoisonedError, and close writes
        nothing. Reads go on, from the state the last good commit left in memory.

        Why not retry: after a failed fsync, Linux marks the pages it could not write
        clean (PostgreSQL's "fsyncgate"): the next fsync succeeds without writing them, so
        a commit acknowledged after it could lie behind a hole in the log, and recovery
        stops at the hole. What is durable is known again only when the files are read
        back from the disk: at the next open.
        """
        if self.poisoned is None:
            self.poisoned = exc

    @property
    def in_transaction(self) -> bool:
        assert self.wal is not None
        return bool(self.dirty) or bool(self.wal.txn_index) or self.meta != self.committed or self._free.changed

    def commit(self, sync: Optional[bool] = None, defer: bool = False) -> bool:
        """commit writes every changed page and then the header to the log as one transaction.

        With ``sync`` (default: the store's setting) the log is synced before
        returning, so the commit survives power loss. Returns False when
        there was nothing to commit. May run a checkpoint afterwards.

        ``defer``: a durable commit leaves its sync to the caller, who calls
        ``sync`` after letting go of the store's lock (group commit, group.py:
        the next group applies while this one's sync runs) and acknowledges
        the commit only when that returns: ``sync(owed)``. If that sync
        fails, the commit stays in memory (later commits may build on it), but
        the pager is poisoned and no commit after the last good sync is ever
        acknowledged: reads see it until the store is reopened, which finds it
        in the log or not, as after a power cut.
        """
        assert self.wal is not None
        if self.poisoned is not None:
            raise StorePoisonedError(self.path, self.poisoned) from self.poisoned
        if not self.in_transaction:
            return False
        self.check_writable()
        if self.turns and not self.writing:
            # Asked of the pager directly, outside the store's write lock (a tool, a test): a
            # turn of its own, without catching up: _check_latest refuses the commit if another
            # writer has committed since this pager's pages were read.
            if not self._lock_write_for(1.0):
                raise StoreLockedError(f"{self.path}: another process held the store's write lock for 1 s")
            self.writing = True
            try:
                return self.commit(sync)  # its sync not deferred: LOCK_WRITE goes at once
            finally:
                self.end_write()
        if self.turns:
            self._check_latest()
        self._free.flush()  # last: every layer above has allocated and freed what it will
        txn = self.meta.lsn + 1
        self.meta.lsn = txn
        durable = self.sync_default if sync is None else sync
        end = self.committed.page_count
        with self._guard:
            if self._direct or (durable and len(self.dirty) >= DIRECT_PAGES):
                fresh = sorted(p for p in self.dirty if p >= end)
                if fresh and (self._direct or len(fresh) >= DIRECT_PAGES):
                    self._write_direct(fresh, txn)
            if self._direct:
                # Before the commit frame: it is what makes the new pages part of the file.
                self.file.sync()  # type: ignore[union-attr]
                self._direct = False
            frames: List[Frame] = []
            dirty = self.dirty
            for pgno in sorted(dirty):
                f = dirty[pgno]
                frames.append((pgno, f.buf, f.base))  # stamped with txn and checksummed by the log (seal)
            # The header frame is a delta from the last commit's, like any page's (a one-key
            # commit changes a few dozen of its bytes): logged whole, it was most of a small
            # commit's log bytes. A reader in another process reads it at each new commit it
            # sees; the log's image cache (IMAGE_CACHE) holds the header it read last, so that
            # costs it one frame when it saw the commit before, and MAX_CHAIN + 1 at most.
            header = bytes(self.meta.encode())
            logged = self._logged_header
            wal = self.wal
            before = logged[1] if logged is not None and wal.newest_frame(0) == logged[0] else None
            frames.append((0, header, before))
            # All or nothing in the log's memory: if the write or the sync fails,
            # the WAL does not go on believing in this commit (its index would
            # serve the new images under the old header), and the caller rolls back.
            # The pager is poisoned then (``_poison``): the log may hold a hole.
            wal.commit(frames, txn, self.meta.page_count, durable=durable and not defer, seal=True)
            if durable and defer:
                self.owed = self._deferred = wal.append_count()
            header_frame = wal.newest_frame(0)
            assert header_frame is not None
            self._logged_header = (header_frame, header)
        for f in self.dirty.values():
            f.dirty = False
            f.base = None
        self.dirty.clear()
        self.committed = self.meta.copy()
        self._free.committed()
        self._publish()
        size = self.wal.size()
        threshold = self.checkpoint_threshold()
        if size > threshold and (size >= self._next_try or self._readers_gone()):
            try:
                self.checkpoint()
            except OSError:
                # The commit is already in the log (durable, if asked). A checkpoint
                # that fails (a full disk growing the data file) changes nothing the
                # log cannot redo; raising here would tell the caller a saved write
                # failed. It has poisoned the pager: the next write raises.
                pass
        return True

    def restart_if_idle(self) -> None:
        """restart_if_idle starts a new log if the last checkpoint copied all of it but readers kept
        it from starting over then (``Checkpointer.restart_if_idle``). Callers: the store, before
        a write changes any page."""
        self.checkpointer.restart_if_idle()

    def _readers_gone(self) -> bool:
        """_readers_gone: whether a checkpoint readers held back may now go to the end (``Checkpointer.readers_gone``)."""
        return self.checkpointer.readers_gone()

    def _publish(self) -> None:
        """_publish shows the log's committed state to readers in other processes (writer; ``SharedLog.publish``)."""
        if self.sharing is not None and self.wal is not None:
            self.sharing.publish(self.wal, self.backfilled)

    def sync(self, upto: int = 0) -> None:
        """sync makes every commit so far durable: the log is synced up to its end (commits made with sync=False too).

        ``upto``: the ``owed`` of commits that deferred their sync (``commit(defer=True)``);
        nothing is done, and nothing raised, if a sync since (another group's, a
        checkpoint's) has made them durable already. Thread-safe: the store's group commit
        calls it outside its lock while another thread commits.

        Raises:
            StorePoisonedError: an earlier write or sync failed (nothing since is known durable).
            OSError: this sync failed (the pager is poisoned from now on).
        """
        wal = self.wal
        if upto and wal is not None and wal.synced_through(upto):
            return
        if self.poisoned is not None:
            raise StorePoisonedError(self.path, self.poisoned) from self.poisoned
        if self.wal is not None:
            try:
                with self._guard:
                    self.wal.sync(upto)
            except OSError as exc:
                # Another thread's sync failed first (the log keeps its error): this
                # sync proves nothing, and the store was poisoned by that one.
                first = self.poisoned
                if first is not None and first is not exc:
                    raise StorePoisonedError(self.path, first) from first
                raise

    def checkpoint_threshold(self) -> int:
        """checkpoint_threshold: log bytes that trigger an automatic checkpoint (``Checkpointer.threshold``)."""
        return self.checkpointer.threshold()

    def rollback(self) -> None:
        """rollback discards every change since the last commit."""
        assert self.wal is not None
        for pgno in self.dirty:
            self.cache.pop(pgno, None)
        # A page spilled to the log and read back is clean in the cache but
        # holds this transaction's image: drop it too.
        for pgno in self.wal.txn_index:
            self.cache.pop(pgno, None)
        self.dirty.clear()
        self.wal.rollback()
        self.overlaid = self.wal.pages()
        self._direct = False  # what it wrote lies past the committed end: nothing reaches it
        self._written_back = 0
        self.meta = self.committed.copy()
        self._free.forget()
        # Pages past the committed end may sit in the cache from an aborted allocation.
        for pgno in [p for p in self.cache if p >= self.meta.page_count]:
            del self.cache[pgno]

    def checkpoint(self, wait: float = 0.0) -> None:
        """checkpoint copies the newest committed image of every logged page into the data file,
        as far as readers allow, and starts a new log generation when it got to the end and
        no reader is reading the log (``Checkpointer.checkpoint``; a reader's is a no-op).

        Raises:
            StorePoisonedError: an earlier write or sync failed.
            PageStoreError: a transaction is open.
            OSError: a write or sync failed (the pager is poisoned from now on).
        """
        if (self.turns and not self.writing and not self.readonly and self.poisoned is None
                and self.wal is not None and self.wal.has_frames()):
            # Called on the pager itself, not through the store's write lock: a turn of its own.
            if not self._take_turn(1.0):
                raise StoreLockedError(f"{self.path}: another process held the store's write lock; no checkpoint")
            try:
                self.checkpointer.checkpoint(wait)
            finally:
                self.end_write()
            return
        self.checkpointer.checkpoint(wait)

    @property
    def backfilled(self) -> int:
        """backfilled: frames of the log, from the first, whose pages the data file holds (writer)."""
        return self.checkpointer.backfilled

    @property
    def _next_try(self) -> int:
        """_next_try: log size at which the next automatic checkpoint is tried (``Checkpointer.next_try``)."""
        return self.checkpointer.next_try

    # ---- what the checkpointer asks of the pager ----

    def cut_tail(self) -> None:
        """cut_tail cuts the data file's tail past the committed end (pages a rolled-back large
        transaction wrote), synced, when this is the only open of the store: another may have
        it mapped. Callers: ``Checkpointer._restart_log``, under the poison guard."""
        assert self.file is not None
        ps = self.page_size
        if self.file.size() > self.meta.page_count * ps and (self._data_lock is None or self._data_lock.alone()):
            self._unmap()  # the file never shrinks under a live map
            self.file.truncate(self.meta.page_count * ps)
            self.file.sync()

    def log_restarted(self, seq: int) -> None:
        """log_restarted: the log is the new, empty generation ``seq``, and every page is the data
        file's. Callers: ``Checkpointer._restart_log``."""
        self.meta.checkpoint_seq = seq
        self.committed = self.meta.copy()
        self.overlaid.clear()

    def remap(self) -> None:
        """remap maps the data file anew if it grew past the map. Callers: ``Checkpointer._restart_log``."""
        self._remap()

    # ---- read marks (snapshots) ----

    def read_mark(self) -> ReadMark:
        """read_mark takes a hold on the last committed state (see ``ReadMark``), which no
        checkpoint disturbs until ``release``. Inside a transaction too: what it holds is
        the last commit, not the open transaction's pages. O(log frames) the first time
        after a commit (the log's index is copied), O(1) after that.
        """
        assert self.wal is not None
        lock = self.sharing.mark if self.sharing is not None else None
        if lock is None and self.turns and self.sharing is not None:
            # A writer in its turn holds no operation mark: the snapshot locks its own, so that
            # the writers after this turn neither copy past nor restart the log it reads.
            lock = self.sharing.hold(self.wal.committed_frames)
        return self.marks.take(self.committed, self.wal, lock)

    def release(self, mark: ReadMark) -> None:
        """release gives up a read mark; the automatic checkpoint runs again once none is held.

        Takes no lock (one atomic list removal): a snapshot's finalizer may call it from
        any thread. Releasing twice is harmless.
        """
        self.checkpointer.try_soon()  # the next commit tries to checkpoint, now that this mark is gone
        self.marks.release(mark)

    def cached_as_of(self, mark: ReadMark, pgno: int) -> Optional[bytearray]:
        """cached_as_of returns the cached, verified buffer of page ``pgno`` if it is the page as
        of ``mark``, else None. The caller copies it at once (the writer may change it next).

        A clean cached page outside the open transaction's frames holds the page's newest
        committed image, and every commit stamps the pages it writes with its LSN: an image
        stamped at or before the mark's commit has not changed since, so it is the mark's.
        (A dirty page, or one the open transaction spilled, is stamped later or not yet.)
        """
        f = self.cache.get(pgno)
        if f is None or f.dirty or self.wal is None or pgno in self.wal.txn_index or pgno >= mark.meta.page_count:
            return None
        return f.buf if f.page.lsn <= mark.meta.lsn else None

    def read_as_of(self, mark: ReadMark, pgno: int) -> bytes:
        """read_as_of returns page ``pgno`` as of ``mark``, NOT verified (the caller verifies):
        its frame among the mark's, else the data file's bytes (the map's when it covers them).

        The caller holds ``mark`` or another mark of the same state (marks share
        their index): this one may have been released since.

        Raises:
            PageStoreError: the pager is closed.
            CorruptionError: the page is outside the mark's file, or its frame is missing.
        """
        if self.wal is None or self.file is None:
            raise PageStoreError(f"{self.path}: store is closed")
        if pgno <= 0 or pgno >= mark.meta.page_count:
            raise CorruptionError(pgno, f"reference to page {pgno} outside the file ({mark.meta.page_count} pages)")
        off = mark.index.get(pgno)
        if off is not None:
            return self.wal.read_frame(off, pgno)
        ps = self.page_size
        mm = self.map
        if mm is not None and (pgno + 1) * ps <= len(mm):
            return mm[pgno * ps : (pgno + 1) * ps]
        data = self.file.read(pgno * ps, ps)
        if len(data) != ps:
            raise CorruptionError(pgno, "page lies past the end of the data file")
        return data

    # ---- replacing the file ----

    def compaction_path(self) -> str:
        """compaction_path returns where a compacted copy of this store is built, beside it,
        with any leftover of an earlier, interrupted compaction removed. Give the finished
        copy to ``adopt``, or to ``discard`` if building it failed."""
        self.check_writable()
        path = storefiles.compaction_path(self.path)
        discard(path)
        return path

    def adopt(self, path: str) -> None:
        """adopt replaces this store's data file with the finished store at ``path`` and goes on
        serving it: the pager object stays, its cache starts empty, its log starts a new
        generation for the new file.

        ``path`` must be a closed, checkpointed store of the same page size
        (its log gone), such as one built at ``compaction_path()``. The
        order keeps a crash harmless: the new file is locked before it is
        renamed over the old one (no other process can slip in between), the
        directory is synced after the rename, and the old log, whose header
        names the old file, counts for nothing once the new file is in place.
        Callers above the pager (the store's ``compact``) must drop what
        they cached of the old file.

        Raises:
            PageStoreError: a transaction is open.
            InvalidFileError, VersionMismatchError: ``path`` is not a store of this page size.
            OSError: the new file cannot be opened, locked or renamed (this store is then unchanged).
        """
        assert self.file is not None and self.wal is not None
        self.check_writable()
        if self.in_transaction:
            raise PageStoreError("adopt inside a transaction")
        if self.readers:
            raise PageStoreError(f"{self.path}: cannot replace the file while {len(self.readers)} snapshots are open")
        if self._data_lock is not None and not self._data_lock.try_exclusive():
            raise PageStoreError(f"{self.path}: cannot replace the file while other processes have the store open")
        try:
            self._adopt(path)
        except BaseException:
            if self._data_lock is not None:
                self._data_lock.share()
            raise
        if self._data_lock is not None:
            # Held exclusively across the rename: an opener that waited meanwhile finds
            # the new file when it looks again (``_shared_possible``). Now the new file's.
            old_lock = self._data_lock
            self._data_lock = DataLock(self.path, write=True, opener=self._opener)
            old_lock.close()
            if self.turns:
                # The new file's locks as an open of it takes them (``_lock_writer``): other
                # writers join it as they joined the old one.
                self._data_lock.hold(LOCK_WRITERS)
                assert self.file is not None
                self.file.lock(exclusive=False)

    def _adopt(self, path: str) -> None:
        assert self.file is not None and self.wal is not None
        self.checkpoint()
        new, meta = storefiles.move_into_place(self._opener, path, self.path, self.page_size)
        self._unmap()  # no view of the old file's map may outlive it
        self.pagemap.forget()
        old, self.file = self.file, new
        self._read_into = getattr(new, "read_into", None)
        old.close()
        self.cache.clear()
        self.dirty.clear()
        self._spare = None
        self.meta = meta
        self.committed = meta.copy()
        self.wal.close()
        self.wal = WAL(log_path(self.path), self.page_size, meta.file_id, opener=self._opener)
        self.wal.recover(meta.checkpoint_seq)  # the old file's log: not this file's, so started afresh
        self.overlaid = self.wal.pages()
        self.marks.forget_last()
        self.checkpointer.forget()
        if self.sharing is not None:
            self.sharing.set_file_id(meta.file_id)
            self.sharing.attach(self.wal)
            self._publish()
        self._remap()

    def create_copy(self, dest: str) -> Tuple[str, fileio.File]:
        """create_copy makes the temporary file, beside ``dest``, that a copy of this store to be
        installed at ``dest`` is written into (a backup: ``snapshot.Backup``), through this pager's
        opener; returns its path and the open file. Give the path to ``storefiles.install_copy``
        when the copy is written and synced, or to ``storefiles.remove_copy``."""
        tmp = storefiles.copy_path(dest)
        return tmp, storefiles.create_copy(tmp, self._opener)

    # ---- sizes and closing ----

    def file_size(self) -> int:
        assert self.file is not None
        return self.file.size()

    def alone(self) -> bool:
        """alone: no other open of this store (in any process) has it open now, as far as the locks tell."""
        return self._data_lock is None or self._data_lock.alone()

    def log_state(self) -> Dict[str, Optional[int]]:
        """log_state: ``log_frames`` (committed frames in the log), ``backfilled_frames`` (how many of
        them the data file holds; a writer's figure, None for a reader) and ``oldest_mark`` (the
        smallest read mark, as a frame count, that another process holds, or None)."""
        wal = self.wal
        frames = wal.committed_frames if wal is not None and wal.is_open() else 0
        oldest = None
        if self.sharing is not None and not self.shared:
            oldest = self.sharing.oldest_mark(frames)
        return {"log_frames": frames, "backfilled_frames": None if self.readonly else self.backfilled,
                "oldest_mark": oldest}

    def log_size(self) -> int:
        """log_size: bytes of the log in use (its header and frames: ``WAL.size``), 0 when closed."""
        return self.wal.size() if self.wal is not None else 0

    def logged_pages(self) -> int:
        """logged_pages: how many pages have a committed frame in the log (their newest image is there)."""
        return len(self.wal.pages()) if self.wal is not None else 0

    def wal_size(self) -> int:
        """wal_size: bytes the log file takes on disk."""
        return self.wal.disk_size() if self.wal is not None else 0

    def bytes_written(self) -> int:
        """bytes_written: bytes written to the data file and the log since they were opened."""
        data = int(getattr(self.file, "written", 0))
        return data + (self.wal.bytes_written() if self.wal is not None else 0)

    def close(self, checkpoint: bool = True) -> None:
        """close checkpoints (unless told not to), removes the emptied log and releases the files.

        A poisoned pager (``_poison``) writes nothing and raises nothing here: it rolls an
        open transaction back in memory and lets go of its files, log and shared index left
        as they are; the next open recovers from them."""
        self.marks.drop_all()
        try:
            if self.wal is not None and self.file is not None and not self.readonly:
                if self.in_transaction:
                    self.rollback()
                if self.turns and not self.writing and checkpoint and self.poisoned is None:
                    # The checkpoint is a write turn: taken if no other writer holds it now
                    # (one that does checkpoints, and the last one out removes the files).
                    checkpoint = self._take_turn(0.05)
                if checkpoint and self.poisoned is None:
                    self.checkpoint()
                    # The log and the shared index go only when the log is empty and no
                    # other process has the store open (one that has keeps reading them).
                    if not self.wal.has_frames() and (self._data_lock is None or self._data_lock.try_exclusive()):
                        self.wal.remove()
                        if self.sharing is not None:
                            remove_shm(self.path)
            elif self.shared and self._data_lock is not None and self._data_lock.try_exclusive():
                remove_shm(self.path)  # the last one out (no writer): the next open rebuilds it
        finally:
            self._close_files()
            self.cache.clear()
            self.dirty.clear()
            self._spare = None

    def _take_turn(self, wait: float) -> bool:
        """_take_turn takes a write turn of the pager's own (the checkpoint at close, or one asked
        of the pager directly), if LOCK_WRITE is free within ``wait`` seconds; False if not (or
        catching up failed: the next writer checkpoints). The caller ends it (``end_write``)."""
        if not self._lock_write_for(wait):
            return False
        try:
            self.begin_write()
        except PageStoreError:
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

    def _close_files(self) -> None:
        self._unmap()
        if self.sharing is not None:
            self.sharing.close()
            self.sharing = None
            self.shared = False
        if self._data_lock is not None:
            self._data_lock.close()
            self._data_lock = None
        if self._solo_lock is not None:
            self._solo_lock.close()
            self._solo_lock = None
        if self.wal is not None:
            self.wal.close()
            self.wal = None
        if self.file is not None:
            self.file.close()
            self.file = None
