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

``Pager`` is one object whose code lies in four files: this one (the write of
a page, allocation and the free list's glue, commit, sync, rollback, the
poison, the checkpointer's calls, ``check``) and its base classes
``PagerReads`` (pagerreads.py: the map's glue, reads as of a read mark, a
reader's view of the writer's commits, the log's figures), ``PageCache``
(pagecache.py: the reads by number into the cache, its budget, eviction and
spills, the writes of new pages straight into the data file) and
``PagerFiles`` (pagerfiles.py: opening, adopting a compacted copy, closing).

Cache and pinning (pagecache.py), mapped reads and read marks (pagerreads.py): see
those modules. A page touched during the current operation (the ``epoch``) is pinned;
``overlaid`` holds the pages the data file's map must not serve.

Free-page list (``freelist.FreeList``): extents of free pages listed in a
few trunk pages, headed by ``meta.freelist_head``. Freeing a page writes
nothing but the list in memory; the commit writes the trunks that changed.
A page taken off the list is handed out fresh, never read.

Checkpoints: the writer's ``Checkpointer`` (checkpointer.py) copies the log
into the data file and restarts the log; ``checkpoint`` and ``restart_if_idle``
call it, and it changes the pager only through ``cut_tail``,
``log_restarted`` and ``remap``.

Failures: a write or sync of the data file or the log that fails poisons the
pager (``_poison``, PostgreSQL's PANIC on a failed fsync): the call that ran
into it raises the OSError, and every later write, commit, checkpoint and sync
raises StorePoisonedError until the store is opened again. Memory stays as the
last good commit left it (a failed commit is undone in the log's memory and
rolled back by the caller), so reads go on; close writes nothing; the next
open recovers from what is durable. (A checkpoint that fails after a commit
does not fail the commit: it is in the log; the next write raises.)

Files: the pager owns the data file's lifecycle (create, lock, replace by a
compacted copy: ``adopt``, close) and asks the log for its own (``wal.log_path``
names it, ``WAL.remove`` deletes it). Opening (the data file's locks, the log's
recovery, a reader's seat beside a writer), ``adopt`` and ``close`` are
``PagerFiles``' (pagerfiles.py); the work on whole files (a compacted copy moved into
place or discarded, a backup's copy, the side files of a failed open) is
storefiles.py's. Nothing above the pager renames or unlinks a store's files.
"""
from __future__ import annotations

import mmap as _mmap
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from . import fileio
from . import format as fmt
from .errors import (CorruptionError, DurabilityUnknownError, PageStoreError, ReadOnlyError, StoreLockedError,
                     StorePoisonedError)
from .freelist import FreeList
from .page import SlottedPage
from .pagemap import PageMap
from .pagecache import PageCache, _Frame
from .pagerfiles import PagerFiles
from .pagerreads import PagerReads
from .pagerturns import PagerTurns
# What the store calls to remove a store's files: importable from the pager, as before.
from .storefiles import discard as discard, files_path, side_file_undo as side_file_undo
from .interrupts import run_through
from .wal import KEEP_BYTES, WAL, EarlierSyncFailed, Frame, remove_log
from .checkpointer import Checkpointer
from .readers import DataLock, IndexGrowError, Marks, ReadMark, SharedLog, remove_shm

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
DEFAULT_WAL_LIMIT = 32 * 1024 * 1024
MIN_CACHE_PAGES = 32
#: A durable commit with at least this many new pages (past the committed end
#: of the file) writes them straight into the data file, not the log.
DIRECT_PAGES = 64


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


class Pager(PagerTurns, PagerReads, PageCache, PagerFiles):
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
        timeout: Optional[float] = 5.0,
    ) -> None:
        path = files_path(path)  # a symbolic link's target names the log and the shared index
        self.path = path
        self.timeout = timeout
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
        # The argument may be any int here: an existing file's header overrides it, a new file
        # refuses an invalid one (_open); the map's C struct holds 32 bits until then.
        self.pagemap = PageMap(page_size if fmt.is_valid_page_size(page_size) else fmt.MIN_PAGE_SIZE, use=mmap)
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
        self._logged_header: Optional[Tuple[int, "bytes | bytearray"]] = None
        self._data_lock: Optional[DataLock] = None  # LOCK_DMS on the data file, when held
        self._solo_lock: Optional[DataLock] = None  # LOCK_SOLO: a reader without the shared index
        #: the first failed write or sync of the data file or the log (an OSError), or None:
        #: once set, every write raises StorePoisonedError until the store is opened again
        self.poisoned: Optional[BaseException] = None
        self._guard = _Poisons(self)
        #: the log's ``append_count`` after the last durable commit that deferred its sync to the
        #: caller (``commit(defer=True)``), 0 if none: a sync through it (``synced_through``) pays
        #: every deferred commit. The group commit's syncs (group.py) and the sync before another
        #: process's writer may take the turn (``_sync_deferred``) both go by it.
        self.owed = 0
        #: the writer's checkpoints and log restarts (checkpointer.py)
        self.checkpointer = Checkpointer(self, self._guard, self._publish)
        self.cache_pages = self.own_pages = MIN_CACHE_PAGES
        self._lent = self._reserved = 0  # the cache's budget: ``lend``, ``reserve`` (pagecache.py)
        self._made_log = False  # this open created the log file (removed again if the open fails)
        self._free = FreeList(self)  # loaded on first use
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
            self.own_pages = max(MIN_CACHE_PAGES, cache_size // self.page_size)
            self._budget()
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

    # ---- the map's bookkeeping ----

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

    # ---- writes ----

    def write(self, pgno: int) -> SlottedPage:
        """write returns page ``pgno`` marked dirty; its changes go to the log at commit."""
        f = self.cache.get(pgno)
        if f is None or self.poisoned is not None or self.readonly:
            self.check_writable()
            page = self.read(pgno)
            f = self.cache[pgno]
        else:
            # cached: the touch ``read`` makes, inline (a transaction writes its heap page and
            # its leaves again and again: this was two calls and three lookups a record)
            self.cache.move_to_end(pgno)
            f.epoch = self.epoch
            page = f.page
        if not f.dirty:
            f.dirty = True
            self.dirty[pgno] = f
            self.overlaid.add(pgno)
            wal = self.wal
            # The clean image is the page's newest log frame's, if it has one: kept, so
            # that the commit may log only what changes (a leaf's new key, not its 4 KiB).
            # (``wal.newest_frame`` inline: a call per dirty page of every commit)
            f.base = bytes(f.buf) if wal is not None and (pgno in wal.index or pgno in wal.txn_index) else None
        return page

    def write_image(self, pgno: int, image: bytes) -> SlottedPage:
        """write_image is ``write`` for a caller that holds the page's newest content as ``bytes``,
        checked (the node cache's raw form of a leaf, which every change to the leaf replaces),
        but maybe not its newest LSN and checksum, which a commit stamps into the frame after
        the caller took its copy. A page neither cached nor in the log is made from it: no
        read of the data file, no checksum to verify, and nothing is lost, since it is logged
        whole, and stamped anew, at commit. Any other page goes the way of ``write`` (a delta
        needs the exact image of the page's newest frame as its base).

        Callers: the tree, changing a leaf in place (issue 23: a churn's deletes missed the
        page cache for most leaves, and each miss read, checked and copied 4 KiB).
        """
        f = self.cache.get(pgno)
        if f is not None:
            if f.dirty and self.poisoned is None:  # ``write``'s touch of a dirty page, inline
                self.cache.move_to_end(pgno)
                f.epoch = self.epoch
                return f.page
            return self.write(pgno)
        wal = self.wal
        if wal is None or pgno in wal.txn_index or pgno in wal.index:  # ``newest_frame``, inline
            return self.write(pgno)
        self.check_writable()
        if pgno <= 0 or pgno >= self.meta.page_count or len(image) != self.page_size:
            raise self._outside(pgno)
        buf = bytearray(image)
        f = _Frame(buf, SlottedPage(buf, validate=False, pgno=pgno), self.epoch)
        f.dirty = True  # f.base stays None: logged whole
        self.dirty[pgno] = f
        self.overlaid.add(pgno)
        # Last, and dirty already (as ``fresh``): an eviction that fails here leaves a dirty
        # frame, which the rollback drops, never a clean one that no commit wrote.
        self._insert(pgno, f)
        return f.page

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
        wal = self.wal
        assert wal is not None
        if self.poisoned is not None:
            raise StorePoisonedError(self.path, self.poisoned) from self.poisoned
        if not (self.dirty or wal.txn_index or self.meta != self.committed or self._free.changed):
            return False  # nothing to commit (``in_transaction``)
        if self.readonly:
            self.check_writable()  # raises ReadOnlyError
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
        logged_before = wal.committed_frames
        try:
            try:  # ``with self._guard:`` without its two calls on every commit
                if self._direct or (durable and len(self.dirty) >= DIRECT_PAGES):
                    # Not a page this transaction spilled to the log (a store whose writes are
                    # not durable by default spills new pages there, ``_spill``): its spilled frame
                    # is part of this commit, in the index and in recovery's scan, and would
                    # stand for the page over the newer image written into the data file.
                    in_txn = wal.txn_index
                    fresh = sorted(p for p in self.dirty if p >= end and p not in in_txn)
                    if fresh and (self._direct or len(fresh) >= DIRECT_PAGES):
                        self._write_direct(fresh, txn)
                direct = self._direct
                if direct:
                    # Before the commit frame: it is what makes the new pages part of the file.
                    self.file.sync()  # type: ignore[union-attr]
                    self._direct = False
                # stamped with txn and checksummed by the log (seal); page numbers are unique, so the
                # sort never compares two frames
                frames: List[Frame] = []
                for pgno, f in sorted(self.dirty.items()):  # a loop, not a comprehension: a call fewer
                    frames.append((pgno, f.buf, f.base))
                # The header frame is a delta from the last commit's, like any page's (a one-key
                # commit changes a few dozen of its bytes): logged whole, it was most of a small
                # commit's log bytes. A reader in another process reads it at each new commit it
                # sees; the log's image cache (IMAGE_CACHE) holds the header it read last, so that
                # costs it one frame when it saw the commit before, and MAX_CHAIN + 1 at most.
                header = self.meta.encode()  # a new bytearray, never changed after: no copy
                logged = self._logged_header
                before = logged[1] if logged is not None and wal.index.get(0) == logged[0] else None  # ``newest_frame``
                frames.append((0, header, before))
                # All or nothing in the log's memory: if the write or the sync fails,
                # the WAL does not go on believing in this commit (its index would
                # serve the new images under the old header), and the caller rolls back.
                # The pager is poisoned then (``_poison``): the log may hold a hole.
                wal.commit(frames, txn, self.meta.page_count, durable=durable and not defer, seal=True)
            except OSError as exc:
                self._guard.__exit__(type(exc), exc, None)  # poisons the pager (not for IndexGrowError)
                raise
            self._committed(wal, durable and defer, end, header, direct)
        except BaseException as exc:
            if (isinstance(exc, Exception) and not isinstance(exc, DurabilityUnknownError)
                    or wal.committed_frames == logged_before):
                raise  # not in the log (``WAL.commit`` is all or nothing): the caller rolls back
            # DurabilityUnknownError: the log kept the commit (its sync waited past the timeout for
            # another process's: ``WAL._sync_round``), so it is made here as after a Ctrl-C.
            # A Ctrl-C once the log held the commit (as ``WAL.commit`` returned, or in the
            # publication): the commit is made, in memory, in the shared index and in the log,
            # whatever the caller is told (an interrupt: the outcome unknown to it, as with
            # sqlite3). Half done, the log held it and the shared index did not, and every later
            # commit was refused ("not the latest one published") until a reopen.
            try:
                self._committed(wal, durable and defer, end, header, direct)
            except KeyboardInterrupt:  # a second one, at its start too
                run_through(lambda: self._committed(wal, durable and defer, end, header, direct))
                raise
            raise
        size = wal.end  # ``wal.size()``: the log is open (it took this commit)
        # The threshold is at least the smaller of KEEP_BYTES and ``wal_limit`` (``Checkpointer.threshold``):
        # below both, the common case, no call to work it out
        if ((size > KEEP_BYTES or size > self.wal_limit) and size > self.checkpointer.threshold()
                and (size >= self._next_try or self._readers_gone())):
            try:
                self.checkpoint()
            except (OSError, DurabilityUnknownError, StoreLockedError):
                # The commit is already in the log (durable, if asked). A checkpoint
                # that fails (a full disk growing the data file) changes nothing the
                # log cannot redo; raising here would tell the caller a saved write
                # failed. It has poisoned the pager: the next write raises. Its log sync
                # timed out waiting for another process's (DurabilityUnknownError): no
                # checkpoint now; this commit's own sync, if owed, says so to its caller.
                # Its log restart did (StoreLockedError, before the new header was
                # written): the old log goes on, the next checkpoint starts it over.
                pass
        return True

    def _committed(self, wal: WAL, owes: bool, end: int, header: bytearray, direct: bool) -> None:
        """_committed is a commit's bookkeeping once the log holds it: the sync it owes (``owes``:
        deferred), the header frame the next commit's is a delta from, the pages clean, the
        committed state, the map over pages written directly past the old end ``end``, the free
        list, and the publication to other processes. Idempotent: an interrupt cutting it
        short runs it again (``commit``). Callers: ``commit``."""
        if owes:
            self.owed = wal._appends  # ``wal.append_count()``
        header_frame = wal.index.get(0)  # ``newest_frame``, inline
        assert header_frame is not None
        self._logged_header = (header_frame, header)
        for f in self.dirty.values():
            f.dirty = False
            f.base = None
        self.dirty.clear()
        self.committed = self.meta.copy()
        if direct:
            self._map_direct(end)  # the pages written straight into the file: read in the map now
        self._free.committed()
        self._publish()  # a call of its own: tests kill a writer there (test_multiproc.py)

    def restart_if_idle(self) -> None:
        """restart_if_idle starts a new log if the last checkpoint copied all of it but readers kept
        it from starting over then (``Checkpointer.restart_if_idle``). Callers: the store, before
        a write changes any page."""
        self.checkpointer.restart_if_idle()

    def _readers_gone(self) -> bool:
        """_readers_gone: whether a checkpoint readers held back may now go to the end (``Checkpointer.readers_gone``)."""
        return self.checkpointer.readers_gone()

    def _publish(self) -> None:
        """_publish shows the log's committed state to readers in other processes (writer; ``SharedLog.publish``,
        inline: two calls fewer a commit)."""
        sharing, wal = self.sharing, self.wal
        if sharing is not None and wal is not None:
            sharing.index.publish(wal.generation, wal.salt, wal.committed_frames, self.checkpointer.backfilled)

    def synced_through(self, upto: int) -> bool:
        """synced_through: whether a sync has made durable the commits up to ``upto`` (an ``owed``)."""
        return self.wal is None or self.wal.synced_through(upto)

    def sync(self, upto: int = 0, begun: Optional[Callable[[], None]] = None) -> None:
        """sync makes every commit so far durable: the log is synced up to its end (commits made with sync=False too).

        ``upto``: the ``owed`` of commits that deferred their sync (``commit(defer=True)``);
        nothing is done, and nothing raised, if a sync since (another group's, a
        checkpoint's) has made them durable already. Thread-safe: the store's group commit
        calls it outside its lock while another thread commits. ``begun``: called right before
        the disk's sync, if one runs (``WAL.sync``).

        Raises:
            StorePoisonedError: an earlier write or sync failed (nothing since is known durable).
            OSError: this sync failed (the pager is poisoned from now on).
        """
        wal = self.wal
        if upto and wal is not None and wal._synced_appends >= upto:  # ``wal.synced_through(upto)``
            return
        if self.poisoned is not None:
            raise StorePoisonedError(self.path, self.poisoned) from self.poisoned
        if wal is not None:
            try:
                wal.sync(upto, begun)
            except OSError as exc:
                self._poison(exc.first if isinstance(exc, EarlierSyncFailed) else exc)  # as ``_guard`` does
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
        # Pages an earlier commit wrote past the map's end (``_write_direct``) are overlaid until
        # the next remap; the log's pages alone forgot them, and the map refused them as outside
        # the mapped file (a full disk's rollback, then ``check``). Covered again here.
        self._cover(self.meta)
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
