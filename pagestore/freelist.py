"""freelist: the free-page list, kept as extents in trunk pages (format 4).

The free list is the set of pages inside the file that hold nothing: pages
the tree, the heap and overflow chains gave back. Format 3 chained them
through each free page's ``next`` header field, so freeing N pages rewrote
(and logged) N whole pages: ``clear()`` of a million records wrote 377 MiB.
Format 4 never writes a freed page. It lists the free pages as extents
``(first, count)`` in a few **trunk pages**, as SQLite lists its free leaf
pages in trunk pages (btree.c ``freePage2``) and LMDB its free page numbers
in the free DB; a run of adjacent free pages is one entry, so every page of
a cleared store is a handful of entries, and freeing a million pages costs
a set operation and one trunk page written.

Trunk page (a slotted page of type PAGE_FREE; slot 0 holds the extents)::

    +--------+-------+------------------------------------------------+
    | header | slot0 | ... free ...   | first0 count0 first1 count1 ... |
    +--------+-------+------------------------------------------------+
      next = the next trunk page, 0 for the last

| Offset (in slot 0's record) | Size | Description |
|---:|---:|---|
| 8i     | 4 | first page of extent i |
| 8i + 4 | 4 | count of pages in extent i (1 or more) |

A trunk holds at most ``(page_size - 46) // 8`` extents (506 for 4 KiB
pages). The header (page 0) names the first trunk (``freelist_head``), the
number of trunks (``freelist_trunks``) and the pages the list owns
(``freelist_count``: the extents' pages plus the trunks themselves, which
are free pages too, as SQLite counts them).

A FREE LIST IS VALID if and only if: the chain from ``freelist_head`` is
exactly ``freelist_trunks`` distinct pages inside the file, each a valid
PAGE_FREE page with one record in slot 0 whose length is a multiple of 8;
the extents, read in chain order, are ascending and disjoint, each of count
1 or more and inside [1, page_count); no extent covers a trunk page; and the
extents' pages plus the trunks number ``freelist_count``. A list that breaks
this raises ``CorruptionError`` naming the trunk page (or page 0 for the
header's counts); every walk is bounded by ``freelist_trunks`` and
``page_count``.

Format 3 and older (``meta.version < 4``) kept a chain of free pages. It is
read as it is (a walk bounded by ``freelist_count``), and the first commit
that writes the header (always in format 4) writes the list as trunks
(``flush``): one commit of the log, so a crash leaves the old chain under a
format-3 header or the trunks under a format-4 one.

Memory: the extents, sorted (two lists), loaded on first use (O(trunks)
page reads) and kept while the pager's committed state is the one they were
loaded from. ``flush`` (the pager's commit) rewrites only the trunks whose
extents changed. Each trunk keeps a range of page numbers (``_bounds``), so
a change rewrites the trunk its pages fall in, not every trunk after it (as
filling trunks in order did: taking the lowest page of a fragmented list
rewrote them all); the list is cut again, each trunk three quarters full,
only when a trunk overflows or the number of trunks is far from what the
extents need.

Who calls what: the pager only (``Pager.allocate``, ``free``, ``free_many``,
``free_all_but``, ``freelist``, ``commit``, ``rollback``, ``check``).
"""
from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Set, Tuple

from . import format as fmt
from .errors import CorruptionError, PageStoreError, ReadOnlyError

if TYPE_CHECKING:  # pragma: no cover
    from .page import SlottedPage

#: A trunk page's one record: the header and one slot leave page_size - 46 bytes.
TRUNK_OVERHEAD = fmt.HEADER_SIZE + fmt.SLOT_SIZE
EXTENT_SIZE = 8
_EXTENT = struct.Struct("<II")


def extents_per_trunk(page_size: int) -> int:
    """extents_per_trunk: how many ``(first, count)`` entries one trunk page holds."""
    return (page_size - TRUNK_OVERHEAD) // EXTENT_SIZE


class FreePager(Protocol):
    """FreePager is what the free list asks of the pager: its header, and pages to read and write."""

    meta: fmt.Meta
    page_size: int

    def read(self, pgno: int) -> "SlottedPage": ...

    def write(self, pgno: int) -> "SlottedPage": ...

    def fresh(self, pgno: int, page_type: int) -> "SlottedPage": ...


class FreeList:
    """FreeList is the set of free pages of one pager, as sorted extents; see the module docstring.

    Pages on the list are never read or written; only the trunks are.
    """

    def __init__(self, pager: FreePager) -> None:
        self.pager = pager
        self._starts: List[int] = []
        self._lens: List[int] = []
        self._trunks: List[int] = []  # in chain order (ascending once flushed)
        self._count = 0  # pages in the extents (the trunks not included)
        #: what each trunk holds on disk as of the last load or flush: (starts, counts, next)
        self._written: Dict[int, Tuple[List[int], List[int], int]] = {}
        #: the lowest first page of the extents each trunk (ascending) holds: trunk i lists the
        #: extents that start in [bounds[i], bounds[i + 1]), so that a change rewrites the one
        #: trunk whose range it falls in, not every trunk after it
        self._bounds: List[int] = []
        # The header the state belongs to: the pager's Meta object itself (a rollback, a new file or
        # a reader's new view replaces it; holding it keeps its id from being reused) and its lsn
        # and version (a commit advances the one, the format upgrade the other).
        self._loaded: Optional[Tuple[fmt.Meta, int, int]] = None
        self._current_at_flush = False
        #: changed since loaded or flushed: the next commit must write the trunks
        self.changed = False

    # ---- loading ----

    def _key(self) -> Tuple[fmt.Meta, int, int]:
        m = self.pager.meta
        return (m, m.lsn, m.version)

    def _current(self) -> bool:
        """_current: the state in memory is the list of the pager's header as it is now."""
        loaded = self._loaded
        if loaded is None:
            return False
        m = self.pager.meta
        return loaded[0] is m and loaded[1] == m.lsn and loaded[2] == m.version

    def forget(self) -> None:
        """forget drops the loaded state: the next use reads the list again (after a rollback, or
        when the pager's committed state changed under it). O(1)."""
        self._loaded = None
        self.changed = False

    def committed(self) -> None:
        """committed tells the list that the pager committed what ``flush`` (at the start of that
        commit) found current or wrote. Callers: Pager.commit."""
        if self._current_at_flush and not self.changed:
            m = self.pager.meta
            self._loaded = (m, m.lsn, m.version)  # ``_key()``
        self._current_at_flush = False

    def _ensure(self) -> None:
        if self.changed or self._current():
            return
        self._load()

    def _load(self) -> None:
        """_load reads the list from the pager's header and pages (trunks, or a format-3 chain).

        Raises:
            CorruptionError: the list is not valid (module docstring), naming the page.
        """
        meta = self.pager.meta
        self._starts, self._lens, self._trunks, self._count = [], [], [], 0
        self._written = {}
        self._bounds = []
        self._loaded = None
        if meta.version < 4:
            self._load_chain(meta)
        else:
            self._load_trunks(meta)
        self._loaded = self._key()
        self.changed = False

    def _load_chain(self, meta: fmt.Meta) -> None:
        """_load_chain reads a format-3 free list: a chain of PAGE_FREE pages through ``next``."""
        pages: List[int] = []
        seen = set()
        pgno = meta.freelist_head
        while pgno:
            if not 0 < pgno < meta.page_count:
                raise CorruptionError(pgno, f"free list reaches page {pgno}, outside the file ({meta.page_count} pages)")
            if pgno in seen or len(pages) >= meta.freelist_count:
                raise CorruptionError(pgno, f"free list is longer than the header's {meta.freelist_count} pages (a cycle?)")
            page = self.pager.read(pgno)
            if page.page_type != fmt.PAGE_FREE:
                raise CorruptionError(pgno, f"free list holds a page of type {page.page_type}")
            seen.add(pgno)
            pages.append(pgno)
            pgno = page.next
        if len(pages) != meta.freelist_count:
            raise CorruptionError(0, f"header's freelist_count is {meta.freelist_count} free pages, the list holds {len(pages)}")
        self._set_pages(sorted(pages))

    def _load_trunks(self, meta: fmt.Meta) -> None:
        per = extents_per_trunk(self.pager.page_size)
        end = meta.page_count
        pgno = meta.freelist_head
        prev_end = 1
        trunks: List[int] = []
        seen = set()
        count = 0
        while pgno:
            if not 0 < pgno < end:
                raise CorruptionError(pgno, f"free-list trunk {pgno} is outside the file ({end} pages)")
            if pgno in seen or len(trunks) >= meta.freelist_trunks:
                raise CorruptionError(pgno, f"free-list chain is longer than the header's {meta.freelist_trunks} trunks")
            page = self.pager.read(pgno)
            if page.page_type != fmt.PAGE_FREE or page.nslots != 1:
                raise CorruptionError(pgno, f"free-list trunk is a page of type {page.page_type} with {page.nslots} slots")
            raw = page.read(0)
            if len(raw) % EXTENT_SIZE or len(raw) // EXTENT_SIZE > per:
                raise CorruptionError(pgno, f"free-list trunk's record is {len(raw)} bytes")
            ws: List[int] = []
            wl: List[int] = []
            for first, n in _EXTENT.iter_unpack(raw):
                if n < 1 or first < prev_end or first + n > end:
                    raise CorruptionError(
                        pgno, f"free-list trunk lists pages [{first}, {first + n}): not ascending, empty or outside the file")
                if self._starts and self._starts[-1] + self._lens[-1] == first:
                    self._lens[-1] += n  # adjacent across a trunk boundary: one extent in memory
                else:
                    self._starts.append(first)
                    self._lens.append(n)
                prev_end = first + n
                count += n
                ws.append(first)
                wl.append(n)
            seen.add(pgno)
            trunks.append(pgno)
            self._written[pgno] = (ws, wl, page.next)
            self._bounds.append(ws[0] if ws and self._bounds else (self._bounds[-1] if self._bounds else 0))
            pgno = page.next
        if len(trunks) != meta.freelist_trunks:
            raise CorruptionError(0, f"header's freelist_trunks is {meta.freelist_trunks} trunks, the chain holds {len(trunks)}")
        for t in trunks:
            if self._find(t) >= 0:
                raise CorruptionError(t, "free-list trunk lists itself as a free page")
        if count + len(trunks) != meta.freelist_count:
            raise CorruptionError(0, f"header's freelist_count is {meta.freelist_count} free pages, the list holds {count + len(trunks)}")
        self._trunks = trunks
        self._count = count

    def _set_pages(self, pages: Iterable[int]) -> None:
        """_set_pages makes the extents those of ``pages`` (ascending, distinct)."""
        starts: List[int] = []
        lens: List[int] = []
        count = 0
        for p in pages:
            if starts and starts[-1] + lens[-1] == p:
                lens[-1] += 1
            else:
                starts.append(p)
                lens.append(1)
            count += 1
        self._starts, self._lens, self._count = starts, lens, count

    # ---- queries ----

    def _find(self, pgno: int) -> int:
        """_find: the index of the extent holding ``pgno``, or -1."""
        i = bisect_right(self._starts, pgno) - 1
        if i >= 0 and pgno < self._starts[i] + self._lens[i]:
            return i
        return -1

    def count(self) -> int:
        """count: the pages the list owns, trunks included (the header's ``freelist_count``)."""
        self._ensure()
        return self._count + len(self._trunks)

    def __contains__(self, pgno: int) -> bool:
        self._ensure()
        return self._find(pgno) >= 0 or pgno in self._trunks

    def pages(self) -> Iterator[int]:
        """pages yields every page the list owns: its trunks, then its extents' pages ascending.
        Do not change the list while iterating."""
        self._ensure()
        yield from list(self._trunks)
        for first, n in list(zip(self._starts, self._lens)):
            yield from range(first, first + n)

    def extents(self) -> List[Tuple[int, int]]:
        """extents: the free pages as ``(first, count)`` runs, ascending (the trunks not included)."""
        self._ensure()
        return list(zip(self._starts, self._lens))

    def trunks(self) -> List[int]:
        """trunks: the trunk pages, in chain order."""
        self._ensure()
        return list(self._trunks)

    # ---- changing ----

    def _changed(self) -> None:
        self.changed = True
        self.pager.meta.freelist_count = self._count + len(self._trunks)

    def take(self) -> int:
        """take removes the lowest free page from the list and returns it; 0 when the list is empty.
        A trunk is taken only when no extent is left (``flush`` rewrites the chain). O(1) amortized."""
        self._ensure()
        if self._starts:
            p = self._starts[0]
            if self._lens[0] == 1:
                del self._starts[0]
                del self._lens[0]
            else:
                self._starts[0] += 1
                self._lens[0] -= 1
            self._count -= 1
        elif self._trunks:
            p = self._trunks.pop()
            self._written.pop(p, None)
        else:
            return 0
        self._changed()
        return p

    def put(self, pgno: int) -> None:
        """put adds page ``pgno`` to the list. O(log extents), plus a list insertion.

        Raises:
            CorruptionError: the page is on the list already.
        """
        self.put_run(pgno, 1)

    def put_run(self, first: int, n: int) -> None:
        """put_run adds the pages [first, first + n), none of them on the list, merging with neighbours.

        Raises:
            CorruptionError: one of the pages is on the list already (names it).
        """
        self._ensure()
        starts, lens = self._starts, self._lens
        end = first + n
        i = bisect_right(starts, first)  # starts[i - 1] <= first < starts[i]
        if i > 0 and starts[i - 1] + lens[i - 1] > first:
            raise CorruptionError(first, "page freed twice")
        if i < len(starts) and starts[i] < end:
            raise CorruptionError(starts[i], "page freed twice")
        if self._trunks:
            for t in self._trunks:
                if first <= t < end:
                    raise CorruptionError(t, "page freed twice (it is a free-list trunk)")
        left = i > 0 and starts[i - 1] + lens[i - 1] == first
        right = i < len(starts) and starts[i] == end
        if left and right:
            lens[i - 1] += n + lens[i]
            del starts[i]
            del lens[i]
        elif left:
            lens[i - 1] += n
        elif right:
            starts[i] = first
            lens[i] += n
        else:
            starts.insert(i, first)
            lens.insert(i, n)
        self._count += n
        self._changed()

    def put_many(self, pgnos: Iterable[int]) -> None:
        """put_many adds the distinct pages ``pgnos``, a run of adjacent ones at a time.

        Raises:
            CorruptionError: a page is on the list already, or named twice.
        """
        run_first = run_n = 0
        for p in sorted(pgnos):
            if run_n and p == run_first + run_n:
                run_n += 1
                continue
            if run_n:
                if p < run_first + run_n:
                    raise CorruptionError(p, "page freed twice")
                self.put_run(run_first, run_n)
            run_first, run_n = p, 1
        if run_n:
            self.put_run(run_first, run_n)

    def set_all_but(self, keep: Iterable[int], end: int) -> None:
        """set_all_but makes every page of [1, end) not in ``keep`` free (the trunks stay trunks, and
        are kept whatever ``keep`` says). O(len(keep) + trunks): the pages are not enumerated."""
        self._ensure()
        keep_set = set(keep)
        keep_set.update(self._trunks)
        starts: List[int] = []
        lens: List[int] = []
        prev = 1
        for k in sorted(p for p in keep_set if 0 < p < end):
            if k > prev:
                starts.append(prev)
                lens.append(k - prev)
            prev = k + 1
        if end > prev:
            starts.append(prev)
            lens.append(end - prev)
        self._starts, self._lens = starts, lens
        self._count = sum(lens)
        self._changed()

    # ---- writing ----

    def flush(self) -> None:
        """flush writes the list into its trunk pages and the header fields; a no-op when unchanged.

        Called by the pager at the start of each commit, after every other layer
        has allocated and freed what it will. The trunks needed come from the
        list itself (the top of its highest extent), never from growing the file;
        surplus trunks go back into the extents. Only a trunk whose record or
        ``next`` changed is written (``pager.write`` for a trunk that was one
        already, so the log may take a delta; ``pager.fresh`` for a new one).
        A format-3 list (``meta.version < 4``) is loaded first and written as
        trunks: the format upgrade.
        """
        meta = self.pager.meta
        loaded = self._loaded  # ``_current()`` inline: every commit flushes the list
        self._current_at_flush = self.changed or (loaded is not None and loaded[0] is meta and loaded[1] == meta.lsn
                                                  and loaded[2] == meta.version)
        if not self.changed:
            if meta.version >= fmt.FORMAT_VERSION:
                return
            if not meta.freelist_count:  # an empty format-3 list is an empty format-4 one
                meta.freelist_head = meta.freelist_trunks = 0
                meta.version = fmt.FORMAT_VERSION
                return
        self._ensure()
        per = extents_per_trunk(self.pager.page_size)
        trunks = self._trunks
        starts, lens = self._starts, self._lens

        def minimum() -> int:
            return -(-len(starts) // per) if starts else (1 if trunks else 0)

        def goal() -> int:  # a quarter of each trunk left free, so that most changes fit where they fall
            return max(minimum(), -(-len(starts) // (per - per // 4)))

        rebound = len(self._bounds) != len(trunks) or trunks != sorted(trunks)
        if len(trunks) < minimum() or len(trunks) > 2 * goal() + 1:
            rebound = True
            if len(trunks) > goal():
                surplus = sorted(trunks)[goal():]
                for t in surplus:
                    trunks.remove(t)
                    self._written.pop(t, None)
                for t in surplus:
                    self.put_run(t, 1)
            while len(trunks) < goal():
                # The top page of the highest extent: no new extent, and trunks stay away from
                # the low pages that ``take`` hands out first.
                lens[-1] -= 1
                p = starts[-1] + lens[-1]
                if not lens[-1]:
                    del starts[-1]
                    del lens[-1]
                self._count -= 1
                trunks.append(p)
            trunks.sort()
        n, e = len(trunks), len(starts)
        cuts: List[int] = []
        if not rebound:
            cuts = [bisect_left(starts, b) for b in self._bounds] + [e]
            rebound = cuts[0] != 0 or any(cuts[i + 1] - cuts[i] > per for i in range(n))
        if rebound:
            chunk = -(-e // n) if n else 0
            cuts = [min(i * chunk, e) for i in range(n)] + [e]
            self._bounds = [0] + [starts[c] if c < e else self.pager.meta.page_count for c in cuts[1:n]]
        for i, t in enumerate(trunks):
            ws, wl = starts[cuts[i]:cuts[i + 1]], lens[cuts[i]:cuts[i + 1]]
            nxt = trunks[i + 1] if i + 1 < n else 0
            old = self._written.get(t)
            if old is not None and old[2] == nxt and old[0] == ws and old[1] == wl:
                continue
            record = struct.pack(f"<{2 * len(ws)}I", *[v for pair in zip(ws, wl) for v in pair])
            page = self.pager.write(t) if old is not None else self.pager.fresh(t, fmt.PAGE_FREE)
            page.init(t, fmt.PAGE_FREE)
            page.insert(record)
            page.next = nxt
            self._written[t] = (ws, wl, nxt)
        meta.freelist_head = trunks[0] if trunks else 0
        meta.freelist_trunks = len(trunks)
        meta.freelist_count = self._count + len(trunks)
        meta.version = fmt.FORMAT_VERSION
        self.changed = False
        self._loaded = self._key()
        self._current_at_flush = True

    # ---- checking ----

    def check(self) -> int:
        """check verifies the list in memory against itself and the header, and, when nothing is
        waiting for ``flush``, against its trunk pages as read afresh. Returns the pages it owns.

        Raises:
            CorruptionError: naming the first page (or page 0, for the header) found wrong.
        """
        self._ensure()
        meta = self.pager.meta
        prev = 1
        for first, n in zip(self._starts, self._lens):
            if n < 1 or first < prev or first + n > meta.page_count:
                raise CorruptionError(first, f"free list's extent [{first}, {first + n}) is out of order or outside the file")
            prev = first + n + 1  # adjacent extents are merged in memory
        if sum(self._lens) != self._count:
            raise CorruptionError(0, "free list's count differs from its extents")
        for t in self._trunks:
            if not 0 < t < meta.page_count or self._find(t) >= 0:
                raise CorruptionError(t, "free-list trunk outside the file or listed as free")
        total = self._count + len(self._trunks)
        if total != meta.freelist_count:
            raise CorruptionError(0, f"header's freelist_count is {meta.freelist_count} free pages, the list holds {total}")
        if not self.changed and meta.version >= 4:
            state = (list(self._starts), list(self._lens), list(self._trunks), self._count, dict(self._written),
                     list(self._bounds))
            try:
                self._load()
                fresh = (self._starts, self._lens, self._trunks, self._count)
                if fresh != state[:4]:
                    raise CorruptionError(meta.freelist_head, "free-list trunks differ from the list in memory")
            finally:
                self._starts, self._lens, self._trunks, self._count, self._written, self._bounds = state
        return total


class _Images:
    """_Images is a read-only FreePager over unverified page images (``read_free_pages``)."""

    def __init__(self, meta: fmt.Meta, image: Callable[[int], Optional[bytes]]) -> None:
        self.meta = meta
        self.page_size = meta.page_size
        self._image = image

    def read(self, pgno: int) -> "SlottedPage":
        from .page import SlottedPage

        raw = self._image(pgno) if 0 < pgno < self.meta.page_count else None
        if raw is None:
            raise CorruptionError(pgno, "free-list page is missing")
        try:
            return SlottedPage.load(raw, pgno)
        except ValueError as exc:
            raise CorruptionError(pgno, str(exc)) from None

    def write(self, pgno: int) -> "SlottedPage":
        raise ReadOnlyError("reading a free list only")

    def fresh(self, pgno: int, page_type: int) -> "SlottedPage":
        raise ReadOnlyError("reading a free list only")


def read_free_pages(meta: fmt.Meta, image: Callable[[int], Optional[bytes]]) -> Optional[Set[int]]:
    """read_free_pages: the pages the free list of the header ``meta`` owns, its pages read as
    ``image(pgno)`` returns them (unverified bytes, None when missing), or None when the list is
    damaged. For salvage, which must not take a freed page's old records for live ones (a freed
    page keeps its bytes) and trusts nothing it cannot verify."""
    try:
        return set(FreeList(_Images(meta, image)).pages())
    except PageStoreError:
        return None
