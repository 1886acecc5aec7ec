"""The bottom-up build (pagestore/bulk.py) against a plain dict: check() after every build.

Small pages and long keys force many levels and the uneven last nodes that
the build evens out; the store is reopened to read what reached the disk.
"""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagestore.bulk import Builder
from pagestore.store import Store


def _build(db: Store, items) -> list:
    """_build runs a Builder over ``items`` in one write; returns the items it did not take."""
    rest: list = []

    def run() -> None:
        b = Builder(db._pager, db._heap, db._tree)
        it = iter(items)
        for k, v in it:
            if not b.add(k, v):
                rest.append((k, v))
                rest.extend(it)
                break
        b.finish()

    db._write(run)
    return rest


def _verify(path: str, want: dict, **opts) -> None:
    with Store(path, **opts) as db:
        db.check()
        assert list(db.items()) == sorted(want.items())
        assert len(db) == len(want)


VALUES = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=100, max_size=300),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(200, 3000), st.integers(0, 255)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.binary(max_size=141), VALUES, max_size=300))
def test_build_matches_model(tmp_path_factory, data):
    path = os.path.join(str(tmp_path_factory.mktemp("bulk")), "s")
    with Store(path, page_size=512, cache_size=512 * 40, sync=False) as db:
        assert _build(db, sorted(data.items())) == []
        db.check()
        assert list(db.items()) == sorted(data.items())
    _verify(path, data, page_size=512)


@pytest.mark.parametrize("n,key_len", [(1, 8), (2, 141), (40, 141), (2000, 141), (5000, 6)])
def test_build_shapes(tmp_path, n, key_len):
    """Long keys (the longest a 512-byte page takes) give three-entry nodes and tall trees."""
    rng = random.Random(n)
    keys = sorted({rng.randbytes(key_len) for _ in range(n)})
    items = [(k, rng.randbytes(rng.choice([0, 5, 60, 300]))) for k in keys]
    path = os.path.join(str(tmp_path), "s")
    with Store(path, page_size=512, cache_size=512 * 40, sync=False) as db:
        _build(db, items)
        stats = db.check()
        assert stats["records"] == len(items)
    _verify(path, dict(items), page_size=512)


def test_build_stops_at_a_key_out_of_order(tmp_path):
    """A key not above the last is refused; what was built is a valid tree, and the rest can go in one by one."""
    path = os.path.join(str(tmp_path), "s")
    items = [(b"k%04d" % i, b"v%d" % i) for i in range(500)] + [(b"a", b"early"), (b"k0600", b"late")]
    with Store(path, page_size=512, sync=False) as db:
        rest = _build(db, items)
        assert rest == items[500:]
        db.check()
        assert len(db) == 500
        for k, v in rest:
            db[k] = v
        db.check()
    _verify(path, dict(items), page_size=512)


def test_build_after_everything_was_deleted(tmp_path):
    """A store emptied by deletes keeps an empty root leaf; the build frees it (check finds no leak)."""
    path = os.path.join(str(tmp_path), "s")
    with Store(path, page_size=512, sync=False) as db:
        for i in range(300):
            db[b"x%03d" % i] = b"v" * 30
        for i in range(300):
            del db[b"x%03d" % i]
        assert db._pager.meta.root
        items = [(b"y%05d" % i, bytes([i % 256]) * (i % 700)) for i in range(1000)]
        _build(db, items)
        db.check()
    _verify(path, dict(items), page_size=512)


@pytest.mark.parametrize("emptied", [False, True])
def test_durable_build_writes_chains_straight_to_the_file(tmp_path, emptied):
    """A durable build writes its overflow chains past the end of the file, uncached (Pager.write_run);
    a store emptied by deletes gives its free pages first (through the cache) and then does the same."""
    path = os.path.join(str(tmp_path), "s")
    rng = random.Random(5)
    items = sorted({rng.randbytes(rng.randint(1, 30)): rng.randbytes(rng.choice([3, 90, 300, 700, 2500]))
                    for _ in range(1500)}.items())
    with Store(path, page_size=512, cache_size=512 * 64, sync=True) as db:
        if emptied:
            for i in range(300):
                db[b"x%03d" % i] = b"v" * 400
            for i in range(300):
                del db[b"x%03d" % i]
            assert db._pager.meta.freelist_count
        pager = db._pager
        wrote = []
        real = pager.write_run

        def spy(first, pages):
            wrote.append((first, len(pages) // 512))
            real(first, pages)

        pager.write_run = spy  # type: ignore[method-assign]
        end = pager.committed.page_count
        _build(db, items)
        del pager.write_run
        assert wrote and all(first >= end for first, _ in wrote)
        assert pager.meta.freelist_count == 0
        db.check()
        assert list(db.items()) == items
    _verify(path, dict(items), page_size=512)


def test_durable_build_writes_back_as_it_goes(tmp_path, monkeypatch):
    """A durable build larger than WRITEBACK_BYTES writes its older new pages out while it runs
    (Pager._write_back) and starts the disk on them; pages changed after that (stubs placed in
    older heap pages) are written again at the commit: check() and a reopen see every record."""
    from pagestore import fileio, pagecache, pager as pager_mod

    monkeypatch.setattr(pagecache, "WRITEBACK_BYTES", 64 * 512)
    monkeypatch.setattr(pagecache, "WRITEBACK_LAG", 16)
    hints = []
    real = fileio.File.start_writeback

    def spy(self, offset, n):
        hints.append((offset, n))
        real(self, offset, n)

    monkeypatch.setattr(fileio.File, "start_writeback", spy)
    written: list = []
    real_direct = pager_mod.Pager._write_direct

    def spy_direct(self, pgnos, txn):
        written.extend(pgnos)
        real_direct(self, pgnos, txn)

    monkeypatch.setattr(pager_mod.Pager, "_write_direct", spy_direct)
    path = os.path.join(str(tmp_path), "s")
    rng = random.Random(9)
    items = sorted({rng.randbytes(rng.randint(1, 30)): rng.randbytes(rng.choice([3, 90, 300, 700, 2500]))
                    for _ in range(3000)}.items())
    with Store(path, page_size=512, cache_size=512 * 64, sync=True) as db:
        _build(db, items)
        assert len(hints) > 5
        ends = [off + n for off, n in hints]
        assert all(n > 0 for _, n in hints) and ends == sorted(ends)  # forward, no range twice
        assert all(ends[i] == hints[i + 1][0] for i in range(len(hints) - 1))
        assert ends[-1] <= db._pager.meta.page_count * 512
        assert len(written) > len(set(written))  # some pages were written back, changed, and written again
        db.check()
        assert list(db.items()) == items
    _verify(path, dict(items), page_size=512)


def test_build_refuses_a_store_with_records(tmp_path):
    with Store(os.path.join(str(tmp_path), "s"), page_size=512, sync=False) as db:
        db[b"a"] = b"1"
        with pytest.raises(ValueError):
            _build(db, [(b"b", b"2")])
        assert dict(db.items()) == {b"a": b"1"}
        db.check()


def test_build_memory_is_bounded_by_the_cache(tmp_path):
    """Many more pages than the cache holds: the pager spills them, the cache stays at its size."""
    path = os.path.join(str(tmp_path), "s")
    items = [(b"%08d" % i, bytes(100 + i % 900)) for i in range(6000)]
    with Store(path, page_size=512, cache_size=512 * 64, sync=False) as db:
        seen = []
        real = db._pager.begin_operation

        def spy() -> None:
            seen.append(len(db._pager.cache))
            real()

        db._pager.begin_operation = spy  # type: ignore[method-assign]
        _build(db, items)
        del db._pager.begin_operation
        assert max(seen) <= db._pager.cache_pages + 8
        db.check()
    _verify(path, dict(items), page_size=512)


# ---- Store.update: one atomic commit, bottom-up when it can ----


def test_update_is_one_commit(tmp_path):
    path = os.path.join(str(tmp_path), "s")
    with Store(path, page_size=512, sync=True) as db:
        commits = []
        real = db._pager.commit

        def spy(sync=None):
            commits.append(sync)
            return real(sync)

        db._pager.commit = spy  # type: ignore[method-assign]
        db.update((b"%05d" % i, b"v" * (i % 300)) for i in range(2000))
        assert len(commits) == 1
        db.update({b"z1": b"1", b"a1": b"2"})  # a store with records: item by item, still one commit
        assert len(commits) == 2
        del db._pager.commit
        db.check()
        assert len(db) == 2002


def test_update_forms_and_duplicates(tmp_path):
    with Store(os.path.join(str(tmp_path), "s"), page_size=512, sync=False) as db:
        db.update([(b"b", b"1"), (b"c", b"2"), (b"a", b"3"), (b"c", b"4")])
        assert dict(db.items()) == {b"a": b"3", b"b": b"1", b"c": b"4"}
        with pytest.raises(TypeError):  # keywords are str keys, which a bytes store refuses
            db.update([(b"d", b"5")], d=b"5")
        assert b"d" not in db
        db.check()

        class KeysOnly:
            def keys(self):
                return [b"e"]

            def __getitem__(self, k):
                return b"6"

        db.update(KeysOnly())
        assert db[b"e"] == b"6"


@pytest.mark.parametrize("bad_at", [0, 10, 700])
def test_update_with_a_bad_item_writes_nothing(tmp_path, bad_at):
    """A refused key in the middle of a sorted stream: the build so far is rolled back with the rest."""
    with Store(os.path.join(str(tmp_path), "s"), page_size=512, sync=False) as db:
        items = [(b"%05d" % i, b"v" * 40) for i in range(1000)]
        items[bad_at] = (12345, b"x")  # type: ignore[assignment]
        with pytest.raises(TypeError):
            db.update(items)
        assert len(db) == 0 and list(db.items()) == []
        db.check()
        db.update([(b"ok", b"1")])
        assert dict(db.items()) == {b"ok": b"1"}


def test_update_sorted_into_an_empty_store_is_built_bottom_up(tmp_path):
    """The bottom-up build leaves leaves full: far fewer leaves than one put per item would."""
    items = [(b"key%06d" % i, b"v" * 20) for i in range(5000)]
    with Store(os.path.join(str(tmp_path), "a"), page_size=512, sync=False) as a:
        a.update(items)
        built = a.check()
    with Store(os.path.join(str(tmp_path), "b"), page_size=512, sync=False) as b:
        b.update(items[:1])
        b.update(items[1:])  # a store with a record: item by item
        one_by_one = b.check()
    assert built["records"] == one_by_one["records"] == 5000
    assert built["tree_leaves"] < one_by_one["tree_leaves"]


def test_update_takes_any_bytes_like_and_checks_every_item(tmp_path):
    """The bulk path passes exact bytes through unconverted; anything else goes through the
    store's own checks: bytearray and memoryview keys and values are taken by their bytes, a
    key too long for the page refuses the whole update, and from a key out of order on the
    rest goes in item by item, converted the same way."""
    path = os.path.join(str(tmp_path), "s")
    with Store(path, page_size=512, sync=False) as db:
        too_long = [(b"a", b"1"), (b"b" * (db.max_key + 1), b"2")]
        with pytest.raises(ValueError):
            db.update(too_long)
        assert len(db) == 0
        big = bytes(range(256)) * 8  # an overflow value between small ones
        items = [
            (b"k1", memoryview(b"v1")),
            (bytearray(b"k2"), big),
            (memoryview(b"k3"), bytearray(b"v3")),
            (b"k0", b"early"),  # out of order: from here on, item by item
            (bytearray(b"k5"), memoryview(big)[:100]),
            (b"k4", b"v4"),
        ]
        db.update(items)
        want = {b"k0": b"early", b"k1": b"v1", b"k2": big, b"k3": b"v3", b"k4": b"v4", b"k5": big[:100]}
        assert dict(db.items()) == want
        assert all(type(k) is bytes and type(v) is bytes for k, v in db.items())
        db.check()
    _verify(path, want, page_size=512)
