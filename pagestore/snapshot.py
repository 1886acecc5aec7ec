"""snapshot: the read side of the pager, as of one commit (a ``pager.ReadMark``).

A ``SnapshotPager`` serves the pages of one committed state of the store to
a read-only B+tree and heap built over it (the store's ``Snapshot``, and
every iteration, which runs on one). A page comes from:

    the mark's index      the page's newest log frame at or before the mark
    else the data file    in place in the pager's map (``map``, ``fast_map``,
                          ``map_node``, ``map_records``),
                          or read (``Pager.read_as_of``)

and never through the writer's cache, whose pages may be newer than the mark
(or not committed at all): only a copy of a cached page whose LSN proves it
is the mark's image (``Pager.cached_as_of``). This is sound because nothing changes either
source under a held mark: the pager does not checkpoint while one is held
(so no data-file page below the mark's page count is rewritten, and the
log is not restarted), a commit only appends frames past the mark's, and a
large commit writes its new pages into the data file only past the
committed end, which no older mark reaches.

``overlaid`` (what the tree and heap must not read in the map) is the mark's
logged pages, plus any page the map does not cover yet (written into the
file by a large commit since the last checkpoint). Pages read here are
verified and kept in a small LRU of their own; a page is never reused while
someone holds it, so there is no pinning.

Callers: the store's snapshots (one SnapshotPager per committed state, shared
by the snapshots taken at it, used under the store's lock), and ``backup``.
"""
from __future__ import annotations

import mmap as _mmap
import os
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Set, Tuple

from . import fileio
from .errors import ReadOnlyError
from .page import SlottedPage
from .pager import Pager
from .storefiles import install_copy, remove_copy
from .readers import ReadMark, shm_path
from .wal import log_path

#: Pages a SnapshotPager caches (pages read from the log or without the map).
SNAPSHOT_CACHE_PAGES = 64
#: backup copies this many pages per write (and per hold of the caller's lock).
BACKUP_RUN = 64


class SnapshotPager:
    """SnapshotPager: pages as of one read mark, for a read-only BTree and Heap (see the module docstring).

    Implements the read side of ``nodecache.TreePager`` and ``heap.HeapPager``;
    the writing calls raise ``ReadOnlyError``.
    """

    def __init__(self, pager: Pager, mark: ReadMark, cache_pages: Optional[int] = None) -> None:
        self._pager = pager
        self.mark = mark
        self.page_size = pager.page_size
        self.meta = mark.meta
        self.epoch = 0
        # The map and its C description are the pager's: the data file does
        # not change below the mark while it is held (see the module docstring).
        self.map: Optional[_mmap.mmap] = pager.map
        self.fast_map: Any = pager.fast_map
        self.map_calls = pager.map_calls
        self.overlaid: Set[int] = set(mark.index)
        if self.map is not None:
            mapped = len(self.map) // self.page_size
            if mapped < self.meta.page_count:
                self.overlaid.update(range(mapped, self.meta.page_count))
        self.cache_pages = max(1, SNAPSHOT_CACHE_PAGES if cache_pages is None else cache_pages)
        self.cache: "OrderedDict[int, SlottedPage]" = OrderedDict()

    def map_node(self, pgno: int) -> bytes:
        """map_node: ``Pager.map_node``, the pager's map being this mark's below its page count."""
        return self._pager.map_node(pgno)

    def map_records(self, pgnos: List[int], slots: List[int], page_type: int) -> Tuple[List[int], List[int], List[int]]:
        """map_records: ``Pager.map_records`` (offsets from the map's start: the same in ``map``)."""
        return self._pager.map_records(pgnos, slots, page_type)

    def serves(self, mark: ReadMark) -> bool:
        """serves: ``mark`` holds the committed state this pager reads (marks share their index)."""
        return mark.index is self.mark.index

    def begin_operation(self) -> None:
        self.epoch += 1

    def _fetch(self, pgno: int) -> SlottedPage:
        """_fetch reads page ``pgno`` as of the mark, verified: a copy of the writer's cached page
        when that is provably the mark's image (``Pager.cached_as_of``), else from the log or file."""
        image = self._pager.cached_as_of(self.mark, pgno)
        if image is not None:
            return SlottedPage(bytearray(image), validate=False, pgno=pgno)
        page = SlottedPage(bytearray(self._pager.read_as_of(self.mark, pgno)), validate=False, pgno=pgno)
        page.verify(pgno)
        return page

    def read(self, pgno: int) -> SlottedPage:
        """read returns page ``pgno`` as of the mark, verified.

        Raises:
            CorruptionError: bad checksum, wrong stamped number, bad structure,
                or a page outside the mark's file.
            PageStoreError: the mark was released (the snapshot closed).
        """
        cache = self.cache
        page = cache.get(pgno)
        if page is not None:
            cache.move_to_end(pgno)
            return page
        page = cache[pgno] = self._fetch(pgno)
        if len(cache) > self.cache_pages:
            cache.popitem(last=False)
        return page

    def read_passing(self, pgno: int) -> SlottedPage:
        """read_passing is ``read`` without caching the page (overflow pages of a value)."""
        page = self.cache.get(pgno)
        return page if page is not None else self._fetch(pgno)

    def write(self, pgno: int) -> SlottedPage:
        raise ReadOnlyError("a snapshot is read-only")

    def write_image(self, pgno: int, image: bytes) -> SlottedPage:
        raise ReadOnlyError("a snapshot is read-only")

    def allocate(self, page_type: int) -> SlottedPage:
        raise ReadOnlyError("a snapshot is read-only")

    def allocate_run(self, n: int) -> int:
        raise ReadOnlyError("a snapshot is read-only")

    def write_run(self, first: int, pages: bytearray) -> None:
        raise ReadOnlyError("a snapshot is read-only")

    def free(self, pgno: int) -> None:
        raise ReadOnlyError("a snapshot is read-only")

    def free_many(self, pgnos: Sequence[int]) -> None:
        raise ReadOnlyError("a snapshot is read-only")

    def lend(self, pages: int) -> None:
        """lend: nothing to lend to (the tree over a snapshot keeps its own small budget)."""

    def reserve(self, pages: int) -> None:
        """reserve: nothing to take from (a snapshot's heap holds no free-space map)."""

    def pages_bytes(self) -> int:
        """pages_bytes: the private memory of this pager's cache."""
        return len(self.cache) * self.page_size


def begin_backup(pager: Pager, path: str, overwrite: bool) -> "Backup":
    """begin_backup checks ``path`` and starts a copy there (see ``Backup``).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        PageStoreError: ``path`` is the store itself, or its log or shared index.
        IsADirectoryError, FileNotFoundError: ``path`` is a directory, or its directory is missing.
    """
    from .errors import PageStoreError

    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory (a backup is a file)", path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(2, f"directory {parent} does not exist", path)
    if os.path.exists(path) and os.path.samefile(path, pager.path):
        raise PageStoreError(f"{path}: is the store itself; back up to another file")
    for side, what in ((log_path(pager.path), "log"), (shm_path(pager.path), "shared index")):
        # A copy named as the store's own log or shared index would be taken for one: the next
        # writer's open finds no log in it and removes it at close, the last open out removes
        # the index (or a reader has already made it, and the copy renamed over it goes then).
        if os.path.realpath(path) == os.path.realpath(side) or (
                os.path.exists(path) and os.path.exists(side) and os.path.samefile(path, side)):
            raise PageStoreError(f"{path}: is the store's {what} ({os.path.basename(side)}); back up to another file")
    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(17, "File exists (pass overwrite=True to replace it)", path)
    return Backup(pager, path, overwrite)


class Backup:
    """Backup writes a store file holding exactly one mark's committed state.

    Every page 1 .. page_count - 1 as of the mark (verified as it is read),
    then page 0 built from the mark's header (its codecs included) with a
    new file id, so that no log left beside the destination can be replayed
    into it. The copy is written to a temporary file beside the destination
    (``Pager.create_copy``, through the pager's opener) and synced, then renamed
    into place and the directory synced: the destination is either absent
    (or the old file) or the whole copy. The copy has no log: it opens
    checkpointed. ``copy(n)`` copies the next ``n`` pages (so a caller can
    release its lock between runs); ``finish()`` renames; ``abort()``
    removes the temporary file.
    """

    def __init__(self, pager: Pager, path: str, overwrite: bool) -> None:
        self._snap = SnapshotPager(pager, pager.read_mark(), cache_pages=1)
        self._pager = pager
        self.path = path
        self.overwrite = overwrite
        self.next = 1
        self.page_count = self._snap.meta.page_count
        self.records = self._snap.meta.record_count  # what the copy holds
        tmp, file = pager.create_copy(path)  # a leftover of an interrupted backup goes
        self.tmp = tmp
        self._file: Optional[fileio.File] = file

    @property
    def done(self) -> bool:
        return self.next >= self.page_count

    def copy(self, n: int = BACKUP_RUN) -> None:
        """copy writes the next ``n`` pages (fewer at the end), in one write.

        Raises:
            CorruptionError: a page of the store fails verification (the copy is not finished).
        """
        assert self._file is not None
        ps = self._snap.page_size
        start = self.next
        end = min(self.page_count, start + n)
        data = b"".join(bytes(self._snap._fetch(p).buffer) for p in range(start, end))
        self._file.write(start * ps, data)
        self.next = end

    def finish(self) -> None:
        """finish writes the header, syncs, renames the copy into place and releases the mark."""
        assert self._file is not None and self.done
        meta = self._snap.meta.copy()
        meta.file_id = int.from_bytes(os.urandom(8), "little") or 1
        meta.checkpoint_seq = 0
        self._file.write(0, bytes(meta.encode()))
        self._file.sync()
        self._file.close()
        self._file = None
        self._pager.release(self._snap.mark)
        install_copy(self.tmp, self.path, self.overwrite)

    def abort(self) -> None:
        """abort releases the mark and removes the unfinished copy."""
        self._pager.release(self._snap.mark)
        if self._file is not None:
            self._file.close()
            self._file = None
        remove_copy(self.tmp)

