"""inspect: read-only introspection of a store file, for ``pagestore inspect``.

A stand-alone decoder for pagestore's on-disk format, in the spirit of the
per-format dump tools that make a corrupt file diagnosable: it reports what
the pages say, and keeps going past a page that fails verification rather
than stopping at the first one.

Everything here reads through a read-only ``Pager`` (the only code that does
file I/O on the data file), so it sees the newest committed image of each
page, the log included, and writes nothing. Callers: the CLI and tests.

    >>> from pagestore import inspect
    >>> with inspect.open_pager("data.ps") as pager:
    ...     summary = inspect.summarize(pager)
    ...     page = inspect.decode_page(pager, 1)

Memory: O(1) per page visited (the pager's cache stays bounded, because
every page read starts a new pager operation); ``summarize`` keeps only
counters, ``page_map`` one small tuple per map cell.
"""
from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple
from xml.sax.saxutils import escape

from . import format as fmt
from .errors import CorruptionError, PageStoreError
from .pager import Pager
from .page import SlottedPage

#: Name given to pages that fail verification (checksum, number, structure).
CORRUPT = "corrupt"
#: Name of page 0, the file header.
HEADER = "header"
#: Fill histogram buckets: [0, 10%), [10%, 20%), ..., [90%, 100%].
FILL_BUCKETS = 10

#: Slot entry layout (native/pagestore.h, SLOT ENTRY): offset u16, length u16, state u8, reserved u8.
_SLOT = struct.Struct("<HHBB")
SLOT_STATE_NAMES = {fmt.SLOT_FREE: "free", fmt.SLOT_LIVE: "live", fmt.SLOT_OVERFLOW: "overflow"}


@contextlib.contextmanager
def open_pager(path: "str | os.PathLike[str]") -> Iterator[Pager]:
    """open_pager opens the store at ``path`` read-only and yields its Pager, closing it after.

    Shares the store with other readers; refused while a writer has it open.

    Raises:
        FileNotFoundError: no such file.
        InvalidFileError, VersionMismatchError: not a pagestore file, or too new.
        StoreLockedError: a writer has the store open.
        CorruptionError: the file header (page 0) or the log is damaged.
    """
    pager = Pager(os.fspath(path), create=False, readonly=True)
    try:
        yield pager
    finally:
        pager.close(checkpoint=False)


@dataclass
class PageInfo:
    """PageInfo is what a sweep learns about one page without decoding its records.

    ``fill`` is the share of the page holding header, slots and live records
    (0.0 for free and corrupt pages); ``error`` says why a corrupt page failed.
    """

    pgno: int
    kind: str
    fill: float
    nlive: int = 0
    error: Optional[str] = None


def page_infos(pager: Pager, start: int = 1, stop: Optional[int] = None) -> Iterator[PageInfo]:
    """page_infos yields a PageInfo for each page in ``[start, stop)`` (default: all but page 0). O(pages)."""
    count = pager.meta.page_count
    stop = count if stop is None else min(stop, count)
    ps = pager.page_size
    # A page on the free list keeps the bytes it had (format 4 never writes a freed page):
    # it is reported free, as the list says, not as its stale type byte says.
    try:
        free = set(pager.freelist())
    except CorruptionError:
        free = set()
    for pgno in range(max(1, start), stop):
        pager.begin_operation()  # unpin the previous page: the cache stays bounded
        if pgno in free:
            yield PageInfo(pgno, fmt.PAGE_TYPE_NAMES[fmt.PAGE_FREE], 0.0)
            continue
        try:
            page = pager.read(pgno)
        except CorruptionError as exc:
            yield PageInfo(pgno, CORRUPT, 0.0, 0, exc.detail)
            continue
        kind = fmt.PAGE_TYPE_NAMES.get(page.page_type, f"type {page.page_type}")
        if page.page_type == fmt.PAGE_FREE:
            yield PageInfo(pgno, kind, 0.0)
        else:
            yield PageInfo(pgno, kind, (ps - page.free_space) / ps, page.nlive)


def fill_bucket(fill: float) -> int:
    """fill_bucket maps a fill in [0, 1] to its histogram bucket, 0 .. FILL_BUCKETS - 1."""
    return min(FILL_BUCKETS - 1, max(0, int(fill * FILL_BUCKETS)))


def summarize(pager: Pager) -> Dict[str, Any]:
    """summarize sweeps every page once and returns a JSON-ready summary. O(pages).

    Keys: path, page_size, page_count, file_size, wal_size, wal_frames,
    header (the file header fields), page_types (name -> count, page 0
    excluded), fill (name -> list of FILL_BUCKETS counts), average_fill
    (non-free, non-corrupt pages), freelist_length (walked; None when the
    walk hits a bad page), freelist_error, corrupt (list of
    ``{"pgno", "error"}``).
    """
    types: Dict[str, int] = {}
    fill: Dict[str, List[int]] = {}
    corrupt: List[Dict[str, Any]] = []
    used, counted = 0.0, 0
    for info in page_infos(pager):
        types[info.kind] = types.get(info.kind, 0) + 1
        if info.kind == CORRUPT:
            corrupt.append({"pgno": info.pgno, "error": info.error})
            continue
        if info.kind == fmt.PAGE_TYPE_NAMES[fmt.PAGE_FREE]:
            continue
        fill.setdefault(info.kind, [0] * FILL_BUCKETS)[fill_bucket(info.fill)] += 1
        used += info.fill
        counted += 1
    freelist_length: Optional[int] = 0
    freelist_error: Optional[str] = None
    try:
        for _ in pager.freelist():
            pager.begin_operation()
            freelist_length += 1  # type: ignore[operator]
    except CorruptionError as exc:
        freelist_length, freelist_error = None, str(exc)
    return {
        "path": pager.path,
        "page_size": pager.page_size,
        "page_count": pager.meta.page_count,
        "file_size": pager.file_size(),
        "wal_size": pager.wal_size(),
        "wal_frames": pager.logged_pages(),
        "header": header_fields(pager),
        "page_types": types,
        "fill": fill,
        "average_fill": used / counted if counted else 0.0,
        "freelist_length": freelist_length,
        "freelist_error": freelist_error,
        "corrupt": corrupt,
    }


def verify_pages(pager: Pager) -> List[Tuple[int, str]]:
    """verify_pages reads every page and returns ``(pgno, why)`` for each that fails verification. O(pages)."""
    return [(i.pgno, i.error or "") for i in page_infos(pager) if i.kind == CORRUPT]


def header_fields(pager: Pager) -> Dict[str, Any]:
    """header_fields: page 0 as the pager sees it (the log's copy when newer), in on-disk order."""
    return _meta_fields(pager.meta)


def _meta_fields(m: fmt.Meta) -> Dict[str, Any]:
    return {
        "magic": fmt.MAGIC.decode("latin-1").replace("\x00", "\\0"),
        "format_version": m.version,
        "page_size": m.page_size,
        "page_count": m.page_count,
        "root": m.root,
        "tree_height": m.tree_height,
        "freelist_head": m.freelist_head,
        "freelist_count": m.freelist_count,
        "fsm_head": m.fsm_head,
        "freelist_trunks": m.freelist_trunks,
        "record_count": m.record_count,
        "live_bytes": m.live_bytes,
        "lsn": m.lsn,
        "file_id": f"{m.file_id:016x}",
        "checkpoint_seq": m.checkpoint_seq,
    }


def _raw_page(pager: Pager, pgno: int) -> bytes:
    # The newest committed image, unverified, for decoding a page that fails
    # verification.
    return pager.read_raw(pgno)


def preview(data: bytes, width: int = 16) -> str:
    """preview: the first ``width`` bytes as hex, then as ASCII (dots for the rest), ``...`` if longer."""
    head = data[:width]
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = "..." if len(data) > width else ""
    return f"{head.hex(' ') + more:<{3 * width + 2}} |{text}|"


def decode_page(pager: Pager, pgno: int, preview_bytes: int = 16) -> Dict[str, Any]:
    """decode_page decodes one page into a JSON-ready dict, even a page that fails verification.

    Page 0: ``{"pgno": 0, "kind": "header", "fields": {...}}``. Other pages:
    ``kind``, ``verified`` (and ``error`` when not), the header ``fields``,
    derived space figures, and ``slots``: every slot-array entry (free ones
    included) as ``{"slot", "offset", "length", "state", "preview"}``. A
    corrupt page's slot array is decoded only as far as it lies inside the
    page, and a record preview only when its bytes do.

    Raises:
        ValueError: ``pgno`` is outside the file.
    """
    count = pager.meta.page_count
    if not 0 <= pgno < count:
        raise ValueError(f"page {pgno} is outside the file (pages 0 to {count - 1})")
    if pgno == 0:
        return {"pgno": 0, "kind": HEADER, "verified": True, "fields": header_fields(pager)}
    error: Optional[str] = None
    try:
        pager.begin_operation()
        data = bytes(pager.read(pgno).buffer)
    except CorruptionError as exc:
        error = exc.detail
        data = _raw_page(pager, pgno)
    return decode_image(data, pgno, error, preview_bytes)


def decode_page_of_file(path: "str | os.PathLike[str]", pgno: int, preview_bytes: int = 16) -> Dict[str, Any]:
    """decode_page_of_file decodes page ``pgno`` of a file that will not open as a store (a damaged
    header, a truncated file), as salvage reads it: page 0 only for its page size, tried at the
    common page sizes when page 0 is damaged (salvage.FileSource), the log's newest committed
    image first. The result is decode_page's, plus ``"notes"``: what had to be guessed.

    Raises:
        FileNotFoundError: no such file.
        InvalidFileError: no page of the file verifies at any page size.
        ValueError: ``pgno`` is outside the file.
    """
    from .salvage import FileSource

    source = FileSource(os.fspath(path))
    try:
        count = source.page_count
        if not 0 <= pgno < count:
            raise ValueError(f"page {pgno} is outside the file (pages 0 to {count - 1})")
        notes = "; ".join(source.notes)
        if pgno == 0:
            out = decode_header_image(source.header_bytes(), source.page_size)
        else:
            data = source.image(pgno)
            if data is None:
                raise ValueError(f"page {pgno} lies past the end of the file")
            error: Optional[str] = None
            try:
                SlottedPage.load(data, pgno)
            except CorruptionError as exc:
                error = exc.detail
            out = decode_image(data, pgno, error, preview_bytes)
        if notes:
            out["notes"] = notes
        return out
    finally:
        source.close()


def decode_header_image(head: bytes, page_size: int) -> Dict[str, Any]:
    """decode_header_image: page 0's fields as stored, whether or not its checksum holds."""
    try:
        meta = fmt.decode_meta(head)
        return {"pgno": 0, "kind": HEADER, "verified": True, "fields": _meta_fields(meta)}
    except PageStoreError as exc:
        error = str(exc)
    fields: Dict[str, Any] = {"magic": head[:16].decode("latin-1").replace("\x00", "\\0")}
    names = ("format_version", "page_size", "checksum", "page_count", "root", "tree_height", "freelist_head",
             "freelist_count", "fsm_head", "freelist_trunks", "record_count", "live_bytes", "lsn", "file_id", "checkpoint_seq")
    if len(head) >= fmt.FILE_HEADER_SIZE:
        values = struct.unpack_from("<III", head, 16) + struct.unpack_from("<IIIIIIIQQQQQ", head, fmt.META_BODY_OFFSET)
        for name, value in zip(names, values):
            fields[name] = f"{value:08x}" if name == "checksum" else f"{value:016x}" if name == "file_id" else value
    return {"pgno": 0, "kind": HEADER, "verified": False, "error": error, "fields": fields,
            "page_size_used": page_size}


def decode_image(data: bytes, pgno: int, error: Optional[str], preview_bytes: int = 16) -> Dict[str, Any]:
    """decode_image decodes one slotted page's bytes (``error``: why it failed verification, or None)."""
    ps = len(data)
    page = SlottedPage(bytearray(data), validate=False, pgno=pgno)
    ptype = page.page_type
    out: Dict[str, Any] = {
        "pgno": pgno,
        "kind": fmt.PAGE_TYPE_NAMES.get(ptype, f"type {ptype}"),
        "verified": error is None,
        "fields": {
            "checksum": f"{page.checksum:08x}",
            "pgno": page.pgno,
            "lsn": page.lsn,
            "type": ptype,
            "flags": data[fmt.OFF_FLAGS],
            "nslots": page.nslots,
            "nlive": page.nlive,
            "lower": page.lower,
            "upper": page.upper,
            "frag": page.frag,
            "next": page.next,
        },
    }
    if error is not None:
        out["error"] = error
        # The C space figures trust the header; compute them by hand instead.
        out["contiguous_free"] = page.upper - page.lower
        out["free_space"] = page.upper - page.lower + page.frag
    else:
        out["contiguous_free"] = page.contiguous_free_space
        out["free_space"] = page.free_space
    out["fill"] = 0.0 if ptype == fmt.PAGE_FREE else (ps - out["free_space"]) / ps
    slots = []
    nslots = min(page.nslots, (ps - fmt.HEADER_SIZE) // fmt.SLOT_SIZE)
    for slot in range(nslots):
        off, length, state, _ = _SLOT.unpack_from(data, fmt.HEADER_SIZE + slot * fmt.SLOT_SIZE)
        entry: Dict[str, Any] = {
            "slot": slot,
            "offset": off,
            "length": length,
            "state": SLOT_STATE_NAMES.get(state, f"bad ({state})"),
        }
        if state != fmt.SLOT_FREE and off + length <= ps:
            entry["preview"] = preview(data[off : off + length], preview_bytes)
        slots.append(entry)
    out["slots"] = slots
    if nslots < page.nslots:
        out["slots_truncated"] = page.nslots - nslots
    return out


# --------------------------------------------------------------------------
# the page map
# --------------------------------------------------------------------------

#: Colour of each page kind in the map.
COLOURS = {
    HEADER: "#222222",
    "heap": "#1f77b4",
    "leaf": "#2ca02c",
    "internal": "#17becf",
    "overflow": "#9467bd",
    "fsm": "#ff7f0e",
    "meta": "#8c564b",
    "free": "#bbbbbb",
    CORRUPT: "#d62728",
}
_OTHER = "#e377c2"
#: How a page that fails verification is drawn: solid red, hatched, with a
#: dark outline, so that one bad page stands out in a map of thousands.
#: (Shading it by fill, as other pages are, drew it at the faintest shade.)
CORRUPT_STYLE = 'fill="url(#corrupt)" stroke="#000000" stroke-width="1"'
_CORRUPT_PATTERN = (
    '<defs><pattern id="corrupt" width="4" height="4" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="4" height="4" fill="#d62728"/>'
    '<line x1="0" y1="0" x2="0" y2="4" stroke="#000000" stroke-width="1.5"/></pattern></defs>'
)
#: The map draws at most this many cells; bigger files put several pages in a cell.
MAX_CELLS = 65536


def page_map(pager: Pager, max_cells: int = MAX_CELLS) -> Tuple[int, List[Tuple[int, str, float]]]:
    """page_map returns ``(pages_per_cell, cells)``: one ``(first_pgno, kind, fill)`` per cell.

    A cell covering several pages takes the kind most of them have (corrupt
    wins over everything, so a bad page is never hidden) and their mean fill.
    """
    count = pager.meta.page_count
    per = max(1, -(-count // max_cells))
    cells: List[Tuple[int, str, float]] = []
    kinds: Dict[str, int] = {HEADER: 1}
    total, n, first = 0.0, 1, 0
    for info in page_infos(pager):
        if info.pgno % per == 0 and info.pgno:
            cells.append((first, _cell_kind(kinds), total / n))
            kinds, total, n, first = {}, 0.0, 0, info.pgno
        kinds[info.kind] = kinds.get(info.kind, 0) + 1
        total += info.fill if info.kind != HEADER else 1.0
        n += 1
    cells.append((first, _cell_kind(kinds), total / n if n else 0.0))
    if per == 1 and cells:
        cells[0] = (0, HEADER, 1.0)
    return per, cells


def _cell_kind(kinds: Dict[str, int]) -> str:
    if CORRUPT in kinds:
        return CORRUPT
    return max(kinds.items(), key=lambda kv: kv[1])[0]


def render_svg(pager: Pager, columns: int = 64, cell: int = 10, max_cells: int = MAX_CELLS) -> str:
    """render_svg draws the file as a grid of pages, page 0 top left, row by row.

    Colour says the page type, opacity the fill (faint: nearly empty, solid:
    full); free pages are drawn as outlines, pages that fail verification
    solid red, hatched black and outlined (``CORRUPT_STYLE``). Each cell has
    a tooltip with its page number, type and fill. A legend below counts the
    pages of each type.
    """
    per, cells = page_map(pager, max_cells)
    counts: Dict[str, int] = {}
    for _, kind, _ in cells:
        counts[kind] = counts.get(kind, 0) + 1
    rows = -(-len(cells) // columns)
    pad = 10
    title_h = 24
    legend_h = 20 * (len(counts) + 1)
    width = max(2 * pad + columns * cell, 360)
    height = pad + title_h + rows * cell + pad + legend_h
    name = escape(os.path.basename(pager.path))
    unit = "page" if per == 1 else f"{per} pages"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>pagestore page map of {name}</title>",
        _CORRUPT_PATTERN,
        f'<text x="{pad}" y="{pad + 12}">{name}: {pager.meta.page_count} pages of '
        f"{pager.page_size} bytes; one cell = {unit}</text>",
    ]
    top = pad + title_h
    for i, (first, kind, fill) in enumerate(cells):
        x = pad + (i % columns) * cell
        y = top + (i // columns) * cell
        colour = COLOURS.get(kind, _OTHER)
        last = min(first + per, pager.meta.page_count) - 1
        label = f"page {first}" if per == 1 else f"pages {first}-{last}"
        tip = f"{label}: {kind}, {fill:.0%} full"
        if kind == "free":
            style = f'fill="none" stroke="{colour}" stroke-width="1"'
            x0, y0, size = x + 0.5, y + 0.5, cell - 2
        elif kind == CORRUPT:
            style = CORRUPT_STYLE
            x0, y0, size = x + 0.5, y + 0.5, cell - 2
        else:
            opacity = 0.15 + 0.85 * max(0.0, min(1.0, fill))
            style = f'fill="{colour}" fill-opacity="{opacity:.2f}"'
            x0, y0, size = x, y, cell - 1
        out.append(f'<rect x="{x0}" y="{y0}" width="{size}" height="{size}" {style}><title>{escape(tip)}</title></rect>')
    y = top + rows * cell + pad
    for kind in sorted(counts, key=lambda k: (-counts[k], k)):
        colour = COLOURS.get(kind, _OTHER)
        swatch = CORRUPT_STYLE if kind == CORRUPT else f'fill="{colour}"'
        what = "corrupt (fails verification)" if kind == CORRUPT else kind
        out.append(f'<rect x="{pad}" y="{y}" width="12" height="12" {swatch}/>')
        out.append(f'<text x="{pad + 18}" y="{y + 11}">{escape(what)}: {counts[kind]} {"cells" if per > 1 else "pages"}</text>')
        y += 20
    out.append(f'<text x="{pad}" y="{y + 11}" fill="#555">opacity: page fill (faint = nearly empty, solid = full)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


__all__ = [
    "CORRUPT",
    "HEADER",
    "FILL_BUCKETS",
    "PageInfo",
    "open_pager",
    "page_infos",
    "fill_bucket",
    "summarize",
    "verify_pages",
    "header_fields",
    "decode_page",
    "decode_page_of_file",
    "decode_image",
    "decode_header_image",
    "preview",
    "page_map",
    "render_svg",
]
