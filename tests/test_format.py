"""The on-disk format is written down three times; these tests keep them equal.

1. native/pagestore.h: the reference comment tables, and the #defines that
   are compiled into C.
2. pagestore/format.py: the Python copies of the constants, and the struct
   layout of the file header (page 0).
3. docs/format.md: the tables for readers.

The tables are parsed out of the header comment and the Markdown, so an
edit to either one alone fails here.
"""
from __future__ import annotations

import dataclasses
import re
import struct
from pathlib import Path
from typing import List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagestore import CorruptionError, InvalidFileError, SlottedPage, VersionMismatchError
from pagestore import format as fmt
from pagestore._native import crc32c, lib

ROOT = Path(__file__).resolve().parent.parent
HEADER_H = (ROOT / "native" / "pagestore.h").read_text(encoding="utf-8")
FORMAT_MD = (ROOT / "docs" / "format.md").read_text(encoding="utf-8")

Row = Tuple[int, str, str]  # offset, size ("..." for open-ended), first word of the description

# ---- parsing the tables ----


def _first_word(description: str) -> str:
    return re.search(r"[A-Za-z_]+", description).group(0).lower()


def c_table(title: str) -> List[Row]:
    """c_table parses the OFFSET / SIZE / DESCRIPTION table under ``title`` in the header comment."""
    comment = HEADER_H[: HEADER_H.index("*/")]
    lines = comment.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("* ").startswith(title))
    assert "OFFSET" in lines[start + 2] and "SIZE" in lines[start + 2], f"{title}: no column line"
    rows: List[Row] = []
    for line in lines[start + 3 :]:
        m = re.match(r"^\*\*\s+(\d+)\s+(\d+|\.\.\.)\s+(\S.*)$", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), _first_word(m.group(3))))
        elif re.match(r"^\*\*\s{10,}\S", line):
            continue  # a description carried onto the next line
        else:
            break
    assert rows, f"{title}: no rows parsed"
    return rows


def md_table(heading: str) -> List[Row]:
    """md_table parses the first Offset | Size | Description table after ``heading`` in docs/format.md."""
    at = FORMAT_MD.index(heading)
    rows: List[Row] = []
    in_table = False
    for line in FORMAT_MD[at:].splitlines()[1:]:
        if line.startswith("#"):
            break
        m = re.match(r"^\|\s*(\d+)\s*\|\s*(\d+|\.\.\.|n)\s*\|\s*(.*?)\s*\|\s*$", line)
        if m:
            in_table = True
            rows.append((int(m.group(1)), m.group(2), _first_word(m.group(3))))
        elif in_table:
            break
    assert rows, f"{heading}: no rows parsed"
    return rows


TABLES = [
    ("PAGE HEADER", "### Page header"),
    ("SLOT ENTRY", "### Slot entry"),
    ("FILE HEADER", "## File header"),
    ("LEAF RECORD", "### Leaf record"),
    ("INTERNAL RECORD", "Slot i (0 < i < n):"),
]


# ---- constants: Python == C ----

# Python constants that have no #define because C never needs them; each is
# checked against the header's table instead (see test_file_header_layout).
PYTHON_ONLY = {"META_CHECKSUM_OFFSET", "META_BODY_OFFSET", "OLDEST_FORMAT_VERSION", "CODEC_NAME_SIZE"}


def _python_constants():
    return {
        name: value
        for name, value in vars(fmt).items()
        if name.isupper() and not name.startswith("_") and type(value) is int
    }


def test_every_python_constant_equals_the_compiled_one():
    constants = _python_constants()
    assert len(constants) >= 25  # sizes, offsets, slot states, page types
    for name, value in constants.items():
        if name in PYTHON_ONLY:
            continue
        assert hasattr(lib, "PS_" + name), f"format.{name} has no PS_{name} in native/pagestore.h"
        assert getattr(lib, "PS_" + name) == value, f"format.{name} = {value}, C has {getattr(lib, 'PS_' + name)}"


def test_every_format_define_has_a_python_twin():
    cdef = HEADER_H[HEADER_H.index("CDEF BEGIN") : HEADER_H.index("CDEF END")]
    defines = re.findall(r"^#define PS_([A-Z0-9_]+)\s", cdef, re.M)
    # Status codes live in _native.py's table; the ABI version is checked at import.
    format_defines = [d for d in defines if d != "OK" and not d.startswith("E") and d != "NATIVE_VERSION"]
    assert len(format_defines) >= 25
    missing = [d for d in format_defines if not hasattr(fmt, d)]
    assert not missing, f"#defines without a pagestore.format twin: {missing}"


def test_sizes_in_titles_match():
    assert re.search(rf"PAGE HEADER \(PS_HEADER_SIZE = {lib.PS_HEADER_SIZE} bytes\)", HEADER_H)
    assert re.search(rf"SLOT ENTRY \(PS_SLOT_SIZE = {lib.PS_SLOT_SIZE} bytes\), slot i at offset "
                     rf"{lib.PS_HEADER_SIZE} \+ {lib.PS_SLOT_SIZE} \* i", HEADER_H)
    assert f"### Page header ({fmt.HEADER_SIZE} bytes)" in FORMAT_MD
    assert f"### Slot entry ({fmt.SLOT_SIZE} bytes), slot i at offset {fmt.HEADER_SIZE} + {fmt.SLOT_SIZE} * i" in FORMAT_MD
    assert fmt.MAX_SLOTS == (0xFFFF - fmt.HEADER_SIZE) // fmt.SLOT_SIZE
    assert fmt.MAX_RECORD == 0xFFFF


def test_page_type_names_cover_every_type():
    types = {v for k, v in _python_constants().items() if k.startswith("PAGE_")}
    assert set(fmt.PAGE_TYPE_NAMES) == types
    for value, name in fmt.PAGE_TYPE_NAMES.items():
        assert re.search(rf"^\|\s*{value}\s*\|\s*{name.upper()}\s*\|", FORMAT_MD, re.M), f"type {name} missing from docs"


# ---- tables: header comment == docs ----


@pytest.mark.parametrize("c_title,md_heading", TABLES)
def test_docs_table_matches_header_comment(c_title, md_heading):
    assert md_table(md_heading) == c_table(c_title)


@pytest.mark.parametrize("c_title,end", [("PAGE HEADER", lib.PS_HEADER_SIZE), ("SLOT ENTRY", lib.PS_SLOT_SIZE)])
def test_tables_are_contiguous_and_fill_their_structure(c_title, end):
    rows = c_table(c_title)
    assert rows[0][0] == 0
    for (off, size, _), (next_off, _, _) in zip(rows, rows[1:]):
        assert off + int(size) == next_off, f"{c_title}: gap or overlap at offset {off}"
    assert rows[-1][0] + int(rows[-1][1]) == end


def test_header_table_offsets_are_the_compiled_ones():
    by_name = {name: (off, int(size)) for off, size, name in c_table("PAGE HEADER") if name != "reserved"}
    assert set(by_name) == {n[len("OFF_"):].lower() for n in _python_constants() if n.startswith("OFF_")}
    for name, (off, size) in by_name.items():
        assert getattr(lib, "PS_OFF_" + name.upper()) == off == getattr(fmt, "OFF_" + name.upper())
    # The widths SlottedPage reads them with.
    page = SlottedPage.new(65536, pgno=0x01020304)
    page.lsn = 0x0102030405060708
    page.next = 0xA0B0C0D0
    raw = bytes(page.buffer)
    for name, (off, size) in by_name.items():
        value = int.from_bytes(raw[off : off + size], "little")
        if name in ("pgno", "lsn", "next", "upper", "nslots", "nlive", "lower", "frag", "checksum"):
            assert value == getattr(page, name), name


def test_validity_rule_is_the_same_text():
    def bullets(text: str, start: str) -> List[str]:
        body = text[text.index(start) :]
        out: List[str] = []
        for line in body.splitlines()[1:]:
            line = line.lstrip("* ").rstrip()
            if line.startswith("- "):
                out.append(line[2:])
            elif out and line and not line.startswith(("The checksum", "A page that")):
                out[-1] += " " + line
            elif out:
                break
        return [re.sub(r"\s+", " ", b) for b in out]

    c_rule = bullets(HEADER_H, "A PAGE IS VALID if and only if:")
    md_rule = bullets(FORMAT_MD, "A page is valid if and only if:")
    assert len(c_rule) == 6
    assert md_rule == c_rule


def test_page_checksum_covers_what_the_table_says():
    start = int(re.search(r"checksum: CRC32C of bytes \[(\d+), page_size\)", HEADER_H).group(1))
    assert f"CRC32C of bytes [{start}, page_size)" in FORMAT_MD
    page = SlottedPage.new(1024, pgno=8)
    page.insert(b"checksummed")
    page.set_checksum()
    assert page.checksum == crc32c(bytes(page.buffer)[start:])


def test_docs_keep_the_sections_other_layers_fill_in():
    for heading in (
        "## Log (write-ahead log) format",
        "## Free-page list",
        "## Free-space map",
        "## Overflow pages",
        "## B+tree node pages",
    ):
        assert re.search(rf"^{re.escape(heading)}$", FORMAT_MD, re.M), heading


# ---- the file header (page 0) ----


def _struct_rows(layout: struct.Struct, base: int, names: List[str]) -> List[Row]:
    """_struct_rows: (offset, size, name) of each field of a little-endian struct starting at ``base``."""
    codes = re.findall(r"(\d*)([a-zA-Z])", layout.format.lstrip("<"))
    rows, off = [], base
    assert len(codes) == len(names)
    for (count, code), name in zip(codes, names):
        size = struct.calcsize("<" + count + code)
        rows.append((off, str(size), name))
        off += size
    assert off == base + layout.size
    return rows


def test_file_header_layout_matches_the_header_comment():
    table = c_table("FILE HEADER")
    # version: the header's own version field, decoded beside the body (not a body field)
    meta_names = [f.name for f in dataclasses.fields(fmt.Meta) if f.name not in ("page_size", "version")]
    # The struct layout format.py writes, named as the table names them.
    fixed = _struct_rows(fmt._FIXED, 0, ["magic", "format", "page", "checksum"])
    body = _struct_rows(fmt._META, fmt.META_BODY_OFFSET, meta_names)
    end = fmt.META_BODY_OFFSET + fmt._META.size
    tail = [(end, str(fmt.FILE_HEADER_SIZE - end), "reserved"), (fmt.FILE_HEADER_SIZE, "...", "unused")]
    assert table == fixed + body + tail
    # Python-only offsets agree with the table.
    checksum_row = next(r for r in table if r[2] == "checksum")
    assert checksum_row[0] == fmt.META_CHECKSUM_OFFSET
    assert table[4][0] == fmt.META_BODY_OFFSET
    assert fmt.FILE_HEADER_SIZE == lib.PS_FILE_HEADER_SIZE
    covered = f"CRC32C of bytes [0, {fmt.META_CHECKSUM_OFFSET}) then [{fmt.META_BODY_OFFSET}, {fmt.FILE_HEADER_SIZE})"
    assert covered in HEADER_H
    assert covered in FORMAT_MD


def test_magic_is_the_documented_one():
    documented = re.search(r'magic: "([^"]+)" \(PS_MAGIC\)', HEADER_H).group(1)
    assert documented.replace("\\0", "\0").encode() == fmt.MAGIC
    assert len(fmt.MAGIC) == 16
    assert f'`"{documented}"`' in FORMAT_MD


def _meta_strategy():
    u64 = st.integers(0, 2**64 - 1)
    u63 = st.integers(0, 2**63 - 1)

    @st.composite
    def metas(draw):
        """A header decode_meta accepts: its counters agree with each other and with page_count
        (format.check_counters)."""
        page_count = draw(st.integers(1, 2**32 - 1))
        page_size = draw(st.sampled_from([512, 1024, 4096, 65536]))
        below = st.integers(0, page_count - 1)
        root = draw(below)
        height = draw(st.integers(1, min(page_count - 1, page_count.bit_length()))) if root else 0
        head = draw(below)
        free = draw(st.integers(1, page_count - 1)) if head else 0
        records = draw(st.integers(0, fmt.max_records(page_size, page_count - 1)))
        return fmt.Meta(
            page_size=page_size,
            page_count=page_count,
            root=root,
            tree_height=height,
            freelist_head=head,
            freelist_count=free,
            fsm_head=draw(below),
            freelist_trunks=draw(st.integers(1, free)) if head else 0,
            record_count=records,
            live_bytes=draw(st.integers(0, (page_count - 1) * page_size)) if records else 0,
            lsn=draw(u63),
            file_id=draw(u64),
            checkpoint_seq=draw(u63),
            key_codec=draw(st.sampled_from(["bytes", "str", "int", "tuple", "x" * 16])),
            value_codec=draw(st.sampled_from(["bytes", "json", "pickle", "numpy"])),
        )

    return metas()


@settings(max_examples=200, deadline=None)
@given(meta=_meta_strategy())
def test_meta_round_trip(meta):
    raw = meta.encode()
    assert len(raw) == meta.page_size
    assert raw[:16] == fmt.MAGIC
    covered = bytes(raw[:24]) + bytes(raw[28:512])
    assert struct.unpack_from("<III", raw, 16) == (fmt.FORMAT_VERSION, meta.page_size, crc32c(covered))
    assert struct.unpack_from("<I", raw, 28)[0] == meta.page_count
    assert struct.unpack_from("<Q", raw, 88)[0] == meta.checkpoint_seq
    assert bytes(raw[96:112]).rstrip(b"\0").decode() == meta.key_codec
    assert bytes(raw[112:128]).rstrip(b"\0").decode() == meta.value_codec
    assert not any(raw[128:])
    assert fmt.decode_meta(bytes(raw)) == meta
    assert meta.copy() == meta and meta.copy() is not meta


def test_decode_meta_rejects_damage():
    meta = fmt.Meta(4096, page_count=10, root=3, tree_height=2, freelist_head=5, freelist_count=1, fsm_head=2,
                    freelist_trunks=1)
    good = meta.encode()
    assert fmt.decode_meta(bytes(good)) == meta

    # Every byte of the first 512 but the magic is under the checksum: the
    # version and page size too (byte 17 is the version's second byte; a
    # flipped low bit of the version would read as a newer format, below).
    for at in (17, 20, 21, 23, 24, 28, 40, 95, 96, 113, 300, 511):
        bad = bytearray(good)
        bad[at] ^= 1
        with pytest.raises(CorruptionError) as err:
            fmt.decode_meta(bytes(bad))
        assert err.value.pgno == 0
    # Past the checksummed 512 bytes nothing is covered (and nothing is read).
    tail = bytearray(good)
    tail[600] ^= 1
    assert fmt.decode_meta(bytes(tail)) == meta

    bad = bytearray(good)
    bad[0] ^= 1
    with pytest.raises(InvalidFileError):
        fmt.decode_meta(bytes(bad))
    # A newer version, summed by the rule every version from 2 on keeps: a
    # newer file, not a damaged one.
    bad = bytearray(good)
    struct.pack_into("<I", bad, 16, fmt.FORMAT_VERSION + 1)
    struct.pack_into("<I", bad, 24, fmt.header_checksum(bad))
    with pytest.raises(VersionMismatchError):
        fmt.decode_meta(bytes(bad))
    with pytest.raises(CorruptionError):
        fmt.decode_meta(bytes(good[:200]))
    for field, value in (("page_count", 0), ("root", 10), ("freelist_head", 11), ("fsm_head", 99), ("freelist_count", 10),
                         ("freelist_trunks", 0), ("freelist_trunks", 2)):
        broken = meta.copy()
        setattr(broken, field, value)
        with pytest.raises(CorruptionError):
            fmt.decode_meta(bytes(broken.encode()))


def _version_1_header(meta):
    """_version_1_header: page 0 as format version 1 wrote it (no codec names, checksum over [28, 512))."""
    raw = meta.encode()
    raw[96:128] = bytes(32)
    struct.pack_into("<I", raw, 16, 1)
    struct.pack_into("<I", raw, 24, crc32c(bytes(raw[28:512])))
    return raw


def test_version_1_header_reads_as_bytes_to_bytes():
    meta = fmt.Meta(4096, page_count=10, root=3, tree_height=2, lsn=7, file_id=99)
    old = _version_1_header(meta)
    assert fmt.decode_meta(bytes(old)) == meta  # codecs default to bytes
    assert meta.key_codec == meta.value_codec == "bytes"
    # Under version 1 the magic, version and page size were not summed: a
    # version 1 header with its own (old) checksum is fine, one with the new
    # rule's checksum is damage.
    wrong = bytearray(old)
    struct.pack_into("<I", wrong, 24, fmt.header_checksum(wrong, 2))
    with pytest.raises(CorruptionError):
        fmt.decode_meta(bytes(wrong))
    # Garbage in version 1's reserved bytes, where version 2 keeps codec names.
    dirty = bytearray(old)
    dirty[100] = 0x01
    struct.pack_into("<I", dirty, 24, crc32c(bytes(dirty[28:512])))
    with pytest.raises(CorruptionError):
        fmt.decode_meta(bytes(dirty))


def test_a_version_1_store_opens_and_is_upgraded_by_its_next_commit(tmp_path):
    import pagestore

    path = tmp_path / "old.ps"
    with pagestore.open(path) as db:
        db[b"k"] = b"v"
    raw = bytearray(path.read_bytes())
    meta = fmt.decode_meta(bytes(raw[:4096]))
    raw[:4096] = _version_1_header(meta)
    path.write_bytes(bytes(raw))
    with pagestore.open(path, readonly=True) as db:
        assert db[b"k"] == b"v"
    assert struct.unpack_from("<I", path.read_bytes(), 16)[0] == 1  # a reader leaves it as it was
    with pagestore.open(path) as db:
        assert db[b"k"] == b"v"
        db[b"k2"] = b"v2"
    assert struct.unpack_from("<I", path.read_bytes(), 16)[0] == fmt.FORMAT_VERSION
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"k": b"v", b"k2": b"v2"}
        assert db.check()


def test_a_version_2_store_is_marked_version_3_before_its_log_holds_a_delta(tmp_path):
    """Version 3 differs only in its log (deltas); a version 2 pagestore would take that log
    for another file's and lose its commits, so a writer marks page 0 at open when it can."""
    import pagestore

    path = tmp_path / "v2.ps"
    with pagestore.open(path) as db:
        db[b"k"] = b"v"
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 16, 2)
    struct.pack_into("<I", raw, fmt.META_CHECKSUM_OFFSET, fmt.header_checksum(raw, 2))
    path.write_bytes(bytes(raw))
    with pagestore.open(path, readonly=True) as db:
        assert db[b"k"] == b"v"
    assert struct.unpack_from("<I", path.read_bytes(), 16)[0] == 2  # a reader leaves it as it was
    db = pagestore.open(path)
    # At open, before any commit: as the current version, 4, since its free list is empty (a
    # version 3 file's empty free list is a version 4 one; tests/test_freelist.py has the others).
    assert struct.unpack_from("<I", path.read_bytes(), 16)[0] == fmt.FORMAT_VERSION
    db[b"k2"] = b"v2"
    db.close()
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"k": b"v", b"k2": b"v2"}
        assert db.check()


def test_codec_names_are_checked_on_the_way_in():
    for bad in ("", "x" * 17, "caf\u00e9", "a b\n"):
        with pytest.raises(ValueError):
            fmt.Meta(4096, key_codec=bad).encode()


# ---- the log: pagestore/wal.py's docstring, native/delta.c and docs/format.md ----


def _doc_table(text: str, title: str, prefix: str = "") -> List[Row]:
    """_doc_table parses an OFFSET / SIZE / DESCRIPTION table under ``title`` in a docstring or a
    C comment (``prefix``: the comment's line prefix, such as ``**``)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip(prefix + " ").startswith(title))
    col = next(i for i in range(start + 1, start + 4) if "OFFSET" in lines[i])
    rows: List[Row] = []
    for line in lines[col + 1 :]:
        body = line.strip()
        if prefix and body.startswith(prefix):
            body = body[len(prefix):].strip()
        m = re.match(r"^(\d+)\s+(\d+|n)\s+(\S.*)$", body)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3)))
        elif body and not re.match(r"^\d", body) and rows and line.startswith(" " * 18):
            continue  # a description carried onto the next line
        else:
            break
    assert rows, f"{title}: no rows parsed"
    return rows


def test_log_tables_match_the_docs_and_the_code():
    from pagestore import wal

    doc = wal.__doc__ or ""
    for title, heading, size in (("LOG HEADER", "Log header (40 bytes)", wal.WAL_HEADER_SIZE),
                                 ("FRAME HEADER", "Frame header (44 bytes)", wal.FRAME_HEADER_SIZE)):
        code, md = _doc_table(doc, title), md_table(heading)
        assert [(o, s) for o, s, _ in code] == [(o, s) for o, s, _ in md], title
        last_off, last_size, _ = code[-1]
        assert last_off + int(last_size) == size, f"{title}: the table does not end at {size}"
    assert wal._FRAME.size + 4 == wal.FRAME_HEADER_SIZE  # the checksum follows the packed fields
    assert wal._HDR.size + 4 == wal.WAL_HEADER_SIZE
    assert "(44 bytes)" in FORMAT_MD and f"log format version ({wal.WAL_VERSION};" in FORMAT_MD
    delta_c = (ROOT / "native" / "delta.c").read_text(encoding="utf-8")
    runs = _doc_table(delta_c, "DELTA FORMAT", "**")
    assert [(o, s) for o, s, _ in runs] == [(o, s) for o, s, _ in md_table("Delta run")]
    assert f"fewer than {wal.MAX_CHAIN} deltas" in " ".join(FORMAT_MD.split())
    # the header frame (page 0) is a delta like any page's, whole again after MAX_CHAIN deltas
    assert ("Page 0, the commit frame, follows the same rule" in " ".join(FORMAT_MD.split())
            and f"after every {wal.MAX_CHAIN} deltas" in " ".join(FORMAT_MD.split()))
    assert "Page 0, the commit frame, follows the same rule" in " ".join(doc.split())


def test_free_list_trunk_table_matches_in_the_header_the_docs_and_freelist_py():
    """A trunk's extent (first u32, count u32): native/pagestore.h's FREE-LIST TRUNK, docs/format.md's
    "Free-page list" and pagestore/freelist.py's docstring say the same, and freelist.py packs that."""
    from pagestore import freelist

    comment = HEADER_H[: HEADER_H.index("*/")]
    c_rows = re.findall(r"^\*\*\s+(8i(?:\+4)?)\s+(\d+)\s+(\w+)", comment[comment.index("FREE-LIST TRUNK"):], re.M)
    assert c_rows == [("8i", "4", "first"), ("8i+4", "4", "count")]
    for text in (FORMAT_MD[FORMAT_MD.index("## Free-page list"):], freelist.__doc__ or ""):
        rows = re.findall(r"^\|\s*(8i(?: \+ 4)?)\s*\|\s*(\d+)\s*\|\s*(\w+)", text, re.M)
        assert [(o.replace(" ", ""), s, w) for o, s, w in rows] == c_rows
    assert freelist.EXTENT_SIZE == 8 and freelist._EXTENT.format == "<II"
    assert freelist.TRUNK_OVERHEAD == fmt.HEADER_SIZE + fmt.SLOT_SIZE
    assert "(page_size - 46) / 8" in FORMAT_MD and "(page_size - 46) // 8" in (freelist.__doc__ or "")


def test_lock_table_matches_the_constants():
    """docs/format.md's lock table names each fcntl lock byte with the offset shm.py uses."""
    import re

    from pagestore import shm

    rows = dict(re.findall(r"^\| `(LOCK_[A-Z0-9]+)` \| 2\^40(?: \+ (\d+))? \|", FORMAT_MD, re.M))
    assert set(rows) == {"LOCK_DMS", "LOCK_WRITERS", "LOCK_CREATE", "LOCK_SOLO", "LOCK_NAMES", "LOCK_RECOVER", "LOCK_READ0", "LOCK_WRITE", "LOCK_WAITING", "LOCK_SYNC"}
    for name, plus in rows.items():
        assert getattr(shm, name) == (1 << 40) + int(plus or 0), name
    assert shm.READ_BASE == (1 << 40) + 16 and "`READ_BASE` = 2^40 + 16" in FORMAT_MD
    assert shm.NAME_SPAN == 1 << 30 and "modulo 2^30" in FORMAT_MD
    for name in rows:
        assert name in shm.__doc__, name  # and the module's own table names it


def test_shared_index_unsynced_word_matches_the_docs():
    """The shared index's unsynced word (shm.py): its offset and size in docs/format.md's table and
    the module's own, and what an empty index says (nothing unsynced)."""
    from pagestore import shm

    assert shm.UNSYNCED_OFFSET == 128 and shm.UNSYNCED_OFFSET + 16 <= shm.ARRAY_OFFSET
    assert "| 128 | 16 | unsynced" in FORMAT_MD and "| 384 | 3712 | unused" in FORMAT_MD
    # The sync slots: records and lock bytes (docs/format.md "Sync slots", the lock table, shm.py's tables).
    assert (shm.SLOTS_OFFSET, shm.SLOTS, shm.SLOT_SIZE) == (192, 8, 16) and shm.SLOTS_OFFSET >= shm.DURABLE_OFFSET + 16
    assert "| 192 | 128 | sync slots" in FORMAT_MD and "     192    128    sync slots" in (shm.__doc__ or "")
    assert shm.LOCK_SLOT == (1 << 40) + 8 and shm.LOCK_SLOT + shm.SLOTS <= shm.READ_BASE
    assert "| `LOCK_SLOT` + i | 2^40 + 8 + i, i < 8 |" in FORMAT_MD and "LOCK_SLOT + i" in (shm.__doc__ or "")
    assert shm.DURABLE_OFFSET == 160 and "| 160 | 16 | durable" in FORMAT_MD
    assert shm.DURABLE_OFFSET + 16 <= shm.ARRAY_OFFSET
    assert shm.COVERS_OFFSET == shm.SLOTS_OFFSET + shm.SLOTS * shm.SLOT_SIZE == 320
    assert "| 320 | 64 | covers" in FORMAT_MD and "| 384 | 3712 | unused" in FORMAT_MD
    assert shm.FAILURES_OFFSET == 152 and "| 152 | 4 | failures" in FORMAT_MD
    assert shm.SYNC_ENDS_OFFSET == 156 and "| 156 | 4 | ends" in FORMAT_MD
    assert "     156      4    ends" in (shm.__doc__ or "")
    assert "     152      4    failures" in (shm.__doc__ or "")
    assert "     128     16    unsynced" in (shm.__doc__ or "")
    assert "     144      4    turns" in (shm.__doc__ or "") and "     148      4    asks" in (shm.__doc__ or "")
    assert "| 144 | 4 | turns" in FORMAT_MD and "| 148 | 4 | asks" in FORMAT_MD
    assert shm.UNSYNCED_OFFSET >= 2 * shm.COPY_SIZE  # outside both copies of the header
