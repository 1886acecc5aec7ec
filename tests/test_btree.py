"""BTree against a sorted dict, on an in-memory pager.

512-byte pages hold a handful of entries, so splits, merges, redistributions
and height changes happen within a few dozen operations; near-maximal keys
with long shared prefixes stress the internal-node size bounds.
"""
from __future__ import annotations

import random

import pytest
from fakes import MemoryPager
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sortedcontainers import SortedDict

from helpers import HYPOTHESIS
from pagestore import format as fmt
from pagestore.btree import BTree, max_key_len
from pagestore.errors import CorruptionError

RIDS = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1))


def key_strategy(max_key: int):
    """Short keys, keys sharing long prefixes (long separators) and keys up to the limit."""
    return st.one_of(
        st.binary(max_size=6),
        st.sampled_from([b"", b"a", b"ab", b"b", b"\x00", b"\xff", b"\xff\xff"]),
        st.builds(lambda tail: b"p" * (max_key - 8) + tail, st.binary(max_size=8)),
        st.binary(min_size=max_key - 4, max_size=max_key),
        st.binary(max_size=max_key),
    )


def model_range(model: SortedDict, lo, hi, reverse):
    keys = list(model.irange(lo, hi, inclusive=(True, False), reverse=reverse))
    return [(k, model[k]) for k in keys]


def scan(tree: BTree, lo, hi, reverse):
    """scan drives range_batch the way the store does: resume after the last key of each batch."""
    out, resume = [], None
    while True:
        batch = tree.range_batch(lo, hi, reverse, resume)
        if not batch:
            return out
        out.extend(batch)
        resume = batch[-1][0]


class TreeMachine(RuleBasedStateMachine):
    PAGE_SIZE = 512
    NODE_CACHE = 3  # tiny: nodes are evicted (and dirty ones encoded) all the time

    def __init__(self) -> None:
        super().__init__()
        self.pager = MemoryPager(self.PAGE_SIZE)
        self.tree = BTree(self.pager, node_cache=self.NODE_CACHE)
        self.model: SortedDict = SortedDict()
        self.committed: SortedDict = SortedDict()

    keys = None  # set per subclass

    @initialize(seed=st.integers(0, 2**32), count=st.sampled_from([0, 0, 10, 200, 1500]), long=st.booleans())
    def preload(self, seed, count, long):
        # start from a tree of some height, so that deletes reach merges at every level
        rnd = random.Random(seed)
        max_key = self.tree.max_key
        for i in range(count):
            if long:
                key = b"p" * (max_key - 12) + rnd.randbytes(rnd.randint(0, 12))
            else:
                key = rnd.randbytes(rnd.choice((0, 1, 3, 8, 8, 16, 30, max_key // 4, max_key)))
            rid = (rnd.getrandbits(32), i & 0xFFFF)
            assert self.tree.put(key, rid) == self.model.get(key)
            self.model[key] = rid
        if rnd.random() < 0.5:
            self.commit()

    def existing(self, data):
        return data.draw(st.sampled_from(list(self.model.keys())), label="existing key")

    @rule(data=st.data(), rid=RIDS)
    def put(self, data, rid):
        key = data.draw(self.keys, label="key")
        assert self.tree.put(key, rid) == self.model.get(key)
        self.model[key] = rid

    @rule(data=st.data(), rids=st.lists(RIDS, min_size=1, max_size=120))
    def put_many(self, data, rids):
        for rid in rids:
            key = data.draw(self.keys, label="key")
            assert self.tree.put(key, rid) == self.model.get(key)
            self.model[key] = rid

    @rule(data=st.data(), rid=RIDS)
    def get_then_put(self, data, rid):
        # the store's upsert: a get, maybe other writes (which may change or
        # split the leaf the get found), then a put of the same key
        key = data.draw(self.keys, label="key")
        assert self.tree.get(key) == self.model.get(key)
        for other in data.draw(st.lists(self.keys, max_size=3), label="between"):
            assert self.tree.put(other, rid) == self.model.get(other)
            self.model[other] = rid
        if data.draw(st.booleans(), label="delete between?") and self.model:
            victim = self.existing(data)
            assert self.tree.delete(victim) == self.model.pop(victim)
        assert self.tree.put(key, rid) == self.model.get(key)
        self.model[key] = rid

    @precondition(lambda self: self.model)
    @rule(data=st.data(), rid=RIDS)
    def overwrite(self, data, rid):
        key = self.existing(data)
        assert self.tree.put(key, rid) == self.model[key]
        self.model[key] = rid

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        key = self.existing(data)
        assert self.tree.delete(key) == self.model.pop(key)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), fraction=st.floats(0.2, 1.0))
    def delete_many(self, data, fraction):
        rnd = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
        victims = [k for k in self.model if rnd.random() < fraction]
        for key in victims:
            assert self.tree.delete(key) == self.model.pop(key)

    @rule(data=st.data())
    def delete_missing(self, data):
        key = data.draw(self.keys, label="key")
        if key not in self.model:
            assert self.tree.delete(key) is None

    @rule(data=st.data())
    def get(self, data):
        if self.model and data.draw(st.booleans(), label="existing?"):
            key = self.existing(data)
        else:
            key = data.draw(self.keys, label="key")
        assert self.tree.get(key) == self.model.get(key)

    @rule(data=st.data(), reverse=st.booleans())
    def range_scan(self, data, reverse):
        bound = st.none() | self.keys | (st.sampled_from(list(self.model.keys())) if self.model else st.none())
        lo = data.draw(bound, label="lo")
        hi = data.draw(bound, label="hi")
        assert scan(self.tree, lo, hi, reverse) == model_range(self.model, lo, hi, reverse)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), reverse=st.booleans())
    def range_batch_bounded(self, data, reverse):
        # one call returns at most a leaf's worth, and [] only when nothing is left
        resume = self.existing(data)
        batch = self.tree.range_batch(None, None, reverse, resume)
        rest = model_range(self.model, None, resume, True) if reverse else model_range(self.model, resume, None, False)
        if rest and rest[0][0] == resume:
            rest = rest[1:]
        assert batch == rest[: len(batch)]
        assert bool(batch) == bool(rest)
        assert len(batch) * 12 <= self.PAGE_SIZE

    @rule()
    def flush(self):
        self.tree.flush()

    @rule()
    def flush_and_reset(self):
        # the decoded cache is lost: every node must come back from its page identically
        self.tree.flush()
        self.tree.reset()

    @rule()
    def commit(self):
        self.tree.flush()
        self.pager.commit()
        self.committed = SortedDict(self.model)

    @rule()
    def rollback(self):
        self.pager.rollback()
        self.tree.reset()
        self.model = SortedDict(self.committed)

    @invariant()
    def tree_matches_model(self):
        stats = self.tree.check()
        assert stats["entries"] == len(self.model)
        assert list(self.tree.entries()) == list(self.model.items())
        # no leaked and no shared pages: the tree uses exactly what the pager has handed out
        pages = list(self.tree.pages())
        assert len(pages) == len(set(pages)) == stats["pages"]
        assert set(pages) == self.pager.live_pages()
        assert self.pager.allocated - self.pager.freed == len(pages)


class TreeMachine512(TreeMachine):
    PAGE_SIZE = 512
    keys = key_strategy(max_key_len(512))


class TreeMachine4096(TreeMachine):
    PAGE_SIZE = 4096
    NODE_CACHE = 256
    keys = key_strategy(max_key_len(4096))


_SETTINGS = HYPOTHESIS

TestTree512 = TreeMachine512.TestCase
TestTree512.settings = settings(max_examples=70, stateful_step_count=60, **_SETTINGS)
TestTree4096 = TreeMachine4096.TestCase
TestTree4096.settings = settings(max_examples=30, stateful_step_count=50, **_SETTINGS)


# ---- deterministic tests ----


def test_max_key_len():
    assert max_key_len(512) == 141
    assert max_key_len(4096) == 1336
    for page_size in (512, 1024, 4096, 65536):
        # three largest leaf entries (slot + rid + key) fit in one page
        assert 3 * (fmt.SLOT_SIZE + 6 + max_key_len(page_size)) <= page_size - fmt.HEADER_SIZE


def test_key_limits():
    tree = BTree(MemoryPager(512))
    assert tree.max_key == 141
    assert tree.put(b"k" * 141, (1, 2)) is None
    with pytest.raises(ValueError):
        tree.put(b"k" * 142, (1, 2))
    with pytest.raises(ValueError):
        tree.put(b"k", (1, 2**16))
    with pytest.raises(ValueError):
        tree.put(b"k", (-1, 0))
    with pytest.raises(TypeError):
        tree.put("k", (1, 0))  # type: ignore[arg-type]
    assert tree.put(bytearray(b"ba"), (3, 4)) is None
    assert tree.get(memoryview(b"ba")) == (3, 4)
    tree.check()


def test_empty_tree():
    pager = MemoryPager(512)
    tree = BTree(pager)
    assert tree.get(b"x") is None
    assert tree.delete(b"x") is None
    assert tree.range_batch(None, None) == []
    assert list(tree.entries()) == [] and list(tree.pages()) == []
    assert tree.check()["pages"] == 0
    assert pager.meta.root == 0 and pager.meta.tree_height == 0


def test_grow_and_shrink_back_to_one_leaf():
    pager = MemoryPager(512)
    tree = BTree(pager, node_cache=64)
    rnd = random.Random(1234)
    keys = set()
    while len(keys) < 20_000:
        n = rnd.choice((0, 1, 2, 4, 8, 8, 12, 16, 24, 40, 141))
        keys.add(rnd.randbytes(n))
    keys = list(keys)
    rnd.shuffle(keys)
    heights = []
    for i, key in enumerate(keys):
        assert tree.put(key, (i, i & 0xFFFF)) is None
        if i % 5000 == 4999:
            tree.flush()
            heights.append(tree.check()["height"])
    stats = tree.check()
    assert stats["entries"] == len(keys) and stats["height"] >= 4
    assert heights == sorted(heights)
    rnd.shuffle(keys)
    for i, key in enumerate(keys):
        assert tree.delete(key) is not None
        if i % 5000 == 4999:
            heights.append(tree.check()["height"])
    tree.flush()
    stats = tree.check()
    assert stats == {"pages": 1, "leaves": 1, "internal": 0, "entries": 0, "height": 1, "used_bytes": 0}
    assert heights[-1] < max(heights)
    # every page but the empty root leaf went back to the pager
    assert pager.live_pages() == {pager.meta.root}
    assert pager.allocated - pager.freed == 1
    assert tree.range_batch(None, None) == []


def test_long_shared_prefixes_keep_internal_nodes_valid():
    # separators cannot be shortened below ~126 bytes: internal nodes hold only three or four
    pager = MemoryPager(512)
    tree = BTree(pager, node_cache=8)
    rnd = random.Random(7)
    prefix = b"q" * 125
    keys = list({prefix + rnd.randbytes(rnd.randint(0, 16)) for _ in range(3000)})
    rids = {key: (i, 0) for i, key in enumerate(keys)}
    for i, key in enumerate(keys):
        tree.put(key, rids[key])
        if i % 250 == 0:
            tree.check()
    assert tree.check()["height"] >= 5
    rnd.shuffle(keys)
    for i, key in enumerate(keys):
        assert tree.delete(key) == rids[key]
        if i % 250 == 0:
            tree.check()
    assert tree.check()["pages"] == 1
    assert pager.live_pages() == {pager.meta.root}


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_sequential_load_packs_leaves(order):
    pager = MemoryPager(4096)
    tree = BTree(pager)
    keys = [b"user:%08d" % i for i in range(20_000)]
    if order == "descending":
        keys.reverse()
    for i, key in enumerate(keys):
        tree.put(key, (i, 0))
    stats = tree.check()
    fill = stats["used_bytes"] / (stats["pages"] * (4096 - fmt.HEADER_SIZE))
    assert fill > 0.5
    assert scan(tree, b"user:00001000", b"user:00001010", False) == sorted(
        (k, (i, 0)) for i, k in enumerate(keys) if b"user:00001000" <= k < b"user:00001010"
    )


def test_rollback_then_reset_returns_to_committed_tree():
    pager = MemoryPager(512)
    tree = BTree(pager)
    for i in range(300):
        tree.put(b"%05d" % i, (i, 0))
    tree.flush()
    pager.commit()
    committed = list(tree.entries())
    for i in range(300, 2000):
        tree.put(b"%05d" % i, (i, 1))
    for i in range(0, 300, 2):
        tree.delete(b"%05d" % i)
    pager.rollback()
    tree.reset()
    assert list(tree.entries()) == committed
    assert set(tree.pages()) == pager.live_pages()
    tree.check()


def test_node_pages_match_the_documented_format():
    # the byte layout of docs/format.md "B+tree node pages", pinned
    pager = MemoryPager(512)
    tree = BTree(pager)
    entries = {b"": (1, 2), b"apple": (0x01020304, 0xBEEF), b"apricot": (7, 0)}
    for key, rid in entries.items():
        tree.put(key, rid)
    tree.flush()
    root = pager.read(pager.meta.root)
    assert root.page_type == fmt.PAGE_LEAF and pager.meta.tree_height == 1
    assert [r for _, r in root.items()] == [
        (p).to_bytes(4, "little") + (s).to_bytes(2, "little") + k for k, (p, s) in sorted(entries.items())
    ]
    assert root.slots() == [0, 1, 2]
    for i in range(40):
        tree.put(b"k%03d" % i + b"." * 20, (i, i))
    tree.flush()
    root = pager.read(pager.meta.root)
    assert root.page_type == fmt.PAGE_INTERNAL and pager.meta.tree_height == 2
    records = [r for _, r in root.items()]
    node = tree.nodes.peek(pager.meta.root)
    assert records[0] == node.vals[0].to_bytes(4, "little")
    assert records[1:] == [c.to_bytes(4, "little") + k for c, k in zip(node.vals[1:], node.keys)]
    # a leaf separator is the shortest prefix that still separates the two leaves
    left, right = tree.nodes.peek(node.vals[0]), tree.nodes.peek(node.vals[1])
    sep = node.keys[0]
    assert left.keys[-1] < sep <= right.keys[0] and left.keys[-1] >= sep[:-1]


# ---- check() must be able to fail ----


def _built_tree(n=600):
    pager = MemoryPager(512)
    tree = BTree(pager)
    order = list(range(n))
    random.Random(5).shuffle(order)
    for i in order:
        tree.put(b"key%05d" % i, (i, 0))
    tree.flush()
    assert tree.check()["height"] >= 3
    return pager, tree


def _node_pages(tree, leaf):
    return [p for p in tree.pages() if (tree.nodes.peek(p).leaf == leaf)]


def _rewrite(pager, pgno, records, page_type):
    page = pager.write(pgno)
    page.init(pgno, page_type)
    page.append_many(records)


def test_check_catches_swapped_keys():
    pager, tree = _built_tree()
    victim = _node_pages(tree, leaf=True)[3]
    records = [r for _, r in pager.read(victim).items()]
    records[1], records[2] = records[2], records[1]
    _rewrite(pager, victim, records, fmt.PAGE_LEAF)
    tree.reset()
    with pytest.raises(CorruptionError) as err:
        tree.check()
    assert err.value.pgno == victim
    # an ordinary lookup through that leaf refuses it too, rather than answering wrongly
    tree.reset()
    with pytest.raises(CorruptionError) as err:
        tree.get(records[1][6:])
    assert err.value.pgno == victim


@pytest.mark.parametrize("stamp", [fmt.PAGE_HEAP, fmt.PAGE_LEAF, fmt.PAGE_INTERNAL])
def test_check_catches_wrong_page_type(stamp):
    pager, tree = _built_tree()
    # an internal node stamped as a heap page or a leaf; a leaf stamped as an internal node
    victim = _node_pages(tree, leaf=stamp == fmt.PAGE_INTERNAL)[1]
    pager.raw(victim)[fmt.OFF_TYPE] = stamp
    tree.reset()
    with pytest.raises(CorruptionError) as err:
        tree.check()
    assert err.value.pgno == victim


def test_check_catches_underfull_leaf():
    pager, tree = _built_tree()
    victim = _node_pages(tree, leaf=True)[2]
    records = [r for _, r in pager.read(victim).items()]
    _rewrite(pager, victim, records[:1], fmt.PAGE_LEAF)
    tree.reset()
    with pytest.raises(CorruptionError, match="underfull") as err:
        tree.check()
    assert err.value.pgno == victim


def test_check_catches_key_outside_its_separators():
    pager, tree = _built_tree()
    leaves = _node_pages(tree, leaf=True)
    victim = leaves[2]
    records = [r for _, r in pager.read(victim).items()]
    records[-1] = records[-1][:6] + b"zzz"  # still ascending in the leaf, but past the next separator
    _rewrite(pager, victim, records, fmt.PAGE_LEAF)
    tree.reset()
    with pytest.raises(CorruptionError, match="separator") as err:
        tree.check()
    assert err.value.pgno == victim


def test_check_catches_page_reached_twice():
    pager, tree = _built_tree()
    parent = _node_pages(tree, leaf=False)[-1]
    records = [r for _, r in pager.read(parent).items()]
    # child 1 now points at child 0's page as well
    records[1] = records[0] + records[1][4:]
    _rewrite(pager, parent, records, fmt.PAGE_INTERNAL)
    tree.reset()
    with pytest.raises(CorruptionError) as err:
        tree.check()
    assert err.value.pgno in {parent} | set(_child_pgnos(records))


def _child_pgnos(records):
    return [int.from_bytes(r[:4], "little") for r in records]


def test_check_catches_stale_cache():
    # a decoded node that no longer matches its page is a bug in the tree; check() says so
    pager, tree = _built_tree()
    leaf = _node_pages(tree, leaf=True)[0]
    tree.nodes.load(leaf).vals[0] = (99, 99)
    tree.nodes.dirty.discard(leaf)  # lose the write, as a missing dirty mark would
    with pytest.raises(CorruptionError, match="cached") as err:
        tree.check()
    assert err.value.pgno == leaf



def test_node_cache_check_catches_bad_books():
    pager, tree = _built_tree()
    tree.nodes.weight += 1
    with pytest.raises(AssertionError, match="weight"):
        tree.check()
    tree.nodes.weight -= 1
    entry = tree.nodes.entry(pager.meta.root)
    entry.leaf = not entry.leaf  # an entry whose kind disagrees with its node
    with pytest.raises(AssertionError):
        tree.check()


def test_lookup_then_put_starts_in_the_leaf_only_while_it_is_unchanged():
    """lookup remembers the leaf it searched: a put of the same key starts there with no descent,
    but never after anything changed that leaf (a put of another key, a delete, a reset)."""
    pager = MemoryPager(512)
    tree = BTree(pager, node_cache=1000)
    keys = [b"k%05d" % i for i in range(0, 4000, 2)]
    for i, k in enumerate(keys):
        tree.put(k, (i + 1, 0))
    tree.flush()  # leaves raw again, as after a commit (lookup remembers a raw leaf)
    assert pager.meta.tree_height >= 3
    descents = []
    descend = tree._descend

    def counted(*args, **kwargs):
        descents.append(args[0])
        return descend(*args, **kwargs)

    tree._descend = counted  # type: ignore[method-assign]
    assert tree.lookup(keys[100]) == (101, 0)
    descents.clear()
    assert tree.put_valid(keys[100], (9000, 1)) == (101, 0)
    assert descents == []  # started in the leaf lookup searched
    # the same leaf changed between lookup and put: the put descends and lands right
    mates = [k for k in keys[90:111] if k != keys[100] and descend(k) == descend(keys[100])]
    assert len(mates) >= 2
    for between in (lambda: tree.put(mates[0] + b"+", (7, 7)), lambda: tree.delete(mates[1]), tree.reset):
        assert tree.lookup(keys[100]) is not None
        between()
        descents.clear()
        tree.put_valid(keys[100], (9001, 2))
        assert descents == [keys[100]]
        assert tree.get(keys[100]) == (9001, 2)
    # a put of another key never takes the hint
    tree.lookup(keys[5])
    descents.clear()
    assert tree.put_valid(b"k00011", (5, 5)) is None
    assert descents == [b"k00011"] and tree.get(b"k00011") == (5, 5)
    tree.check()


@pytest.mark.parametrize("node_cache", [2, 256])
def test_get_sorted_equals_get_over_a_deep_tree(node_cache):
    """get_sorted (get_many's tree part) descends once a leaf, bounding the leaf's run by the
    nearest separator to its right; it must answer as a get of each key does, for present,
    absent and repeated keys, whatever the node cache holds (raw, decoded or evicted nodes)."""
    heights = set()
    for count in (10, 150, 3000):  # a root leaf, one internal level (the root is the leaves' parent), more
        pager = MemoryPager(512)
        tree = BTree(pager, node_cache=node_cache)
        rng = random.Random(3)
        present = {rng.randbytes(rng.randint(1, 30)): (rng.randrange(1, 1 << 32), rng.randrange(1 << 16))
                   for _ in range(count)}
        for k, rid in present.items():
            tree.put(k, rid)
        tree.flush()
        heights.add(pager.meta.tree_height)
        pool = list(present) + [rng.randbytes(rng.randint(1, 30)) for _ in range(500)]
        for size in (1, 7, 300, 4000):
            batch = sorted(rng.choice(pool) for _ in range(size))
            assert tree.get_sorted(batch) == [tree.get(k) for k in batch] == [present.get(k) for k in batch]
        tree.check()
    assert {1, 2} < heights and max(heights) >= 3


def test_a_hinted_put_fills_a_leaf_exactly_then_the_next_splits_it():
    """lookup then put_valid (the store's insert: no descent, no second search, the entry put
    in place in the leaf's frame at the index lookup found): a key that takes a leaf's last
    byte stays in place, raw; the next key into that leaf splits it; every key stays found."""
    from pagestore.page import SlottedPage

    pager = MemoryPager(512)
    tree = BTree(pager, node_cache=1000)
    keys = [b"k%05d" % i for i in range(0, 3000, 2)]
    for i, k in enumerate(keys):
        tree.put(k, (i + 1, 0))
    tree.flush()  # leaves raw, as after a commit
    want = {k: (i + 1, 0) for i, k in enumerate(keys)}
    for at in range(100, 1400, 7):  # a leaf with room for a key of a few bytes more than its neighbour's
        pgno = tree._descend(keys[at])
        raw = tree.nodes.entry(pgno).raw
        assert raw is not None
        room = SlottedPage(bytearray(raw), validate=False).max_insert
        fill = room - 6 - len(keys[at])  # a leaf entry: the rid's 6 bytes, then the key
        if fill >= 2 and tree._descend(keys[at + 1]) == pgno:
            break
    else:
        pytest.fail("no leaf with room for the test")
    exact = keys[at] + b"\x00" * fill
    assert keys[at] < exact < keys[at + 1]
    assert tree.lookup(exact) is None
    assert tree.put_valid(exact, (77, 7)) is None
    entry = tree.nodes.entry(pgno)
    assert entry.raw is not None  # in place: not decoded, not split
    assert SlottedPage(bytearray(entry.raw), validate=False).max_insert < 6 + 1
    want[exact] = (77, 7)
    assert tree.get(exact) == (77, 7)
    nxt = exact + b"\x01"
    assert tree.lookup(nxt) is None
    height, pages = pager.meta.tree_height, tree.check()["leaves"]
    assert tree.put_valid(nxt, (78, 8)) is None  # the leaf is full: this one splits it
    want[nxt] = (78, 8)
    assert tree.check()["leaves"] == pages + 1 and pager.meta.tree_height == height
    # an update through the hint (a found key whose record moved) sets the rid in place
    assert tree.lookup(exact) == (77, 7)
    assert tree.put_valid(exact, (79, 9)) == (77, 7)
    want[exact] = (79, 9)
    assert dict(tree.entries()) == want
    tree.check()


def test_a_delete_that_underfills_a_raw_leaf_rebalances_it():
    """delete's common case changes a raw leaf in place with no path; a removal that leaves the
    leaf under a quarter full then descends again for the path and merges or redistributes it,
    as the general way does: the tree stays valid and every other key stays found."""
    pager = MemoryPager(512)
    tree = BTree(pager, node_cache=1000)
    keys = [b"k%05d" % i for i in range(3000)]
    for i, k in enumerate(keys):
        tree.put(k, (i + 1, 0))
    want = {k: (i + 1, 0) for i, k in enumerate(keys)}
    rnd = random.Random(7)
    order = keys[:]
    rnd.shuffle(order)
    underfilled = 0
    for n, k in enumerate(order[:2500]):
        if n % 50 == 0:
            tree.flush()  # leaves raw again, as after a commit
        pgno = tree._descend(k)
        entry = tree.nodes.entry(pgno)
        was_raw = entry.raw is not None
        leaves = tree.check()["leaves"] if was_raw and n % 10 == 0 else None
        assert tree.delete(k) == want.pop(k)
        if leaves is not None and tree.check()["leaves"] < leaves:
            underfilled += 1
        assert tree.get(k) is None
    assert pager.meta.tree_height >= 2 and underfilled >= 3
    assert dict(tree.entries()) == want
    tree.check()


def test_gets_between_splits_read_dirty_internal_nodes_then_their_images():
    """A get descends a clean internal node through its page image and a dirty one through its
    lists: gets between the puts of one transaction (splits changing internal nodes not yet
    built) and after the flush (images again) answer as the model does."""
    pager = MemoryPager(512)
    tree = BTree(pager, node_cache=4096)
    rng = random.Random(11)
    model = {}
    for round_ in range(6):
        for _ in range(400):
            k = rng.randbytes(rng.randint(1, 24))
            model[k] = (rng.randrange(1, 1 << 32), rng.randrange(1 << 16))
            tree.put(k, model[k])
            probe = rng.choice(list(model))
            assert tree.get(probe) == model[probe]
        tree.flush()
        entries = tree.nodes.lru.values()
        images = [e for e in entries if e.image is not None]
        assert images and all(not e.leaf for e in images)
        assert len(images) == sum(1 for e in entries if e.node is not None and not e.leaf)
        for k in rng.sample(list(model), 300):
            assert tree.get(k) == model[k]
        assert tree.get(b"\xff" * 30) is None
        tree.check()
    assert pager.meta.tree_height >= 3
