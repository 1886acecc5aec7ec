"""_native.py: the one table from C status codes to exceptions, CRC32C, page deltas, the
map handle's description, and the choice of binding for the read path's hot calls."""
from __future__ import annotations

import mmap
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagestore import _native
from pagestore.errors import CorruptionError, NotFoundError, PageFullError, PageStoreError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("code, exc", [
    (_native.EFULL, PageFullError),
    (_native.ENOSLOT, NotFoundError),
    (_native.EINVAL, ValueError),
    *[(c, CorruptionError) for c in sorted(_native.CORRUPTION_CODES)],
])
def test_raise_for_maps_each_code_to_its_exception(code: int, exc: type) -> None:
    with pytest.raises(exc) as info:
        _native.raise_for(code, 42, "where")
    text = str(info.value)
    assert _native.strerror(code) in text and "where" in text
    if exc is CorruptionError:
        assert info.value.pgno == 42


def test_an_unknown_code_is_a_page_store_error_and_strerror_names_every_code() -> None:
    with pytest.raises(PageStoreError):
        _native.raise_for(-9999)
    for code in (_native.OK, _native.EFULL, _native.ENOSLOT, _native.EINVAL, *_native.CORRUPTION_CODES):
        assert _native.strerror(code)  # a one-line description, not empty
    assert len({_native.strerror(c) for c in _native.CORRUPTION_CODES}) == len(_native.CORRUPTION_CODES)


def test_crc32c_known_answer_and_continuation() -> None:
    assert _native.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert _native.crc32c(b"") == 0
    whole = _native.crc32c(b"hello, world")
    assert _native.crc32c(b", world", _native.crc32c(b"hello")) == whole
    assert _native.crc32c(bytearray(b"hello, world")) == _native.crc32c(memoryview(b"hello, world")) == whole


def _reference_delta(old: bytes, new: bytes) -> bytes:
    """The delta format's runs (native/delta.c), byte by byte: a run starts at a difference and
    ends at the first difference followed by 8 equal bytes (or the page's end)."""
    out = bytearray()
    i, n = 0, len(old)
    while i < n:
        while i < n and old[i] == new[i]:
            i += 1
        if i >= n:
            break
        start = last = i
        j = i + 1
        while j < n and j - last <= 8:
            if old[j] != new[j]:
                last = j
            j += 1
        out += (start).to_bytes(2, "little") + (last + 1 - start).to_bytes(2, "little") + new[start : last + 1]
        i = last + 1
    return bytes(out)


@st.composite
def _page_pair(draw):  # a page and a copy with a few changed stretches, dense or sparse, at the ends too
    size = draw(st.sampled_from([512, 1024, 4096]))
    old = bytearray(draw(st.binary(min_size=size // 8, max_size=size // 8)) * 8)
    new = bytearray(old)
    for _ in range(draw(st.integers(0, 10))):
        at = draw(st.integers(0, size - 1))
        length = draw(st.integers(1, 80))
        step = draw(st.integers(1, 12))
        for k in range(at, min(size, at + length), step):
            new[k] = (new[k] + draw(st.integers(1, 255))) & 0xFF
    return bytes(old), bytes(new)


@settings(max_examples=400, deadline=None)
@given(_page_pair())
def test_delta_runs_are_the_formats_byte_for_byte(pair) -> None:
    """delta_make's runs are exactly the format's rule applied byte by byte (its C compares words:
    issue 23, a durable put's four deltas were 7% of its instructions), and apply gives the page."""
    old, new = pair
    delta = _native.delta_make(old, new, 4 * len(old))  # a cap no delta of these reaches
    assert delta == _reference_delta(old, new)
    page = bytearray(old)
    _native.delta_apply(page, delta)
    assert page == new


def test_delta_round_trip_cap_and_a_delta_that_does_not_fit() -> None:
    old = bytes(512)
    new = bytearray(old)
    new[10:14] = b"abcd"
    new[500] = 7
    delta = _native.delta_make(old, new, 512)
    assert delta is not None and len(delta) < 64
    page = bytearray(old)
    _native.delta_apply(page, delta)
    assert page == new
    assert _native.delta_make(old, bytes(range(256)) * 2, 16) is None  # more than the cap
    with pytest.raises(ValueError):
        _native.delta_make(old, bytes(256), 512)
    big_new = bytearray(1024)
    big_new[1000] = 1
    far = _native.delta_make(bytes(1024), big_new, 1024)
    assert far is not None
    small = bytearray(512)
    with pytest.raises(CorruptionError) as info:
        _native.delta_apply(small, far, pgno=9)  # a run past the end of a 512-byte page
    assert info.value.pgno == 9 and small == bytearray(512)  # left as it was


def _frame(pgno: int, offset: int, salt: int, payload: bytes, base: int) -> bytes:
    """_frame: a log frame as wal.py lays it out (FRAME HEADER; the checksum not checked here)."""
    import struct

    return struct.pack("<IIQQIIQ", pgno, 1, 1, offset, salt, len(payload), base) + bytes(4) + payload


@pytest.mark.parametrize("binding", ["fast", "cffi"])
def test_log_advance_applies_a_pages_frames_in_order_and_refuses_what_is_not_they(binding: str) -> None:
    """log_advance (WAL.advance: a writer's cached page brought up to the frames its turn took):
    deltas applied in log order from the image the caller holds, a whole frame copied; False for
    a frame that is not where and what the chain says (another page, offset, salt, base, or
    past the window)."""
    fast = _native.fast if binding == "fast" else _native.CffiPage()
    ps, salt, pgno = 512, 77, 5
    v0 = bytes(range(256)) * 2
    v1 = bytearray(v0)
    v1[20:24] = b"abcd"
    v2 = bytearray(v1)
    v2[300] ^= 0xFF
    d1, d2 = _native.delta_make(v0, v1, ps), _native.delta_make(v1, v2, ps)
    assert d1 is not None and d2 is not None
    start = 1000
    f1 = _frame(pgno, start, salt, d1, 900)  # base: the page's frame at 900 (v0)
    other = _frame(6, start + len(f1), salt, bytes(ps), 0)  # another page's frame between
    at2 = start + len(f1) + len(other)
    f2 = _frame(pgno, at2, salt, d2, start)
    window = f1 + other + f2
    image = bytearray(v0)
    assert fast.log_advance(image, window, start, [900, start, at2], pgno, salt, ps) is True
    assert image == v2
    whole = _frame(pgno, start, salt, bytes(v2), 0)
    image = bytearray(ps)
    assert fast.log_advance(image, whole, start, [None, start], pgno, salt, ps) is True and image == v2
    for chain, pg, sa, win in (
        ([800, start, at2], pgno, salt, window),  # the image is not of the frame the first delta is from
        ([None, start, at2], pgno, salt, window),  # no frame before a delta
        ([900, start, at2], 6, salt, window),  # another page's frames
        ([900, start, at2], pgno, salt + 1, window),  # another log's
        ([900, start, start + len(f1)], pgno, salt, window),  # an offset that is another page's frame
        ([900, start, at2 + 1], pgno, salt, window),  # not where a frame begins
        ([900, start, at2], pgno, salt, window[:-3]),  # the last frame cut short
        ([900, start - 44], pgno, salt, window),  # before the window
        ([900], pgno, salt, window),  # no frame taken
    ):
        assert fast.log_advance(bytearray(v0), win, start, chain, pg, sa, ps) is False, chain
    assert fast.log_advance(bytearray(100), window, start, [900, start], pgno, salt, ps) is False  # not a page
    bad = bytearray(f1)
    bad[44:46] = (ps - 2).to_bytes(2, "little")  # the delta's first run starts past the page's end
    assert fast.log_advance(bytearray(v0), bytes(bad), start, [900, start], pgno, salt, ps) is False


@pytest.mark.parametrize("binding", ["fast", "cffi"])
def test_log_adopt_walks_the_shared_index_entries_as_the_log_rule_says(binding: str) -> None:
    """log_adopt (WAL._adopt: the frames a writer catching up takes from the shared index): frames
    back to back from the committed end, each delta one deeper than its page's frame before it
    (taken here, else in the log's index), the chains WAL.advance applies; None for an entry that
    breaks a rule, with nothing of the caller's changed."""
    from array import array

    fast = _native.fast if binding == "fast" else _native.CffiPage()
    ps, end = 512, 1000
    index, depth = {3: 900, 4: 800}, {900: 2, 800: 8}

    def entries(*frames: "tuple[int, int]") -> "array[int]":
        out, at = array("Q"), end
        for pgno, size in frames:
            out.extend((pgno | size << 32, at))
            at += 44 + size
        return out

    got = fast.log_adopt(entries((3, 20), (5, ps), (3, 30), (5, 10)), end, ps, index, depth, 8)
    assert got is not None
    pgnos, offsets, chains, latest, new_depth, past, last_pgno, last_off, last_size = got
    assert pgnos == [3, 5, 3, 5] and offsets == [1000, 1064, 1620, 1694]
    assert chains == {3: [900, 1000, 1620], 5: [None, 1064, 1694]}
    assert latest == {3: 1620, 5: 1694} and new_depth == {1000: 3, 1064: 0, 1620: 4, 1694: 1}
    assert (past, last_pgno, last_off, last_size) == (1694 + 54, 5, 1694, 10)
    for bad in (
        entries((4, 20)),  # one delta past MAX_CHAIN
        entries((6, 20)),  # a delta of a page with no frame before it
        entries((3, 0)),  # an empty frame
        entries((3, ps + 1)),  # more than a page
        array("Q", [3 | 20 << 32, end + 1]),  # not where the committed end is
        array("Q", []),
    ):
        assert fast.log_adopt(bad, end, ps, index, depth, 8) is None
    assert index == {3: 900, 4: 800} and depth == {900: 2, 800: 8}


def test_map_handle_describes_what_it_is_attached_to() -> None:
    h = _native.MapHandle(4096)
    assert h.describes(0, 4096, 0)
    mm = mmap.mmap(-1, 8192)
    verified = bytearray(1)
    h.attach(mm, verified, 4096)
    assert h.describes(8192, 4096, 1) and not h.describes(4096, 4096, 1) and not h.describes(0, 4096, 0)
    h.detach()
    assert h.describes(0, 4096, 0)
    mm.close()  # no view left: the detach released the buffers C saw
    assert _native.map_handle(None) is None


def test_the_binding_is_the_one_asked_for() -> None:
    assert _native.BINDING in ("fastpage", "cffi")
    env = dict(os.environ, PYTHONPATH=REPO, PAGESTORE_NATIVE="cffi")
    out = subprocess.run([sys.executable, "-c", "from pagestore import _native; print(_native.BINDING)"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "cffi", out.stderr
    env["PAGESTORE_NATIVE"] = "nonsense"
    out = subprocess.run([sys.executable, "-c", "import pagestore"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0 and "PAGESTORE_NATIVE must be" in out.stderr
