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
