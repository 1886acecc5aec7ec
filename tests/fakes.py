"""Test doubles for the layers under test.

MemoryPager implements exactly the pager interface the B+tree uses
(``page_size``, ``meta``, ``read``, ``write``, ``allocate``, ``free``) over a
dict of bytearrays, plus test-only helpers (``commit``, ``rollback``,
``live_pages``) that the real pager does not promise.
"""
from __future__ import annotations

from typing import Dict, List, Set

from pagestore import format as fmt
from pagestore.errors import CorruptionError
from pagestore.page import SlottedPage


class MemoryPager:
    """MemoryPager keeps pages in memory: pgno -> bytearray; page 0 is reserved.

    ``read`` hands out a validated page over a private copy, so a caller that
    mutates it (breaking the contract) loses the change and tests notice.
    ``write`` hands out the stored page itself. ``allocate`` reuses the lowest
    freed page number before growing the file.
    """

    #: no mapped data file: every page is read through ``read``
    map = None

    map_calls = None
    epoch = 0

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.meta = fmt.Meta(page_size)
        self.overlaid: Set[int] = set()
        self._pages: Dict[int, bytearray] = {}
        self._free: List[int] = []
        self.reads = 0
        self.writes = 0
        self.allocated = 0
        self.freed = 0
        self._snapshot = self._take_snapshot()

    # ---- the pager interface ----

    def read(self, pgno: int) -> SlottedPage:
        buf = self._pages.get(pgno)
        if buf is None:
            raise CorruptionError(pgno, "read of a page that is not allocated")
        self.reads += 1
        page = SlottedPage(bytearray(buf), validate=False, pgno=pgno)
        page.check()
        return page

    def write_image(self, pgno: int, image: bytes) -> SlottedPage:
        return self.write(pgno)

    def write(self, pgno: int) -> SlottedPage:
        buf = self._pages.get(pgno)
        if buf is None:
            raise CorruptionError(pgno, "write of a page that is not allocated")
        self.writes += 1
        return SlottedPage(buf, validate=False, pgno=pgno)

    def allocate(self, page_type: int) -> SlottedPage:
        if self._free:
            self._free.sort()
            pgno = self._free.pop(0)
        else:
            pgno = self.meta.page_count
            self.meta.page_count += 1
        buf = bytearray(self.page_size)
        self._pages[pgno] = buf
        self.allocated += 1
        page = SlottedPage(buf, validate=False, pgno=pgno)
        page.init(pgno, page_type)
        return page

    def free(self, pgno: int) -> None:
        if pgno not in self._pages:
            raise AssertionError(f"double free of page {pgno}")
        del self._pages[pgno]
        self._free.append(pgno)
        self.freed += 1

    def free_many(self, pgnos) -> None:
        for pgno in pgnos:
            self.free(pgno)

    # ---- test helpers ----

    def live_pages(self) -> Set[int]:
        """live_pages: every allocated, not freed page number."""
        return set(self._pages)

    def raw(self, pgno: int) -> bytearray:
        """raw: the stored bytes of a page, for tests that corrupt it."""
        return self._pages[pgno]

    def _take_snapshot(self):
        return (
            {p: bytes(b) for p, b in self._pages.items()},
            list(self._free),
            self.meta.copy(),
            self.allocated,
            self.freed,
        )

    def commit(self) -> None:
        """commit makes the current pages the ones ``rollback`` returns to."""
        self._snapshot = self._take_snapshot()

    def rollback(self) -> None:
        """rollback throws away every change since the last commit (pages, free list, meta)."""
        pages, free, meta, self.allocated, self.freed = self._snapshot
        self._pages = {p: bytearray(b) for p, b in pages.items()}
        self._free = list(free)
        # the pager owns one live Meta; restore it in place as a real pager would
        for name, value in vars(meta).items():
            setattr(self.meta, name, value)
