"""The read path: the pager's eviction and its reuse of evicted frames,
Heap.read_many against Heap.read, how scans read values, and the
free-space map's lookup.

Small pages (512 bytes) and a small cache (32 pages) so that overflow chains,
cache misses and evictions happen on every few records.
"""
from __future__ import annotations

import random
from itertools import islice
from typing import Dict, List, Tuple

import pytest

from helpers import SMALL, heap_of, operation, pager_of, tree_of, write_as_store

from pagestore import format as fmt
from pagestore.errors import CorruptionError, NotFoundError
from pagestore.page import SlottedPage
from pagestore.store import Store



def sizes(page_size: int) -> List[int]:
    """sizes: value lengths around every boundary of the record formats."""
    usable = page_size - fmt.HEADER_SIZE - fmt.SLOT_SIZE
    half = usable // 2
    return [0, 1, 7, 8, 9, half - 1, half, half + 1, usable - 1, usable, usable + 1,
            usable + half, usable + half + 1, 2 * usable, 3 * usable + 5, 7 * usable + half]


def fill(db: Store, n: int, seed: int = 0) -> Dict[bytes, bytes]:
    rng = random.Random(seed)
    lengths = sizes(pager_of(db).page_size)
    model: Dict[bytes, bytes] = {}
    with db.transaction() as txn:
        for i in range(n):
            k = b"k%05d" % rng.randrange(10 * n)
            v = rng.randbytes(lengths[i % len(lengths)] if i % 3 else rng.randrange(60))
            txn[k] = v
            model[k] = v
    return model


def entries(db: Store) -> List[Tuple[bytes, Tuple[int, int]]]:
    with operation(db):
        return list(tree_of(db).entries())


def read_many(db: Store, rids) -> List[bytes]:
    with operation(db):
        return heap_of(db).read_many(rids)


def read_one(db: Store, rid) -> bytes:
    with operation(db):
        return heap_of(db).read(rid)


def damage(path: str, pgno: int, page_size: int, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pgno * page_size + offset)
        b = f.read(1)
        f.seek(pgno * page_size + offset)
        f.write(bytes([b[0] ^ 0x40]))


# ---- the pager's cache ----


def test_cache_stays_bounded_and_pins_the_operation(tmp_path):
    with Store(str(tmp_path / "db"), **SMALL) as db:
        fill(db, 400)
        pager = pager_of(db)
        pages = list(range(1, pager.meta.page_count))
        assert len(pages) > 3 * pager.cache_pages
        pager.begin_operation()
        held = [pager.read(p) for p in pages[: 2 * pager.cache_pages]]
        # Every page of the operation stays cached, past the bound.
        assert all(p in pager.cache for p in pages[: 2 * pager.cache_pages])
        for p, page in zip(pages, held):
            assert page.pgno == p
        del held
        for p in pages:
            pager.begin_operation()
            hit = p in pager.cache
            pager.read(p)
            if not hit:  # a miss brings the cache back within its bound
                assert len(pager.cache) <= pager.cache_pages
        # Least recently used first: the last pages read are the ones cached.
        assert list(pager.cache) == pages[-pager.cache_pages :]
        db.check()


def test_tree_lends_its_unused_share_to_the_pager(tmp_path):
    """One budget: the pager may use what the node cache does not, and gives it back as the tree grows."""
    with Store(str(tmp_path / "db"), page_size=512, cache_size=512 * 256) as db:
        pager, tree = pager_of(db), tree_of(db)
        budget = pager.own_pages + tree.nodes.capacity
        assert budget == 256
        rng = random.Random(5)
        loans = []
        for round in range(12):
            with db.transaction() as txn:
                for _ in range(150):
                    txn[rng.randbytes(12)] = rng.randbytes(rng.randrange(100))
            for k in list(db.keys())[:: 7]:
                db[k]
            # the free-space map's bytes in memory are taken from the pager's share (``reserve``)
            fsm_pages = -(-heap_of(db).fsm.memory() // 512)
            assert fsm_pages >= 1
            assert pager.cache_pages == pager.own_pages + max(0, tree.nodes.capacity - tree.nodes.weight) - fsm_pages
            assert len(pager.cache) + tree.nodes.weight + fsm_pages <= budget
            loans.append(pager.cache_pages + fsm_pages - pager.own_pages)
        # Lent while the tree was small; taken back once its nodes filled its share (but for
        # less than one entry: a decoded node weighs what its objects take, several pages).
        heaviest = max(e.weight for e in tree.nodes.lru.values())
        assert loans[0] > 0 and loans[-1] < heaviest < loans[0], loans
        db.check()


def test_page_held_past_its_operation_is_not_reused(tmp_path):
    """A caller that keeps a page after its operation (against the rule) still sees that page.

    The pager refills evicted frames for new pages only when nothing else
    refers to the frame's page or buffer.
    """
    with Store(str(tmp_path / "db"), **SMALL) as db:
        fill(db, 400)
        pager = pager_of(db)
        pager.begin_operation()
        target = 1
        page = pager.read(target)
        before = bytes(page.buffer)
        view = memoryview(pager.read(2).buffer)
        before2 = bytes(view)
        for p in range(3, pager.meta.page_count):
            pager.begin_operation()
            pager.read(p)
        assert target not in pager.cache and 2 not in pager.cache
        assert page.pgno == target and page.pgno_hint == target and bytes(page.buffer) == before
        assert bytes(view) == before2
        db.check()


def test_reused_frames_name_their_own_page(tmp_path):
    """A frame refilled for another page reports corruption under the new page's number."""
    path = str(tmp_path / "db")
    with Store(path, **SMALL) as db:
        model = fill(db, 400)
        count = pager_of(db).meta.page_count
    victim = count - 2
    damage(path, victim, 512, 200)
    with Store(path, **SMALL) as db:
        pager = pager_of(db)
        for p in range(1, victim):
            pager.begin_operation()
            pager.read(p)
        assert pager._spare is not None  # the next miss refills a frame
        pager.begin_operation()
        with pytest.raises(CorruptionError) as exc:
            pager.read(victim)
        assert exc.value.pgno == victim
        assert victim not in pager.cache
        assert len(model) > 0


def test_refill_from_a_short_file(tmp_path):
    """A refilled frame read straight from the file (File.read_into) still notices a file cut short."""
    path = str(tmp_path / "db")
    with Store(path, **SMALL) as db:
        fill(db, 400)
        fill(db, 20, seed=1)  # the map grows at commit: put pages after it, so opening needs none cut
        count = pager_of(db).meta.page_count
        assert count - 1 not in heap_of(db).fsm.pages
    with open(path, "r+b") as f:
        f.truncate((count - 1) * 512 + 100)
    with Store(path, **SMALL) as db:
        pager = pager_of(db)
        for p in range(1, count - 1):
            pager.begin_operation()
            pager.read(p)
        assert pager._spare is not None and pager._read_into is not None
        pager.begin_operation()
        with pytest.raises(CorruptionError) as exc:
            pager.read(count - 1)
        assert exc.value.pgno == count - 1
        assert count - 1 not in pager.cache


def test_overflow_pages_are_read_in_passing(tmp_path):
    """Reading a value leaves its overflow pages out of the cache, wherever their newest image is.

    The chunks come from the log (committed, not checkpointed), then from the
    data file (after a checkpoint), and from the cache when this transaction
    has just written them (dirty pages, which must be seen, not reread).
    """
    with Store(str(tmp_path / "db"), **SMALL) as db:
        model = fill(db, 300)
        pager = pager_of(db)

        def overflow_cached() -> List[int]:
            return [p for p, f in pager.cache.items() if f.buf[fmt.OFF_TYPE] == fmt.PAGE_OVERFLOW]

        for where in ("log", "file"):
            if where == "file":
                pager.checkpoint()
                assert not pager.wal.index
            else:
                assert pager.wal.index
            pager.cache.clear()
            pager._spare = None
            assert {k: db[k] for k in model} == model
            assert dict(db.items()) == model
            assert overflow_cached() == []
        big = [k for k, v in model.items() if len(v) > 3 * 512]
        assert big

        def rewrite_and_read() -> Dict[bytes, bytes]:
            for k in big:
                db._put(k, model[k][::-1])
            with_dirty = {p for p, f in pager.cache.items() if f.dirty and f.buf[fmt.OFF_TYPE] == fmt.PAGE_OVERFLOW}
            assert with_dirty  # the new chunks are dirty in the cache, not yet in the log or file
            return {k: heap_of(db).read(tree_of(db).get(k)) for k in big}

        seen = write_as_store(db, rewrite_and_read)
        assert seen == {k: model[k][::-1] for k in big}
        assert {k: db[k] for k in big} == seen
        db.check()


def test_slotted_page_holds_no_state_of_its_bytes():
    """Pager.read refills an evicted frame's buffer in place and keeps its SlottedPage.

    That is only right while a SlottedPage keeps nothing derived from the
    page's bytes: if this fails, a field was added to SlottedPage; make the
    pager's refill (Pager.read, the ``_spare`` frame) reset it too.
    """
    assert SlottedPage.__slots__ == ("_buf", "_ptr", "_size", "pgno_hint")


# ---- Heap.read_many ----


def test_read_many_equals_read(tmp_path):
    path = str(tmp_path / "db")
    with Store(path, **SMALL) as db:
        model = fill(db, 300)
        pairs = entries(db)
        rids = [rid for _, rid in pairs]
        want = [model[k] for k, _ in pairs]
        assert read_many(db, rids) == want
        assert [read_one(db, rid) for rid in rids] == want
        # Any order, repeats, runs longer than the cache, and the empty run.
        rng = random.Random(1)
        mixed = rng.choices(range(len(rids)), k=500)
        assert read_many(db, [rids[i] for i in mixed]) == [want[i] for i in mixed]
        assert read_many(db, []) == []
        # Page by page: runs of records on one page, overflow stubs among them.
        by_page = sorted(range(len(rids)), key=lambda i: rids[i])
        assert read_many(db, [rids[i] for i in by_page]) == [want[i] for i in by_page]
        pgno, slot = rids[by_page[len(by_page) // 2]]
        same_page = [r for r in rids if r[0] == pgno]
        assert len(same_page) > 1
        with pytest.raises(CorruptionError) as exc:
            read_many(db, same_page + [(pgno, 999)] + same_page)
        assert exc.value.pgno == pgno
        assert len(pager_of(db).cache) >= 32
    with Store(path, **SMALL) as db:  # cold cache: every first read is a miss
        assert read_many(db, rids) == want
        db.check()


def test_find_many_agrees_with_find():
    """RecordLookup.find_many, the C batch lookup under read_many, against find slot by slot."""
    from pagestore.page import RecordLookup

    rng = random.Random(4)
    pages = []
    for size in (512, 4096):
        page = SlottedPage.new(size, pgno=3)
        slots = [page.insert(rng.randbytes(rng.randrange(40)), state=rng.choice([fmt.SLOT_LIVE, fmt.SLOT_OVERFLOW]))
                 for _ in range(8)]
        for s in slots[::3]:
            page.delete(s)
        pages.append(page)
    lookup = RecordLookup()
    for page in pages:
        probes = [(page, slot) for slot in range(12)] * 2
        rng.shuffle(probes)
        offs, lens, states = lookup.find_many([p for p, _ in probes], [s for _, s in probes])
        for (p, slot), off, n, state in zip(probes, offs, lens, states):
            found = lookup.find(p, slot)
            assert (off, n, state) == (found if found is not None else (0, 0, 0))
        assert lookup.find_many([], []) == ([], [], [])
    big = pages[0]
    assert len(lookup.find_many([big] * 500, [0] * 500)[2]) == 500  # grows past its first arrays


def test_read_many_dangling_rid(tmp_path):
    with Store(str(tmp_path / "db"), **SMALL) as db:
        model = fill(db, 60)
        pairs = entries(db)
        (pgno, slot) = pairs[0][1]
        good = [rid for _, rid in pairs[:5]]
        for bad, page in [((pgno, 500), pgno), ((pager_of(db).meta.root, 0), pager_of(db).meta.root),
                          ((pager_of(db).meta.page_count + 3, 0), pager_of(db).meta.page_count + 3)]:
            with pytest.raises(CorruptionError) as exc:
                read_many(db, good + [bad])
            assert exc.value.pgno == page
            with pytest.raises(CorruptionError) as exc:
                read_one(db, bad)
            assert exc.value.pgno == page
        assert dict(db.items()) == model


def overflow_key(db: Store) -> Tuple[bytes, int, int]:
    """overflow_key returns a key stored with an overflow chain, its heap page and its first overflow page."""
    heap = heap_of(db)
    for k, (pgno, slot) in entries(db):
        with operation(db):
            page = pager_of(db).read(pgno)
            if page.state(slot) == fmt.SLOT_OVERFLOW:
                total, first = heap._stub((pgno, slot), page.view(slot))
                if first:
                    return k, pgno, first
    raise AssertionError("no overflow record")


@pytest.mark.usefixtures("read_mode")
@pytest.mark.parametrize("which", ["heap", "overflow"])
def test_damaged_page_is_named(tmp_path, which):
    path = str(tmp_path / "db")
    with Store(path, **SMALL) as db:
        model = fill(db, 200)
        key, heap_pgno, first = overflow_key(db)
        pairs = entries(db)
    target = heap_pgno if which == "heap" else first
    damage(path, target, 512, 300)
    with Store(path, **SMALL) as db:
        for fn in (lambda: db[key], lambda: dict(db.items()), lambda: read_many(db, [rid for _, rid in pairs])):
            with pytest.raises(CorruptionError) as exc:
                fn()
            assert exc.value.pgno == target
        with pytest.raises(CorruptionError):
            db.check()
        assert len(model) == len(pairs)


def test_overflow_page_with_dead_first_slot(tmp_path):
    """An overflow page whose one live record is not in slot 0 is damage, not a missing key.

    Regression: the chunk was read with SlottedPage.read(0), whose NotFoundError
    (a KeyError) reached the caller: ``db[key]`` said the key was missing and
    ``db.get(key)`` returned the default.
    """
    path = str(tmp_path / "db")
    with Store(path, **SMALL) as db:
        fill(db, 200)
        key, _, first = overflow_key(db)
        pager = pager_of(db)
        pager.begin_operation()
        page = pager.write(first)
        chunk = page.read(0)
        page.delete(0)
        assert page.insert(b"x") == 0
        assert page.insert(chunk[:100]) == 1
        page.delete(0)
        assert page.nlive == 1 and page.state(1) == fmt.SLOT_LIVE
        pager.commit()
    with Store(path, **SMALL) as db:
        for fn in (lambda: db[key], lambda: db.get(key), lambda: dict(db.items()), db.check):
            with pytest.raises(CorruptionError) as exc:
                fn()
            assert not isinstance(exc.value, NotFoundError)
            assert exc.value.pgno == first


# ---- scans ----


def count_reads(db: Store) -> List[int]:
    """count_reads makes the heap record every value read: 1 for a read, the run's length for
    read_many, read_run (a scan's run) and every ``Located.take``; reads inside those are not counted again."""
    runs: List[int] = []
    # Scans run on the store's own heap while it reads the scan's snapshot's state, else on
    # the snapshot's heap: the store's read view, shared by snapshots while nothing commits
    # (a write between scans makes a new one, uncounted). Both are counted.
    db.snapshot().close()
    assert db._view is not None
    for heap in (db._heap, db._view.heap):
        _count_heap(heap, runs)
    return runs


def _count_heap(heap, runs: List[int]) -> None:
    one, many = heap.read, heap.read_many
    locate = heap.locate
    inside = []  # a lazy Located locates each run again, through this very wrapper: count the outer take only

    def located(pgnos, slots, lazy=False):
        loc = locate(pgnos, slots, lazy)
        if inside:
            return loc
        take = loc.take

        def counted(i, j):
            runs.append(j - i)
            inside.append(1)
            try:
                return take(i, j)
            finally:
                inside.pop()

        return _Counted(counted)

    heap.locate = located  # type: ignore[method-assign]

    def read(rid):
        runs.append(1)
        return one(rid)

    def read_many(rids):
        runs.append(len(rids))
        return many(rids)

    def read_run(pgnos, slots):
        runs.append(len(pgnos))
        inside.append(1)
        try:
            return run(pgnos, slots)
        finally:
            inside.pop()

    run = heap.read_run
    heap.read = lambda rid: one(rid) if inside else read(rid)  # type: ignore[method-assign]
    heap.read_many = lambda rids: many(rids) if inside else read_many(rids)  # type: ignore[method-assign]
    heap.read_run = read_run  # type: ignore[method-assign]


class _Counted:
    """_Counted stands in for a Located whose take is counted."""

    def __init__(self, take) -> None:
        self.take = take


def test_unmapped_scan_takes_growing_runs(tmp_path):
    """Without a map, a scan (on its snapshot) slices runs of 4, 12, 36, 64 ... too, from page copies."""
    from pagestore.store import _MAX_RUN

    with Store(str(tmp_path / "db"), page_size=4096, mmap=False) as db:
        with db.transaction() as txn:
            for i in range(3000):
                txn[b"%06d" % i] = b"v%d" % i
        runs = count_reads(db)
        got = list(islice(db.items(), 50))
        assert got == [(b"%06d" % i, b"v%d" % i) for i in range(50)]
        assert runs == [4, 12, 36]  # a short scan reads few more values than it yields (52 for 50)
        for reverse in (False, True):
            runs.clear()
            got = [k for k, _ in db.items(reverse=reverse)]
            assert got == sorted(got, reverse=reverse) and len(got) == 3000
            assert sum(runs) == 3000 and max(runs) == _MAX_RUN
        runs.clear()
        assert list(db.keys(prefix=b"0001")) == [b"%06d" % i for i in range(100, 200)]
        assert runs == []
        assert list(db.values(start=b"002990")) == [b"v%d" % i for i in range(2990, 3000)]


def test_mapped_scan_takes_growing_runs(tmp_path):
    """With a map, a leaf's values are read in runs of 4, 12, 36, 64 ...: a range of 50 in three calls."""
    from pagestore.store import _MAX_RUN

    with Store(str(tmp_path / "db"), page_size=4096) as db:
        with db.transaction() as txn:
            for i in range(3000):
                txn[b"%06d" % i] = b"v%d" % i
    with Store(str(tmp_path / "db")) as db:  # reopened: checkpointed, every page in the map
        assert pager_of(db).map is not None and not pager_of(db).overlaid
        runs = count_reads(db)
        got = list(islice(db.items(), 50))
        assert got == [(b"%06d" % i, b"v%d" % i) for i in range(50)]
        assert runs == [4, 12, 36]  # a short scan reads few more values than it yields (52 for 50)
        for reverse in (False, True):
            runs.clear()
            got = [k for k, _ in db.items(reverse=reverse)]
            assert got == sorted(got, reverse=reverse) and len(got) == 3000
            assert sum(runs) == 3000 and max(runs) == _MAX_RUN
        runs.clear()
        assert list(db.keys(prefix=b"0001")) == [b"%06d" % i for i in range(100, 200)]
        assert runs == []  # keys() never locates a value
        assert list(db.values(start=b"002990")) == [b"v%d" % i for i in range(2990, 3000)]


@pytest.mark.usefixtures("read_mode")
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("after", [3, 200])
def test_scan_write_between_reads(tmp_path, reverse, after):
    """Writes between two value reads (one value, or a run) do not reach a scan: it runs on a
    snapshot taken when it started, and goes on yielding that state, whatever the writes
    freed, moved or reused."""
    with Store(str(tmp_path / "db"), **SMALL) as db:
        keys = [b"%04d" % i for i in range(400)]
        if reverse:
            keys.reverse()
        for k in keys:
            db[k] = b"old" + k
        runs = count_reads(db)
        it = iter(db.items(reverse=reverse))  # a view: one iterator over it, resumed below
        first = []
        for item in it:  # stop where every value read so far has been yielded
            first.append(item)
            if len(first) >= after and len(first) == sum(runs):
                break
        c = len(first)
        assert first == [(k, b"old" + k) for k in keys[:c]]
        assert after < 64 or max(runs) > 1
        del db[keys[c + 1]]
        db[keys[c + 2]] = b"new" * 400  # moves the record to an overflow chain
        del db[keys[c]]
        for k in keys[c + 20 : c + 60]:  # frees heap pages and reuses them
            del db[k]
        for i in range(40):
            db[b"zz%04d" % i] = b"fill%d" % i
        assert db.stats()["snapshots"] == 1
        rest = list(it)
        assert first + rest == [(k, b"old" + k) for k in keys]
        assert db.stats()["snapshots"] == 0  # exhausted: released
        want = dict(db.items())
        assert want[keys[c + 2]] == b"new" * 400 and keys[c] not in want and len(want) == 400 - 42 + 40
        db.check()


def test_transaction_scan_merges_runs(tmp_path):
    with Store(str(tmp_path / "db"), **SMALL) as db:
        model = fill(db, 150)
        with db.transaction() as txn:
            for k in list(model)[::7]:
                del txn[k]
                del model[k]
            txn[b"zz"] = b"1"
            model[b"zz"] = b"1"
            assert list(txn.items()) == sorted(model.items())
            assert list(txn.items(reverse=True)) == sorted(model.items(), reverse=True)
        assert list(db.items()) == sorted(model.items())


# ---- the free-space map ----


def lowest_fit(fsm, need: int, page_size: int):
    c = max(1, (need * 255 + page_size - 1) // page_size)
    present = {cat for _, cat in fsm.offered()}
    for cat in range(c, 256):
        if cat in present:
            return cat
    return None


def check_map(fsm) -> None:
    fsm.flush()
    assert not fsm.pending
    fsm.check()
    for pgno, c in fsm.offered():
        assert fsm.stored(pgno) == c


def test_free_space_map_find(tmp_path):
    with Store(str(tmp_path / "db"), **SMALL) as db:
        rng = random.Random(3)
        fill(db, 200)
        fsm = heap_of(db).fsm
        ps = pager_of(db).page_size
        with operation(db, begin=False):  # held throughout (an RLock: the write takes it again)
            write_as_store(db, lambda: None)
            pager = pager_of(db)
            for step in range(2000):
                pager.begin_operation()
                pgno = rng.randrange(1, 300)
                fsm.set(pgno, rng.choice([0, 0, rng.randrange(ps), ps]))
                need = rng.randrange(ps)
                got = fsm.find(need)
                cat = lowest_fit(fsm, need, ps)
                if cat is None:
                    assert got is None
                else:
                    # best fit: the lowest category that fits, its last page in page order
                    assert fsm.entry(got) == cat
                    assert got == max(p for p, c in fsm.offered() if c == cat)
                if step % 200 == 0:
                    check_map(fsm)
            check_map(fsm)
            pager.rollback()
            fsm.load()
            check_map(fsm)
        db.check()


def test_free_space_map_in_memory_is_a_byte_a_page(tmp_path):
    """The map in memory costs about a byte per heap page it covers, however many have room
    (a dict of entries and 256 bucket sets cost ~190 bytes per page with room: 8 MiB at 10^7
    records), and that byte is counted in the cache budget and in stats()' cache_bytes."""
    import tracemalloc

    from pagestore import heap

    with Store(str(tmp_path / "db"), page_size=512, cache_size=512 * 64, sync=False) as db:
        db[b"a"] = b"b"  # not empty: the transactions below place records one by one (no bulk build)
        for j in range(40):
            with db.transaction() as txn:
                for i in range(100):
                    txn[b"k%05d" % (j * 100 + i)] = bytes(200)  # two to a 512-byte page, ~80 bytes left
        with operation(db):
            fsm = heap_of(db).fsm
            offered = sum(1 for _ in fsm.offered())
            assert offered > 1500
            tracemalloc.start()
            try:
                copy = heap.FreeSpaceMap(pager_of(db))
                held = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            assert list(copy.offered()) == list(fsm.offered())
            assert held < 4 * offered + 16384, (held, offered)  # the map pages read, its bits, its list
        assert fsm.memory() >= offered
        assert db.stats()["cache_bytes"] >= fsm.memory()
        db.check()


def test_free_space_map_page_damaged_after_load(tmp_path):
    with Store(str(tmp_path / "db"), **SMALL) as db:
        fill(db, 300)
        fsm = heap_of(db).fsm
        map_pgno = fsm.pages[0]
        with operation(db, begin=False):
            pager = pager_of(db)
            pager.begin_operation()
            pager.write(map_pgno).update(0, b"\0" * 4)
            fsm.set(100, 0 if fsm.entry(100) else 200)  # in memory: the page is written at flush
            with pytest.raises(CorruptionError) as exc:
                fsm.flush()
            assert exc.value.pgno == map_pgno
            pager.rollback()
            fsm.load()
        db.check()


# ---- the mapped data file ----


def reopened(tmp_path, n: int = 2000, **opts) -> Tuple[str, Dict[bytes, bytes]]:
    """reopened: a closed 4 KiB-page store of ``n`` records (checkpointed: every page in the data file)."""
    path = str(tmp_path / "db")
    rng = random.Random(3)
    model = {}
    with Store(path, page_size=4096, **opts) as db:
        with db.transaction() as txn:
            for i in range(n):
                k, v = b"k%06d" % i, rng.randbytes(rng.choice([0, 10, 300, 2000, 9000]))
                txn[k] = v
                model[k] = v
    return path, model


def bit(pager, pgno: int) -> bool:
    return pager.pagemap.is_verified(pgno)


def test_mapped_heap_reads_are_in_place_and_verified_once(tmp_path):
    path, model = reopened(tmp_path)
    with Store(path) as db:
        pager = pager_of(db)
        assert pager.map is not None and not pager.overlaid
        # nothing trusted before it is read: at open, only the free-space map's pages are
        assert {p for p in range(pager.meta.page_count) if bit(pager, p)} == set(heap_of(db).fsm.pages)
        for k, v in model.items():
            assert db[k] == v
        with operation(db):
            rids = dict(tree_of(db).entries())
        heap_pages = {rid[0] for rid in rids.values()}
        assert heap_pages.isdisjoint(pager.cache)  # read in place: no private copy
        assert all(bit(pager, p) for p in heap_pages)
        assert list(db.items()) == sorted(model.items())
        db.check()


def test_checkpoint_rewrites_a_heap_page_under_a_bit_it_sets_again_once_synced(tmp_path):
    path, model = reopened(tmp_path)
    with Store(path) as db:
        pager = pager_of(db)
        k = b"k%06d" % 7
        assert db[k] == model[k]
        with operation(db):
            pgno = tree_of(db).get(k)[0]
        assert bit(pager, pgno) and pgno not in pager.overlaid
        db[k] = b"x" * 5
        assert pgno in pager.overlaid  # newest image in the log now
        assert db[k] == b"x" * 5
        seen = []
        real = pager.pagemap.unverify
        pager.pagemap.unverify = lambda p: seen.append((p, bit(pager, p))) or real(p)
        with operation(db, begin=False):
            pager.checkpoint()
        # cleared before the copy was written, set again once it was synced: the copy is the
        # image the pager verified (a heap page's: a node page's bit stays clear, test_checkpointer.py)
        assert (pgno, True) in seen
        assert not pager.overlaid and bit(pager, pgno)
        assert db[k] == b"x" * 5 and bit(pager, pgno)  # read from the map


def test_map_grows_with_the_file_and_no_old_map_survives(tmp_path):
    path, model = reopened(tmp_path, 300)
    with Store(path) as db:
        pager = pager_of(db)
        first = pager.map
        assert first is not None
        with db.transaction() as txn:
            for i in range(2000):
                txn[b"new%05d" % i] = bytes(3000)
        with operation(db, begin=False):
            pager.checkpoint()
        # The old map is not the pager's any more (a snapshot may still read it: it is
        # closed when its last holder lets go); C is handed the new one.
        assert pager.map is not first and pager.map is not None
        pager.pagemap.check()  # C is described the new map
        assert len(pager.map) == pager.file_size() == pager.meta.page_count * pager.page_size
        assert db[b"new01999"] == bytes(3000) and db[b"k%06d" % 5] == model[b"k%06d" % 5]
        db.check()


def test_compact_maps_the_new_file(tmp_path):
    path, model = reopened(tmp_path, 500)
    with Store(path) as db:
        for k in list(model)[::2]:
            del db[k]
            del model[k]
        old = pager_of(db).map
        db.compact()
        assert old is None or old.closed
        assert pager_of(db).map is not None and pager_of(db).map is not old
        assert dict(db.items()) == model
        for k, v in model.items():
            assert db[k] == v
        db.check()


def test_the_file_never_shrinks_under_a_live_map(tmp_path):
    """A data file longer than its pages (left by a crash) is cut only with the map closed.

    The faultfs double fails a truncate below a live map of its own.
    """
    from faultfs import Disk

    path, model = reopened(tmp_path, 300)
    with open(path, "ab") as f:
        f.write(bytes(3 * 4096))
    disk = Disk(str(tmp_path))
    with Store(path, _opener=disk.opener) as db:
        assert pager_of(db).map is not None and len(pager_of(db).map) == pager_of(db).file_size()
        db[b"k%06d" % 1] = b"changed"
        with operation(db, begin=False):
            pager_of(db).checkpoint()  # cuts the tail: unmaps first, maps again after
        assert len(pager_of(db).map) == pager_of(db).file_size() == pager_of(db).meta.page_count * 4096
        model[b"k%06d" % 1] = b"changed"
        assert dict(db.items()) == model


def test_faultfs_map_follows_writes(tmp_path):
    from faultfs import Disk

    disk = Disk(str(tmp_path))
    f = disk.opener(str(tmp_path / "f"), create=True)
    f.write(0, b"a" * 8192)
    m = f.map(8192)
    f.write(4000, b"bcd")
    assert m[4000:4003] == b"bcd" and m[:4] == b"aaaa"
    f.write(8190, b"xyz")  # the part past the map is the file's only
    assert m[8190:] == b"xy"
    with pytest.raises(AssertionError):
        f.truncate(4096)
    m.close()
    f.truncate(4096)  # fine once the map is closed
    with pytest.raises(ValueError):
        f.map(8192)


@pytest.mark.parametrize("mmap", [True, False])
def test_stats_report_private_and_mapped_memory(tmp_path, mmap):
    path, model = reopened(tmp_path, 500)
    with Store(path, mmap=mmap, cache_size=1 << 20) as db:
        for k in model:
            db[k]
        s = db.stats()
        assert s["mapped_bytes"] == (s["file_size"] if mmap else 0)
        assert 0 < s["cache_bytes"] <= 1 << 20


def test_mapped_gets_and_scans_copy_no_page(tmp_path):
    """On a checkpointed store, a get or a scan reads every node and record in place:
    neither the pager's cache nor the tree's node cache grows."""
    path, model = reopened(tmp_path)
    with Store(path) as db:
        pager, tree = pager_of(db), tree_of(db)
        before = set(pager.cache)  # the free-space map's pages, read at open
        for k, v in model.items():
            assert db[k] == v
        assert db.get(b"absent") is None and b"k" not in db
        assert list(db.items()) == sorted(model.items())
        assert list(db.items(reverse=True)) == sorted(model.items(), reverse=True)
        ks = sorted(model)
        assert list(db.keys(ks[10], ks[200])) == ks[10:200]
        assert list(db.items(ks[500], ks[520], reverse=True)) == [(k, model[k]) for k in reversed(ks[500:520])]
        assert set(pager.cache) == before
        # the scans ran on a snapshot of the store's state, through the store's own tree (nothing
        # committed since): its node cache holds the internal nodes (decoded), no leaf; the
        # snapshot's tree and pager read nothing
        view = db._view
        assert view is not None and not view.tree.nodes.lru and not view.pager.cache
        assert tree.nodes.lru and not any(e.leaf for e in tree.nodes.lru.values())
        s = db.stats()
        assert s["mapped_bytes"] == s["file_size"]
        # A write overlays the pages it changes: they are read through the caches until checkpointed.
        db[ks[3]] = b"new"
        assert db[ks[3]] == b"new" and pager.overlaid
        assert dict(db.items(ks[0], ks[9])) == {**{k: model[k] for k in ks[:9]}, ks[3]: b"new"}
        db.check()


def test_a_short_scan_touches_only_the_heap_pages_it_takes(tmp_path):
    """Lazy about values: the first runs of a scan locate only what they slice."""
    path, model = reopened(tmp_path)
    with Store(path) as db:
        pager = pager_of(db)
        got = list(islice(db.items(), 3))
        assert got == sorted(model.items())[:3]
        verified = [p for p in range(1, pager.meta.page_count) if bit(pager, p)]
        with operation(db):
            rids = [tree_of(db).get(k) for k, _ in got]
            heap_pages = {p for p in verified if pager.read(p).page_type == fmt.PAGE_HEAP}
        assert heap_pages == {rid[0] for rid in rids}


def test_a_scan_right_after_writes_reads_the_stores_own_caches(tmp_path):
    """Right after writes most leaves and many heap pages are newest in the log, held by the
    store's node cache and pager: a scan of the state they hold reads through them, not
    through its snapshot's tree and pager (which would copy every such page from the log again)."""
    with Store(str(tmp_path / "db"), page_size=4096) as db:
        model = fill(db, 600)
        for k in list(model)[:200]:
            model[k] = db[k] + b"+"
            db[k] = model[k]
        assert pager_of(db).overlaid  # pages newest in the log
        assert list(db.items()) == sorted(model.items())
        assert list(db.items(reverse=True)) == sorted(model.items(), reverse=True)
        view = db._view
        assert view is not None and not view.tree.nodes.lru and not view.pager.cache
        with db.snapshot() as snap:
            db[b"late"] = b"1"  # a commit after the snapshot: its scans read its own pages
            assert list(snap.items()) == sorted(model.items())
            assert snap._view.tree.nodes.lru
        db.check()


def test_an_overflow_value_whose_stub_is_newest_in_the_log_reads_its_chain_from_the_map(tmp_path):
    """Right after writes, a value's stub may sit in a heap page newest in the log (a small value
    placed beside it since the last checkpoint) while its chain, written once, is in the data
    file: the value is one run of the map and the stub's tail, not read page by page."""
    with Store(str(tmp_path / "db"), page_size=4096, wal_limit=1 << 26) as db:
        rng = random.Random(5)
        big = {b"big%03d" % i: rng.randbytes(rng.randrange(5000, 30000)) for i in range(40)}
        db.update(big)
        db.checkpoint()
        pager, heap, tree = pager_of(db), heap_of(db), tree_of(db)
        assert not pager.overlaid
        small = {b"small%03d" % i: b"s" * 20 for i in range(200)}
        db.update(small)  # into the heap pages with room: the stubs' pages among them
        stub_pages = {tree.get(k)[0] for k in big}
        assert stub_pages & pager.overlaid and not any(
            p in pager.overlaid for k in big for p in heap.check_record(tree.get(k))[1])
        passing = []
        read_passing = pager.read_passing
        pager.read_passing = lambda pgno: passing.append(pgno) or read_passing(pgno)
        with operation(db):
            assert {k: heap.read(tree.get(k)) for k in big} == big
        assert passing == []  # no chain page read through the pager
        assert {k: db[k] for k in big} == big and dict(db.items(b"big", b"bih")) == big
        db.check()
