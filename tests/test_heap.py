"""Heap through its own interface, over a real pager: insert, read, update, delete, overflow chains,
free-space map reuse, against a dict of record id -> value.

512-byte pages make a value over 236 bytes an overflow record, so chains of
several pages come from values of a few KiB. ``Heap.check`` and
``check_record`` run after every step of the state machine.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pagestore import format as fmt
from pagestore.errors import CorruptionError
from pagestore.heap import Heap
from pagestore.pager import Pager

PS = 512
Rid = Tuple[int, int]

VALUES = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=200, max_size=300),  # either side of inline_max (236)
    st.integers(500, 3000).map(lambda n: bytes(range(256)) * (n // 256) + b"t" * (n % 256)),  # chains
)


@pytest.fixture
def heap(tmp_path):
    pager = Pager(str(tmp_path / "h.ps"), page_size=PS)
    yield Heap(pager)
    pager.close()


def commit(heap: Heap) -> None:
    heap.flush()
    heap.pager.commit()


def test_sizes_follow_the_page(heap):
    assert heap.chunk == PS - fmt.HEADER_SIZE - fmt.SLOT_SIZE
    assert heap.inline_max == heap.chunk // 2


def test_insert_read_update_delete(heap):
    rid = heap.insert(b"hello")
    assert heap.read(rid) == b"hello"
    assert heap.check_record(rid) == (5, [])
    same, old_len = heap.update(rid, b"hello, world")
    assert same == rid and old_len == 5 and heap.read(rid) == b"hello, world"
    assert heap.delete(rid) == 12
    with pytest.raises(CorruptionError):
        heap.read(rid)
    heap.check()


def test_overflow_chain_is_whole_and_freed(heap):
    value = os.urandom(5 * heap.chunk + 100)
    rid = heap.insert(value)
    length, chain = heap.check_record(rid)
    assert length == len(value) and len(chain) == 5  # the 100-byte rest stays in the stub's tail
    assert all(heap.pager.read(p).page_type == fmt.PAGE_OVERFLOW for p in chain)
    assert heap.read(rid) == value
    assert heap.read_many([rid, rid]) == [value, value]
    free_before = heap.pager.meta.freelist_count
    assert heap.delete(rid) == len(value)
    assert heap.pager.meta.freelist_count >= free_before + 5  # the chain (and the emptied page) went back
    commit(heap)
    heap.check()


def test_deleting_a_value_whose_chain_is_in_the_data_file_reads_none_of_its_pages(heap):
    """A delete frees an overflow chain that runs one after another in the data file, none of it
    overlaid, from one C check of the map (as a read takes it): its pages are freed without
    being read into the pager's cache (issue 23). A chain the map check refuses (a damaged
    page) goes page by page and raises, naming the page."""
    pager = heap.pager
    pager.begin_operation()
    values = [os.urandom(4 * heap.chunk + 50), os.urandom(3 * heap.chunk + 20)]
    rids = [heap.insert(v) for v in values]
    chains = [heap.check_record(r)[1] for r in rids]
    commit(heap)
    pager.checkpoint()
    pager.cache.clear()  # as after a long while: no page of the chains in the cache
    assert pager.map is not None and not any(p in pager.overlaid for c in chains for p in c)
    pager.begin_operation()
    free_before = pager.meta.freelist_count
    read, seen = pager.read, []
    pager.read = lambda pgno: seen.append(pgno) or read(pgno)
    try:
        assert heap.delete(rids[0]) == len(values[0])
    finally:
        del pager.read
    assert seen and not set(seen) & set(chains[0])  # the stub's page only
    assert pager.meta.freelist_count >= free_before + 4
    commit(heap)
    heap.check()
    pager.checkpoint()
    bad = chains[1][1]
    with open(pager.path, "r+b") as f:  # a flipped byte in the chain's second page, in the data file
        f.seek(bad * PS + 100)
        b = f.read(1)
        f.seek(bad * PS + 100)
        f.write(bytes([b[0] ^ 0xFF]))
    pager.remap()
    pager.cache.clear()
    pager.begin_operation()
    with pytest.raises(CorruptionError) as info:
        heap.delete(rids[1])
    assert info.value.pgno == bad


def test_update_that_grows_moves_the_record(heap):
    rids = [heap.insert(b"x" * 200) for _ in range(2)]  # the page is nearly full
    new, old_len = heap.update(rids[0], b"y" * 230)
    assert old_len == 200 and heap.read(new) == b"y" * 230 and heap.read(rids[1]) == b"x" * 200
    big, _ = heap.update(new, b"z" * 2000)  # to an overflow record
    assert heap.read(big) == b"z" * 2000 and heap.check_record(big)[1]
    small, old_len = heap.update(big, b"s")
    assert old_len == 2000 and heap.read(small) == b"s"
    commit(heap)
    heap.check()


def test_free_space_map_reuses_room(heap):
    pager = heap.pager
    rids = [heap.insert(b"%03d" % i + b"." * 60) for i in range(60)]
    commit(heap)
    pages = pager.meta.page_count
    for rid in rids[::2]:
        heap.delete(rid)
    commit(heap)
    heap.check()
    for i in range(30):  # the same amount again fits in the holes: no new page
        heap.insert(b"%03d" % i + b"," * 60)
    commit(heap)
    assert pager.meta.page_count == pages
    heap.check()


def test_free_space_map_survives_reopen(tmp_path):
    path = str(tmp_path / "h.ps")
    pager = Pager(path, page_size=PS)
    heap = Heap(pager)
    rids = [heap.insert(b"v" * 50) for _ in range(40)]
    for rid in rids[:10]:
        heap.delete(rid)
    commit(heap)
    cat = dict(heap.fsm.offered())
    assert cat and heap.check()["map_pages"] >= 1
    pager.close()
    pager = Pager(path)
    heap = Heap(pager)
    assert dict(heap.fsm.offered()) == cat
    heap.check()
    pager.close()


def test_check_catches_a_wrong_map_entry(heap):
    rid = heap.insert(b"a" * 50)
    commit(heap)
    heap.fsm.settle()  # the commit kept the page held, and a held page's entry is set anew at settle
    heap.fsm.cat[rid[0]] += 1  # a category whose bit is not set: find would never offer the page
    with pytest.raises(CorruptionError, match="bits miss"):
        heap.check()
    heap.reset()
    heap.check()
    heap.fsm.set(rid[0], 0)
    heap.fsm.set(rid[0], PS // 2)  # claims more room than the page has
    heap.flush()
    with pytest.raises(CorruptionError, match="does not match") as err:
        heap.check()
    assert err.value.pgno == rid[0]


def test_dangling_record_ids_are_corruption(heap):
    rid = heap.insert(b"v")
    commit(heap)
    for bad, pgno in [((rid[0], 7), rid[0]), ((heap.fsm.pages[0], 0), heap.fsm.pages[0])]:
        with pytest.raises(CorruptionError) as err:
            heap.read(bad)
        assert err.value.pgno == pgno


class HeapMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="ps-heap-")
        self.pager = Pager(os.path.join(self.dir, "h.ps"), page_size=PS, cache_size=PS * 48)
        self.heap = Heap(self.pager)
        self.model: Dict[Rid, bytes] = {}
        self.committed: Dict[Rid, bytes] = {}

    def teardown(self) -> None:
        self.pager.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pick(self, data: st.DataObject) -> Rid:
        return data.draw(st.sampled_from(sorted(self.model)), label="rid")

    @rule(value=VALUES)
    def insert(self, value: bytes) -> None:
        self.pager.begin_operation()
        rid = self.heap.insert(value)
        assert rid not in self.model
        self.model[rid] = value

    @precondition(lambda self: self.model)
    @rule(data=st.data(), value=VALUES)
    def update(self, data: st.DataObject, value: bytes) -> None:
        self.pager.begin_operation()
        rid = self.pick(data)
        new, old_len = self.heap.update(rid, value)
        assert old_len == len(self.model.pop(rid))
        assert new not in self.model
        self.model[new] = value

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        self.pager.begin_operation()
        rid = self.pick(data)
        assert self.heap.delete(rid) == len(self.model.pop(rid))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def read_many(self, data: st.DataObject) -> None:
        self.pager.begin_operation()
        rids: List[Rid] = data.draw(st.lists(st.sampled_from(sorted(self.model)), max_size=8), label="rids")
        assert self.heap.read_many(rids) == [self.model[r] for r in rids]

    @rule()
    def commit(self) -> None:
        commit(self.heap)
        self.committed = dict(self.model)

    @rule()
    def rollback(self) -> None:
        self.pager.rollback()
        self.heap.reset()
        self.model = dict(self.committed)

    @invariant()
    def matches_model(self) -> None:
        self.pager.begin_operation()
        self.heap.check()
        chains: List[int] = []
        for rid, value in self.model.items():
            self.pager.begin_operation()
            assert self.heap.read(rid) == value
            length, chain = self.heap.check_record(rid)
            assert length == len(value)
            chains.extend(chain)
        assert len(chains) == len(set(chains))  # no overflow page serves two records


TestHeap = HeapMachine.TestCase
TestHeap.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_a_record_that_fits_the_current_page_goes_there_and_the_map_stays_exact(heap):
    """The heap's current (held) page takes every record that fits it, with no search (issue
    23); one that does not fit goes by best fit; a delete or an update in the held page lets it
    go; the free-space map is exact after each commit and record reads back."""
    heap.pager.begin_operation()
    small = [heap.insert(b"s%02d" % i) for i in range(20)]
    assert len({p for p, _ in small}) == 1  # all in the first page while it had room
    big = heap.insert(b"B" * 200)  # room runs out: another page
    after = heap.insert(b"t")  # fits the page the big one went to: it is the current page now
    assert after[0] == big[0]
    heap.delete(small[3])  # a delete in another page
    heap.update(after, b"tt")  # an update in the held page lets it go
    more = heap.insert(b"u")
    commit(heap)
    heap.check()
    heap.pager.begin_operation()
    values = {r: b"s%02d" % i for i, r in enumerate(small) if i != 3}
    values.update({big: b"B" * 200, after: b"tt", more: b"u"})
    assert {r: heap.read(r) for r in values} == values
    for r in list(values)[::2]:
        heap.delete(r)
        del values[r]
    for i in range(30):
        values[heap.insert(b"v%02d" % i)] = b"v%02d" % i
    commit(heap)
    heap.check()
    heap.pager.begin_operation()
    assert {r: heap.read(r) for r in values} == values


def test_the_current_page_stays_held_across_commits_with_the_map_exact(heap, monkeypatch):
    """A commit writes the held page's room into the map and keeps the page held: the next
    commit's record goes straight into it with no search of the map (issue 23: a lone durable
    put searched the map at every commit, for the page the last put had used). The map is exact
    after each commit (``check``: every entry matches its page, the pages match memory); a
    reload for another writer's changes lets the hold go, its room being stale then."""
    from pagestore.heap import FreeSpaceMap

    heap.pager.begin_operation()
    first = heap.insert(b"a" * 10)
    commit(heap)
    searches = []
    real_find = FreeSpaceMap.find
    monkeypatch.setattr(FreeSpaceMap, "find", lambda self, need: searches.append(need) or real_find(self, need))
    rids = [first]
    for i in range(12):  # 12 commits of one small record each
        heap.pager.begin_operation()
        rids.append(heap.insert(b"r%02d" % i))
        commit(heap)
        heap.check()
        assert heap.fsm.held_pgno == first[0] and heap.fsm.held_clean()
    assert {p for p, _ in rids} == {first[0]}
    assert searches == []
    heap.pager.begin_operation()
    assert heap.fsm.reload(set()) and heap.fsm.held_pgno == 0  # nothing changed, but the hold goes
    assert [heap.read(r) for r in rids] == [b"a" * 10] + [b"r%02d" % i for i in range(12)]


def test_a_placement_from_the_map_takes_a_roomy_page_so_the_next_records_follow_it(heap):
    """A record that fits neither the current page nor the transaction's recent ones asks the map
    first for a page with room for more than itself (an eighth of a page), and the small records
    after it go into that page with no search. Best fit alone chose a page with just room for
    the record, and every record after it dirtied a page of its own (issue 23's churn)."""
    heap.pager.begin_operation()
    rids = [heap.insert(bytes([i]) * 100) for i in range(44)]  # 4 a page: 48 bytes left in each
    commit(heap)
    pages = sorted({p for p, _ in rids})
    assert len(pages) == 11
    heap.pager.begin_operation()
    roomy = pages[5]
    for r in rids:
        if r[0] == roomy and r[1] != 0:
            heap.delete(r)  # one page with room for three more records of 100 bytes
    commit(heap)
    heap.pager.begin_operation()
    placed = [heap.insert(b"x%02d" % i + b"." * 17) for i in range(5)]  # 26 bytes a record with its slot
    commit(heap)
    assert {p for p, _ in placed} == {roomy}
    heap.check()
    heap.pager.begin_operation()
    assert [heap.read(r) for r in placed] == [b"x%02d" % i + b"." * 17 for i in range(5)]


@given(st.binary(min_size=1, max_size=600), st.lists(st.tuples(st.integers(0, 599), st.integers(0, 255)), max_size=8))
def test_differ_finds_exactly_the_bytes_that_differ(page, changes):
    """_differ (the free-space map's reload compares a map page another writer changed with the
    bytes it last knew) returns every offset whose byte differs, in order, and nothing else."""
    from pagestore.heap import _differ

    new = bytearray(page)
    for at, value in changes:
        if at < len(new):
            new[at] = value
    assert _differ(page, bytes(new)) == [j for j in range(len(page)) if page[j] != new[j]]
    assert _differ(bytearray(page), new) == [j for j in range(len(page)) if page[j] != new[j]]
