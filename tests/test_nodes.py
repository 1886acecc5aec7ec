"""Tests of pagestore.nodes (and through it native/node.c) against Python models.

Three models, each from the NODE PAGES section of native/pagestore.h alone:

- ``ref_node`` reads a node straight from the documented record layout and
  says whether it is sound; decode and check must agree with it.
- ``bisect`` on the decoded keys says what search must answer.
- ``LeafMachine`` keeps a list of (key, rid) for one leaf; every in-place
  change must leave the page equal to it, valid, and (when refused) unchanged.

Then untrusted bytes: random buffers and mutated node pages go through every
function; each must answer or raise a pagestore error, and a page that is a
sound node must stay one whatever change is made to it. The C harness
(native/run_harness.sh, part "nodes") runs the same ideas under sanitizers.
"""
from __future__ import annotations

import random
import struct
from bisect import bisect_left, bisect_right
from typing import List, Optional, Tuple

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from helpers import HYPOTHESIS
from pagestore import CorruptionError, PageFullError, PageStoreError, SlottedPage
from pagestore import format as fmt
from pagestore import nodes

HEADER = fmt.HEADER_SIZE
SLOT = fmt.SLOT_SIZE
RID = fmt.NODE_RID_SIZE
CHILD = fmt.NODE_CHILD_SIZE
LEAF_ENTRY = SLOT + RID  # what a leaf entry costs besides its key
INTERNAL_ENTRY = SLOT + CHILD  # what a child costs besides its separator
SIZES = (512, 4096, 65536)
PGNO = 7
MAX_KEY = fmt.MAX_RECORD - RID  # the longest key a leaf record can hold

_SETTINGS = HYPOTHESIS

Vals = list  # leaf: [(pgno, slot)]; internal: [pgno]


# ---- the reference reader ----


def ref_node(raw: bytes) -> Optional[Tuple[bool, List[bytes], Vals]]:
    """ref_node returns ``(leaf, keys, vals)`` read from the documented layout, or None
    when the page is not a sound node. Assumes the page passed the generic page check."""
    ptype = raw[fmt.OFF_TYPE]
    if ptype not in (fmt.PAGE_LEAF, fmt.PAGE_INTERNAL):
        return None
    leaf = ptype == fmt.PAGE_LEAF
    nslots, nlive = struct.unpack_from("<HH", raw, fmt.OFF_NSLOTS)
    if nslots != nlive or (not leaf and nslots == 0):
        return None
    keys: List[bytes] = []
    vals: Vals = []
    for i in range(nslots):
        off, length, state = struct.unpack_from("<HHB", raw, HEADER + SLOT * i)
        if state != fmt.SLOT_LIVE:
            return None
        rec = raw[off : off + length]
        if leaf:
            if length < RID:
                return None
            keys.append(rec[RID:])
            vals.append(struct.unpack_from("<IH", rec))
        else:
            if length < CHILD or (i == 0 and length != CHILD):
                return None
            (child,) = struct.unpack_from("<I", rec)
            if child == 0:
                return None
            if i:
                keys.append(rec[CHILD:])
            vals.append(child)
    if any(a >= b for a, b in zip(keys, keys[1:])):
        return None
    return leaf, keys, vals


def node_cost(leaf: bool, keys: List[bytes]) -> int:
    """node_cost: bytes a node of these keys takes after the header (slots plus records)."""
    if leaf:
        return LEAF_ENTRY * len(keys) + sum(map(len, keys))
    return INTERNAL_ENTRY * (len(keys) + 1) + sum(map(len, keys))


def as_vals(leaf: bool, vals) -> Vals:
    return [tuple(v) for v in vals] if leaf else list(vals)


def blank(page_size: int, fill: int = 0xA5) -> SlottedPage:
    """blank: a page buffer full of junk, so a build that forgets a byte shows."""
    return SlottedPage(bytearray([fill]) * page_size, validate=False, pgno=PGNO)


def built(page_size: int, leaf: bool, keys: List[bytes], vals: Vals) -> bytes:
    page = blank(page_size)
    nodes.build(page, PGNO, leaf, keys, vals)
    return bytes(page.buffer)


# ---- strategies ----

# Short keys over a small alphabet meet as prefixes of each other, equal, and
# at the byte extremes; plain binary adds the rest.
KEY = st.one_of(
    st.lists(st.sampled_from(b"\x00\x01a\xfe\xff"), max_size=5).map(bytes),
    st.binary(max_size=12),
)


def rnd_key(rnd: random.Random, page_size: int) -> bytes:
    r = rnd.random()
    if r < 0.5:
        return bytes(rnd.choice(b"\x00\x01a\xfe\xff") for _ in range(rnd.randrange(6)))
    if r < 0.95:
        return rnd.randbytes(rnd.randrange(40))
    return rnd.randbytes(rnd.randrange(page_size // 4))


def rnd_vals(rnd: random.Random, leaf: bool, n: int) -> Vals:
    if leaf:
        return [
            (rnd.choice((0, 1, 0xFFFFFFFF, rnd.getrandbits(32))), rnd.choice((0, 0xFFFF, rnd.getrandbits(16))))
            for _ in range(n)
        ]
    return [rnd.choice((1, 0xFFFFFFFF, rnd.randint(1, 0xFFFFFFFF))) for _ in range(n)]


@st.composite
def node_contents(draw, page_size: int, leaf: bool, overfill: bool = False):
    """node_contents draws ``(keys, vals)`` for a node: sorted unique keys and their rids
    (leaf) or one more child than keys (internal). Modes: a few drawn keys (maybe
    one as long as the room left), a page filled to the brim, one key of the
    greatest length. With ``overfill`` they may be a few bytes too many."""
    budget = page_size - HEADER
    fixed = 0 if leaf else INTERNAL_ENTRY
    per = LEAF_ENTRY if leaf else INTERNAL_ENTRY
    over = draw(st.integers(1, 8)) if overfill and draw(st.booleans()) else 0
    seed = draw(st.integers(0, 2**32 - 1))
    rnd = random.Random(seed)
    mode = draw(st.sampled_from(("drawn", "drawn", "fill", "max")))
    if mode == "drawn":
        keys = sorted(draw(st.lists(KEY, unique=True, max_size=30)))
        while fixed + per * len(keys) + sum(map(len, keys)) > budget:
            keys.pop(rnd.randrange(len(keys)))
        room = budget - fixed - per * (len(keys) + 1) - sum(map(len, keys))
        if draw(st.booleans()) and room >= 0:
            n = draw(st.integers(0, room)) if not over else room + over
            keys = sorted(set(keys) | {rnd.randbytes(n)})
    elif mode == "fill":
        keys, used = set(), fixed
        while True:
            k = rnd_key(rnd, page_size)
            if k in keys:
                continue
            if used + per + len(k) > budget:
                if over:
                    keys.add(k)
                break
            keys.add(k)
            used += per + len(k)
        keys = sorted(keys)
    else:
        keys = [rnd.randbytes(budget - fixed - per + over)]
    return keys, rnd_vals(rnd, leaf, len(keys) + (0 if leaf else 1))


# ---- build and decode ----


@settings(max_examples=600, **_SETTINGS)
@given(page_size=st.sampled_from(SIZES), leaf=st.booleans(), data=st.data())
def test_build_decode_round_trip(page_size, leaf, data):
    keys, vals = data.draw(node_contents(page_size, leaf, overfill=True), label="contents")
    page = blank(page_size)
    cost = node_cost(leaf, keys)
    event(f"{page_size} {'leaf' if leaf else 'internal'}: {'too much' if cost > page_size - HEADER else 'fits'}")
    if cost > page_size - HEADER:
        before = bytes(page.buffer)
        with pytest.raises(PageFullError):
            nodes.build(page, PGNO, leaf, keys, vals)
        assert bytes(page.buffer) == before, "a refused build changed the page"
        return
    nodes.build(page, PGNO, leaf, keys, vals)
    raw = bytes(page.buffer)
    nodes.check(raw, PGNO)
    SlottedPage.wrap(bytearray(raw)).check()
    assert nodes.decode(raw, PGNO) == (leaf, keys, as_vals(leaf, vals))
    assert ref_node(raw) == (leaf, keys, as_vals(leaf, vals))
    assert nodes.is_leaf(raw) == leaf
    # The header a build writes: pgno and type, zero lsn, checksum and frag,
    # the records packed against the end.
    checksum, pgno, lsn, ptype, flags = struct.unpack_from("<IIQBB", raw)
    nslots, nlive, lower, upper, frag, nxt, reserved = struct.unpack_from("<HHHIIII", raw, fmt.OFF_NSLOTS)
    assert (checksum, pgno, lsn, ptype, flags) == (0, PGNO, 0, fmt.PAGE_LEAF if leaf else fmt.PAGE_INTERNAL, 0)
    assert nslots == nlive == len(vals)
    assert (lower, upper, frag, nxt, reserved) == (HEADER + SLOT * nslots, page_size + SLOT * nslots - cost, 0, 0, 0)
    assert page.free_space == page_size - HEADER - cost


@pytest.mark.parametrize("page_size", SIZES)
@pytest.mark.parametrize("leaf", [True, False])
def test_empty_and_largest_nodes(page_size, leaf):
    """The edges exactly: the longest key that fits, one byte more, and the smallest node."""
    budget = page_size - HEADER
    fixed = 0 if leaf else INTERNAL_ENTRY
    per = LEAF_ENTRY if leaf else INTERNAL_ENTRY
    longest = budget - fixed - per
    vals = [(3, 4)] if leaf else [5, 6]
    raw = built(page_size, leaf, [b"k" * longest], vals)
    assert nodes.decode(raw, PGNO) == (leaf, [b"k" * longest], vals)
    SlottedPage.wrap(bytearray(raw)).check()
    with pytest.raises(PageFullError):
        built(page_size, leaf, [b"k" * (longest + 1)], vals)
    if leaf:
        raw = built(page_size, True, [], [])
        assert nodes.decode(raw, PGNO) == (True, [], [])
        assert nodes.search(raw, b"x", False) == (0, False, 0, 0)
    else:
        raw = built(page_size, False, [], [9])
        assert nodes.decode(raw, PGNO) == (False, [], [9])
        assert nodes.search(raw, b"x", True) == (0, False, 9, 0)
    # As many two-byte keys as fit, then one more.
    n = (budget - fixed) // (per + 2)
    keys = [i.to_bytes(2, "big") for i in range(n)]
    vals = rnd_vals(random.Random(n), leaf, n + (0 if leaf else 1))
    raw = built(page_size, leaf, keys, vals)
    assert nodes.decode(raw, PGNO) == (leaf, keys, vals)
    with pytest.raises(PageFullError):
        built(page_size, leaf, keys + [b"\xff\xff"], vals + vals[:1])


def test_build_refuses_a_key_too_long_for_a_record():
    with pytest.raises(ValueError):
        built(65536, True, [bytes(fmt.MAX_RECORD + 1)], [(1, 1)])


@pytest.mark.parametrize(
    "leaf, keys, vals",
    [
        (True, [b"b", b"a"], [(1, 1), (2, 2)]),
        (True, [b"a", b"a"], [(1, 1), (2, 2)]),
        (False, [b"b", b"a"], [1, 2, 3]),
        (False, [b"a"], [1, 0]),
    ],
)
def test_a_build_of_unsorted_keys_or_child_0_never_yields_a_sound_node(leaf, keys, vals):
    """build may trust its caller, but what it writes then must not pass check."""
    page = blank(512)
    try:
        nodes.build(page, PGNO, leaf, keys, vals)
    except ValueError:
        return
    raw = bytes(page.buffer)
    with pytest.raises(CorruptionError):
        nodes.check(raw, PGNO)
    with pytest.raises(CorruptionError):
        nodes.decode(raw, PGNO)


# ---- search ----


def probes_for(keys: List[bytes]) -> List[bytes]:
    """probes_for: each key, its neighbours in byte order, its prefixes, and both ends."""
    out = [b"", b"\x00", b"\xff" * 3, b"\xff" * 70]
    for k in keys:
        out += [k, k + b"\x00", k + b"\xff", k[:-1], k[: len(k) // 2]]
        if k and k[-1] < 255:
            out.append(k[:-1] + bytes([k[-1] + 1]))
        if k and k[-1] > 0:
            out.append(k[:-1] + bytes([k[-1] - 1]) + b"\xff")
    return out


def assert_search_agrees(raw: bytes, leaf: bool, keys: List[bytes], vals: Vals, probe: bytes) -> None:
    for after in (False, True):
        index, equal, pgno, slot = nodes.search(raw, probe, after)
        want = (bisect_right if after else bisect_left)(keys, probe)
        assert index == want, f"search({probe!r}, after={after}) gave {index}, bisect {want}"
        assert equal == (not after and want < len(keys) and keys[want] == probe)
        if leaf:
            assert (pgno, slot) == (vals[index] if index < len(vals) else (0, 0))
        else:
            assert (pgno, slot) == (vals[index], 0)
    assert nodes.child(raw, probe) == pgno  # the descent's shortcut: search(after=True)'s page


@settings(max_examples=500, **_SETTINGS)
@given(page_size=st.sampled_from(SIZES), leaf=st.booleans(), data=st.data())
def test_search_matches_bisect(page_size, leaf, data):
    keys, vals = data.draw(node_contents(page_size, leaf), label="contents")
    raw = built(page_size, leaf, keys, vals)
    vals = as_vals(leaf, vals)
    probes = probes_for(keys if len(keys) < 300 else random.Random(len(keys)).sample(keys, 300))
    probes += data.draw(st.lists(KEY, max_size=20), label="probes")
    for probe in probes:
        assert_search_agrees(raw, leaf, keys, vals, probe)


def test_search_refuses_to_follow_a_child_0():
    """A child page 0 is never followed, even on a node nobody checked."""
    raw = built(512, False, [b"b", b"d"], [1, 0, 3])
    assert nodes.search(raw, b"a", True)[2] == 1
    assert nodes.search(raw, b"d", True)[2] == 3
    with pytest.raises(CorruptionError):
        nodes.search(raw, b"c", True)
    assert nodes.child(raw, b"a") == 1
    with pytest.raises(CorruptionError):
        nodes.child(raw, b"c")


# ---- one leaf changed in place, against a list ----


class LeafMachine(RuleBasedStateMachine):
    """LeafMachine drives one leaf page and a list of (key, rid) through the same changes."""

    page_size = 512

    def __init__(self) -> None:
        super().__init__()
        self.page = blank(self.page_size)
        nodes.build(self.page, PGNO, True, [], [])
        self.model: List[Tuple[bytes, Tuple[int, int]]] = []

    # ---- what the model predicts ----

    def used(self) -> int:
        return sum(LEAF_ENTRY + len(k) for k, _ in self.model)

    def free(self) -> int:
        return self.page_size - HEADER - self.used()

    def raw(self) -> bytes:
        return bytes(self.page.buffer)

    def keys(self) -> List[bytes]:
        return [k for k, _ in self.model]

    def _key(self, data: st.DataObject) -> bytes:
        """_key draws a key: short, or as long as the room left give or take a few bytes."""
        kind = data.draw(st.sampled_from(("short", "short", "short", "room", "over")), label="kind")
        if kind == "short":
            return data.draw(KEY, label="key")
        room = self.free() - LEAF_ENTRY
        n = room - data.draw(st.integers(0, 12)) if kind == "room" else room + data.draw(st.integers(1, 12))
        n = min(max(n, 0), MAX_KEY)
        head = data.draw(KEY, label="head")[:n]
        return head + random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed")).randbytes(n - len(head))

    def _rid(self, data: st.DataObject) -> Tuple[int, int]:
        return data.draw(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1)), label="rid")

    # ---- rules ----

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """start from a built leaf: empty, a few keys, or full to the brim."""
        keys, vals = data.draw(node_contents(self.page_size, True), label="contents")
        nodes.build(self.page, PGNO, True, keys, vals)
        self.model = list(zip(keys, vals))

    @rule(data=st.data())
    def insert(self, data: st.DataObject) -> None:
        key = self._key(data)
        index, equal, _, _ = nodes.search(self.raw(), key, False)
        assert index == bisect_left(self.keys(), key)
        before = self.raw()
        if equal:
            event("insert: key present, refused")
            with pytest.raises(ValueError):
                nodes.leaf_insert(self.page, index, key, 1, 1)
            assert self.raw() == before, "a refused insert changed the page"
            return
        rid = self._rid(data)
        fits = LEAF_ENTRY + len(key) <= self.free()
        contiguous = self.page.upper - self.page.lower
        assert nodes.leaf_insert(self.page, index, key, *rid) == fits
        if not fits:
            event("insert: full")
            assert self.raw() == before, "an insert that did not fit changed the page"
            return
        if LEAF_ENTRY + len(key) > contiguous:
            event("insert: compacted")
            assert self.page.frag == 0
        self.model.insert(index, (key, rid))

    @rule(data=st.data())
    def insert_at_a_wrong_index(self, data: st.DataObject) -> None:
        """A key not strictly between its neighbours at the index given is refused, page unchanged."""
        key = data.draw(KEY, label="key")
        right = bisect_left(self.keys(), key)
        present = right < len(self.model) and self.model[right][0] == key
        choices = [i for i in range(len(self.model) + 2) if i != right or present]
        index = data.draw(st.sampled_from(choices), label="index")
        before = self.raw()
        try:
            ok = nodes.leaf_insert(self.page, index, key, 1, 2)
        except ValueError:
            event("wrong index: ValueError")
        else:
            # Whether fit or order is checked first is the C side's choice.
            assert not ok and LEAF_ENTRY + len(key) > self.free(), f"insert of {key!r} at {index} accepted"
        assert self.raw() == before, "a refused insert changed the page"

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.model) - 1), label="index")
        used = nodes.leaf_remove(self.page, index)
        del self.model[index]
        assert used == self.used()

    @precondition(lambda self: len(self.model) > 2)
    @rule(data=st.data())
    def remove_many(self, data: st.DataObject) -> None:
        """remove_many leaves holes all over the record area, so the next big insert compacts."""
        step = data.draw(st.integers(2, 4), label="step")
        for index in range(len(self.model) - 1, -1, -step):
            assert nodes.leaf_remove(self.page, index) == self.used() - LEAF_ENTRY - len(self.model[index][0])
            del self.model[index]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def set_rid(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.model) - 1), label="index")
        rid = self._rid(data)
        nodes.leaf_set_rid(self.page, index, *rid)
        self.model[index] = (self.model[index][0], rid)

    @rule(data=st.data())
    def past_the_end(self, data: st.DataObject) -> None:
        """remove and set_rid of an entry that does not exist are refused, page unchanged."""
        index = len(self.model) + data.draw(st.integers(0, 3), label="beyond")
        before = self.raw()
        with pytest.raises(ValueError):
            nodes.leaf_remove(self.page, index)
        with pytest.raises(ValueError):
            nodes.leaf_set_rid(self.page, index, 1, 1)
        assert self.raw() == before

    # ---- invariants ----

    @invariant()
    def page_is_a_valid_leaf(self) -> None:
        raw = self.raw()
        SlottedPage(bytearray(raw), validate=False).check()
        nodes.check(raw, PGNO)

    @invariant()
    def page_matches_the_model(self) -> None:
        raw = self.raw()
        want = (True, self.keys(), [rid for _, rid in self.model])
        assert nodes.decode(raw, PGNO) == want
        assert ref_node(raw) == want
        assert self.page.free_space == self.free()

    @invariant()
    def search_finds_the_ends(self) -> None:
        raw, keys = self.raw(), self.keys()
        vals = [rid for _, rid in self.model]
        for probe in (b"", keys[0], keys[-1], keys[len(keys) // 2]) if keys else (b"",):
            assert_search_agrees(raw, True, keys, vals, probe)


class Leaf512Machine(LeafMachine):
    page_size = 512


class Leaf4096Machine(LeafMachine):
    page_size = 4096


class Leaf65536Machine(LeafMachine):
    page_size = 65536


TestLeaf512 = Leaf512Machine.TestCase
TestLeaf512.settings = settings(max_examples=250, stateful_step_count=50, **_SETTINGS)
TestLeaf4096 = Leaf4096Machine.TestCase
TestLeaf4096.settings = settings(max_examples=150, stateful_step_count=50, **_SETTINGS)
TestLeaf65536 = Leaf65536Machine.TestCase
TestLeaf65536.settings = settings(max_examples=40, stateful_step_count=30, **_SETTINGS)


def test_compaction_makes_room():
    """Holes left by removes are reused: an entry that fits only after compaction goes in."""
    rnd = random.Random(1)
    keys = sorted({rnd.randbytes(20) for _ in range(14)})
    vals = rnd_vals(rnd, True, len(keys))
    page = blank(512)
    nodes.build(page, PGNO, True, keys, vals)
    for index in (12, 9, 6, 3, 1):  # middle records: holes, not a higher upper
        nodes.leaf_remove(page, index)
        del keys[index], vals[index]
    assert page.frag > 0
    free = 512 - HEADER - node_cost(True, keys)
    assert page.upper - page.lower < free  # the gap alone is too small
    key = b"\x00" * (free - LEAF_ENTRY)
    assert LEAF_ENTRY + len(key) > page.upper - page.lower
    assert nodes.leaf_insert(page, 0, key, 8, 9)
    assert page.frag == 0 and page.free_space == 0
    assert nodes.decode(bytes(page.buffer), PGNO) == (True, [key] + keys, [(8, 9)] + vals)
    SlottedPage.wrap(page.buffer).check()
    # Full now: not even an empty key fits, and the refusal changes nothing.
    before = bytes(page.buffer)
    assert not nodes.leaf_insert(page, 0, b"", 1, 1)
    assert bytes(page.buffer) == before


# ---- the wrong kind of page ----


NOT_NODES = [t for t in range(256) if t not in (fmt.PAGE_LEAF, fmt.PAGE_INTERNAL)]


@pytest.mark.parametrize("ptype", NOT_NODES[::7] + [fmt.PAGE_HEAP])
def test_a_page_that_is_not_a_node(ptype):
    page = SlottedPage.new(4096, pgno=PGNO, page_type=fmt.PAGE_HEAP)
    for data in (b"\x01\x00\x00\x00\x00\x00abc", b"\x02\x00\x00\x00\x00\x00abd"):
        page.insert(data)
    page.buffer[fmt.OFF_TYPE] = ptype
    raw = bytes(page.buffer)
    with pytest.raises(CorruptionError) as err:
        nodes.check(raw, PGNO)
    assert err.value.pgno == PGNO
    with pytest.raises(CorruptionError):
        nodes.decode(raw, PGNO)
    with pytest.raises(CorruptionError):
        nodes.search(raw, b"abc", False)
    for change in (
        lambda p: nodes.leaf_insert(p, 0, b"a", 1, 1),
        lambda p: nodes.leaf_remove(p, 0),
        lambda p: nodes.leaf_set_rid(p, 0, 1, 1),
    ):
        copy = SlottedPage(bytearray(raw), validate=False, pgno=PGNO)
        with pytest.raises(CorruptionError):
            change(copy)
        assert bytes(copy.buffer) == raw


def test_leaf_changes_refuse_an_internal_node():
    raw = built(4096, False, [b"m"], [3, 4])
    for change in (
        lambda p: nodes.leaf_insert(p, 0, b"a", 1, 1),
        lambda p: nodes.leaf_remove(p, 0),
        lambda p: nodes.leaf_set_rid(p, 0, 1, 1),
    ):
        copy = SlottedPage(bytearray(raw), validate=False)
        with pytest.raises(ValueError):
            change(copy)
        assert bytes(copy.buffer) == raw


# ---- untrusted bytes ----

ALLOWED = (PageStoreError, ValueError)


def survive(raw: bytes, rnd: random.Random) -> None:
    """survive runs every node function over ``raw`` (the changes on copies). Each must
    answer or raise a pagestore error. When the page is a sound node (it passes the
    generic page check and ref_node), every answer is checked and every change must
    leave a sound node; a change refused leaves its copy untouched either way."""
    size = len(raw)
    try:
        SlottedPage(bytearray(raw), validate=False).check()
        page_ok = True
    except CorruptionError:
        page_ok = False
    ref = ref_node(raw) if page_ok else None
    sound = True
    try:
        nodes.check(raw, PGNO)
    except ALLOWED:
        sound = False
    if page_ok:
        assert sound == (ref is not None), f"check says {sound}, the documented layout says {ref is not None}"
    event("sound node" if sound else "valid page, not a node" if page_ok else "invalid page")
    try:
        got = nodes.decode(raw, PGNO)
        assert sound, "decode accepted what check refused"
    except ALLOWED:
        assert not sound, "decode refused what check accepted"
        got = None
    if ref is not None:
        assert got == ref
    keys = ref[1] if ref else []
    probes = [b"", b"\xff" * 8] + [rnd.choice(keys) for _ in range(3) if keys] + [rnd.randbytes(rnd.randrange(6))]
    for probe in probes:
        for after in (False, True):
            try:
                nodes.search(raw, probe, after)
            except ALLOWED:
                pass
        try:
            nodes.child(raw, probe)
        except ALLOWED:
            pass
        if ref is not None:
            assert_search_agrees(raw, ref[0], ref[1], ref[2], probe)
    nslots = struct.unpack_from("<H", raw, fmt.OFF_NSLOTS)[0]
    indexes = {0, nslots, nslots + 1, rnd.randrange(nslots + 1)} | ({nslots - 1} if nslots else set())
    key = rnd.choice(probes)
    changes = []
    for i in sorted(indexes):
        changes += [
            (f"insert at {i}", lambda p, i=i: nodes.leaf_insert(p, i, key, 5, 6)),
            (f"remove {i}", lambda p, i=i: nodes.leaf_remove(p, i)),
            (f"set_rid {i}", lambda p, i=i: nodes.leaf_set_rid(p, i, 5, 6)),
        ]
    for what, change in changes:
        copy = bytearray(raw)
        try:
            result = change(SlottedPage(copy, validate=False, pgno=PGNO))
        except ALLOWED:
            assert bytes(copy) == raw, f"a refused {what} changed the page"
            continue
        if result is False:
            assert bytes(copy) == raw, f"a {what} that did not fit changed the page"
        if ref is not None and ref[0]:
            SlottedPage(copy, validate=False).check()
            nodes.check(bytes(copy), PGNO)
    assert len(raw) == size


def mutate(rnd: random.Random, buf: bytearray) -> str:
    """mutate makes one change to a node image and names it: blind damage anywhere,
    or a targeted change that keeps the generic page rule but may break a node rule."""
    nslots = min(struct.unpack_from("<H", buf, fmt.OFF_NSLOTS)[0], (len(buf) - HEADER) // SLOT)
    lower = HEADER + SLOT * nslots
    kind = rnd.randrange(10)
    if kind == 0 or not nslots:
        buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)
        return "bit flip"
    if kind == 1:
        buf[rnd.randrange(lower)] = rnd.randrange(256)
        return "header or slot byte"
    if kind == 2:
        start = min(struct.unpack_from("<I", buf, fmt.OFF_UPPER)[0], lower) if rnd.random() < 0.1 else lower
        buf[rnd.randrange(min(start, len(buf) - 1), len(buf))] = rnd.randrange(256)
        return "record byte"
    i = rnd.randrange(nslots)
    s = HEADER + SLOT * i
    off, length = struct.unpack_from("<HH", buf, s)
    inside = off + length <= len(buf)
    if kind == 3 and nslots > 1:
        j = HEADER + SLOT * rnd.randrange(nslots)
        a, b = bytes(buf[s : s + SLOT]), bytes(buf[j : j + SLOT])
        buf[s : s + SLOT] = b
        buf[j : j + SLOT] = a
        return "slots swapped"
    if kind == 4:
        buf[s + 4] = fmt.SLOT_OVERFLOW
        return "state overflow"
    if kind == 5 and length:
        # the generic rule still holds: the record loses its tail and frag counts the hole
        d = rnd.randint(1, length)
        struct.pack_into("<HH", buf, s, 0 if d == length else off, length - d)
        (frag,) = struct.unpack_from("<I", buf, fmt.OFF_FRAG)
        struct.pack_into("<I", buf, fmt.OFF_FRAG, (frag + d) & 0xFFFFFFFF)
        return "record shortened"
    if kind == 6 and length >= 4 and inside:
        struct.pack_into("<I", buf, off, rnd.choice((0, 1, rnd.getrandbits(32))))
        return "child or rid page"
    if kind == 7:
        buf[fmt.OFF_TYPE] = rnd.choice((fmt.PAGE_LEAF, fmt.PAGE_INTERNAL, fmt.PAGE_HEAP, rnd.randrange(256)))
        return "type"
    if kind == 8 and i + 1 < nslots and inside:
        # the tail of a key copied from its successor's: equal or out of order keys
        o2, l2 = struct.unpack_from("<HH", buf, s + SLOT)
        n = min(length, l2, 8)
        if o2 + l2 <= len(buf):
            buf[off + length - n : off + length] = buf[o2 + l2 - n : o2 + l2]
            return "key tail copied from the next"
    struct.pack_into("<H", buf, s + 2 * rnd.randrange(2), rnd.choice((0, 1, 4, 5, 6, len(buf) - 1, 0xFFFF)))
    return "slot field edge"


@settings(max_examples=1500, **_SETTINGS)
@given(
    page_size=st.sampled_from((512, 4096)),
    leaf=st.booleans(),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3),
)
def test_mutated_nodes(page_size, leaf, data, seed, n):
    keys, vals = data.draw(node_contents(page_size, leaf), label="contents")
    buf = bytearray(built(page_size, leaf, keys, vals))
    rnd = random.Random(seed)
    for _ in range(n):
        event(mutate(rnd, buf))
    survive(bytes(buf), rnd)


@settings(max_examples=1500, **_SETTINGS)
@given(
    page_size=st.sampled_from((512, 4096)),
    edits=st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 255)), min_size=1, max_size=4),
    in_head=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_byte_edits_of_nodes(page_size, edits, in_head, seed):
    """Hypothesis shrinks a failure to the fewest, smallest byte edits."""
    rnd = random.Random(seed)
    leaf = rnd.random() < 0.6
    n = rnd.randrange(1, 30)
    keys = sorted({rnd_key(rnd, 512)[:30] for _ in range(n)})
    while node_cost(leaf, keys) > page_size - HEADER:
        keys.pop(rnd.randrange(len(keys)))
    vals = rnd_vals(rnd, leaf, len(keys) + (0 if leaf else 1))
    buf = bytearray(built(page_size, leaf, keys, vals))
    span = struct.unpack_from("<H", buf, fmt.OFF_LOWER)[0] if in_head else page_size
    for at, value in edits:
        buf[at % span] = value
    survive(bytes(buf), rnd)


def random_node_image(rnd: random.Random, page_size: int) -> bytes:
    """random_node_image: random bytes under a node type, often with a plausible header,
    sometimes a generically valid page of random records (typed as a node)."""
    kind = rnd.randrange(3)
    if kind == 0:
        buf = bytearray(rnd.randbytes(page_size))
        buf[fmt.OFF_TYPE] = rnd.choice((fmt.PAGE_LEAF, fmt.PAGE_INTERNAL))
        return bytes(buf)
    if kind == 1:
        buf = bytearray(rnd.randbytes(page_size))
        nslots = rnd.randrange(20)
        upper = rnd.randint(HEADER + SLOT * nslots, page_size)
        struct.pack_into(
            "<BBHHHII", buf, fmt.OFF_TYPE, rnd.choice((fmt.PAGE_LEAF, fmt.PAGE_INTERNAL)), 0,
            nslots, nslots, HEADER + SLOT * nslots, upper, rnd.randrange(64),
        )
        for i in range(nslots):
            struct.pack_into("<HHBB", buf, HEADER + SLOT * i, rnd.randint(upper, page_size), rnd.randrange(40),
                             rnd.choice((1, 1, 1, 2)), 0)
        return bytes(buf)
    page = SlottedPage.new(page_size, pgno=PGNO, page_type=rnd.choice((fmt.PAGE_LEAF, fmt.PAGE_INTERNAL)))
    for _ in range(rnd.randrange(12)):
        record = rnd.choice((b"\x01\x00\x00\x00", b"\x00\x00\x00\x00", b"")) + rnd.randbytes(rnd.randrange(10))
        record = record if rnd.random() < 0.8 else b"\x01\x00\x00\x00\x00\x00" + bytes([rnd.randrange(3)])
        page.insert(record, state=fmt.SLOT_LIVE if rnd.random() < 0.9 else fmt.SLOT_OVERFLOW)
        if rnd.random() < 0.1:
            page.delete(rnd.randrange(page.nslots))
    return bytes(page.buffer)


@settings(max_examples=1000, **_SETTINGS)
@given(page_size=st.sampled_from((512, 1024, 4096)), seed=st.integers(0, 2**32 - 1))
def test_random_images(page_size, seed):
    rnd = random.Random(seed)
    survive(random_node_image(rnd, page_size), rnd)


@settings(max_examples=300, **_SETTINGS)
@given(raw=st.binary(min_size=512, max_size=512), seed=st.integers(0, 2**32 - 1))
def test_random_bytes(raw, seed):
    survive(raw, random.Random(seed))


@pytest.mark.parametrize("n", [20, 39, 40, 100, 511, 513, 4095])
def test_buffers_of_a_wrong_size(n):
    raw = bytes([fmt.PAGE_LEAF]) * n
    for call in (
        lambda: nodes.check(raw, PGNO),
        lambda: nodes.decode(raw, PGNO),
        lambda: nodes.search(raw, b"a", False),
        lambda: nodes.child(raw, b"a"),
    ):
        with pytest.raises(ValueError):
            call()


# ---- found while writing these tests, and fixed ----


@pytest.mark.parametrize("n", [0, 1, 19])
def test_decode_of_a_very_short_buffer(n):
    with pytest.raises(ValueError):
        nodes.decode(bytes(n), PGNO)


@pytest.mark.parametrize(
    "leaf, keys, vals",
    [
        (True, [b"a", b"b"], [(1, 2)]),  # a leaf key without a rid
        (False, [b"a"], [1]),  # an internal node with as many keys as children
        (False, [], []),  # an internal node without children (check refuses it)
        (True, [b"a"], [(1, 2), (3, 4)]),  # too few keys: C would read past key_lens
        (False, [], [1, 2]),
    ],
)
def test_build_refuses_keys_and_vals_that_do_not_match(leaf, keys, vals):
    page = blank(512)
    before = bytes(page.buffer)
    with pytest.raises(ValueError):
        nodes.build(page, PGNO, leaf, keys, vals)
    assert bytes(page.buffer) == before
