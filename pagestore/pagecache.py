"""pagecache: the pager's bounded page cache: pages read by number into it, its pins and eviction, the writes past the log.

``PageCache`` is the part of ``Pager`` (a base class: the same object, its code in a file of
its own, as ``PagerFiles``) that keeps pages in memory: ``read``, a page by number from the
cache, else the log (the open transaction's frames, then the committed ones) or the data
file, verified before anything sees it (``read_passing``: the same, left out of the cache;
``read_raw``: committed bytes, not verified, for decoders of damaged files); ``_Frame``, one cached page; the
budget (``cache_pages``: the pager's own ``own_pages`` plus what the tree's node cache
lends, ``lend``, less what the heap's free-space map holds in memory, ``reserve``); insertion and LRU eviction, which keeps the operation's pinned pages
(the ``epoch``'s, the LRU's tail) and spills a dirty page to the log as an uncommitted
frame (``_spill``); a spare frame reused by the next miss; and the writes of new pages
past the committed end straight into the data file (``_write_direct``, ``write_run``,
``_write_back``), which a durable commit syncs before its commit frame. ``memory`` reports
the cache's bytes. Besides ``read``, the pager's ``write``, ``allocate`` and ``fresh`` fill
the cache; its ``commit``, ``rollback`` and the free list's ``_drop`` empty it.

Cache and pinning: the cache holds at most ``cache_pages`` pages: its own
share of the store's memory, plus what the tree's node cache lends (``lend``). A page
touched during the current operation (the ``epoch``, which the store
advances at the start of each operation) is pinned: the layers above may
hold its SlottedPage until the operation ends. Other pages leave in LRU
order; a dirty one is first spilled to the log as an uncommitted frame, so a
transaction larger than the cache still commits, and memory stays bounded.

The pager's state it uses is declared here and documented in ``Pager.__init__``.
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set, Tuple, Union

from . import fileio
from . import format as fmt
from .checkpointer import CHECKPOINT_RUN
from .errors import CorruptionError
from .page import SlottedPage, seal_pages
from .pagemap import PageMap
from .wal import WAL

if TYPE_CHECKING:
    from .pager import _Poisons

_NODE_TYPES = (fmt.PAGE_LEAF, fmt.PAGE_INTERNAL)
#: The fewest pages ``reserve`` leaves the cache (pager.MIN_CACHE_PAGES: an operation pins a
#: descent's pages and a split's, and the cache must hold them without spilling every touch).
_FLOOR = 32

#: A bulk build's new pages are written out this many bytes at a time while it runs
#: (see ``_write_back``), and the disk is started on them, so that the commit's sync
#: finds little left to write.
WRITEBACK_BYTES = 4 << 20
#: The newest pages a write-back leaves dirty in the cache: a bulk build still places
#: values in its recent heap pages (best fit), and a page written out and then changed
#: is written twice. On bench/bulk_load.py 88% of stubs land within 2,048 pages.
WRITEBACK_LAG = 2048


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



class PageCache:
    """PageCache is the pager's page cache (see the module docstring); ``Pager`` is its one subclass."""

    page_size: int
    epoch: int
    cache: "OrderedDict[int, _Frame]"
    dirty: Dict[int, _Frame]
    _spare: Optional[_Frame]
    _direct: bool
    _written_back: int
    cache_pages: int
    own_pages: int
    _lent: int
    _reserved: int
    sync_default: bool
    file: Optional[fileio.File]
    _read_into: Optional[Callable[[int, bytearray], int]]
    wal: Optional[WAL]
    meta: fmt.Meta
    committed: fmt.Meta
    overlaid: Set[int]
    pagemap: PageMap
    _guard: "_Poisons"

    if TYPE_CHECKING:  # the pager's, for mypy only: at run time a stub here would hide them

        @property
        def verified(self) -> bytearray: ...

        def _unverify(self, pgno: int) -> None: ...

    # ---- reads by number, into the cache ----

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

    # ---- the budget and eviction ----

    def memory(self) -> Dict[str, int]:
        """memory: the pager's private bytes (its cache) and the bytes of the data file it maps."""
        return {"cache_bytes": len(self.cache) * self.page_size, "mapped_bytes": self.pagemap.mapped_bytes()}

    def lend(self, pages: int) -> None:
        """lend lets the cache hold ``pages`` more than its own ``own_pages``, until the next call.

        The store splits one memory budget between this cache and the tree's
        node cache; the tree lends the part of its share it is not using. A
        smaller loan takes effect at once, as far as pinning allows.
        """
        self._lent = pages
        self._budget()

    def reserve(self, pages: int) -> None:
        """reserve takes ``pages`` of the cache's budget for memory held outside it, until the
        next call: the heap's free-space map in memory (one byte a heap page, ``FreeSpaceMap.cat``),
        so that ``cache_size`` bounds it too. The cache keeps at least ``_FLOOR`` pages."""
        self._reserved = pages
        self._budget()

    def _budget(self) -> None:
        self.cache_pages = max(min(self.own_pages, _FLOOR), self.own_pages + self._lent - self._reserved)
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
        # Not a page this transaction spilled to the log (see ``_write_back``).
        in_txn = self.wal.txn_index if self.wal is not None else {}
        fresh = sorted(p for p in victims if p >= end and cache[p].dirty and p not in in_txn)
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
        if pgno >= self.committed.page_count and self.sync_default and pgno not in self.wal.txn_index:
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
        # Not a page this transaction spilled to the log, as in ``Pager.commit``: its spilled
        # frame is part of the commit (the index, recovery's scan) and would stand for the page
        # over the newer image written here. A new page is spilled to the log only on a store not
        # durable by default, which ``allocate_run`` keeps from a bulk build: a guard, tested
        # white-box (test_pager.py).
        assert self.wal is not None
        in_txn = self.wal.txn_index
        old = sorted(p for p, f in self.dirty.items() if end <= p < line and f.epoch != epoch and p not in in_txn)
        if old:
            self._write_direct(old, self.meta.lsn + 1)
        self._written_back = line
        hint = getattr(self.file, "start_writeback", None)
        if hint is not None:
            ps = self.page_size
            hint(start * ps, (line - start) * ps)
