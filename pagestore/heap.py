"""heap: where values live, addressed by record id ``(pgno, slot)``.

The record heap places each value in a heap page with room, found through the
free-space map; reuses freed slots and bytes; updates in place when the new
value fits; and stores large values as chains of overflow pages.

RECORD FORMATS (the slot state tells which)

    PS_SLOT_LIVE      the value's bytes, whole
    PS_SLOT_OVERFLOW  a stub:
        OFFSET  SIZE  DESCRIPTION
           0      4   total length of the value
           4      4   first overflow page (0 when the tail holds it all)
           8      -   tail: the value's last bytes, up to half a page

A value longer than half a page's usable bytes (``inline_max``) is cut into
whole chunks of ``chunk`` bytes, one per overflow page (type PAGE_OVERFLOW,
the chunk in slot 0, ``next`` linking the chain); whatever is left after the
whole chunks stays in the stub's tail when it is at most ``inline_max``
bytes, else it takes one more overflow page, then at least half full. So
overflow pages are full but for at most one, and no value wastes more than
half a page. (A quarter-page cut-off, as the design notes first suggested,
left values of 1-2 KB alone in 4 KiB overflow pages, wasting most of them.)

FREE-SPACE MAP

One byte per page: ``floor(max_insert * 255 / page_size)`` for heap pages,
0 for every other page. It persists in PAGE_FSM pages (one record of
``page_size - 46`` bytes each, chained through ``next`` from
``meta.fsm_head``); FSM page i covers pages ``[i * N, (i + 1) * N)``. In
memory, the same bytes in one bytearray (one byte a page, counted in the
store's cache budget) and, per category, a bit per map page's span that may
hold such a page; an insert takes a page of the lowest category that surely
fits an eighth of a page (failing that, the record: best fit), so the records
after it follow it into the same page and small ones fill the gaps that large
ones leave.
"""
from __future__ import annotations

import mmap
import operator
import re
import struct
from itertools import groupby
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Set, Tuple

from . import _native
from . import format as fmt
from .errors import CorruptionError, PageFullError
from .page import RecordLookup, SlottedPage, build_singles


class HeapPager(Protocol):
    """HeapPager is what the heap needs of a pager: pager.Pager, or snapshot.SnapshotPager
    (which reads only: a heap over it is made with ``read_only=True``)."""

    page_size: int
    meta: fmt.Meta
    map: Optional[mmap.mmap]
    #: what ``_native.fast``'s map calls take for the map (``Pager.fast_map``)
    fast_map: Any
    overlaid: Set[int]

    def read(self, pgno: int) -> SlottedPage: ...

    def map_records(self, pgnos: List[int], slots: List[int], page_type: int) -> Tuple[List[int], List[int], List[int]]: ...

    def read_passing(self, pgno: int) -> SlottedPage: ...

    def write(self, pgno: int) -> SlottedPage: ...

    def allocate(self, page_type: int) -> SlottedPage: ...

    def allocate_run(self, n: int) -> int: ...

    def write_run(self, first: int, pages: bytearray) -> None: ...

    def free(self, pgno: int) -> None: ...

    def free_many(self, pgnos: Sequence[int]) -> None: ...

    def reserve(self, pages: int) -> None: ...

Rid = Tuple[int, int]
_STUB = struct.Struct("<II")
_PGNO = operator.itemgetter(0)
_SLOT = operator.itemgetter(1)
#: The longest value a stub's 4-byte length can say (the store refuses longer ones; so does the build).
MAX_VALUE = 2**32 - 1
_NONZERO = re.compile(rb"[^\x00]")


def _differ(a: "bytes | bytearray", b: "bytes | bytearray") -> List[int]:
    """_differ: the offsets at which ``a`` and ``b`` (of one length) differ, in order. Compared a
    block of _DIFF_BLOCK bytes at a time (memcmp); only a block that differs is XORed as one
    integer each, then one step per differing byte (a commit changes a few bytes of a map page).
    ~3 us for a 4 KiB page with one byte changed, ~6 with five far apart; XORing the whole page
    took 5 and 21 (each step shifts the whole page's integer)."""
    out: List[int] = []
    if a == b:
        return out
    step = _DIFF_BLOCK
    for lo in range(0, len(a), step):
        x, y = a[lo : lo + step], b[lo : lo + step]
        if x == y:
            continue
        d = int.from_bytes(x, "little") ^ int.from_bytes(y, "little")
        base = lo
        while d:
            j = ((d & -d).bit_length() - 1) >> 3  # the lowest differing byte
            out.append(base + j)
            d >>= (j + 1) * 8
            base += j + 1
    return out


#: ``_differ``'s block: 512 bytes measured fastest of 256 to 4,096 for one to five changed bytes
_DIFF_BLOCK = 512

_PAGE_HEAP = fmt.PAGE_HEAP
_map_value = _native.fast.map_value
_map_values = _native.fast.map_values
_map_record = _native.fast.map_record
_map_chunk = _native.fast.map_chunk
_page_value = _native.fast.page_value
_page_insert_room = _native.fast.page_insert_room
_record_delete = _native.fast.record_delete
_map_chain_run = _native.fast.map_chain_run
_map_chain_value = _native.fast.map_chain_value
_PAGE_OVERFLOW = fmt.PAGE_OVERFLOW
_SLOT_LIVE = fmt.SLOT_LIVE
_SLOT_OVERFLOW = fmt.SLOT_OVERFLOW
#: How many of the transaction's recently used heap pages a placement tries before the map.
_HOT = 8
#: A placement that goes to the map asks first for a page with room for a 1/_ROOMY of a page
#: (``Heap._place``), then for any page the record fits.
_ROOMY = 8
#: Pages a transaction allocates for values before its overflow chains are written straight into
#: the data file (``Heap.insert``): pager.DIRECT_PAGES, past which a commit writes its new pages
#: there itself and syncs the data file. (Not imported: the heap sees a ``HeapPager``.)
DIRECT_CHAINS = 64


class FreeSpaceMap:
    """FreeSpaceMap tracks which heap pages have room; see the module docstring.

    In memory (O(heap pages) bytes, one a page, counted in the cache budget: ``memory``):

    - ``cat``: a bytearray, the current category of page ``p`` at ``cat[p]`` (0 past its end), its
      length a whole number of map pages' entries: the map pages' bytes plus what ``set`` changed
      since the last ``flush`` (also in ``pending``, which that flush writes);
    - ``blocks``: per category ``c``, an int whose bit ``b`` is set when the ``b``-th map page's
      span of ``cat`` *may* hold a page of category ``c``; ``nonempty``: bit ``c`` set when
      ``blocks[c]`` may be nonzero. Both are supersets, cleared lazily: ``set`` only adds bits,
      and ``find`` drops a bit when its span has no page of that category any more (one memchr of
      a map page's span). So an entry leaving a category costs nothing, and the bits cost 32
      bytes per map page (a dict of entries and 256 sets of pages, before, cost about 190 bytes
      per page with room: 1.2 MiB at 10^6 records, 8 MiB at 10^7).
    """

    def __init__(
        self, pager: HeapPager, lookup: Optional[RecordLookup] = None, *, read: bool = True, account: bool = True
    ) -> None:
        """``account`` False: a throwaway copy (``same_as_stored``), which takes nothing of the
        pager's cache budget (``_account``)."""
        self.pager = pager
        self.per_page = pager.page_size - fmt.HEADER_SIZE - fmt.SLOT_SIZE
        self._lookup = lookup if lookup is not None else RecordLookup()
        self._reserved = 0 if account else -1
        self.load(read)

    def load(self, read: bool = True) -> None:
        """load reads the map from its pages (at open, and after a rollback); ``read`` False: an empty map.

        O(map pages): each page's bytes are copied into ``cat`` and its categories found by C
        passes over the page (``_mark``), not entry by entry.
        """
        self.pages: List[int] = []
        self.cat = bytearray()
        # pgno -> category set since the last flush, not yet in the map pages
        self.pending: Dict[int, int] = {}
        # the heap's current page and its room, whose ``set`` is held back (see ``hold``)
        self.held_pgno = 0
        self.held_free = 0
        self.blocks: List[int] = [0] * 256
        self.nonempty = 0
        pgno, seen = self.pager.meta.fsm_head if read else 0, 0
        # Map page i covers pages [i * per_page, (i + 1) * per_page), and the map grows only
        # to cover a page that exists: a longer chain (a cycle) would fill the map with
        # entries for pages that do not.
        longest = self.pager.meta.page_count // self.per_page + 1
        while pgno:
            page = self.pager.read(pgno)
            if page.page_type != fmt.PAGE_FSM or page.nlive != 1:
                raise CorruptionError(pgno, "free-space map chain holds a page that is not a map page")
            data = page.read(0)
            if len(data) != self.per_page:
                raise CorruptionError(pgno, "free-space map page has the wrong length")
            self._mark(len(self.pages), data)
            self.pages.append(pgno)
            self.cat += data
            seen += 1
            if seen > longest:
                raise CorruptionError(pgno, f"free-space map chain is longer than {longest} pages (a cycle?)")
            pgno = page.next
        self._account()

    def _mark(self, idx: int, data: "bytes | bytearray") -> None:
        """_mark sets the bits of every category in ``data``, the span of map page ``idx``."""
        bit = 1 << idx
        blocks = self.blocks
        nonempty = self.nonempty
        nonzero = data.translate(None, b"\x00")
        if not nonzero:
            return
        # one memchr per category: about half the time of set(nonzero) on a 4 KiB map page
        for c in range(1, 256):
            if _BYTES[c] in nonzero:
                blocks[c] |= bit
                nonempty |= 1 << c
        self.nonempty = nonempty

    def _account(self) -> None:
        """_account tells the pager how many pages of its cache budget ``cat`` takes (``reserve``)."""
        pages = -(-len(self.cat) // self.pager.page_size)
        if pages != self._reserved and self._reserved >= 0:
            self._reserved = pages
            self.pager.reserve(pages)

    def memory(self) -> int:
        """memory: the private bytes this map holds (``cat``; the bits and ``pending`` are small)."""
        return len(self.cat)

    def reload(self, changed: Set[int]) -> bool:
        """reload reads again the map pages among ``changed``, which another process's writer
        changed (writers in several processes: ``Store._changed``), and nothing else: O(changed
        map pages), not O(map). False, having changed nothing, when the chain itself may have
        changed (its head, or its last page, whose ``next`` a growing map sets) or this map
        holds changes of its own: the caller then ``load``s it whole.

        Raises:
            CorruptionError: a changed map page is not a map page.
        """
        pages = self.pages
        if self.pending or not self.held_clean() or self.pager.meta.fsm_head != (pages[0] if pages else 0):
            return False
        # A hold the last flush wrote (``flush`` keeps the heap's page across commits): let go,
        # since another writer may have placed records in that page, and its room is stale.
        self.held_pgno = 0
        if pages and pages[-1] in changed and self.pager.read(pages[-1]).next:
            return False  # the chain grew past its last page (a map of one page: most commits change it)
        per = self.per_page
        cat = self.cat
        if len(cat) < len(pages) * per:
            return False  # pragma: no cover - load and _grow keep cat as long as the chain
        for idx, pgno in enumerate(pages):
            if pgno not in changed:
                continue
            page = self.pager.read(pgno)
            if page.page_type != fmt.PAGE_FSM or page.nlive != 1:
                raise CorruptionError(pgno, "free-space map chain holds a page that is not a map page")
            data = page.read(0)
            if len(data) != per:
                raise CorruptionError(pgno, "free-space map page has the wrong length")
            # Nothing pending: ``cat``'s span is the page as this map last knew it. Only the
            # bytes that differ move (a commit changes a few), and only their new categories'
            # bits are set; the bits of categories that left are cleared lazily by ``find``.
            base = idx * per
            bit = 1 << idx
            blocks = self.blocks
            for j in _differ(cat[base : base + per], data):
                c = cat[base + j] = data[j]
                if c:
                    blocks[c] |= bit
                    self.nonempty |= 1 << c
        return True

    def same_as_stored(self) -> bool:
        """same_as_stored: this map in memory, with nothing pending, is the one its pages hold
        (a writer's, after catching up with other processes' commits). O(map). For check()."""
        if self.pending or not self.held_clean():
            return True  # an open change: the pages catch up at the next flush
        stored = FreeSpaceMap(self.pager, self._lookup, account=False)
        n = len(stored.cat)
        return stored.pages == self.pages and stored.cat == self.cat[:n] and not self.cat[n:].strip(b"\x00")

    def offered(self) -> Iterator[Tuple[int, int]]:
        """offered yields ``(pgno, category)`` for every page the map offers (a nonzero entry),
        in page order. O(map). Callers run ``settle`` first."""
        cat = self.cat
        for m in _NONZERO.finditer(cat):
            j = m.start()
            yield j, cat[j]

    def entry(self, pgno: int) -> int:
        """entry: the map's current byte for ``pgno`` (0 for a page it does not cover)."""
        cat = self.cat
        return cat[pgno] if pgno < len(cat) else 0

    def category(self, free: int) -> int:
        """category: the map's byte for a page whose largest insertable record is ``free`` bytes."""
        return min(255, free * 255 // self.pager.page_size)

    def hold(self, pgno: int, free: int) -> None:
        """hold is ``set(pgno, free)`` held back until the heap moves to another page: the heap's
        current page, which the next records go straight into, is set once, not per record.

        Any ``set`` of another page, ``find``, ``settle`` and ``flush`` first apply the held one;
        a ``set`` of the held page replaces it. Readers of ``cat`` call ``settle`` first. ``flush``
        keeps the page held once applied (``held_clean``): the next commit's records go there too.
        """
        if self.held_pgno and self.held_pgno != pgno:
            self.settle()
        self.held_pgno, self.held_free = pgno, free

    def held_clean(self) -> bool:
        """held_clean: no page is held, or the held page's room is what the map says of it already
        (its category; the map keeps nothing finer), as ``flush`` leaves it: settling it changes nothing."""
        pgno = self.held_pgno
        if not pgno:
            return True
        cat = self.cat
        return pgno < len(cat) and cat[pgno] == min(255, self.held_free * 255 // self.pager.page_size)

    def settle(self) -> None:
        """settle applies the ``set`` that ``hold`` held back, if any."""
        pgno = self.held_pgno
        if pgno:
            self.held_pgno = 0
            self.set(pgno, self.held_free)

    def find(self, need: int) -> Optional[int]:
        """find returns a heap page whose largest insertable record is at least ``need``, or None.

        Best fit: a page of the lowest category that surely fits, the last such in page order
        within the last map page's span whose bit says it may hold one. O(1) amortized: a bit
        found stale (its span holds no page of that category any more) costs one memchr over
        the span and is cleared, once per time ``set`` raised it.

        The last, not the first: one-put commits into a churned store (60k records, 30k
        replaced, 3,000 puts) wrote 14,542 bytes per put taking the first page, 13,060 taking
        the last, 13,058 with the bucket sets before (whose order was their hash table's).
        """
        if self.held_pgno:
            self.settle()
        page_size = self.pager.page_size
        c = max(1, (need * 255 + page_size - 1) // page_size)
        blocks, cat, per = self.blocks, self.cat, self.per_page
        while True:
            above = self.nonempty >> c
            if not above:
                return None
            k = c + (above & -above).bit_length() - 1
            mask = blocks[k]
            byte = _BYTES[k]
            while mask:
                top = mask.bit_length() - 1
                base = top * per
                j = cat.rfind(byte, base, base + per)
                if j >= 0:
                    blocks[k] = mask
                    return j
                mask ^= 1 << top
            blocks[k] = 0
            self.nonempty &= ~(1 << k)

    def set(self, pgno: int, free: int) -> None:
        """set records that heap page ``pgno`` can now take a record of ``free`` bytes (0: none, or not a heap page).

        In memory only until ``flush``.
        """
        held = self.held_pgno
        if held:
            if held == pgno:
                self.held_pgno = 0  # this one is newer
            else:
                self.settle()
        c = free * 255 // self.pager.page_size
        if c > 255:
            c = 255
        cat = self.cat
        if pgno < len(cat):
            if cat[pgno] == c:
                return
        elif not c:
            return
        else:
            per = self.per_page
            cat.extend(bytes((pgno // per + 1) * per - len(cat)))
            self._account()
        cat[pgno] = c
        if c:
            self.blocks[c] |= 1 << (pgno // self.per_page)
            self.nonempty |= 1 << c
        self.pending[pgno] = c

    def flush(self) -> None:
        """flush writes the categories set since the last flush into the map pages.

        The store calls it before every commit: ``set`` runs for every record
        placed or freed, and writing the map page each time (a pager write and
        a record lookup) cost more than the rest of ``set``. Each map page is
        written once per flush instead.

        Raises:
            CorruptionError: a map page the changes go to is damaged.
        """
        held, room = self.held_pgno, self.held_free
        if held and not self.pending:
            # A lone put's commit: only the held page's entry may have moved. ``settle`` and ``set``
            # inline, the byte written straight into its map page, and the page kept held.
            c = room * 255 // self.pager.page_size
            if c > 255:
                c = 255
            cat = self.cat
            idx, off = divmod(held, self.per_page)
            if held < len(cat) and idx < len(self.pages):
                if cat[held] == c:
                    return
                cat[held] = c
                if c:
                    self.blocks[c] |= 1 << idx
                    self.nonempty |= 1 << c
                self.pager.write(self.pages[idx]).patch_bytes(0, [(off, c)], self.per_page, "free-space map page")
                return
        self.settle()
        # The page stays held once its room is in the map (``held_clean``): the next commit's
        # records go straight into it, with no search of the map, as a transaction's next records
        # do (a lone durable put searched the map at every commit, and its page was the same).
        self.held_pgno, self.held_free = held, room
        pending = self.pending
        if not pending:
            return
        per_page = self.per_page
        if len(pending) == 1:  # a lone put's commit: one entry, no grouping by map page
            for pgno, c in pending.items():
                idx, off = divmod(pgno, per_page)
                if idx < len(self.pages):
                    self.pager.write(self.pages[idx]).patch_bytes(0, [(off, c)], per_page, "free-space map page")
                    pending.clear()
                    return
        changes: Dict[int, List[Tuple[int, int]]] = {}
        for pgno, c in self.pending.items():
            idx, off = divmod(pgno, per_page)
            if idx in changes:
                changes[idx].append((off, c))
            else:
                changes[idx] = [(off, c)]
        for idx in sorted(changes):
            while idx >= len(self.pages):
                self._grow()
            map_pgno = self.pages[idx]
            # The map page's record located once (and its length checked in the same lookup), not per byte.
            self.pager.write(map_pgno).patch_bytes(0, changes[idx], per_page, "free-space map page")
        self.pending.clear()

    def _grow(self) -> None:
        page = self.pager.allocate(fmt.PAGE_FSM)
        page.insert(bytes(self.per_page))
        if self.pages:
            self.pager.write(self.pages[-1]).next = page.pgno
        else:
            self.pager.meta.fsm_head = page.pgno
        self.pages.append(page.pgno)

    def stored(self, pgno: int) -> int:
        """stored returns the map's byte for ``pgno`` as persisted (for check)."""
        idx, off = divmod(pgno, self.per_page)
        if idx >= len(self.pages):
            return 0
        return self.pager.read(self.pages[idx]).view(0)[off]

    def check(self) -> None:
        """check verifies the in-memory structure: ``cat`` spans whole map pages, at least the
        chain's, and every category present in a span has its bit (the bits may say more:
        they are cleared lazily). O(map).

        Raises:
            CorruptionError: naming no page (the state is this process's own).
        """
        per = self.per_page
        cat = self.cat
        if len(cat) % per or len(cat) < len(self.pages) * per:
            raise CorruptionError(None, "free-space map entries do not span whole map pages")
        for idx in range(len(cat) // per):
            for c in set(cat[idx * per : (idx + 1) * per].translate(None, b"\x00")):
                if not (self.blocks[c] >> idx & 1 and self.nonempty >> c & 1):
                    raise CorruptionError(None, f"free-space map bits miss category {c} in span {idx}")


#: one-byte needles for ``FreeSpaceMap.find``'s memchr
_BYTES = [bytes((c,)) for c in range(256)]


class Heap:
    """Heap stores values and hands out record ids; see the module docstring.

    Callers: the store only. Every method runs inside a pager operation.
    """

    def __init__(self, pager: HeapPager, *, read_only: bool = False) -> None:
        """``read_only``: for reading values only (a snapshot's heap): the free-space map,
        which only placing records needs, is left empty instead of read."""
        self.pager = pager
        usable = pager.page_size - fmt.HEADER_SIZE - fmt.SLOT_SIZE
        self.chunk = usable
        self.inline_max = usable // 2
        self._lookup = RecordLookup()  # one set of C out-parameters for the heap and its map
        self._map = pager.fast_map  # the map, for _native.fast
        self.fsm = FreeSpaceMap(pager, self._lookup, read=not read_only)
        # heap pages this transaction placed records in, most recent last (see _place)
        self._hot: List[int] = []
        # pages this transaction has allocated for values so far (see ``insert``'s chains)
        self._allocated = 0
        # the room a placement asks the map for first (see ``_place``)
        self._roomy = pager.page_size // _ROOMY

    def reset(self) -> None:
        """reset reloads the free-space map after the pager rolled back."""
        self._hot.clear()
        self._allocated = 0
        self.fsm.load()

    def flush(self) -> None:
        """flush writes what changed in the free-space map to its pages. Callers: the store, before commit."""
        self._hot.clear()
        self._allocated = 0
        self.fsm.flush()

    # ---- placing records ----

    def _place(self, record: bytes, state: int, recent: bool = True) -> Rid:
        """_place puts ``record`` in a heap page with room and returns its record id.

        First choice (with ``recent``): the best fit among the heap pages this
        transaction has placed records in (the last _HOT of them). A page
        already dirty costs the commit nothing more; best fit over the whole
        map would dirty one more page per record. Measured in 1,000-record
        insert commits during churn (30k records): 164 dirty heap pages per
        commit with best fit alone, 139 with this first; file size unchanged.
        Then the map: the fullest page with room for 1/_ROOMY of a page (the
        records after this one then go there too, with no search), failing
        that best fit for the record; then a new page. Measured (issue 23,
        1,000-record insert commits in a churn of a 100k store): best fit
        alone left the chosen page without room for the next record, and the
        commits dirtied 1,652 pages; 1,058 with the roomy page first, 41%
        fewer map searches, space after compare.py's churn 1.16 -> 1.18x live.

        The page the last record went to is held (``FreeSpaceMap.hold``):
        its map entry is set once when the heap moves on, not per record (a
        category is 16 bytes of a 4 KiB page wide: nearly every record moved
        the page between buckets). A record that fits in the held page goes
        there with no search; the best fit over the recent pages is for one
        that does not. Measured before the checkpoint threshold went from a
        sixteenth of the data to an eighth, held-first wrote 6% more bytes per
        byte inserted (1.72 -> 1.83); after it (issue 23, 100k and 200k
        records of compare.py's workload) the same bytes within 0.6%, and
        about 1 us less CPU per insert (12.3 -> 11.2 us of apply).
        """
        need = len(record)
        fsm = self.fsm
        hot = self._hot
        pgno = None
        if recent and fsm.held_free >= need and fsm.held_pgno:
            pgno = fsm.held_pgno  # the current page has room: no search
        elif hot and recent:
            # inline, not a method: this runs for every record a transaction writes
            page_size = self.pager.page_size
            c = (need * 255 + page_size - 1) // page_size or 1
            cat = fsm.cat
            ncat = len(cat)
            held = fsm.held_pgno
            held_cat = min(255, fsm.held_free * 255 // page_size)
            best_cat = 256
            for p in hot:
                pc = held_cat if p == held else cat[p] if p < ncat else 0
                if c <= pc < best_cat:
                    pgno, best_cat = p, pc
        if pgno is None:
            # A page of the map with room for more than this record (``_ROOMY``): the next ones
            # then go into it with no search. Best fit alone left the page it chose with
            # nothing for the next record, so nearly every record of a churn's insert took a
            # search and dirtied a heap page of its own.
            if recent and need < self._roomy:
                pgno = fsm.find(self._roomy)
            if pgno is None:
                pgno = fsm.find(need)
        if pgno is not None:
            page = self.pager.write(pgno)
            try:
                slot, room = page.insert_room(record, state)
            except PageFullError:
                # The map was optimistic (it should not be): fix it and use a new page.
                fsm.set(pgno, page.max_insert)
                pgno = None
        if pgno is None:
            page = self.pager.allocate(fmt.PAGE_HEAP)
            self._allocated += 1
            pgno = page.pgno
            slot, room = page.insert_room(record, state)
        if recent:
            fsm.hold(pgno, room)
        else:
            fsm.set(pgno, room)
        if recent and (not hot or hot[-1] != pgno):
            if pgno in hot:
                hot.remove(pgno)
            hot.append(pgno)
            if len(hot) > _HOT:
                del hot[0]
        return pgno, slot

    def insert(self, value: bytes) -> Rid:
        """insert stores ``value`` and returns its record id."""
        n = len(value)
        if n <= self.inline_max:
            fsm = self.fsm
            pgno = fsm.held_pgno
            if pgno and fsm.held_free >= n and type(value) is bytes:
                # _place's first case, inline: the page the last record went to has room. It
                # is dirty already (the last record made it so) and the last of the recent
                # pages, so placing costs the write's touch and one lean call (the frame, a
                # bytearray, changed in place), and the map's held room is all that moves.
                page = self.pager.write(pgno)
                buf = page.buffer
                if type(buf) is bytearray:
                    try:
                        slot, fsm.held_free = _page_insert_room(buf, value, _SLOT_LIVE, pgno)
                    except PageFullError:  # pragma: no cover - the held room is the page's own figure
                        pass
                    else:
                        return pgno, slot
            return self._place(value, _SLOT_LIVE)
        # A large transaction's chains go straight into the data file, built in one C call
        # (``write_chain``'s direct way, as the bulk build's), once it has allocated
        # DIRECT_CHAINS pages: its commit then writes its new pages into the data file and
        # syncs it anyway (``Pager.commit``'s DIRECT_PAGES), so this costs no sync more, and
        # saves a cached frame, a SlottedPage and an eviction per overflow page. A small
        # commit's chains stay in the log: a direct write would cost it a second sync.
        direct = self._allocated >= DIRECT_CHAINS
        if not direct:
            q, r = divmod(n, self.chunk)
            self._allocated += q if r <= self.inline_max else q + 1
        return self._place(self.write_chain(value, direct=direct), fmt.SLOT_OVERFLOW)

    def place_stub(self, stub: bytes) -> Rid:
        """place_stub places an overflow stub from ``write_chain`` by best fit over the whole map
        (or in a new page) and returns its record id.

        Callers: the bottom-up build, whose heap pages are all new: the
        transaction's recently used pages that ``_place`` tries first (pages
        already dirty cost a small commit nothing more) save it nothing, and
        trying them cost a fifth of each placement.
        """
        return self._place(stub, _SLOT_OVERFLOW, recent=False)

    def write_chain(self, value: bytes, *, direct: bool = False) -> bytes:
        """write_chain writes the overflow pages of a value longer than ``inline_max`` and
        returns its stub record, for the caller to place with state SLOT_OVERFLOW.

        Callers: insert, and the bottom-up build (bulk.py), which places stubs
        in the heap pages it fills. The chain is written last chunk first, so
        each page is written once, already knowing its successor. With
        ``direct`` (the build) and where the pager allows it
        (``Pager.allocate_run``), the chain takes adjacent new pages, first
        chunk first, built in one C call (``page.build_singles``) and written
        into the data file in one go: no cached page, SlottedPage or Python
        call per chunk.
        """
        n = len(value)
        chunk = self.chunk
        q, r = divmod(n, chunk)
        nchunks = q if r <= self.inline_max else q + 1
        first = self.pager.allocate_run(nchunks) if direct else 0
        if first:
            pgnos = list(range(first, first + nchunks))
            lens = [chunk] * nchunks
            lens[-1] = n - (nchunks - 1) * chunk if nchunks * chunk > n else chunk
            self.pager.write_run(first, build_singles(self.pager.page_size, _PAGE_OVERFLOW, pgnos,
                                                      pgnos[1:] + [0], value, lens))
            return _STUB.pack(n, first) + value[nchunks * chunk :]
        allocate = self.pager.allocate
        nxt = 0
        for i in range(nchunks - 1, -1, -1):
            page = allocate(_PAGE_OVERFLOW)
            # a bytes slice, not a memoryview: the copy costs less than
            # wrapping a view for C (measured 0.75 against 1.07 us a page)
            page.insert(value[i * chunk : (i + 1) * chunk])
            page.next = nxt
            nxt = page.pgno
        return _STUB.pack(n, nxt) + value[nchunks * chunk :]

    # ---- reading ----

    def _chain(
        self, pgno: int, first: int, total: int, tail_len: int, parts: Optional[List[memoryview]] = None
    ) -> List[int]:
        """_chain returns the overflow pages of a stub, checking lengths and types.

        With ``parts``, appends a view of each page's chunk to it, in order.
        """
        expected, rem = divmod(total - tail_len, self.chunk)
        count = expected + (1 if rem else 0)
        if count >= self.pager.meta.page_count:
            raise CorruptionError(pgno, f"overflow stub says {total} bytes, more than the file's pages hold")
        pages: List[int] = []
        seen: Set[int] = set()
        # Reading a value, take its pages in passing (see Pager.read_passing);
        # a delete is about to free them, so it may as well cache them.
        read = self.pager.read if parts is None else self.pager.read_passing
        p = first
        while p:
            if len(pages) >= count:
                raise CorruptionError(p, f"overflow chain of record in page {pgno} is longer than its value")
            if p in seen:
                raise CorruptionError(p, f"overflow chain of record in page {pgno} has a cycle")
            seen.add(p)
            pages.append(p)
            page = read(p)
            if page.page_type != _PAGE_OVERFLOW or page.nlive != 1:
                raise CorruptionError(p, "overflow chain holds a page that is not an overflow page")
            chunk = self._lookup.view(page, p, 0, "overflow page")
            if parts is not None:
                parts.append(chunk)
            p = page.next
        if len(pages) != count:
            raise CorruptionError(pgno, "overflow chain is shorter than its value")
        return pages

    def _record(self, rid: Rid) -> Tuple[memoryview, int]:
        """_record finds a live heap record: a view of its bytes and its state.

        Raises:
            CorruptionError: the record id points at another kind of page or a dead slot.
        """
        pgno, slot = rid
        page = self.pager.read(pgno)
        if page.page_type != fmt.PAGE_HEAP:
            raise CorruptionError(pgno, f"record id ({pgno}, {slot}) points at a page of type {page.page_type}")
        try:
            return page.view_and_state(slot)
        except KeyError:
            raise CorruptionError(pgno, f"record id ({pgno}, {slot}) points at a dead slot") from None

    @staticmethod
    def _stub(rid: Rid, stub: "bytes | memoryview") -> Tuple[int, int]:
        """_stub decodes an overflow stub record: the value's total length and first overflow page."""
        n = len(stub)
        if n < 8:
            raise CorruptionError(rid[0], f"overflow stub in slot {rid[1]} is too short")
        total, first = _STUB.unpack_from(stub, 0)
        if total < n - 8:
            raise CorruptionError(rid[0], f"overflow stub in slot {rid[1]} is shorter than its tail")
        return total, first

    def read(self, rid: Rid) -> bytes:
        """read returns the value at ``rid``. O(1) page reads, plus one per overflow page.

        A heap page whose newest image is in the data file is read in place
        from the pager's map: a whole live record is one C call returning
        the bytes (``_native.fast``), an overflow value its chain's pages in
        place. Any other page, or one the map path finds wrong, comes through
        the pager (one more call for a whole live record), whose checking
        path raises the error naming the page.

        Raises:
            CorruptionError: a dangling or damaged record.
        """
        pgno = rid[0]
        pager = self.pager
        mm = pager.map
        value: Optional[bytes]
        if mm is not None and pgno not in pager.overlaid:
            found_value = _map_value(self._map, pgno, rid[1])  # a whole live record: the bytes, one call
            if type(found_value) is bytes:
                return found_value
            if found_value is not None:  # an overflow stub: (total, first page, tail length)
                value = self._chain_mapped(pgno, rid[1], *found_value)
                if value is not None:
                    return value
            found = _map_record(self._map, pgno, rid[1], _PAGE_HEAP)
            if found is not None:
                off, n, state, _ = found
                if state == _SLOT_LIVE:
                    return mm[off : off + n]
                value = self._overflow_mapped(mm, off, n)
                if value is not None:
                    return value
        page = pager.read(pgno)
        value = _page_value(page.buffer, rid[1])  # newest in the log, or no map: a whole live record, one call
        if value is not None:
            return value
        if mm is not None:
            # An overflow stub in a page newest in the log (written since the last checkpoint):
            # its chain's pages, written once and never changed, are mostly in the data file
            # already, one run in the map: the value is one C call and the stub's tail.
            found = self._lookup.record(page, rid[1], _PAGE_HEAP)
            if found is not None and found[0] == _SLOT_OVERFLOW and len(found[1]) >= 8:
                stub = found[1]
                total, first = _STUB.unpack_from(stub, 0)
                value = self._run_mapped(first, total, stub[8:])
                if value is not None:
                    return value
        return self._value_at(rid, page)

    def _run_mapped(self, first: int, total: int, tail: bytes) -> Optional[bytes]:
        """_run_mapped: an overflow value whose stub the caller read (anywhere: the map or a page
        newest in the log), its chain taken from the map in one C call (``map_chain_run``) when
        its pages run one after another there, none overlaid; then ``tail``. None otherwise (the
        caller's checking path reads it page by page)."""
        if not first:
            return None
        count = self._run_pages(total, len(tail))
        for step in self._run_steps(first, count):
            head: Optional[bytes] = _map_chain_run(self._map, first, count, step)
            if head is not None:
                value = head + tail
                return value if len(value) == total else None
        return None

    def read_run(self, pgnos: List[int], slots: List[int]) -> List[bytes]:
        """read_run returns the values of records ``(pgnos[i], slots[i])``, in order: a scan's run.

        One C call takes every whole live record whose page is in the data
        file out of the map (``_native.fast.map_values``); the rest (an
        overflow value, a page newest in the log, damage) go through ``read``.
        Without a map: ``read_many``.

        Raises:
            CorruptionError: a dangling or damaged record.
        """
        pager = self.pager
        if pager.map is None:
            return self.read_many(list(zip(pgnos, slots)))
        overlaid = pager.overlaid
        out: List[Any]
        if overlaid.isdisjoint(pgnos):
            out = _map_values(self._map, pgnos, slots)
            if None not in out:  # the common case, checked at C speed
                return out
        else:
            out = _map_values(self._map, [0 if p in overlaid else p for p in pgnos], slots)  # 0: not the map's
        # A whole live record in a page newest in the log (right after writes, many are) is
        # one pager read and one C call, without read's frame and its map attempts; overflow
        # values, and anything else, go through read.
        pread = pager.read
        read = self.read
        for k, v in enumerate(out):
            if v is None:
                pgno = pgnos[k]
                if pgno in overlaid:
                    v = _page_value(pread(pgno).buffer, slots[k])
                out[k] = v if v is not None else read((pgno, slots[k]))
        return out

    def _chain_mapped(self, pgno: int, slot: int, total: int, first: int, tail: int) -> Optional[bytes]:
        """_chain_mapped reads the overflow value of stub (pgno, slot) in one C call when its chain's
        pages run one after another in the data file (``map_chain_value``: chunks and tail in one
        bytes object). None otherwise: the caller takes ``_overflow_mapped``, then the pager."""
        count = self._run_pages(total, tail)
        for step in self._run_steps(first, count):
            value: Optional[bytes] = _map_chain_value(self._map, first, count, step, pgno, slot)
            if value is not None:
                return value
        return None

    def _chain_pages_mapped(self, first: int, total: int, tail: int) -> Optional[List[int]]:
        """_chain_pages_mapped: the overflow pages of a stub (its value ``total`` bytes long, ``tail`` of
        them in the stub) that is being deleted, when they run one after another in the map,
        none overlaid, each a sound overflow page linked to the next and holding the value's
        bytes (one C call, ``map_chain_run``, as ``read`` takes such a chain); else None, and
        the caller walks the chain page by page (``_chain``, which raises on damage). Before
        it, a delete read every page of the chain into the pager's cache only to learn its
        successor (issue 23: churn's deletes of large values)."""
        count = self._run_pages(total, tail)
        for step in self._run_steps(first, count):
            head: Optional[bytes] = _map_chain_run(self._map, first, count, step)
            if head is not None:
                return list(range(first, first + step * count, step)) if len(head) + tail == total else None
        return None

    def _run_pages(self, total: int, tail: int) -> int:
        """_run_pages: how many whole-chunk overflow pages a value of ``total`` bytes with a tail of
        ``tail`` bytes has (0: none, or more than the file holds: not a run to read)."""
        if total < tail:
            return 0
        expected, rem = divmod(total - tail, self.chunk)
        count = expected + (1 if rem else 0)
        return count if count < self.pager.meta.page_count else 0

    def _run_steps(self, first: int, count: int) -> List[int]:
        """_run_steps: the directions (-1: descending, as the heap allocates a chain; 1) in which
        ``count`` pages from ``first`` may run one after another in the map, none overlaid."""
        if not count:
            return []
        overlaid = self.pager.overlaid
        return [step for step in ((-1, 1) if count > 1 else (1,))
                if overlaid.isdisjoint(range(first, first + step * count, step))]

    def _overflow_mapped(self, mm: "mmap.mmap", off: int, n: int) -> Optional[bytes]:
        """_overflow_mapped assembles an overflow value whose stub (at ``off`` in the map) and chain
        pages are all in the data file, in place. None for anything else (an overlaid chain page,
        a short stub, a chain that is not what the stub says): the caller then takes the pager's
        path, which reads the pages whatever they are and raises the errors."""
        if n < 8:
            return None
        total, p = _STUB.unpack(mm[off : off + 8])
        tail_len = n - 8
        if total < tail_len:
            return None
        expected, rem = divmod(total - tail_len, self.chunk)
        count = expected + (1 if rem else 0)
        if count >= self.pager.meta.page_count:
            return None  # a hostile total: no chain is longer than the file (the slow path names the page)
        overlaid, m, chunk = self.pager.overlaid, self._map, _map_chunk
        # A chain allocated page after page (the common case: descending when
        # written last chunk first at the file's end, ascending from a bulk
        # build) is one C call for the whole value; C checks every link.
        for step in (-1, 1) if count > 1 else (1,):
            if p and overlaid.isdisjoint(range(p, p + step * count, step)):
                head = _map_chain_run(m, p, count, step)
                if head is not None:
                    value = head + mm[off + 8 : off + n]
                    return value if len(value) == total else None
        # Each chunk copied out of the map in one C call, then joined: two
        # copies, fewer Python steps than slicing views of the map.
        parts: List[bytes] = []
        add = parts.append
        while p:
            if len(parts) >= count or p in overlaid:
                return None
            found = chunk(m, p)
            if found is None:
                return None
            data, p = found
            add(data)
        if len(parts) != count:
            return None
        add(mm[off + 8 : off + n])
        value = b"".join(parts)
        return value if len(value) == total else None

    def locate(self, pgnos: List[int], slots: List[int], lazy: bool = False) -> "Located":
        """locate finds the records ``(pgnos[i], slots[i])``, for a scan to take values from
        as the caller asks for them (``Located.take``).

        One C call finds every record whose page is in the data file, in place
        in the map. A page that is overlaid (dirty, or newest in the log) is
        read through the pager instead, and its record found there; without a
        map, every page is. Valid until the next write: the caller re-locates
        after one.

        ``lazy``: locate nothing now; each ``take(i, j)`` locates entries [i,
        j) in one call, just before slicing them. For the start of a scan,
        which may stop after a few values: it then touches only the heap
        pages of the values it takes.
        """
        if lazy:
            return Located(self, None, None, pgnos, slots, [], [], [], lazy=True)
        pager = self.pager
        mm = pager.map
        overlaid = pager.overlaid
        if mm is None:
            return self._locate_private(pgnos, slots, range(len(pgnos)), None, [0] * len(pgnos),
                                        [0] * len(pgnos), [0] * len(pgnos))
        mine = None if overlaid.isdisjoint(pgnos) else [k for k, p in enumerate(pgnos) if p in overlaid]
        asked = pgnos if mine is None else [0 if p in overlaid else p for p in pgnos]  # 0: C skips it
        offs, lens, states = pager.map_records(asked, slots, _PAGE_HEAP)
        if mine is None:
            return Located(self, mm, None, pgnos, slots, offs, lens, states)
        return self._locate_private(pgnos, slots, mine, mm, offs, lens, states)

    def _locate_private(self, pgnos: List[int], slots: List[int], which: Sequence[int],
                        mm: Optional[mmap.mmap], offs: List[int], lens: List[int], states: List[int]) -> "Located":
        """_locate_private finishes ``locate`` for entries ``which``, whose pages are read
        through the pager: each such entry's source is a copy of its page, taken now."""
        read = self.pager.read
        find = self._lookup.find
        copies: Dict[int, Optional[bytes]] = {}
        srcs: List[Optional[bytes]] = [None] * len(pgnos)
        for k in which:
            pgno = pgnos[k]
            if pgno not in copies:
                try:
                    page = read(pgno)
                    copies[pgno] = bytes(page.buffer) if page.page_type == _PAGE_HEAP else None
                except CorruptionError:
                    copies[pgno] = None  # reported when the value is taken, through read()
            src = copies[pgno]
            found = None if src is None else find(read(pgno), slots[k])
            if found is None:
                offs[k] = lens[k] = states[k] = 0
                srcs[k] = b""  # sliced empty, then read (and reported) by take; there may be no map
            else:
                offs[k], lens[k], states[k] = found
                srcs[k] = src
        return Located(self, mm, srcs, pgnos, slots, offs, lens, states)

    def read_many(self, rids: Sequence[Rid]) -> List[bytes]:
        """read_many returns the values at ``rids``, in order: ``[read(r) for r in rids]`` with less overhead.

        For scans, which read a run of records in one pager operation: every
        page it reads stays pinned until the operation ends, so callers keep
        runs short (the store reads at most part of one leaf's records).

        Raises:
            CorruptionError: a dangling or damaged record (none of the values is returned).
        """
        read = self.pager.read
        pages: List[SlottedPage] = []
        append = pages.append
        last = None
        for pgno, _ in rids:
            if pgno != last:  # records inserted in key order share pages: one pager call per page
                last = pgno
                page = read(pgno)
            append(page)
        # Every record located in one C call; a value comes straight from its
        # page unless it is not a whole live heap record (overflow, damage).
        found = self._lookup.values(pages, [slot for _, slot in rids], _PAGE_HEAP)
        if None not in found:  # the common case, checked at C speed
            return found  # type: ignore[return-value]
        values: List[bytes] = []
        add = values.append
        for rid, page, value in zip(rids, pages, found):
            add(value if value is not None else self._value_at(rid, page))
        return values

    def _value_at(self, rid: Rid, page: SlottedPage) -> bytes:
        """_value_at reads record ``rid`` from ``page`` (its page, already read): the one lookup
        of read and read_many, with _read_checked for anything that is not a live heap record."""
        found = self._lookup.record(page, rid[1], _PAGE_HEAP)
        if found is None:
            return self._read_checked(rid)
        state, record = found
        if state == _SLOT_LIVE:
            return record
        return self._overflow(rid, record)

    def _read_checked(self, rid: Rid) -> bytes:
        """_read_checked is read through _record's argument checks: the path for bad record ids (it raises)."""
        record, state = self._record(rid)
        if state == _SLOT_LIVE:
            return bytes(record)
        return self._overflow(rid, record)

    def _overflow(self, rid: Rid, stub: "bytes | memoryview") -> bytes:
        """_overflow assembles a value stored as a stub record and its overflow chain."""
        pgno, slot = rid
        total, first = self._stub(rid, stub)
        n = len(stub)
        parts: List[memoryview] = []
        self._chain(pgno, first, total, n - 8, parts)
        parts.append(memoryview(stub)[8:])
        value = b"".join(parts)
        if len(value) != total:
            raise CorruptionError(pgno, f"overflow record in slot {slot} has {len(value)} bytes, stub says {total}")
        return value

    # ---- changing ----

    def delete(self, rid: Rid) -> int:
        """delete frees the record (and its overflow pages); returns the value's length."""
        pgno, slot = rid
        page = self.pager.write(pgno)
        buf = page.buffer
        length: int
        stub: Optional[bytes]
        if type(buf) is bytearray:  # a pager frame: one lean call deletes, and says what the heap needs
            length, stub, nlive, room = _record_delete(buf, slot, pgno)
        else:  # pragma: no cover - a frame of another kind (the pager's are bytearrays)
            record = page.read(slot)
            length = len(record)
            stub = record if page.state(slot) == _SLOT_OVERFLOW else None
            page.delete(slot)
            nlive, room = page.nlive, page.max_insert
        if stub is not None:
            total, first = self._stub(rid, stub)
            chain = self._chain_pages_mapped(first, total, length - 8) if self.pager.map is not None else None
            for p in chain if chain is not None else self._chain(pgno, first, total, length - 8):
                self.pager.free(p)
            length = total
        if nlive == 0:
            self.fsm.set(pgno, 0)
            self.pager.free(pgno)
        else:
            self.fsm.set(pgno, room)
        return length

    def delete_many(self, rids: Sequence[Rid]) -> int:
        """delete_many frees the records ``rids`` (distinct) and their overflow pages, a heap page at a time;
        returns the values' total length.

        ``[delete(r) for r in rids]`` with one ``pager.write`` and one map
        update per heap page instead of per record (Store.delete_range: a
        leaf's records). A page left with no record is freed whole, without
        being written or its records visited one by one (one C call lists
        them; only overflow stubs are read); the freed pages go to the free
        list in one call.

        Raises:
            CorruptionError: a record that is not there, or a damaged chain (names its page).
        """
        by_page: Dict[int, List[int]] = {}
        # A leaf's records mostly lie in runs on one heap page: grouped at C speed, a run at a time.
        for pgno, run in groupby(rids, key=_PGNO):
            slots = by_page.get(pgno)
            if slots is None:
                by_page[pgno] = list(map(_SLOT, run))
            else:
                slots.extend(map(_SLOT, run))
        total = 0
        pager, fsm = self.pager, self.fsm
        freed: List[int] = []
        for pgno, slots in by_page.items():
            page = pager.read(pgno)
            if page.page_type != _PAGE_HEAP:
                raise CorruptionError(pgno, f"a record id names a page of type {page.page_type}, not a heap page")
            live, _, lens, states = page.columns()  # one C call for the page's every record
            if len(slots) == len(live) and set(slots) == set(live):
                # Every record of the page goes: free it whole, unwritten.
                if _SLOT_OVERFLOW in states:
                    for i, state in enumerate(states):
                        if state == _SLOT_OVERFLOW:
                            total += self._free_chain(page, pgno, live[i], freed) - lens[i]
                total += sum(lens)
                fsm.set(pgno, 0)
                freed.append(pgno)
                continue
            where = {slot: i for i, slot in enumerate(live)}
            for slot in slots:
                i = where.get(slot, -1)
                if i < 0:
                    raise CorruptionError(pgno, f"record id ({pgno}, {slot}) names no live record")
                if states[i] == _SLOT_OVERFLOW:
                    total += self._free_chain(page, pgno, slot, freed)
                else:
                    total += lens[i]
            page = pager.write(pgno)
            for slot in slots:
                page.delete(slot)
            fsm.set(pgno, page.max_insert)
        if freed:
            pager.free_many(freed)
        return total

    def _free_chain(self, page: SlottedPage, pgno: int, slot: int, freed: List[int]) -> int:
        """_free_chain adds the overflow pages of the stub in ``slot`` to ``freed``; returns the value's length."""
        stub = page.read(slot)
        length, first = self._stub((pgno, slot), stub)
        freed.extend(self._chain(pgno, first, length, len(stub) - 8))
        return length

    def drop_all(self) -> None:
        """drop_all forgets every heap page: the caller (Store.clear) frees them all, with every other
        page of records. The free-space map then offers none; its pages stay, all zero after ``flush``."""
        self._hot.clear()
        fsm = self.fsm
        fsm.settle()
        for pgno, _ in list(fsm.offered()):
            fsm.set(pgno, 0)

    def update(self, rid: Rid, value: bytes) -> Tuple[Rid, int]:
        """update replaces the value at ``rid``: in place when it fits, else moved.

        Returns the (possibly new) record id and the old value's length.
        """
        pgno, slot = rid
        page = self.pager.read(pgno)
        record, state = page.view_and_state(slot)
        n = len(record)
        del record  # the view pins the page's buffer
        if state == fmt.SLOT_LIVE and len(value) <= self.inline_max:
            page = self.pager.write(pgno)
            try:
                page.update(slot, value)
            except PageFullError:
                pass
            else:
                self.fsm.set(pgno, page.max_insert)
                return rid, n
        old = self.delete(rid)
        return self.insert(value), old

    # ---- checking ----

    def check_record(self, rid: Rid) -> Tuple[int, List[int]]:
        """check_record verifies one record; returns its length and its overflow pages."""
        record, state = self._record(rid)
        n = len(record)
        if state != fmt.SLOT_OVERFLOW:
            return n, []
        total, first = self._stub(rid, record)
        return total, self._chain(rid[0], first, total, n - 8)

    def check(self) -> Dict[str, int]:
        """check verifies the heap's own structure: the free-space map. O(map pages + pages it offers).

        Every map page is a map page of the right length; every page the map
        offers is a heap page whose entry matches its free space, in memory
        and (once flushed) on its map page; the in-memory bits cover every
        entry (``FreeSpaceMap.check``). Records are checked from the tree's side
        (``check_record``, by the store's check), which knows which exist.

        Returns:
            ``{"map_pages", "offered_pages"}``.

        Raises:
            CorruptionError: naming the first page found wrong.
        """
        fsm = self.fsm
        if not fsm.held_clean():  # a clean hold (a commit's) stays: its entry is exact already
            fsm.settle()
        for pgno in fsm.pages:
            page = self.pager.read(pgno)
            if page.page_type != fmt.PAGE_FSM or len(page.view(0)) != fsm.per_page:
                raise CorruptionError(pgno, "free-space map page is not a map page of the right length")
        fsm.check()
        offered = 0
        for pgno, _ in fsm.offered():
            offered += 1
            if pgno >= self.pager.meta.page_count or self.pager.read(pgno).page_type != fmt.PAGE_HEAP:
                raise CorruptionError(pgno, "free-space map offers a page that is not a heap page")
            if pgno not in fsm.pending:
                self.check_page(pgno)
        return {"map_pages": len(fsm.pages), "offered_pages": offered}

    def check_page(self, pgno: int) -> None:
        """check_page verifies a heap page's map entry matches its free space."""
        page = self.pager.read(pgno)
        want = self.fsm.category(page.max_insert)
        if self.fsm.entry(pgno) != want or self.fsm.stored(pgno) != want:
            raise CorruptionError(pgno, "free-space map entry does not match the page")


class Located:
    """Located: where a run of records lies (``Heap.locate``), to be sliced into values on demand.

    ``take(i, j)`` returns the values of entries [i, j): a live record is one
    slice of its source, the map or a copy of its page taken by ``locate``;
    anything else (an overflow record, an entry the lookup refused) goes
    through ``Heap.read``, which assembles it or raises the CorruptionError
    naming its page. Take values only while no write has committed since
    ``locate`` (the store's scan checks its version), inside a pager operation.
    """

    __slots__ = ("_heap", "_map", "_srcs", "_pgnos", "_slots", "_offs", "_lens", "_states", "_other", "_lazy")

    def __init__(self, heap: Heap, mm: Optional[mmap.mmap], srcs: Optional[List[Optional[bytes]]], pgnos: List[int],
                 slots: List[int], offs: List[int], lens: List[int], states: List[int], lazy: bool = False) -> None:
        self._lazy = lazy
        self._heap = heap
        self._map = mm
        self._srcs = srcs  # per entry: a page copy, or None for the map; None: the map for all
        self._pgnos = pgnos
        self._slots = slots
        self._offs = offs
        self._lens = lens
        self._states = states
        # the entries that are not a live record in a source: overflow, or refused
        self._other = [] if states.count(_SLOT_LIVE) == len(states) else [
            k for k, st in enumerate(states) if st != _SLOT_LIVE]

    def take(self, i: int, j: int) -> List[bytes]:
        """take returns the values of entries [i, j), in order.

        Raises:
            CorruptionError: a dangling or damaged record.
        """
        if self._lazy:
            return self._heap.locate(self._pgnos[i:j], self._slots[i:j]).take(0, j - i)
        offs, lens, srcs = self._offs, self._lens, self._srcs
        if srcs is None:
            mm = self._map
            assert mm is not None
            out = [mm[o : o + n] for o, n in zip(offs[i:j], lens[i:j])]
        else:
            mm = self._map
            out = [(mm if s is None else s)[o : o + n]  # type: ignore[index]
                   for s, o, n in zip(srcs[i:j], offs[i:j], lens[i:j])]
        for k in self._other:
            if i <= k < j:
                value = None
                if self._states[k] == _SLOT_OVERFLOW and (srcs is None or srcs[k] is None):
                    # a stub in the map: its chain in place, if all of it is there
                    value = self._heap._overflow_mapped(mm, offs[k], lens[k])  # type: ignore[arg-type]
                out[k - i] = value if value is not None else self._heap.read((self._pgnos[k], self._slots[k]))
        return out
