"""On-disk constants and the file header (page 0), as Python sees them.

The page layout is defined in ``native/pagestore.h``; the numbers here are
written out again on purpose so that ``tests/test_format.py`` can compare them
with the values compiled into C (and with docs/format.md). All integers on
disk are little-endian.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import CorruptionError, InvalidFileError, VersionMismatchError

FORMAT_VERSION = 1
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
#: the checksummed, changing part, from byte 28.
_META = struct.Struct("<IIIIIIIQQQQQ")
META_CHECKSUM_OFFSET = 24
META_BODY_OFFSET = 28


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
    reserved: int = 0
    record_count: int = 0
    live_bytes: int = 0
    lsn: int = 0
    file_id: int = 0
    checkpoint_seq: int = 0

    def copy(self) -> "Meta":
        # Every commit takes one: dataclasses.replace/fields cost more than the rest of a small commit's bookkeeping.
        new = object.__new__(Meta)
        new.__dict__.update(self.__dict__)
        return new

    def encode(self) -> bytearray:
        """encode returns page 0's bytes: a whole page, checksummed."""
        buf = bytearray(self.page_size)
        _FIXED.pack_into(buf, 0, MAGIC, FORMAT_VERSION, self.page_size, 0)
        _META.pack_into(
            buf,
            META_BODY_OFFSET,
            self.page_count,
            self.root,
            self.tree_height,
            self.freelist_head,
            self.freelist_count,
            self.fsm_head,
            self.reserved,
            self.record_count,
            self.live_bytes,
            self.lsn,
            self.file_id,
            self.checkpoint_seq,
        )
        from ._native import crc32c

        struct.pack_into("<I", buf, META_CHECKSUM_OFFSET, crc32c(memoryview(buf)[META_BODY_OFFSET:FILE_HEADER_SIZE]))
        return buf


def read_fixed_header(head: bytes, path: str = "") -> int:
    """read_fixed_header checks magic and version and returns the page size.

    Raises:
        InvalidFileError: not a pagestore file.
        VersionMismatchError: a newer format than this code reads.
    """
    where = f"{path}: " if path else ""
    if len(head) < _FIXED.size or head[:16] != MAGIC:
        raise InvalidFileError(f"{where}not a pagestore file (bad magic)")
    _, version, page_size, _ = _FIXED.unpack_from(head, 0)
    if version > FORMAT_VERSION:
        raise VersionMismatchError(
            f"{where}written by format version {version}; this pagestore reads up to {FORMAT_VERSION}"
        )
    if version < 1 or not is_valid_page_size(page_size):
        raise InvalidFileError(f"{where}not a pagestore file (version {version}, page size {page_size})")
    return page_size


def decode_meta(buf: bytes, path: str = "") -> Meta:
    """decode_meta parses page 0, verifying its checksum.

    Raises:
        InvalidFileError, VersionMismatchError: see ``read_fixed_header``.
        CorruptionError: the checksum or a field is wrong (names page 0).
    """
    page_size = read_fixed_header(buf, path)
    if len(buf) < FILE_HEADER_SIZE:
        raise CorruptionError(0, "file header is truncated")
    from ._native import crc32c

    (stored,) = struct.unpack_from("<I", buf, META_CHECKSUM_OFFSET)
    if crc32c(memoryview(buf)[META_BODY_OFFSET:FILE_HEADER_SIZE]) != stored:
        raise CorruptionError(0, "file header checksum mismatch")
    v = _META.unpack_from(buf, META_BODY_OFFSET)
    meta = Meta(page_size, *v)
    if meta.page_count < 1:
        raise CorruptionError(0, f"page_count {meta.page_count} is impossible")
    for name in ("root", "freelist_head", "fsm_head"):
        if getattr(meta, name) >= meta.page_count:
            raise CorruptionError(0, f"{name} {getattr(meta, name)} is past the end ({meta.page_count} pages)")
    if meta.freelist_count >= meta.page_count:
        raise CorruptionError(0, f"freelist_count {meta.freelist_count} exceeds the page count")
    return meta
