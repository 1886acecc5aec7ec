"""The write path's lean page-local calls (``_native.fast.page_insert_room``, ``leaf_insert``,
``leaf_remove`` and ``record_delete``: native/fastpage.c, and the cffi fallback ``CffiPage``), and the
write-path levers built on them: the heap's held current page and the
transaction's dict of buffered writes.

The two bindings are compared call by call on sound and damaged pages of a real
store (512-byte pages): the same answers, the same frames after, the same
errors, a damaged page always a CorruptionError naming it.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Tuple

import pytest

from pagestore import _native
from pagestore import format as fmt
from pagestore.errors import CorruptionError, PageFullError
from pagestore.page import SlottedPage
from pagestore.store import Store

from helpers import FAST, outcome as _outcome

needs_fast = pytest.mark.skipif(FAST is None, reason="pagestore._fastpage is built on CPython only")


def _pages(tmp_path: Any) -> Dict[int, bytes]:
    """_pages: every page of a small store, by page number, as committed."""
    path = str(tmp_path / "db")
    rng = random.Random(5)
    with Store(path, page_size=512) as db:
        with db.transaction() as txn:
            for _ in range(600):
                txn[rng.randbytes(rng.randint(1, 24))] = rng.randbytes(rng.choice([0, 1, 10, 100, 200]))
        pager = db._pager
        return {p: bytes(pager.read(p).buffer) for p in range(1, pager.meta.page_count)}


@needs_fast
def test_both_bindings_insert_alike_on_sound_and_damaged_pages(tmp_path):
    pages = _pages(tmp_path)
    leaves = [p for p, b in pages.items() if b[fmt.OFF_TYPE] == fmt.PAGE_LEAF]
    heaps = [p for p, b in pages.items() if b[fmt.OFF_TYPE] == fmt.PAGE_HEAP]
    assert len(leaves) > 5 and len(heaps) > 5
    cf, fast = _native.CffiPage(), FAST
    rng = random.Random(6)
    seen: Dict[str, int] = {}
    for trial in range(3000):
        p = rng.choice(leaves + heaps)
        img = bytearray(pages[p])
        if trial % 2:  # damaged: a few bytes anywhere, the header and slot array included
            for _ in range(rng.randint(1, 4)):
                img[rng.randrange(len(img))] = rng.randrange(256)
        if rng.random() < 0.5:
            key = rng.randbytes(rng.randint(0, 30))
            index = rng.randrange(0, 40)
            if rng.random() < 0.8:  # mostly where the key belongs, as the tree calls it
                try:
                    index = fast.node_find(bytes(img), key, False, p)[0]
                except CorruptionError:
                    pass
            args: Tuple[Any, ...] = (index, key, rng.randrange(1 << 32), rng.randrange(1 << 16), p)
            name = "leaf_insert"
        else:
            args = (rng.randbytes(rng.choice([0, 1, 50, 300, 600])),
                    rng.choice([fmt.SLOT_LIVE, fmt.SLOT_LIVE, fmt.SLOT_LIVE, fmt.SLOT_OVERFLOW, 7]), p)
            name = "page_insert_room"
        a_img, b_img = bytearray(img), bytearray(img)
        a = _outcome(getattr(fast, name), a_img, *args)
        b = _outcome(getattr(cf, name), b_img, *args)
        assert a == b, (name, p, a, b)
        assert a_img == b_img, (name, p)
        if a[0] == "corrupt":
            assert a[1] == p
        if a[0] == "ok" and name == "leaf_insert" and a[1] is not None:
            assert a[1] == bytes(a_img)  # the copy returned is the changed frame
        if a[0] != "ok" or (name == "leaf_insert" and a[1] is None):
            assert a_img == img or a[0] == "ok", (name, p)  # a refused change leaves the page as it was
        seen[name + ":" + a[0]] = seen.get(name + ":" + a[0], 0) + 1
    for want in ("leaf_insert:ok", "leaf_insert:corrupt", "page_insert_room:ok", "page_insert_room:corrupt"):
        assert seen.get(want, 0) > 20, seen


@needs_fast
def test_both_bindings_remove_and_delete_alike_on_sound_and_damaged_pages(tmp_path):
    """leaf_remove and record_delete (issue 23: a churn's deletes, one lean call each): the same
    answers, frames and errors from both bindings; the copy returned is the changed frame; a
    refused change leaves the page as it was; a damaged page is a CorruptionError naming it."""
    pages = _pages(tmp_path)
    leaves = [p for p, b in pages.items() if b[fmt.OFF_TYPE] == fmt.PAGE_LEAF]
    heaps = [p for p, b in pages.items() if b[fmt.OFF_TYPE] == fmt.PAGE_HEAP]
    cf, fast = _native.CffiPage(), FAST
    rng = random.Random(9)
    seen: Dict[str, int] = {}
    for trial in range(3000):
        name = "leaf_remove" if rng.random() < 0.5 else "record_delete"
        p = rng.choice(leaves if rng.random() < 0.9 else heaps) if name == "leaf_remove" else \
            rng.choice(heaps if rng.random() < 0.9 else leaves)
        img = bytearray(pages[p])
        if trial % 2:
            for _ in range(rng.randint(1, 4)):
                img[rng.randrange(len(img))] = rng.randrange(256)
        index = rng.randrange(0, 30) if rng.random() < 0.95 else rng.choice([0xFFFF, 0x10000, 1 << 31])
        a_img, b_img = bytearray(img), bytearray(img)
        a = _outcome(getattr(fast, name), a_img, index, p)
        b = _outcome(getattr(cf, name), b_img, index, p)
        assert a == b, (name, p, a, b)
        assert a_img == b_img, (name, p)
        if a[0] == "corrupt":
            assert a[1] == p
        if a[0] == "ok":
            if name == "leaf_remove":
                assert a[1][0] == bytes(a_img)
            else:
                length, stub, nlive, room = a[1]
                page_after = SlottedPage(bytearray(a_img), validate=False)
                assert nlive == page_after.nlive and room == page_after.max_insert
                assert stub is None or len(stub) == length
        else:
            assert a_img == img, (name, p)  # a refused change leaves the page as it was
        seen[name + ":" + a[0]] = seen.get(name + ":" + a[0], 0) + 1
    for want in ("leaf_remove:ok", "leaf_remove:corrupt", "record_delete:ok", "record_delete:corrupt",
                 "record_delete:NotFoundError"):
        assert seen.get(want, 0) > 20, seen


@needs_fast
def test_both_bindings_patch_records_alike_on_sound_and_damaged_pages(tmp_path):
    """record_patch (the free-space map's flush at every commit, one lean call): the same answers,
    frames and errors from both bindings; a record of another length, or a change out of range,
    leaves the page as it was; a damaged page is a CorruptionError naming it."""
    pages = _pages(tmp_path)
    fsm = [p for p, b in pages.items() if b[fmt.OFF_TYPE] == fmt.PAGE_FSM]
    heaps = [p for p, b in pages.items() if b[fmt.OFF_TYPE] == fmt.PAGE_HEAP]
    assert fsm and heaps
    cf, fast = _native.CffiPage(), FAST
    rng = random.Random(11)
    seen: Dict[str, int] = {}
    for trial in range(3000):
        p = rng.choice(fsm if rng.random() < 0.6 else heaps)
        img = bytearray(pages[p])
        if trial % 2:
            for _ in range(rng.randint(1, 4)):
                img[rng.randrange(len(img))] = rng.randrange(256)
        slot = rng.randrange(0, 4) if rng.random() < 0.95 else rng.choice([0xFFFF, 0x10000])
        try:
            length = len(SlottedPage(bytearray(pages[p]), validate=False).read(slot))
        except Exception:  # noqa: BLE001 - no such record: any length
            length = 10
        if rng.random() < 0.1:
            length = rng.randrange(0, 600)
        changes = [(rng.randrange(0, max(1, length)) if rng.random() < 0.97 else rng.choice([-1, length, 1 << 20]),
                    rng.randrange(256) if rng.random() < 0.97 else rng.choice([-1, 256]))
                   for _ in range(rng.randint(0, 5))]
        a_img, b_img = bytearray(img), bytearray(img)
        a = _outcome(fast.record_patch, a_img, slot, length, changes, p)
        b = _outcome(cf.record_patch, b_img, slot, length, changes, p)
        assert a == b, (p, a, b)
        assert a_img == b_img, p
        if a[0] == "corrupt":
            assert a[1] == p
        if a[0] != "ok" or a[1] != length:
            assert a_img == img, p  # refused: the page as it was
            kind = a[0] if a[0] != "ok" else "other length"
        else:
            kind = "ok"
        seen[kind] = seen.get(kind, 0) + 1
    for want in ("ok", "corrupt", "other length", "ValueError", "NotFoundError"):
        assert seen.get(want, 0) > 10, seen


def test_a_durable_puts_commit_calls_no_cffi_page_function(tmp_path, monkeypatch):
    """A lone durable put's apply and commit go through no cffi call of page.py (each lets the GIL
    go: in a group commit, a switch to another thread in the middle of the leader's apply). The
    free-space map's flush located its record through cffi's ps_page_read at every commit."""
    from pagestore import page as page_mod

    if _native.BINDING != "fastpage":
        pytest.skip("the lean binding is cffi here")
    db = Store(str(tmp_path / "db"), sync=True)
    try:
        for i in range(50):
            db[b"k%d" % i] = b"v" * 20
        calls: List[str] = []

        class Counting:
            def __getattr__(self, name: str) -> Any:
                calls.append(name)
                return getattr(_native.lib, name)

        monkeypatch.setattr(page_mod, "lib", Counting())
        for i in range(50, 60):
            db[b"k%d" % i] = b"w" * (i - 30)
        assert calls == []
        monkeypatch.undo()
        assert db[b"k55"] == b"w" * 25
        db.check()
    finally:
        db.close()


@needs_fast
@pytest.mark.parametrize("binding", ["fast", "cffi"])
def test_write_calls_refuse_wrong_arguments(binding):
    b = FAST if binding == "fast" else _native.CffiPage()
    frame = bytearray(512)
    with pytest.raises(TypeError):
        b.leaf_insert(bytes(512), 0, b"k", 1, 1, 3)  # an immutable frame
    with pytest.raises(TypeError):
        b.leaf_insert(frame, 0, "k", 1, 1, 3)
    with pytest.raises(TypeError):
        b.page_insert_room(frame, bytearray(b"x"), fmt.SLOT_LIVE, 3)
    with pytest.raises(ValueError):
        b.page_insert_room(bytearray(100), b"x", fmt.SLOT_LIVE, 3)  # no page size
    with pytest.raises((OverflowError, ValueError)):
        b.leaf_insert(frame, -1, b"k", 1, 1, 3)
    with pytest.raises(CorruptionError) as e:
        b.leaf_insert(frame, 0, b"k", 1, 1, 3)  # an all-zero page is no leaf
    assert e.value.pgno == 3
    with pytest.raises(PageFullError):
        b.page_insert_room(frame, bytes(70000), fmt.SLOT_LIVE, 3)
    with pytest.raises(TypeError):
        b.leaf_remove(bytes(512), 0, 3)
    with pytest.raises(TypeError):
        b.record_delete(bytes(512), 0, 3)
    with pytest.raises((OverflowError, ValueError)):
        b.record_delete(frame, -1, 3)
    with pytest.raises(CorruptionError) as e:
        b.leaf_remove(frame, 0, 3)  # an all-zero page is no leaf
    assert e.value.pgno == 3


def test_heap_held_page_keeps_the_map_exact(tmp_path):
    """Records go straight into the heap's current page with its map entry held back; deletes,
    updates and frees of that page between them must leave check() exact after every commit."""
    rng = random.Random(7)
    model: Dict[bytes, bytes] = {}
    with Store(str(tmp_path / "db"), page_size=512) as db:
        for _ in range(40):
            with db.transaction() as txn:
                for _ in range(30):
                    r = rng.random()
                    if model and r < 0.3:
                        k = rng.choice(list(model))
                        del txn[k]
                        del model[k]
                    elif model and r < 0.5:
                        k = rng.choice(list(model))
                        txn[k] = model[k] = rng.randbytes(rng.randint(0, 120))
                    else:
                        k = rng.randbytes(rng.randint(1, 12))
                        txn[k] = model[k] = rng.randbytes(rng.choice([0, 5, 40, 120, 300]))
            db.check()
        assert dict(db.items()) == model


def test_transaction_scans_see_writes_made_after_an_earlier_scan(tmp_path):
    """The transaction's writes are a dict sorted on demand for a scan: a write after a scan
    must show in the next one, in order, and a scan's own run must not move under its feet."""
    with Store(str(tmp_path / "db")) as db:
        db[b"b"] = b"1"
        with db.transaction() as txn:
            txn[b"d"] = b"4"
            assert list(txn.keys()) == [b"b", b"d"]
            txn[b"a"] = b"0"
            txn[b"c"] = b"3"
            assert list(txn.keys()) == [b"a", b"b", b"c", b"d"]
            del txn[b"b"]
            assert list(txn.keys(b"b", b"d")) == [b"c"]
            assert list(txn.keys(reverse=True)) == [b"d", b"c", b"a"]
            seen: List[bytes] = []
            for k in txn.keys():
                seen.append(k)
                txn[b"z" + k] = b""  # written during the scan: not in this scan's run
            assert seen == [b"a", b"c", b"d"]
        assert list(db.keys()) == [b"a", b"c", b"d", b"za", b"zc", b"zd"]


@needs_fast
def test_both_bindings_build_a_commits_log_frames_alike(tmp_path):
    """log_frames (issue 23: a commit's frames in one C call) against the cffi fallback: the same
    bytes, checksum chain and payload sizes, for whole images and deltas, and each frame laid out
    as wal.py's FRAME HEADER table says, its CRC32C chained from the one before."""
    import struct

    pages = _pages(tmp_path)
    rng = random.Random(8)
    frames: List[Tuple[int, Any, Any, int]] = []
    for p in sorted(pages)[:40]:
        img = bytearray(pages[p])
        before = bytes(img) if rng.random() < 0.7 else None
        if rng.random() < 0.8:  # a small edit: a delta; else most of the page: whole
            for _ in range(rng.randint(1, 3)):
                img[rng.randrange(len(img))] ^= 0xFF
        else:
            img[:400] = rng.randbytes(400)
        frames.append((p, img, before, rng.choice([0, 44 + rng.randrange(1000)])))
    frames.append((0, bytes(rng.randbytes(512)), None, 0))  # the header frame, whole
    args = (7, 0x5A17, 4096, 12345, 99, 512, 0)
    got = FAST.log_frames(frames, *args)
    want = _native.CffiPage().log_frames(frames, *args)
    assert bytes(got[0]) == bytes(want[0]) and got[1:] == want[1:]
    # sealed: each page (not page 0) stamped with the LSN and its checksum first, by both alike
    copies = [[(p, bytearray(img) if p else img, b, base) for p, img, b, base in frames] for _ in range(2)]
    sealed = [FAST.log_frames(copies[0], *args[:-1], 77), _native.CffiPage().log_frames(copies[1], *args[:-1], 77)]
    assert bytes(sealed[0][0]) == bytes(sealed[1][0]) and sealed[0][1:] == sealed[1][1:]
    for p, img, _, _ in copies[0][:-1]:  # pagestore.h: checksum at 0 covers [4, page_size); lsn at 8
        assert struct.unpack_from("<IIQ", img, 0)[::2] == (_native.crc32c(bytes(img[4:])), 77)
    assert [bytes(f[1]) for f in copies[0]] == [bytes(f[1]) for f in copies[1]]
    out, crc, sizes = got
    assert 512 in sizes and any(n < 512 for n in sizes), "both whole images and deltas"
    pos, chain, offset = 0, 12345, 4096
    head = struct.Struct("<IIQQIIQ")
    for i, ((pgno, img, before, base), n) in enumerate(zip(frames, sizes)):
        fpgno, commit, txn, own, salt, size, used = head.unpack_from(out, pos)
        assert (fpgno, txn, own, salt, size) == (pgno, 7, offset, 0x5A17, n)
        assert commit == (99 if i == len(frames) - 1 else 0)
        payload = bytes(out[pos + 44 : pos + 44 + n])
        if n == 512:
            assert used == 0 and payload == bytes(img)
        else:
            assert used == base and base and before is not None
            rebuilt = bytearray(before)
            _native.delta_apply(rebuilt, payload)
            assert rebuilt == img
        chain = _native.crc32c(payload, _native.crc32c(bytes(out[pos : pos + 40]), chain))
        assert struct.unpack_from("<I", out, pos + 40)[0] == chain
        pos += 44 + n
        offset += 44 + n
    assert pos == len(out) and chain == crc
    with pytest.raises(ValueError):
        FAST.log_frames([(3, bytearray(100), None, 0)], *args)  # not a page
    with pytest.raises(TypeError):
        FAST.log_frames([(3, bytes(512), None, 0)], *args[:-1], 5)  # sealing needs a frame (bytearray)


@needs_fast
def test_both_bindings_append_a_commits_frames_and_bookkeeping_alike(tmp_path):
    """log_append (issue 23: WAL._append's per-frame bookkeeping in the frames' C call) against the
    cffi fallback, and against log_frames with the bases chosen as WAL._append chose them: a page's
    newest frame (the open transaction's first, then the log's) when its chain is shorter than
    max_chain, else whole; the same bytes and checksum, the same depth, txn_index, frame lists and
    shared-index entries after; a base with no depth is a KeyError from both."""
    import struct

    pages = _pages(tmp_path)
    rng = random.Random(10)
    for trial in range(60):
        frames: List[Tuple[int, Any, Any]] = []
        index: Dict[int, int] = {}
        txn_index: Dict[int, int] = {}
        depth: Dict[int, int] = {}
        for p in rng.sample(sorted(pages), 12):
            img = bytearray(pages[p])
            before = bytes(img) if rng.random() < 0.8 else None
            for _ in range(rng.randint(1, 3) if rng.random() < 0.8 else 0):
                img[rng.randrange(len(img))] ^= 0xFF
            if rng.random() < 0.1:
                img[:400] = rng.randbytes(400)  # too much changed for a delta: whole
            where = rng.random()
            off = 40 + 556 * rng.randrange(50)
            if where < 0.4:
                index[p] = off
            elif where < 0.7:
                txn_index[p] = off
                if rng.random() < 0.5:
                    index[p] = off + 7  # an older frame: the open transaction's wins
            depth[off] = rng.randrange(10)
            depth[off + 7] = 0
            frames.append((p, img if rng.random() < 0.5 else bytes(img), before))
        frames.append((0, rng.randbytes(512), None))
        args = (7 + trial, 0x5A17, 40000, 12345, 99 if trial % 2 else 0, 512, 0)
        states = [(dict(txn_index), dict(index), dict(depth), [1], [40]) for _ in range(2)]
        got = [b.log_append(frames, *args, *st, 8) for b, st in zip((FAST, _native.CffiPage()), states)]
        assert bytes(got[0][0]) == bytes(got[1][0]) and got[0][1:] == got[1][1:]
        assert states[0] == states[1]
        chunk = []
        for p, img, before in frames:
            prev = txn_index.get(p, index.get(p))
            chunk.append((p, img, before, prev if before is not None and prev is not None and depth[prev] < 8 else 0))
        out, crc, sizes = FAST.log_frames(chunk, *args)
        assert bytes(out) == bytes(got[0][0]) and crc == got[0][1]
        t_after, i_after, d_after, pgnos, offsets = states[0]
        assert i_after == index  # a commit's index is the caller's to update, after the write
        offset, want = 40000, []
        for (p, _, _, base), n in zip(chunk, sizes):
            assert t_after[p] == offset and d_after[offset] == (depth[base] + 1 if base and n < 512 else 0)
            want += [p | n << 32, offset]
            offset += 44 + n
        assert pgnos == [1] + [f[0] for f in frames] and offsets[1:] == [want[i] for i in range(1, len(want), 2)]
        assert list(struct.unpack(f"<{len(want)}Q", got[0][2])) == want
    bad = [(3, bytes(512), b"x" * 512)]
    for b in (FAST, _native.CffiPage()):
        with pytest.raises(KeyError):
            b.log_append(bad, 1, 1, 40, 0, 0, 512, 0, {3: 99}, {}, {}, [], [], 8)


@needs_fast
def test_both_bindings_checksum_alike():
    """crc32c (the header checksums every commit computes, issue 23): _fastpage's against the cffi
    one, on every kind of buffer it is given, continuing from any crc; wrong arguments are errors."""
    rng = random.Random(9)
    cf = _native.CffiPage()
    for n in (0, 1, 7, 24, 484, 512, 4096):
        data = rng.randbytes(n)
        for crc in (0, 1, 0xFFFFFFFF, rng.getrandbits(32)):
            want = cf.crc32c(data, crc)
            for buf in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))[0:n]):
                assert FAST.crc32c(buf, crc) == want
    assert FAST.crc32c(b"123456789", 0) == 0xE3069283  # the CRC32C check value
    for bad in ((b"x",), (b"x", -1), (b"x", 1 << 32), ("x", 0), (b"x", 0, 0)):
        with pytest.raises((TypeError, ValueError, OverflowError)):
            FAST.crc32c(*bad)
