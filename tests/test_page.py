"""Tests of SlottedPage (and through it the C page layer) against a Python model.

The model of a page is a dict slot id -> bytes. From it alone follow every
number the page must report: nslots (highest live slot + 1, since trailing
free slots are trimmed), free space after compaction, the slot the next
insert takes, and whether an insert or update fits. The state machine runs
for a small, the default and the largest page size; the small one hits the
full-page and compaction paths within a few steps.
"""
from __future__ import annotations

import random
import struct
from array import array

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from helpers import HYPOTHESIS
from pagestore import CorruptionError, NotFoundError, PageFullError, PageStoreError, SlottedPage
from pagestore import format as fmt
from pagestore._native import ffi, lib
from pagestore.page import build_singles, seal_pages

HEADER = fmt.HEADER_SIZE
SLOT = fmt.SLOT_SIZE


def record_bytes(tag: int, length: int) -> bytes:
    """record_bytes: distinct, reproducible contents for the tag-th record."""
    return random.Random(tag).randbytes(length)


# ---- the model ----


class PageModel:
    """PageModel predicts a page's observable state from its live records."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.records: dict[int, bytes] = {}

    @property
    def nslots(self) -> int:
        return max(self.records) + 1 if self.records else 0

    @property
    def free_space(self) -> int:
        return self.page_size - HEADER - SLOT * self.nslots - sum(map(len, self.records.values()))

    def lowest_free_slot(self) -> int:
        """lowest_free_slot: the slot the next insert takes (nslots when none is free)."""
        return next((i for i in range(self.nslots) if i not in self.records), self.nslots)

    def insert_fits(self, length: int) -> bool:
        slot = self.lowest_free_slot()
        if slot == self.nslots and self.nslots >= fmt.MAX_SLOTS:
            return False
        needed = length + (SLOT if slot == self.nslots else 0)
        return needed <= self.free_space

    def max_insert(self) -> int:
        if self.lowest_free_slot() < self.nslots:
            return min(self.free_space, fmt.MAX_RECORD)
        if self.nslots >= fmt.MAX_SLOTS:
            return 0
        return min(max(self.free_space - SLOT, 0), fmt.MAX_RECORD)

    def update_fits(self, slot: int, length: int) -> bool:
        return length <= self.free_space + len(self.records[slot])


# ---- the state machine ----


class PageMachine(RuleBasedStateMachine):
    """PageMachine drives one SlottedPage and its model through the same steps."""

    page_size = 4096
    pgno = 7

    def __init__(self) -> None:
        super().__init__()
        self.page = SlottedPage.new(self.page_size, pgno=self.pgno)
        self.model = PageModel(self.page_size)
        self.tag = 0

    def _record(self, length: int) -> bytes:
        self.tag += 1
        return record_bytes(self.tag, length)

    def _length(self, data: st.DataObject, cap: int) -> int:
        """_length draws a record length: empty, small, large, or within a few bytes of ``cap``."""
        return data.draw(
            st.one_of(
                st.just(0),
                st.integers(1, 24),
                st.integers(0, self.page_size // 3),
                st.integers(-3, 3).map(lambda d: max(0, cap + d)),
            ),
            label="length",
        )

    @rule(data=st.data())
    def insert(self, data: st.DataObject) -> None:
        length = self._length(data, self.model.max_insert())
        record = self._record(length)
        if self.model.insert_fits(length):
            want = self.model.lowest_free_slot()
            slot = self.page.insert(record)
            assert slot == want, f"insert took slot {slot}, the lowest free is {want}"
            event("insert: reused a slot" if want < self.model.nslots else "insert: new slot")
            self.model.records[slot] = record
        else:
            event("insert: page full")
            before = bytes(self.page.buffer)
            with pytest.raises(PageFullError):
                self.page.insert(record)
            assert bytes(self.page.buffer) == before, "a failed insert changed the page"

    @precondition(lambda self: self.model.records)
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.model.records)), label="slot")
        old = len(self.model.records[slot])
        cap = self.model.free_space + old
        length = data.draw(
            st.one_of(
                st.integers(0, old),  # shrink
                st.integers(old, cap),  # grow within reach
                st.integers(-2, 3).map(lambda d: max(0, cap + d)),  # the edge
                st.integers(0, 16),
            ),
            label="length",
        )
        record = self._record(length)
        if self.model.update_fits(slot, length):
            event("update: grow" if length > old else "update: shrink or same")
            self.page.update(slot, record)
            self.model.records[slot] = record
        else:
            event("update: page full")
            before = bytes(self.page.buffer)
            with pytest.raises(PageFullError):
                self.page.update(slot, record)
            assert bytes(self.page.buffer) == before, "a failed update changed the page"

    @precondition(lambda self: self.model.records)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.model.records)), label="slot")
        self.page.delete(slot)
        del self.model.records[slot]

    @rule()
    def compact(self) -> None:
        self.page.compact()
        assert self.page.frag == 0
        assert self.page.contiguous_free_space == self.model.free_space

    @rule(data=st.data())
    def dead_slot(self, data: st.DataObject) -> None:
        """A slot that holds nothing (freed, or past the array) raises NotFoundError everywhere."""
        dead = [i for i in range(self.model.nslots + 3) if i not in self.model.records]
        slot = data.draw(st.sampled_from(dead), label="slot")
        before = bytes(self.page.buffer)
        for call in (
            lambda: self.page.read(slot),
            lambda: self.page.view(slot),
            lambda: self.page.delete(slot),
            lambda: self.page.update(slot, b"x"),
        ):
            with pytest.raises(NotFoundError) as err:
                call()
            assert isinstance(err.value, KeyError) and isinstance(err.value, PageStoreError)
        assert bytes(self.page.buffer) == before

    @rule(data=st.data())
    def append_many(self, data: st.DataObject) -> None:
        lengths = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=6), label="lengths")
        records = [self._record(n) for n in lengths]
        first = self.model.nslots
        fits = first + len(records) <= fmt.MAX_SLOTS and sum(lengths) + SLOT * len(records) <= self.model.free_space
        if fits:
            self.page.append_many(records)
            self.model.records.update(zip(range(first, first + len(records)), records))
        else:
            before = bytes(self.page.buffer)
            with pytest.raises(PageFullError):
                self.page.append_many(records)
            assert bytes(self.page.buffer) == before

    @rule()
    def reopen(self) -> None:
        """reopen: checksum the page, then load its bytes as the pager would after a read."""
        self.page.set_checksum()
        self.page = SlottedPage.load(bytes(self.page.buffer), pgno=self.pgno)

    def teardown(self) -> None:
        used = 1 - self.model.free_space / (self.page_size - HEADER)
        event(f"final fill: {int(used * 4) * 25}%+")

    # ---- invariants ----

    @invariant()
    def structure_is_valid(self) -> None:
        self.page.check()

    @invariant()
    def records_match_the_model(self) -> None:
        page, model = self.page, self.model
        assert len(page) == len(model.records)
        assert page.slots() == sorted(model.records)
        assert page.nslots == model.nslots
        for slot, record in model.records.items():
            assert page.read(slot) == record
            assert page.view(slot) == record
        assert dict(page.items()) == model.records

    @invariant()
    def space_matches_the_model(self) -> None:
        page, model = self.page, self.model
        assert page.free_space == model.free_space
        assert page.contiguous_free_space <= page.free_space
        assert page.max_insert == model.max_insert()
        assert model.insert_fits(page.max_insert) or page.max_insert == 0
        assert not model.insert_fits(page.max_insert + 1)


_SETTINGS = HYPOTHESIS


class Page512Machine(PageMachine):
    page_size = 512


class Page4096Machine(PageMachine):
    page_size = 4096


class Page65536Machine(PageMachine):
    page_size = 65536


TestPage512 = Page512Machine.TestCase
TestPage512.settings = settings(max_examples=400, stateful_step_count=50, **_SETTINGS)
TestPage4096 = Page4096Machine.TestCase
TestPage4096.settings = settings(max_examples=300, stateful_step_count=50, **_SETTINGS)
TestPage65536 = Page65536Machine.TestCase
TestPage65536.settings = settings(max_examples=150, stateful_step_count=40, **_SETTINGS)


# ---- plain unit tests ----


@pytest.mark.parametrize("bad", ["text", 5, None, 3.5, [1, 2]])
def test_non_bytes_data_raises_type_error(bad):
    page = SlottedPage.new(512)
    slot = page.insert(b"keep")
    with pytest.raises(TypeError):
        page.insert(bad)
    with pytest.raises(TypeError):
        page.update(slot, bad)
    with pytest.raises(TypeError):
        page.append_many([b"ok", bad])
    assert page.slots() == [slot] and page.read(slot) == b"keep"


@pytest.mark.parametrize("size", [0, 1, 256, 511, 513, 1000, 4095, 131072, -4096])
def test_bad_page_sizes_raise_value_error(size):
    with pytest.raises(ValueError):
        SlottedPage.new(size)
    if size > 0:
        with pytest.raises(ValueError):
            SlottedPage(bytearray(size))
        with pytest.raises(ValueError):
            SlottedPage.load(bytes(size))


def test_bytes_like_inputs_are_taken_by_their_bytes():
    page = SlottedPage.new(512)
    words = array("H", [1, 2, 0xABCD])
    slot = page.insert(memoryview(words))
    assert page.read(slot) == words.tobytes()
    page.update(slot, bytearray(b"ba"))
    assert page.read(slot) == b"ba"
    page.append_many([memoryview(words), b"xy", bytearray(b"z")])
    assert [page.read(s) for s in page.slots()] == [b"ba", words.tobytes(), b"xy", b"z"]


def test_seal_pages_stamps_every_page_of_a_run():
    """seal_pages gives each page of a run its lsn and checksum, as lsn= and set_checksum() would."""
    run = bytearray()
    for pgno in (7, 8, 9):
        page = SlottedPage.new(512, pgno, fmt.PAGE_OVERFLOW)
        page.insert(bytes([pgno]) * 100)
        run += page.buffer
    seal_pages(run, 512, 42)
    for i, pgno in enumerate((7, 8, 9)):
        page = SlottedPage.load(run[i * 512 : (i + 1) * 512], pgno)  # verifies checksum and number
        assert page.lsn == 42 and page.read(0) == bytes([pgno]) * 100
        one = SlottedPage.new(512, pgno, fmt.PAGE_OVERFLOW)
        one.insert(bytes([pgno]) * 100)
        one.lsn = 42
        one.set_checksum()
        assert bytes(one.buffer) == run[i * 512 : (i + 1) * 512]
    run[600] ^= 1
    with pytest.raises(CorruptionError):
        SlottedPage.load(run[512:1024], 8)


def test_build_singles_builds_what_one_page_at_a_time_builds():
    """build_singles: page i numbered pgnos[i], next nexts[i], its slice of data in slot 0."""
    data = bytes(range(256)) * 5
    lens = [466, 466, 100]
    pages = build_singles(512, fmt.PAGE_OVERFLOW, [4, 5, 9], [5, 9, 0], data, lens)
    assert len(pages) == 3 * 512
    at = 0
    for i, (pgno, nxt) in enumerate([(4, 5), (5, 9), (9, 0)]):
        one = SlottedPage.new(512, pgno, fmt.PAGE_OVERFLOW)
        one.insert(data[at : at + lens[i]])
        one.next = nxt
        assert bytes(one.buffer) == pages[i * 512 : (i + 1) * 512]
        at += lens[i]
    seal_pages(pages, 512, 3)
    assert SlottedPage.load(pages[512:1024], 5).read(0) == data[466:932]
    with pytest.raises(PageFullError):
        build_singles(512, fmt.PAGE_OVERFLOW, [1], [0], data, [467])  # more than an empty page holds
    with pytest.raises(ValueError):
        build_singles(512, fmt.PAGE_OVERFLOW, [1, 2], [0], data, [1, 1])
    with pytest.raises(ValueError):
        build_singles(512, fmt.PAGE_OVERFLOW, [1], [0], b"ab", [3])  # data shorter than lens say


def test_append_many_takes_new_slots_all_or_none():
    page = SlottedPage.new(512)
    a, b, c = page.insert(b"a"), page.insert(b"b"), page.insert(b"c")
    page.delete(b)
    page.append_many([b"", b"dd", b"e" * 30])
    # Appended records go at the end of the array; the freed slot waits for insert.
    assert page.slots() == [a, c, 3, 4, 5]
    assert [page.read(s) for s in (3, 4, 5)] == [b"", b"dd", b"e" * 30]
    before = bytes(page.buffer)
    with pytest.raises(PageFullError):
        page.append_many([b"x" * 100] * 5)
    with pytest.raises(PageFullError):
        page.append_many([b"small", b"x" * (fmt.MAX_RECORD + 1)])
    assert bytes(page.buffer) == before
    page.append_many([])
    assert bytes(page.buffer) == before
    assert page.insert(b"reuse") == b


def test_append_many_compacts_when_the_gap_is_too_small():
    page = SlottedPage.new(512)
    slots = [page.insert(bytes([i]) * 40) for i in range(10)]
    for s in slots[1::2]:
        page.update(s, b"")  # holes, slots kept
    assert page.contiguous_free_space < 150 <= page.free_space
    page.append_many([b"n" * 60, b"m" * 60])
    page.check()
    assert [page.read(s) for s in slots[::2]] == [bytes([i]) * 40 for i in range(0, 10, 2)]


def test_records_lists_slot_offset_length_state():
    page = SlottedPage.new(1024)
    a = page.insert(b"alpha")
    b = page.insert(b"", state=fmt.SLOT_OVERFLOW)
    c = page.insert(b"gamma!")
    page.delete(a)
    recs = page.records()
    assert [(r[0], r[2], r[3]) for r in recs] == [(b, 0, fmt.SLOT_OVERFLOW), (c, 6, fmt.SLOT_LIVE)]
    _, off, n, _ = recs[1]
    assert bytes(page.buffer[off : off + n]) == b"gamma!"
    assert page.state(b) == fmt.SLOT_OVERFLOW
    assert list(page.items()) == [(b, b""), (c, b"gamma!")]
    assert SlottedPage.new(512).records() == []


def test_insert_larger_than_any_page_is_page_full():
    page = SlottedPage.new(65536)
    with pytest.raises(PageFullError):
        page.insert(b"x" * (fmt.MAX_RECORD + 1))
    slot = page.insert(b"y")
    with pytest.raises(PageFullError):
        page.update(slot, b"x" * (fmt.MAX_RECORD + 1))
    assert page.read(slot) == b"y"


def test_insert_from_the_page_itself():
    page = SlottedPage.new(512)
    slot = page.insert(b"copy me")
    twin = page.insert(page.view(slot))
    assert page.read(twin) == b"copy me"
    page.update(slot, page.view(twin)[:4])
    assert page.read(slot) == b"copy"
    page.check()


def test_max_insert_fills_the_page_exactly():
    for size in (512, 4096, 65536):
        page = SlottedPage.new(size)
        slot = page.insert(b"\x01" * page.max_insert)
        assert page.free_space == 0 and page.max_insert == 0
        with pytest.raises(PageFullError):
            page.insert(b"")
        page.delete(slot)
        assert page.free_space == size - HEADER and page.upper == size


def test_insert_room_is_insert_then_max_insert():
    """insert_room returns what insert and max_insert would, for every kind of bytes-like input."""
    rng = random.Random(7)
    page, twin = SlottedPage.new(512), SlottedPage.new(512)
    inputs = [b"abc", bytearray(b"de"), memoryview(b"xyz")[1:], memoryview(array("H", [1, 2])), b""]
    while True:
        data = rng.choice(inputs) if rng.random() < 0.5 else bytes(rng.randrange(60))
        try:
            want = twin.insert(data, state=fmt.SLOT_OVERFLOW)
        except PageFullError:
            with pytest.raises(PageFullError):
                page.insert_room(data, fmt.SLOT_OVERFLOW)
            break
        assert page.insert_room(data, fmt.SLOT_OVERFLOW) == (want, twin.max_insert)
        if rng.random() < 0.3:
            victim = rng.choice(twin.slots())
            twin.delete(victim)
            page.delete(victim)
    assert bytes(page.buffer) == bytes(twin.buffer)
    assert page.state(0) == fmt.SLOT_OVERFLOW
    with pytest.raises(TypeError):
        page.insert_room("text")  # type: ignore[arg-type]


def test_slot_limit_on_the_largest_page():
    page = SlottedPage.new(65536)
    page.append_many([b""] * fmt.MAX_SLOTS)
    assert page.nslots == fmt.MAX_SLOTS and page.max_insert == 0
    assert page.free_space == 65536 - HEADER - SLOT * fmt.MAX_SLOTS
    with pytest.raises(PageFullError):
        page.insert(b"")
    page.delete(123)
    assert page.insert(b"ab") == 123
    page.check()


def test_checksum_set_and_verify():
    page = SlottedPage.new(4096, pgno=42)
    for i in range(20):
        page.insert(record_bytes(i, 3 * i))
    page.set_checksum()
    page.verify(42)
    loaded = SlottedPage.load(bytes(page.buffer), pgno=42)
    assert loaded.items().__next__() == (0, b"")

    with pytest.raises(CorruptionError) as err:
        page.verify(43)
    assert err.value.pgno == 43 and "43" in str(err.value)
    with pytest.raises(CorruptionError) as err:
        SlottedPage.load(bytes(page.buffer), pgno=43)
    assert err.value.pgno == 43

    for at in (0, 3, 4, 20, 100, 2000, 4095):
        flipped = bytearray(page.buffer)
        flipped[at] ^= 0x10
        with pytest.raises(CorruptionError) as err:
            SlottedPage.load(flipped, pgno=42)
        assert err.value.pgno == 42 and "42" in str(err.value)
        # Without a pgno only structure is checked: a flip in record bytes passes.
        if at >= page.upper:
            SlottedPage.load(flipped)


def test_checksum_covers_the_page_number():
    page = SlottedPage.new(512, pgno=5)
    page.set_checksum()
    page.pgno = 6  # as if written to the wrong place
    with pytest.raises(CorruptionError):
        page.verify(6)


def test_crc32c_vector_on_both_paths():
    data = b"123456789"
    assert lib.ps_crc32c(0, data, len(data)) == 0xE3069283
    assert lib.ps_crc32c_sw(0, data, len(data)) == 0xE3069283


def test_crc32c_paths_agree_on_random_data():
    rnd = random.Random(1234)
    for _ in range(300):
        # 767-769, 1535-1537 and 4092: either side of the hardware path's three-stream rounds (768 bytes)
        n = rnd.choice((0, 1, 7, 8, 9, 63, 64, 65, 767, 768, 769, 1535, 1536, 1537, 4092, 4096, rnd.randrange(20000)))
        data = rnd.randbytes(n + 8)
        start = rnd.randrange(8)
        buf = ffi.from_buffer(data) + start
        seed = rnd.choice((0, rnd.getrandbits(32)))
        assert lib.ps_crc32c(seed, buf, n) == lib.ps_crc32c_sw(seed, buf, n)


def test_header_fields_after_init():
    page = SlottedPage.new(2048, pgno=99, page_type=fmt.PAGE_LEAF)
    assert (page.pgno, page.page_type, page.nslots, page.nlive) == (99, fmt.PAGE_LEAF, 0, 0)
    assert (page.lower, page.upper, page.frag, page.next, page.lsn) == (HEADER, 2048, 0, 0, 0)
    page.lsn = 2**40 + 3
    page.next = 17
    assert struct.unpack_from("<QBBHHHII", page.buffer, fmt.OFF_LSN)[0] == 2**40 + 3
    assert page.next == 17
    page.check()


def test_patch_edits_inside_a_record_only():
    page = SlottedPage.new(512)
    a = page.insert(b"abcdef")
    b = page.insert(b"xyz")
    page.patch(a, 2, b"CD")
    assert page.read(a) == b"abCDef" and page.read(b) == b"xyz"
    page.check()
    for offset, data in [(5, b"gh"), (-1, b"a"), (7, b"")]:
        with pytest.raises(ValueError):
            page.patch(a, offset, data)
    page.delete(b)
    with pytest.raises(KeyError):
        page.patch(b, 0, b"q")
    assert page.read(a) == b"abCDef"


def test_patch_bytes_edits_single_bytes_inside_a_record_only():
    page = SlottedPage.new(512)
    a = page.insert(b"abcdef")
    b = page.insert(b"xyz")
    page.patch_bytes(a, [(0, ord("A")), (5, ord("F"))])
    assert page.read(a) == b"AbcdeF" and page.read(b) == b"xyz"
    page.check()
    for at in (6, -1):
        with pytest.raises(ValueError):
            page.patch_bytes(a, [(at, 1)])
    with pytest.raises(ValueError):
        page.patch_bytes(a, [(1, 256)])
    page.delete(b)
    with pytest.raises(KeyError):
        page.patch_bytes(b, [(0, 1)])
    assert page.read(a) == b"AbcdeF"


def test_patch_bytes_checks_the_records_length_in_the_same_lookup():
    """The free-space map's flush patches its page's one record and checks its length with one
    lookup (issue 23): a record of another length is corruption naming the page, and nothing changes."""
    from pagestore.errors import CorruptionError

    page = SlottedPage.new(512, pgno=7)
    a = page.insert(b"abcdef")
    page.patch_bytes(a, [(1, ord("B"))], 6, "map page")
    assert page.read(a) == b"aBcdef"
    with pytest.raises(CorruptionError) as err:
        page.patch_bytes(a, [(0, ord("Z"))], 5, "map page")
    assert err.value.pgno == 7 and "map page" in str(err.value)
    assert page.read(a) == b"aBcdef"
