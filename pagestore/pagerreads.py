"""pagerreads: the pager's reads as of a read mark, a reader's view of the writer's commits, the log's state.

``PagerReads`` is the part of ``Pager`` (a base class: the same object, its code in a file
of its own, as ``PagerFiles``) that reads the store as of a commit other than the pager's
own: the read marks of this process (``read_mark``, ``release``: ``readers.Marks``) and the
pages as of one (``cached_as_of``, ``read_as_of``: ``snapshot.SnapshotPager`` verifies
them); a reader beside a writer, whose every operation reads the writer's latest commit
(``begin_operation`` takes a mark through ``SharedLog.begin_read``, which calls back
``_follow`` with the pages that changed; ``end_operation``); the map kept over the view
(``_cover``); and the log's figures the store reports (``log_state``, ``log_size``,
``logged_pages``, ``wal_size``). It calls the log and ``SharedLog``; it never assigns their state.

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
file (``_remap``), or a commit that wrote new pages straight into it
(``_map_direct``, which then lets the map serve those pages), and unmaps
before anything could shrink it (``_unmap``).

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

The pager's state it uses is declared here and documented in ``Pager.__init__``.
"""
from __future__ import annotations

import mmap as _mmap
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set, Tuple

from . import fileio
from . import format as fmt
from .checkpointer import Checkpointer
from .errors import CorruptionError, PageStoreError
from .pagemap import PageMap
from .readers import Marks, ReadMark, SharedLog
from .wal import WAL

if TYPE_CHECKING:
    from .pagecache import _Frame


class PagerReads:
    """PagerReads is the pager's reads as of a mark (see the module docstring); ``Pager`` is its one subclass."""

    path: str
    readonly: bool
    page_size: int
    epoch: int
    file: Optional[fileio.File]
    wal: Optional[WAL]
    meta: fmt.Meta
    committed: fmt.Meta
    overlaid: Set[int]
    cache: "OrderedDict[int, _Frame]"
    _spare: Optional["_Frame"]
    pagemap: PageMap
    map: Optional[_mmap.mmap]
    marks: Marks
    sharing: Optional[SharedLog]
    shared: bool
    turns: bool
    writing: bool
    _logged_header: Optional[Tuple[int, "bytes | bytearray"]]
    dirty: Dict[int, "_Frame"]
    on_change: List[Callable[[Optional[Set[int]]], None]]
    checkpointer: Checkpointer

    if TYPE_CHECKING:  # the pager's and PagerFiles', for mypy only: at run time a stub here would hide them

        @property
        def backfilled(self) -> int: ...

        def _read_disk_meta(self) -> fmt.Meta: ...

        def _check_extent(self, meta: fmt.Meta) -> int: ...

    # ---- the map: pages read in place ----

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

    # ---- a reader beside a writer: each operation reads the writer's latest commit ----

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
            # The header frame this writer logged or read last, brought up to the newest by the
            # frames its catch-up took (``WAL.advance``): no read down the header's chain.
            logged = self._logged_header
            image: Optional[bytes] = None
            if logged is not None and not reset:
                if logged[0] == header:
                    image = bytes(logged[1])
                else:
                    newest = bytearray(logged[1])
                    if wal.advance(0, newest, logged[0]):
                        image = bytes(newest)
            if image is None:
                image = wal.read_frame(header, 0)
            meta = fmt.decode_meta(image, self.path)
            # A writer catching up: its next header frame is a delta from the newest one, read
            # here (the one it logged last is not the newest any more, and in a new log its
            # offset may name another frame). Logged whole after every catch-up instead, the
            # header was most of a one-put commit's log bytes: 8.6 KB a commit for 4 processes
            # taking turns against 4.9 KB for one alone (a whole frame every MAX_CHAIN + 1).
            self._logged_header = (header, image) if len(image) == self.page_size else None
        else:
            meta = self._read_disk_meta()
            self._logged_header = None
        size = self._check_extent(meta)
        self.meta = meta
        self.committed = meta.copy()
        if reset or changed is None:
            self.overlaid = wal.pages()
        else:
            self.overlaid.update(changed)  # O(new frames), not O(log)
        if changed is None:
            self.cache.clear()
            self._spare = None
            self.pagemap.unverify_all()
        elif changed:
            # One pass, the verified bits cleared inline (``PageMap.unverify``): a writer taking
            # turns drops a few pages at every turn. A clean cached page is the image of its
            # newest frame before the catch-up (``write``'s base relies on it too): brought up
            # to date from the frames the catch-up took (``WAL.advance``) and verified, it stays
            # (the free-space map's page and the shared heap page, changed at every commit of
            # every writer, were read again through their chains of deltas at every turn).
            cache, verified = self.cache, self.pagemap.verified
            advance = wal.advance if not reset else None
            bits = len(verified)
            for pgno in changed:
                f = cache.get(pgno)
                if f is not None:
                    if advance is not None and not f.dirty and advance(pgno, f.buf):
                        try:
                            f.page.verify(pgno)
                        except CorruptionError:
                            del cache[pgno]
                    else:
                        del cache[pgno]
                if pgno >> 3 < bits:
                    verified[pgno >> 3] &= ~(1 << (pgno & 7)) & 0xFF
        self._cover(meta, size)
        for fn in self.on_change:
            fn(changed)

    def _cover(self, meta: fmt.Meta, size: Optional[int] = None) -> None:
        """_cover makes the map cover this reader's view (or the writer's, after ``rollback``):
        remapped if the file grew (a checkpoint copied pages past its old end, or a large
        commit wrote new pages there), and any page it still does not reach is marked
        ``overlaid``, so that it is read, never looked up in the map (where C would report it
        outside the mapped file)."""
        if not self.pagemap.use:
            return
        ps = self.page_size
        if self.map is None or len(self.map) < meta.page_count * ps:
            # ``size``: the file's, just read (``_check_extent``). Not grown past the map, it
            # is not read again: while new pages wait in the log for a checkpoint, a writer
            # taking turns would read it twice a turn.
            if size is None or self.map is None or len(self.map) != size // ps * ps:
                self._remap()
        mapped = len(self.map) // ps if self.map is not None else 0
        if mapped < meta.page_count:
            self.overlaid.update(range(mapped, meta.page_count))

    def _map_direct(self, start: int) -> None:
        """_map_direct lets the map serve the pages the last commit wrote straight into the data
        file past its old end ``start`` (``_write_direct``, ``write_run``): they were marked
        ``overlaid`` when allocated, and nothing dropped the mark until the next checkpoint, so
        that right after a bulk load every read of them (5,300 of 46,000 pages after
        compare.py's 200,000 records) went through the pager (a pread, a verification, a
        cache slot) instead of the map. Remapped first if the file grew past the map. A page
        with a log frame, dirty or in the open transaction stays overlaid; the map verifies
        each of the others at its first read (``_write_direct`` cleared its bit). Caller: the
        writer's ``commit``, once the commit is in the log, when it wrote pages directly.
        O(pages added by the commit)."""
        if not self.pagemap.use or self.wal is None:
            return
        ps = self.page_size
        end = self.meta.page_count
        if self.map is None or len(self.map) < end * ps:
            try:
                self._remap()
            except OSError:
                # The commit is made and must not be reported failed: no map then (every
                # page through the pager) until the next remap, as after ``_unmap``.
                self._unmap()
                return
        if self.map is None:
            return
        wal, overlaid, dirty = self.wal, self.overlaid, self.dirty
        for pgno in range(max(start, 1), min(end, len(self.map) // ps)):
            if pgno in overlaid and pgno not in dirty and pgno not in wal.txn_index and wal.newest_frame(pgno) is None:
                overlaid.discard(pgno)

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

    def reads_as_of(self, mark: ReadMark) -> bool:
        """reads_as_of: whether this pager's own reads (its cache, its map, and the tree and heap
        over them) read exactly the state ``mark`` holds now: no commit since the mark (the log's
        committed end and generation are the mark's) and nothing uncommitted (no dirty page, no
        frame the open transaction spilled). O(1). Callers: the store's scans, which then read
        through the store's own tree and heap, whose caches are warm, instead of a snapshot's.
        The tree may hold changes not yet built into pages (``BTree.changed``): the caller asks it too.
        """
        wal = self.wal
        return (wal is not None and not self.dirty and not wal.txn_index and mark.log_end == wal.committed_end
                and mark.generation == wal.generation and mark.live)

    def reads_committed(self) -> bool:
        """reads_committed: whether this pager's own reads read its last commit, whole: nothing
        uncommitted (no dirty page, no frame the open transaction spilled). O(1). Callers: the
        store's short scans, which then read every entry under one hold of the store's lock
        through the store's own tree and heap, with no snapshot (``reads_as_of`` without a
        mark). The tree may hold changes not yet built into pages: the caller asks it too."""
        wal = self.wal
        return wal is not None and not self.dirty and not wal.txn_index

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

    # ---- the log's figures ----

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

    def log_syncs(self) -> int:
        """log_syncs: syncs of the log this open has made, 0 when closed (for tests and bench)."""
        return self.wal.syncs if self.wal is not None else 0

    def log_size(self) -> int:
        """log_size: bytes of the log in use (its header and frames: ``WAL.size``), 0 when closed."""
        return self.wal.size() if self.wal is not None else 0

    def logged_pages(self) -> int:
        """logged_pages: how many pages have a committed frame in the log (their newest image is there)."""
        return len(self.wal.pages()) if self.wal is not None else 0

    def wal_size(self) -> int:
        """wal_size: bytes the log file takes on disk."""
        return self.wal.disk_size() if self.wal is not None else 0
