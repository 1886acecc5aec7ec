"""salvage: every record still readable in a damaged store, as SQLite's ``.recover`` reads a database.

The tree's own walks start at the root and stop at the first damaged page;
a damaged header, root or free-space map would lose everything. Salvage
trusts none of them. It reads every page on its own: a page's checksum and
stamped page number say whether it is intact, its type byte what it is.

    pass 1  every intact LEAF page, in page order: its (key, record id) pairs.
            Where two leaves claim one key, the one with the higher page LSN
            (the newer write) wins.
    pass 2  the keys in order: each record id's HEAP page, when intact and the
            slot is live; an overflow stub's chain, when every page of it is
            intact, of type OVERFLOW and as long as the stub says.

A record comes out only when its key and its whole value were read from
intact pages, so every record returned is exactly as stored; a damaged page
loses the records it held (a leaf: its keys; a heap page: its values; an
overflow page: its one value), never more.

Where the pages come from (``Source``):

    PagerSource   an open Store's pager (``Store.salvage``): each page's
                  image as of one snapshot (a read mark), the log's included.
    FileSource    a file no Pager will open (``salvage_path``): page 0 only
                  for its page size, and when page 0 is damaged the common
                  page sizes tried against pages 1.. (the size at which the
                  most of them verify wins, or the log header's). The log,
                  ``<store>-wal``, is read as recovery reads it (committed
                  frames only; wal.WAL), and its newest intact image of a
                  page is taken before the data file's. This is the one
                  reader of the data file besides the pager: a rescue tool
                  cannot go through the pager's checks of the very header
                  that is damaged. It takes no lock: run it on a store no
                  one has open for writing (``pagestore dump --salvage``
                  first tries an ordinary read-only open).

When a committed header is at hand (page 0, or the log's copy of it), pages
past its page count and pages stamped with a later LSN than its last commit
are not read: they are a transaction that never committed. Nor are the pages
its free list owns, when the list is intact: a freed page keeps the bytes it
had (format 4 never writes it), records that were deleted. Pages it counts
that neither the data file nor the log holds (a file cut short; a hostile
count of 2**32 - 1) are not visited: they are named as damaged, the first
MISSING_NAMED of them, and a note says the whole range.

Memory: pass 1 keeps one entry per distinct key found (the key and its
record id and LSN), so memory is proportional to the keys, not to the file
or the values; pass 2 keeps a small cache of heap pages (PAGE_CACHE). The
log's frame index (one entry per page with a committed image in the log) is
the log's own. Nothing else is held: values stream out one at a time.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING, AbstractSet, Callable, Dict, Iterator, List, Optional, Set, Tuple

from . import codecs, fileio, nodes
from . import format as fmt
from .errors import CorruptionError, InvalidFileError, PageStoreError, VersionMismatchError
from .freelist import read_free_pages
from .page import SlottedPage
from .wal import WAL, WAL_HEADER_SIZE, WAL_MAGIC, log_path

if TYPE_CHECKING:  # pragma: no cover
    from .pager import Pager
    from .readers import ReadMark

#: Heap pages pass 2 keeps decoded (about 4 MiB of 4 KiB pages).
PAGE_CACHE = 1024
#: Page sizes tried when page 0 is damaged, the default first.
COMMON_PAGE_SIZES = (4096, 8192, 16384, 65536, 32768, 2048, 1024, 512)
#: Pages (from page 1) a candidate page size is tried against.
PROBE_PAGES = 32
#: Missing pages (counted by the header, held by no file) named one by one in ``damaged``:
#: a file cut short is named to its end; a hostile count costs no more than this.
MISSING_NAMED = 1 << 16
#: Where page 0 keeps the codec names (docs/format.md, file header).
_KEY_CODEC_OFFSET = 96
_VALUE_CODEC_OFFSET = _KEY_CODEC_OFFSET + fmt.CODEC_NAME_SIZE
_STUB = struct.Struct("<II")
_LOG_HEADER = struct.Struct("<8sIIQQI")  # magic, version, page_size, file_id, generation, salt


class Source:
    """Source is where salvage reads pages: ``page_count`` pages of ``page_size`` bytes.

    ``image(pgno)`` returns the newest committed bytes of a page, unverified,
    or None when there are none (past the end of a truncated file).
    ``committed_lsn`` is the last commit's LSN when a header says it, else None.
    """

    page_size: int = 0
    page_count: int = 0
    committed_lsn: Optional[int] = None
    #: the codec names the header records (None: no readable header)
    codec_names: Optional[Tuple[str, str]] = None
    #: page 0 failed verification (salvage then counts it among the damaged pages)
    header_damaged: bool = False
    #: pages an intact free list owns: not read (a freed page keeps the records it held,
    #: which were deleted); empty when there is no intact header or list
    free: AbstractSet[int] = frozenset()
    #: pages a header counts past ``page_count`` that no file holds (named as damaged, the
    #: first MISSING_NAMED of them)
    missing: range = range(0)

    def image(self, pgno: int) -> Optional[bytes]:
        raise NotImplementedError

    def images(self, pgno: int) -> Iterator[bytes]:
        """images yields the page's committed images, newest first (by default just ``image``)."""
        raw = self.image(pgno)
        if raw is not None:
            yield raw

    def close(self) -> None:
        pass


class PagerSource(Source):
    """PagerSource reads an open store's pages as of one read mark (a snapshot's: ``Store.salvage``)
    through its pager, ``run`` wrapping each read (the store's lock, and the check that the
    store and the snapshot are still open): every page of one commit, whatever the writers
    commit meanwhile, as a backup reads them (snapshot.Backup).

    It read the newest commit page by page once: beside a writer, a leaf read before a commit
    and the heap page its record was moved to (or the leaf split into) after it lost records
    without a damaged page to name (of 3,000 records, 2,857 to 2,999 came out, exit 0).
    """

    def __init__(self, pager: "Pager", mark: "ReadMark",
                 run: Callable[[Callable[[], Optional[bytes]]], Optional[bytes]]) -> None:
        self._pager = pager
        self._mark = mark
        self._run = run
        meta = mark.meta
        self.page_size = pager.page_size
        self.page_count = meta.page_count
        self.committed_lsn = meta.lsn
        self.codec_names = (meta.key_codec, meta.value_codec)
        self.free = read_free_pages(meta, self.image) or set()

    def image(self, pgno: int) -> Optional[bytes]:
        def read() -> Optional[bytes]:
            cached = self._pager.cached_as_of(self._mark, pgno)
            if cached is not None:
                return bytes(cached)
            try:
                return bytes(self._pager.read_as_of(self._mark, pgno))
            except CorruptionError:
                return None  # past the end of a short file, or its log frame is missing
        return self._run(read)


class FileSource(Source):
    """FileSource reads the data file and its log directly, trusting neither page 0 nor the pager.

    Raises (from the constructor):
        FileNotFoundError, IsADirectoryError, PermissionError: the file cannot be read.
        InvalidFileError: no page size verifies any page and nothing says the file is a store.
    """

    def __init__(self, path: str) -> None:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory (a store is a file)", path)
        self.path = path
        self.notes: List[str] = []  # what the source had to guess, for the caller to report
        self._file = fileio.open_file(path, readonly=True)
        self._wal: Optional[WAL] = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        size = self._file.size()
        head = self._head = self._file.read(0, fmt.FILE_HEADER_SIZE)
        log = self._log_header()
        meta: Optional[fmt.Meta] = None
        try:
            meta = fmt.decode_meta(head, self.path)
        except VersionMismatchError:
            raise
        except (CorruptionError, InvalidFileError):
            pass
        if meta is not None:
            self.page_size = meta.page_size
        else:
            self.header_damaged = True
            self.page_size = self._guess_page_size(head, log)
            self.notes.append(f"page 0 is damaged: page size {self.page_size} found by verifying pages")
        file_id = meta.file_id if meta is not None else (log[1] if log is not None else None)
        if log is not None and log[0] == self.page_size and log[1] == file_id:
            wal = WAL(log_path(self.path), self.page_size, file_id, readonly=True)
            try:
                wal.recover(None)  # whatever its generation: the data file's header is not trusted here
            except (CorruptionError, PageStoreError) as exc:
                self.notes.append(f"log not used: {exc}")
                wal.close()
            else:
                self._wal = wal
                head_frame = wal.newest_frame(0)
                if head_frame is not None:
                    try:
                        meta = fmt.decode_meta(wal.read_frame(head_frame, 0), self.path)
                    except PageStoreError:
                        pass
        if meta is not None:
            # A header may count pages neither file holds (a file cut short, or a hostile
            # count of 2**32 - 1): only the pages there are read, and the free list is read
            # against them, so time and memory follow the files, not the header.
            held = max([size // self.page_size] + [p + 1 for p in (self._wal.pages() if self._wal else ())])
            if meta.page_count > held:
                self.missing = range(held, meta.page_count)
                self.notes.append(f"page 0 counts {meta.page_count} pages; the file and its log hold {held}: "
                                  f"pages {held} to {meta.page_count - 1} are missing")
                meta = dataclasses.replace(meta, page_count=held)
            self.page_count = meta.page_count
            self.committed_lsn = meta.lsn
            self.codec_names = (meta.key_codec, meta.value_codec)
            self.free = read_free_pages(meta, self.image) or set()
        else:
            # No header: every whole page of the file, and every page the log holds.
            self.page_count = max([size // self.page_size] + [p + 1 for p in (self._wal.pages() if self._wal else ())])
            self.codec_names = _codec_names_unchecked(head)

    def header_bytes(self) -> bytes:
        """header_bytes: the first 512 bytes of the data file (page 0's header), as they are."""
        return self._head

    def _log_header(self) -> Optional[Tuple[int, int]]:
        """_log_header: the log's (page size, file_id) when its header is intact, else None."""
        try:
            f = fileio.open_file(log_path(self.path), readonly=True)
        except OSError:
            return None
        try:
            raw = f.read(0, WAL_HEADER_SIZE)
        finally:
            f.close()
        if len(raw) < WAL_HEADER_SIZE:
            return None
        from ._native import crc32c

        magic, _version, page_size, file_id, _gen, _salt = _LOG_HEADER.unpack_from(raw, 0)
        if magic != WAL_MAGIC or crc32c(raw[:36]) != struct.unpack_from("<I", raw, 36)[0]:
            return None
        if not fmt.is_valid_page_size(page_size):
            return None
        return page_size, file_id

    def _guess_page_size(self, head: bytes, log: Optional[Tuple[int, int]]) -> int:
        """_guess_page_size: the page size at which the most of pages 1..PROBE_PAGES verify.

        Candidates: the size page 0 states (its checksum failed, but the
        field may be whole), the log's, then COMMON_PAGE_SIZES.
        """
        candidates: List[int] = []
        try:
            candidates.append(fmt.read_fixed_header(head))
        except PageStoreError:
            pass
        if log is not None:
            candidates.append(log[0])
        candidates += [s for s in COMMON_PAGE_SIZES if s not in candidates]
        best, best_hits = 0, 0
        for ps in candidates:
            hits = 0
            for pgno in range(1, PROBE_PAGES + 1):
                raw = self._file.read(pgno * ps, ps)
                if len(raw) < ps:
                    break
                if _verified(raw, pgno) is not None:
                    hits += 1
            if hits > best_hits:
                best, best_hits = ps, hits
        if not best:
            if log is not None:
                return log[0]
            raise InvalidFileError(f"{self.path}: no page verifies at any page size: not a pagestore file, "
                                   "or nothing in it is intact")
        return best

    def image(self, pgno: int) -> Optional[bytes]:
        for raw in self.images(pgno):
            return raw
        return None

    def images(self, pgno: int) -> Iterator[bytes]:
        """images: the log's newest committed image of the page, then the data file's."""
        wal = self._wal
        frame = wal.newest_frame(pgno) if wal is not None else None
        if wal is not None and frame is not None:
            try:
                yield wal.read_frame(frame, pgno)
            except CorruptionError:
                pass
        raw = self._file.read(pgno * self.page_size, self.page_size)
        if len(raw) == self.page_size:
            yield raw

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
            self._wal = None
        self._file.close()


def _codec_names_unchecked(head: bytes) -> Optional[Tuple[str, str]]:
    """_codec_names_unchecked: the codec names in a page 0 whose checksum failed, when both
    are built-in names (so most likely whole), else None."""
    if head[:16] != fmt.MAGIC or len(head) < _VALUE_CODEC_OFFSET + fmt.CODEC_NAME_SIZE:
        return None
    names = []
    for off, table in ((_KEY_CODEC_OFFSET, codecs.KEY_CODECS), (_VALUE_CODEC_OFFSET, codecs.VALUE_CODECS)):
        raw = head[off : off + fmt.CODEC_NAME_SIZE].rstrip(b"\x00")
        name = raw.decode("ascii", "replace") if raw else fmt.DEFAULT_CODEC
        if name not in table:
            return None
        names.append(name)
    return names[0], names[1]


def _verified(raw: bytes, pgno: int) -> Optional[SlottedPage]:
    """_verified: the page when its checksum, stamped number and structure hold, else None."""
    try:
        return SlottedPage.load(raw, pgno)
    except (CorruptionError, ValueError):
        return None


class Salvage:
    """Salvage runs the two passes over a Source; see the module docstring.

    ``damaged`` collects the numbers of pages that failed verification (each
    once, in the order found), or that salvage needed and could not read.
    """

    def __init__(self, source: Source, damaged: Optional[List[int]] = None) -> None:
        self.source = source
        self.damaged: List[int] = damaged if damaged is not None else []
        self._seen: Set[int] = set()
        self._cache: "OrderedDict[int, Optional[SlottedPage]]" = OrderedDict()
        self.chunk = source.page_size - fmt.HEADER_SIZE - fmt.SLOT_SIZE
        if source.header_damaged:
            self._note(0)

    def _note(self, pgno: int) -> None:
        if pgno not in self._seen:
            self._seen.add(pgno)
            self.damaged.append(pgno)

    def _page(self, pgno: int) -> Optional[SlottedPage]:
        """_page: the newest intact committed image of ``pgno``, or None (noted as damaged)."""
        src = self.source
        if not 0 < pgno < src.page_count or pgno in src.free:
            return None
        page = None
        for raw in src.images(pgno):
            page = _verified(raw, pgno)
            if page is not None:
                break
        if page is None:
            self._note(pgno)
            return None
        if src.committed_lsn is not None and page.lsn > src.committed_lsn:
            return None  # a transaction that never committed
        return page

    def leaf_entries(self) -> Dict[bytes, Tuple[int, int, int]]:
        """leaf_entries is pass 1: key -> (page LSN, heap pgno, slot) from every intact leaf. O(pages)."""
        best: Dict[bytes, Tuple[int, int, int]] = {}
        for pgno in range(1, self.source.page_count):
            page = self._page(pgno)
            if page is None or page.page_type != fmt.PAGE_LEAF:
                continue
            raw = bytes(page.buffer)
            try:
                _, keys, rids = nodes.decode(raw, pgno)
            except CorruptionError:
                self._note(pgno)
                continue
            lsn = page.lsn
            for key, (rp, rs) in zip(keys, rids):
                old = best.get(key)
                if old is None or lsn > old[0]:
                    best[key] = (lsn, rp, rs)
        for pgno in self.source.missing[:MISSING_NAMED]:
            self._note(pgno)
        return best

    def _heap_page(self, pgno: int) -> Optional[SlottedPage]:
        cache = self._cache
        if pgno in cache:
            cache.move_to_end(pgno)
            return cache[pgno]
        page = self._page(pgno)
        if page is not None and page.page_type != fmt.PAGE_HEAP:
            page = None  # a stale record id: the page was freed and reused
        cache[pgno] = page
        if len(cache) > PAGE_CACHE:
            cache.popitem(last=False)
        return page

    def value(self, pgno: int, slot: int) -> Optional[bytes]:
        """value reads record (pgno, slot) when it and its overflow chain are intact, else None."""
        page = self._heap_page(pgno)
        if page is None:
            return None
        try:
            record, state = page.view_and_state(slot)
        except (KeyError, PageStoreError):
            return None  # a dead slot: the leaf entry is stale
        if state == fmt.SLOT_LIVE:
            return bytes(record)
        stub = bytes(record)
        if len(stub) < 8:
            return None
        total, p = _STUB.unpack_from(stub, 0)
        tail = stub[8:]
        if total < len(tail):
            return None
        whole, rem = divmod(total - len(tail), self.chunk)
        count = whole + (1 if rem else 0)
        parts: List[bytes] = []
        seen: Set[int] = set()
        while p:
            if len(parts) >= count or p in seen:
                return None
            seen.add(p)
            chunk_page = self._page(p)
            if chunk_page is None or chunk_page.page_type != fmt.PAGE_OVERFLOW or chunk_page.nlive != 1:
                return None
            try:
                parts.append(chunk_page.read(0))
            except (KeyError, PageStoreError):
                return None
            p = chunk_page.next
        if len(parts) != count:
            return None
        parts.append(tail)
        out = b"".join(parts)
        return out if len(out) == total else None

    def records(self) -> Iterator[Tuple[bytes, bytes]]:
        """records yields every salvageable ``(key, value)`` in key order: both passes."""
        best = self.leaf_entries()
        for key in sorted(best):
            _, pgno, slot = best.pop(key)
            value = self.value(pgno, slot)
            if value is not None:
                yield key, value


def salvage_source(source: Source, damaged: Optional[List[int]] = None) -> Iterator[Tuple[bytes, bytes]]:
    """salvage_source yields every salvageable ``(key, value)`` of ``source`` in key order
    (encoded bytes), appending each damaged page's number to ``damaged`` once. Lazy: pass 1
    runs at the first ``next()``."""
    return Salvage(source, damaged).records()


def salvage_path(path: "str | os.PathLike[str]", damaged: Optional[List[int]] = None) -> Iterator[Tuple[bytes, bytes]]:
    """salvage_path yields every salvageable ``(key, value)`` of the store file at ``path``, in key
    order, as encoded bytes, without opening it as a store (FileSource): for a file whose header
    is damaged, or which ``pagestore.open`` refuses for any other damage.

    Raises:
        FileNotFoundError: no such file.
        InvalidFileError: nothing in the file verifies as a page at any page size.
    """
    source = FileSource(os.fspath(path))
    try:
        yield from Salvage(source, damaged).records()
    finally:
        source.close()


__all__ = ["Source", "PagerSource", "FileSource", "Salvage", "salvage_source", "salvage_path",
           "COMMON_PAGE_SIZES", "PAGE_CACHE"]
