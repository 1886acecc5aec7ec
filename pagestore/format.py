"""On-disk constants and the file header (page 0), as Python sees them.

The page layout is defined in ``native/pagestore.h``; the numbers here are
written out again on purpose so that ``tests/test_format.py`` can compare them
with the values compiled into C (and with docs/format.md). All integers on
disk are little-endian.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field as _field
from typing import Any, Callable, List, Optional

from .errors import CorruptionError, InvalidFileError, VersionMismatchError

#: Version 2 put the whole header under its checksum and added the codec names;
#: version 1 files are read as they are and written back as version 2. Version 3
#: changed only the log (deltas). Version 4 keeps the free list as extents in
#: trunk pages (freelist.py) and counts the trunks at offset 52.
FORMAT_VERSION = 4
#: The first version whose free list is trunks of extents, not a chain of free pages.
TRUNK_FORMAT_VERSION = 4
OLDEST_FORMAT_VERSION = 1
MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 65536

# ---- slotted page (see native/pagestore.h) ----
HEADER_SIZE = 40
SLOT_SIZE = 6
MAX_RECORD = 65535
MAX_SLOTS = 10915

OFF_CHECKSUM = 0
OFF_PGNO = 4
OFF_LSN = 8
OFF_TYPE = 16
OFF_FLAGS = 17
OFF_NSLOTS = 18
OFF_NLIVE = 20
OFF_LOWER = 22
OFF_UPPER = 24
OFF_FRAG = 28
OFF_NEXT = 32

SLOT_FREE = 0
SLOT_LIVE = 1
SLOT_OVERFLOW = 2

PAGE_FREE = 0
PAGE_HEAP = 1
PAGE_LEAF = 2
PAGE_INTERNAL = 3
PAGE_OVERFLOW = 4
PAGE_FSM = 5
PAGE_META = 6

# B+tree node records (NODE PAGES in native/pagestore.h)
NODE_RID_SIZE = 6
NODE_CHILD_SIZE = 4

PAGE_TYPE_NAMES = {
    PAGE_FREE: "free",
    PAGE_HEAP: "heap",
    PAGE_LEAF: "leaf",
    PAGE_INTERNAL: "internal",
    PAGE_OVERFLOW: "overflow",
    PAGE_FSM: "fsm",
    PAGE_META: "meta",
}

# ---- file header (page 0) ----
MAGIC = b"pagestore\x00fmt\x00\x00\x00"
FILE_HEADER_SIZE = 512
#: magic, version, page size, checksum: the part that never changes.
_FIXED = struct.Struct("<16sIII")
#: the changing part, from byte 28 (the codec names are 16 bytes of ASCII each).
_META = struct.Struct("<IIIIIIIQQQQQ16s16s")
META_CHECKSUM_OFFSET = 24
META_BODY_OFFSET = 28
#: Longest codec name the header holds.
CODEC_NAME_SIZE = 16
DEFAULT_CODEC = "bytes"


def header_checksum(buf: "bytes | bytearray | memoryview", version: int = FORMAT_VERSION) -> int:
    """header_checksum: the CRC32C page 0 carries at META_CHECKSUM_OFFSET.

    Version 2 and later: bytes [0, 24) then [28, 512), so the magic, version
    and page size are covered too. Version 1 covered only [28, 512).
    """
    crc32c = _crc32c[0]
    if crc32c is None:
        # here, not at the top: this module needs no build of the C core. The binding's own crc32c
        # (``_native.crc32c`` without its Python wrapper: two calls fewer per commit)
        from ._native import _crc32c as loaded

        crc32c = _crc32c[0] = loaded
    view = memoryview(buf)
    body = view[META_BODY_OFFSET:FILE_HEADER_SIZE]
    if version == 1:
        return crc32c(body, 0)
    return crc32c(body, crc32c(view[:META_CHECKSUM_OFFSET], 0))


#: ``_native.crc32c``, once ``header_checksum`` has imported it (every commit encodes a header)
_crc32c: List[Optional[Callable[[Any, int], int]]] = [None]


@functools.lru_cache(maxsize=64)
def _codec_field(name: str) -> bytes:
    # cached: every commit encodes the header, and with it both codec names
    raw = name.encode("ascii", "strict") if name.isascii() else b""
    if not raw or len(raw) > CODEC_NAME_SIZE or not name.isprintable():
        raise ValueError(f"codec name must be 1 to {CODEC_NAME_SIZE} printable ASCII characters, got {name!r}")
    return raw


@functools.lru_cache(maxsize=64)
def _codec_name(raw: bytes, field: str) -> str:
    # cached: a writer taking turns decodes the header again at every turn (the names never change)
    name = raw.rstrip(b"\0")
    if not name:
        return DEFAULT_CODEC  # a version 1 file (reserved zeros) is bytes to bytes
    if b"\0" in name or not all(0x20 < c < 0x7F for c in name):
        raise CorruptionError(0, f"file header's {field} name is not printable ASCII")
    return name.decode("ascii")


def is_valid_page_size(page_size: int) -> bool:
    """is_valid_page_size: a power of two from 512 to 65536."""
    return MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE and page_size & (page_size - 1) == 0


@dataclass
class Meta:
    """Meta is the decoded file header: where the tree, free list and map start.

    The pager owns the one live instance; the layers above read and set its
    fields, and the pager writes it back to page 0 at commit.
    """

    page_size: int
    page_count: int = 1
    root: int = 0
    tree_height: int = 0
    freelist_head: int = 0
    freelist_count: int = 0
    fsm_head: int = 0
    freelist_trunks: int = 0
    record_count: int = 0
    live_bytes: int = 0
    lsn: int = 0
    file_id: int = 0
    checkpoint_seq: int = 0
    key_codec: str = DEFAULT_CODEC
    value_codec: str = DEFAULT_CODEC
    #: the format version of the header this was read from (not a field of page 0's body):
    #: below 4, the free list is a format-3 chain (freelist.py), and offset 52 is reserved
    version: int = _field(default=FORMAT_VERSION, compare=False)

    def copy(self) -> "Meta":
        # Every commit takes one: dataclasses.replace/fields cost more than the rest of a small commit's bookkeeping.
        new = object.__new__(Meta)
        new.__dict__.update(self.__dict__)
        return new

    def encode(self, version: int = FORMAT_VERSION) -> bytearray:
        """encode returns page 0's bytes: a whole page, checksummed, in format ``version`` (the
        current one, but for ``Pager._upgrade_header``, which may write a format-3 header over a
        format-3 free list).

        Raises:
            CorruptionError: a counter left its field's range (a record count
                taken below zero by a delete: the header it was read from was wrong).
        """
        buf = bytearray(self.page_size)
        _FIXED.pack_into(buf, 0, MAGIC, version, self.page_size, 0)
        try:
            # the body, packed here, not in a method of its own: every commit encodes a header
            _META.pack_into(
                buf, META_BODY_OFFSET, self.page_count, self.root, self.tree_height, self.freelist_head,
                self.freelist_count, self.fsm_head, self.freelist_trunks if version >= TRUNK_FORMAT_VERSION else 0,
                self.record_count, self.live_bytes, self.lsn, self.file_id, self.checkpoint_seq,
                _codec_field(self.key_codec), _codec_field(self.value_codec),
            )
        except struct.error:
            raise self._out_of_range() from None
        crc32c = _crc32c[0]
        if crc32c is None:
            crc = header_checksum(buf)  # loads it
        else:  # ``header_checksum`` inline (every commit encodes a header)
            view = memoryview(buf)
            crc = crc32c(view[META_BODY_OFFSET:FILE_HEADER_SIZE], crc32c(view[:META_CHECKSUM_OFFSET], 0))
        struct.pack_into("<I", buf, META_CHECKSUM_OFFSET, crc)
        return buf

    def _out_of_range(self) -> CorruptionError:
        """_out_of_range: the error for a field ``encode`` cannot pack, named."""
        for name, bits in (("page_count", 32), ("root", 32), ("tree_height", 32), ("freelist_head", 32),
                           ("freelist_count", 32), ("fsm_head", 32), ("freelist_trunks", 32), ("record_count", 64),
                           ("live_bytes", 64), ("lsn", 64), ("file_id", 64), ("checkpoint_seq", 64)):
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                return CorruptionError(0, f"header field {name} would be {value}: the count read from the file was wrong")
        return CorruptionError(0, "a header field is out of range")  # pragma: no cover - the loop names each one


def stored_version(head: bytes) -> int:
    """stored_version: the format version page 0 says it is written in. For a header ``decode_meta``
    has already accepted (the writer upgrading an older file's header, Pager._upgrade_header)."""
    return int(_FIXED.unpack_from(head, 0)[1])


def read_fixed_header(head: bytes, path: str = "") -> int:
    """read_fixed_header checks magic and version and returns the page size, trusting no checksum.

    For tools that decode a damaged file; ``decode_meta`` is the check that
    opening a store relies on.

    Raises:
        InvalidFileError: not a pagestore file.
        VersionMismatchError: a newer format than this code reads.
    """
    where = f"{path}: " if path else ""
    if len(head) < _FIXED.size or head[:16] != MAGIC:
        raise InvalidFileError(f"{where}not a pagestore file (bad magic)")
    fields = _FIXED.unpack_from(head, 0)
    version, page_size = int(fields[1]), int(fields[2])
    if version > FORMAT_VERSION:
        raise VersionMismatchError(
            f"{where}written by format version {version}; this pagestore reads versions "
            f"{OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}"
        )
    if version < OLDEST_FORMAT_VERSION or not is_valid_page_size(page_size):
        raise CorruptionError(0, f"file header is damaged (version {version}, page size {page_size})")
    return page_size


def decode_meta(buf: bytes, path: str = "") -> Meta:
    """decode_meta parses page 0, verifying its checksum.

    The magic decides whether the file is ours at all; after that, any
    damaged byte of the first 512, the version and page size included, is
    header damage reported against page 0. A version 1 header (checksum over
    bytes [28, 512) only, no codec names) decodes as bytes to bytes; the
    next header written is version 2.

    Raises:
        InvalidFileError: not a pagestore file (bad magic).
        VersionMismatchError: a newer format than this code reads.
        CorruptionError: the checksum or a field is wrong (names page 0).
    """
    where = f"{path}: " if path else ""
    if len(buf) < _FIXED.size or buf[:16] != MAGIC:
        raise InvalidFileError(f"{where}not a pagestore file (bad magic)")
    if len(buf) < FILE_HEADER_SIZE:
        raise CorruptionError(0, "file header is truncated")
    _, version, _, stored = _FIXED.unpack_from(buf, 0)
    # Every version from 2 on keeps version 2's checksum rule, so a newer
    # file's header is told apart from a damaged one before its version is
    # believed.
    if header_checksum(buf, 1 if version == 1 else FORMAT_VERSION) != stored:
        raise CorruptionError(0, "file header checksum mismatch: the header is damaged")
    page_size = read_fixed_header(buf, path)
    v = _META.unpack_from(buf, META_BODY_OFFSET)
    meta = Meta(page_size, *v[:-2])
    meta.key_codec = _codec_name(v[-2], "key codec")
    meta.value_codec = _codec_name(v[-1], "value codec")
    meta.version = int(version)
    if meta.version < TRUNK_FORMAT_VERSION:
        meta.freelist_trunks = 0  # reserved before version 4
    if meta.page_count < 1:
        raise CorruptionError(0, f"page_count {meta.page_count} is impossible")
    for name in ("root", "freelist_head", "fsm_head"):
        if getattr(meta, name) >= meta.page_count:
            raise CorruptionError(0, f"{name} {getattr(meta, name)} is past the end ({meta.page_count} pages)")
    if meta.freelist_count >= meta.page_count:
        raise CorruptionError(0, f"freelist_count {meta.freelist_count} exceeds the page count")
    if meta.freelist_trunks > meta.freelist_count:
        raise CorruptionError(0, f"freelist_trunks {meta.freelist_trunks} exceeds freelist_count {meta.freelist_count}")
    check_counters(meta)
    return meta


def max_records(page_size: int, pages: int) -> int:
    """max_records: the most records ``pages`` pages could index: every one a leaf full of
    entries with an empty key (a 6-byte rid and a 6-byte slot each)."""
    return pages * ((page_size - HEADER_SIZE) // (NODE_RID_SIZE + SLOT_SIZE))


def check_counters(meta: Meta) -> None:
    """check_counters checks the header's counters against each other and against what
    ``page_count`` pages could hold, so that no later use of one (a length, a loop bound,
    a decrement, an allocation) goes wrong on a damaged or hostile header.

    ``page_count`` itself is checked against the data file and the log by the
    pager when it opens the store (``Pager._check_extent``).

    Raises:
        CorruptionError: naming page 0 and the field.
    """
    pages = meta.page_count
    if (meta.root == 0) != (meta.tree_height == 0):
        raise CorruptionError(0, f"tree_height {meta.tree_height} with root {meta.root}")
    # Every internal node has at least two children (treecheck.py), so a tree of height h
    # has at least 2**h - 1 pages: h is at most log2(page_count), 32 for u32 page numbers.
    if meta.tree_height >= pages.bit_length() + 1 or meta.tree_height > pages - 1:
        raise CorruptionError(0, f"tree_height {meta.tree_height} is more than {pages} pages can hold")
    if (meta.freelist_head == 0) != (meta.freelist_count == 0):
        raise CorruptionError(0, f"freelist_count {meta.freelist_count} with freelist_head {meta.freelist_head}")
    if meta.version >= TRUNK_FORMAT_VERSION and (meta.freelist_head == 0) != (meta.freelist_trunks == 0):
        raise CorruptionError(0, f"freelist_trunks {meta.freelist_trunks} with freelist_head {meta.freelist_head}")
    if meta.record_count > max_records(meta.page_size, pages - 1):
        raise CorruptionError(0, f"record_count {meta.record_count} is more than {pages} pages can hold")
    if meta.live_bytes > (pages - 1) * meta.page_size:
        raise CorruptionError(0, f"live_bytes {meta.live_bytes} is more than {pages} pages can hold")
    for name in ("lsn", "checkpoint_seq"):
        # Each commit adds one to the first, each new log generation to the second: 2**63
        # of either is out of reach of any store, and the next one must still fit.
        if getattr(meta, name) >= 1 << 63:
            raise CorruptionError(0, f"{name} {getattr(meta, name)} is out of range")
    if meta.record_count == 0 and meta.live_bytes:
        raise CorruptionError(0, f"live_bytes {meta.live_bytes} with no records")
