"""Codecs (pagestore/codecs.py) and the typed store: order, round trips, views, bulk operations.

The key codecs are checked against a model of the documented order written
independently of the encoder (``model_key``): ``a < b`` if and only if
``encode(a) < encode(b)``. The typed store runs in a state machine against a
SortedDict ordered by that model.
"""
from __future__ import annotations

import math
import os
import shutil
import struct
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sortedcontainers import SortedDict

import pagestore
from pagestore import codecs
from pagestore.store import Store

np = pytest.importorskip("numpy")

# ---- the documented order, modelled ----


def float_key(x: float) -> int:
    """float_key: IEEE 754 total order as a signed int (-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN)."""
    (i,) = struct.unpack(">q", struct.pack(">d", x))
    return i ^ 0x7FFFFFFFFFFFFFFF if i < 0 else i


def elem_key(x):
    """elem_key: one tuple element's place in the documented cross-type order
    None < bytes < str < tuple < int < float < False < True."""
    if x is None:
        return (0,)
    if isinstance(x, bool):
        return (6, x)
    if isinstance(x, int):
        return (4, x)
    if isinstance(x, float):
        return (5, float_key(x))
    if isinstance(x, bytes):
        return (1, x)
    if isinstance(x, str):
        return (2, x)  # Python compares str by code point, as UTF-8 bytes compare
    assert isinstance(x, tuple)
    return (3, tuple(elem_key(e) for e in x))


def model_key(t):
    return tuple(elem_key(e) for e in t)


def same(a, b) -> bool:
    """same: equal under the encoding's notion (types kept, floats by their bits)."""
    return type(a) is type(b) and model_key((a,)) == model_key((b,))


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**2100), 2**2100)
    | FLOATS
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from([b"", b"\x00", b"\x00\xff", b"a\x00", "", "\x00", "user", "item", 0, -1, 255, 256, -256])
)
ELEMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)
TUPLES = st.lists(ELEMENTS, max_size=4).map(tuple)
BIG_INTS = st.integers() | st.integers(-(2**4000), 2**4000) | st.sampled_from(
    [0, 1, -1, 2**64, -(2**64), 2**64 - 1, 2 ** (8 * 254), 2 ** (8 * 255) - 1, 2 ** (8 * 255), -(2 ** (8 * 255)), -(2 ** (8 * 255)) + 1]
)
TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)  # surrogates too


# ---- key codec properties ----


@given(BIG_INTS, BIG_INTS)
@settings(max_examples=400)
def test_int_order_and_round_trip(a, b):
    enc = codecs.KEY_CODECS["int"].encode
    assert (a < b) == (enc(a) < enc(b))
    assert (a == b) == (enc(a) == enc(b))
    assert codecs.decode_int(enc(a)) == a


@given(TEXT, TEXT)
@settings(max_examples=400)
def test_str_order_and_round_trip(a, b):
    c = codecs.KEY_CODECS["str"]
    assert (a < b) == (c.encode(a) < c.encode(b))
    assert c.decode(c.encode(a)) == a
    assert c.encode(a + b).startswith(c.encode(a))  # prefix scans work bytewise


@given(st.binary(), st.binary())
def test_bytes_order_and_round_trip(a, b):
    c = codecs.KEY_CODECS["bytes"]
    assert (a < b) == (c.encode(a) < c.encode(b))
    assert c.decode(c.encode(a)) == a


@given(TUPLES, TUPLES)
@settings(max_examples=500)
def test_tuple_order_and_round_trip(a, b):
    ea, eb = codecs.encode_tuple(a), codecs.encode_tuple(b)
    assert (model_key(a) < model_key(b)) == (ea < eb)
    assert (model_key(a) == model_key(b)) == (ea == eb)
    back = codecs.decode_tuple(ea)
    assert len(back) == len(a) and all(same(x, y) for x, y in zip(back, a))


@given(st.lists(st.tuples(st.text(max_size=4), st.integers(), st.binary(max_size=4)), min_size=2, max_size=8))
def test_tuple_order_is_pythons_for_one_schema(rows):
    """For tuples of one schema (no floats or bools to mix), the encoding's order is Python's own."""
    assert sorted(rows) == sorted(rows, key=codecs.encode_tuple)


@given(TUPLES, st.data())
@settings(max_examples=400)
def test_tuple_prefix_property(t, data):
    """t's leading elements are p exactly when encode(t) lies in p's prefix range."""
    if data.draw(st.booleans()):
        p = t[: data.draw(st.integers(0, len(t)))]
    else:
        p = data.draw(TUPLES)
    leads = len(t) >= len(p) and model_key(t[: len(p)]) == model_key(p)
    lo, hi = codecs.tuple_prefix_range(p)
    assert (lo <= codecs.encode_tuple(t) < hi) == leads


def test_tuple_prefix_is_not_a_byte_prefix():
    """Why the prefix range ends at encode(p) + FF: an escaped zero continues a terminator."""
    for p, other in [((b"",), (b"\x00",)), (((),), ((None,),)), (("",), ("\x00",))]:
        assert codecs.encode_tuple(other).startswith(codecs.encode_tuple(p))
        lo, hi = codecs.tuple_prefix_range(p)
        assert not lo <= codecs.encode_tuple(other) < hi


@given(FLOATS, FLOATS)
def test_floats_follow_ieee_total_order(a, b):
    ea, eb = codecs.encode_tuple((a,)), codecs.encode_tuple((b,))
    assert (float_key(a) < float_key(b)) == (ea < eb)
    if not (math.isnan(a) or math.isnan(b) or a == b == 0.0):
        assert (a < b) == (ea < eb)


def test_documented_examples():
    enc = codecs.encode_tuple
    assert enc(("user", 2)) < enc(("user", 10))
    assert enc((-0.0,)) < enc((0.0,))
    assert enc((math.inf,)) < enc((math.nan,))
    assert enc((-math.nan,)) < enc((-math.inf,))
    # None < bytes < str < tuple < int < float < False < True
    order = [None, b"", "", (), -(10**30), 0, -math.inf, False, True]
    assert [enc((x,)) for x in order] == sorted(enc((x,)) for x in order)
    # Exact bytes (docs/format.md KEY ENCODINGS), the FoundationDB tuple layer's for these types.
    assert enc((None, b"a\x00", "é", 0, 1, -1, 256, 1.0, True, (None,))) == (
        b"\x00" + b"\x01a\x00\xff\x00" + b"\x02\xc3\xa9\x00" + b"\x14" + b"\x15\x01" + b"\x13\xfe"
        + b"\x16\x01\x00" + b"\x21\xbf\xf0\x00\x00\x00\x00\x00\x00" + b"\x27" + b"\x05\x00\xff\x00"
    )
    assert codecs.encode_int(2**64) == b"\x1d\x09\x01" + bytes(8)
    assert codecs.encode_int(-(2**64)) == b"\x0b\xf6\xfe" + b"\xff" * 8


@pytest.mark.parametrize("raw", [b"\x03", b"\x01abc", b"\x15", b"\x05\x14", b"\x21\x00", b"\x1d\xff\x00", b"\x02\xff\x00"])
def test_bad_tuple_bytes_raise_codec_error(raw):
    with pytest.raises(codecs.CodecError):
        codecs.decode_tuple(raw)


# ---- value codecs ----


@pytest.mark.parametrize(
    "name, value",
    [
        ("bytes", b"\x00\xff"),
        ("str", "héllo \U0001f600"),
        ("json", {"a": [1, 2.5, None, True, "x"], "b": {}}),
        ("pickle", {"set": {1, 2}, "tuple": (1, b"x"), "complex": 1j}),
    ],
)
def test_value_codec_round_trip(name, value):
    c = codecs.VALUE_CODECS[name]
    assert c.decode(c.encode(value)) == value


ARRAYS = [
    np.arange(10, dtype=np.int64),
    np.array(3.5),  # 0-d
    np.array(7, dtype=">i2"),  # 0-d, big-endian
    np.zeros((0,), dtype=np.float32),  # empty
    np.zeros((3, 0, 2), dtype=np.uint8),  # empty, 3-d
    np.arange(24, dtype=">f8").reshape(2, 3, 4),  # big-endian
    np.arange(24, dtype="<u4").reshape(4, 6)[:, ::2],  # not contiguous
    np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
    np.array([True, False, True]),
    np.array(["ab", "cde"], dtype="U3"),
    np.array([b"ab", b"c"], dtype="S2"),
    np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]"),
    np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8"), ("c", "S3")]),  # structured
    np.ones((2, 2), dtype=np.float16),
]


@pytest.mark.parametrize("arr", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_numpy_round_trip(arr):
    c = codecs.VALUE_CODECS["numpy"]
    raw = c.encode(arr)
    back = c.decode(raw)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)
    assert not back.flags.writeable
    if back.size and back.dtype.itemsize:
        # np.frombuffer over the stored bytes themselves: no second copy.
        base = back
        while isinstance(base, np.ndarray):
            base = base.base
        assert base is raw
        assert back.flags.aligned


def test_numpy_refuses_objects_and_non_arrays():
    c = codecs.VALUE_CODECS["numpy"]
    with pytest.raises(TypeError, match="values='numpy'.*pickle"):
        c.encode(np.array([object()], dtype=object))
    with pytest.raises(TypeError, match="values='numpy' store: value must be a numpy array, got list"):
        c.encode([1, 2])
    assert c.decode(c.encode(np.float32(2.5))).shape == ()  # a numpy scalar is a 0-d array
    with pytest.raises(codecs.CodecError):
        c.decode(b"\x01\x01\x00\x00")


def test_codecs_do_not_import_numpy():
    """numpy is imported only for the numpy codec or numpy input."""
    import subprocess
    import sys

    code = (
        "import sys, pagestore, tempfile, os\n"
        "d = tempfile.mkdtemp()\n"
        "db = pagestore.open(os.path.join(d, 'x.ps'), keys='tuple', values='json')\n"
        "db[('a', 1)] = [1]; db.get_many([('a', 1)]); db.put_many({('b',): 2}); list(db.items())\n"
        "db.close()\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the typed store against a SortedDict ----

KEY_STRATEGIES = {
    "int": st.integers(-(2**70), 2**70) | st.integers(-300, 300),
    "str": st.text(max_size=6) | st.sampled_from(["", "a", "ab", "b", "user", "user:1", "\x00", "\uffff"]),
    "tuple": st.lists(
        st.sampled_from(["user", "item", ""]) | st.integers(-1000, 1000) | st.none() | st.booleans()
        | st.floats(allow_nan=False, width=32) | st.binary(max_size=3) | st.tuples(st.integers(0, 3)),
        max_size=3,
    ).map(tuple),
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
) | st.text(min_size=300, max_size=700)  # overflow chains on 512-byte pages


class Model:
    """Model is the plain ordered map the typed store is checked against: a SortedDict
    from each key's place in the documented order (``mk(key)``) to ``(key, value)``.

    Keyed by the order, not by the key itself: Python holds (False,), (0,),
    (0.0,) and (-0.0,) equal, the encoding holds them four different keys.
    """

    def __init__(self, mk, data=None) -> None:
        self.mk = mk
        self.d = SortedDict(data or {})

    def copy(self) -> "Model":
        return Model(self.mk, self.d)

    def __setitem__(self, k, v) -> None:
        self.d[self.mk(k)] = (k, v)

    def __delitem__(self, k) -> None:
        del self.d[self.mk(k)]

    def __contains__(self, k) -> bool:
        return self.mk(k) in self.d

    def __len__(self) -> int:
        return len(self.d)

    def get(self, k, default=None):
        return self.d.get(self.mk(k), (None, default))[1]

    def keys(self):
        return [k for k, _ in self.d.values()]

    def items(self):
        return list(self.d.values())

    def irange(self, lo, hi, reverse=False):
        lo = None if lo is None else self.mk(lo)
        hi = None if hi is None else self.mk(hi)
        return [self.d[m] for m in self.d.irange(lo, hi, inclusive=(True, False), reverse=reverse)]


class TypedStoreMachine(RuleBasedStateMachine):
    codec = "tuple"
    page_size = 512

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="ps-codecs-")
        self.path = os.path.join(self.dir, "t.ps")
        self.db = self._open(keys=self.codec, values="json")
        self.mk = model_key if self.codec == "tuple" else (lambda k: k)
        self.model = Model(self.mk)

    def _open(self, **codec_args):
        return Store(self.path, page_size=self.page_size, cache_size=self.page_size * 40, sync=False, wal_limit=64 * 1024, **codec_args)

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def keys(self):
        return KEY_STRATEGIES[self.codec]

    def some_keys(self):
        return self.keys() | st.sampled_from(self.model.keys()) if len(self.model) else self.keys()

    def same_items(self, got, want) -> bool:
        got = list(got)
        return [self.mk(k) for k, _ in got] == [self.mk(k) for k, _ in want] and [v for _, v in got] == [v for _, v in want]

    @rule(data=st.data(), v=JSON_VALUES)
    def put(self, data, v):
        k = data.draw(self.keys())
        self.db[k] = v
        self.model[k] = v

    @precondition(lambda self: len(self.model))
    @rule(data=st.data())
    def delete(self, data):
        k = data.draw(st.sampled_from(self.model.keys()))
        del self.db[k]
        del self.model[k]

    @rule(data=st.data())
    def get(self, data):
        k = data.draw(self.some_keys())
        assert self.db.get(k, "missing") == self.model.get(k, "missing")
        assert (k in self.db) == (k in self.model)

    @rule(data=st.data(), reverse=st.booleans())
    def scan(self, data, reverse):
        lo = data.draw(st.none() | self.some_keys())
        hi = data.draw(st.none() | self.some_keys())
        want = self.model.irange(lo, hi, reverse)
        view = self.db.items(lo, hi, reverse=reverse)
        assert self.same_items(view, want)
        assert self.same_items(view, want)  # a view iterates again
        assert len(self.db.keys(lo, hi)) == len(want)
        assert [self.mk(k) for k in reversed(self.db.keys(lo, hi, reverse=reverse))] == [self.mk(k) for k, _ in want[::-1]]

    @rule(data=st.data(), reverse=st.booleans())
    def prefix_scan(self, data, reverse):
        if self.codec == "int":
            with pytest.raises(ValueError, match="keys='int'"):
                self.db.items(prefix=1)
            return
        if len(self.model) and data.draw(st.booleans()):
            k = data.draw(st.sampled_from(self.model.keys()))
            p = k[: data.draw(st.integers(0, len(k)))]
        else:
            p = data.draw(self.keys())
        if self.codec == "tuple":
            want = [k for k in self.model.keys() if len(k) >= len(p) and model_key(k[: len(p)]) == model_key(p)]
        else:
            want = [k for k in self.model.keys() if k.startswith(p)]
        if reverse:
            want.reverse()
        assert [self.mk(k) for k in self.db.keys(prefix=p, reverse=reverse)] == [self.mk(k) for k in want]

    @rule(data=st.data())
    def get_many(self, data):
        ks = data.draw(st.lists(self.some_keys(), max_size=20))
        assert self.db.get_many(ks, default="missing") == [self.model.get(k, "missing") for k in ks]

    @rule(data=st.data())
    def put_many(self, data):
        items = data.draw(st.lists(st.tuples(self.keys(), JSON_VALUES), max_size=12))
        self.db.put_many(items)
        for k, v in items:
            self.model[k] = v

    @rule(data=st.data(), fail=st.booleans())
    def transaction(self, data, fail):
        puts = data.draw(st.lists(st.tuples(self.keys(), JSON_VALUES), max_size=6))
        staged = self.model.copy()
        try:
            with self.db.transaction() as txn:
                for k, v in puts:
                    txn[k] = v
                    staged[k] = v
                    assert txn[k] == v
                if len(staged):
                    victim = staged.keys()[0]
                    del txn[victim]
                    del staged[victim]
                assert len(txn) == len(staged)
                assert self.same_items(txn.items(), staged.items())
                assert self.same_items(reversed(txn.items()), staged.items()[::-1])
                if fail:
                    raise ZeroDivisionError
        except ZeroDivisionError:
            pass
        if not fail:
            self.model = staged

    @rule()
    def first_last(self):
        if not len(self.model):
            with pytest.raises(KeyError):
                self.db.first()
            with pytest.raises(KeyError):
                self.db.last()
        else:
            items = self.model.items()
            assert self.same_items([self.db.first(), self.db.last()], [items[0], items[-1]])

    @rule()
    def reopen(self):
        self.db.close()
        self.db = self._open()  # the recorded codecs
        assert self.db.key_codec.name == self.codec and self.db.value_codec.name == "json"

    @rule()
    def compact(self):
        self.db.compact()
        assert self.db._pager.meta.key_codec == self.codec

    @invariant()
    def consistent(self):
        assert len(self.db) == len(self.model)
        self.db.check()


TypedStoreMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestTupleStore = TypedStoreMachine.TestCase


class IntStoreMachine(TypedStoreMachine):
    codec = "int"


class StrStoreMachine(TypedStoreMachine):
    codec = "str"


IntStoreMachine.TestCase.settings = StrStoreMachine.TestCase.settings = settings(
    max_examples=12, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestIntStore = IntStoreMachine.TestCase
TestStrStore = StrStoreMachine.TestCase


# ---- wrong types, recorded codecs ----


WRONG = [
    ("int", "7", "keys='int' store: key must be int, got str"),
    ("int", True, "keys='int' store: key must be int, got bool"),
    ("int", 1.0, "keys='int' store: key must be int, got float"),
    ("str", b"x", "keys='str' store: key must be str, got bytes"),
    ("tuple", ["a"], "keys='tuple' store: key must be tuple, got list"),
    ("tuple", ("a", {1}), "keys='tuple' store: tuple elements must be .* got set"),
    ("bytes", "x", "bytes-like"),
]


@pytest.mark.parametrize("keys, bad, message", WRONG)
def test_wrong_key_types_are_refused_and_nothing_is_written(tmp_path, keys, bad, message):
    good = {"int": 1, "str": "a", "tuple": ("a", 1), "bytes": b"a"}[keys]
    with pagestore.open(tmp_path / "db", keys=keys, values="json") as db:
        db[good] = "kept"
        lsn = db._pager.meta.lsn
        with pytest.raises(TypeError, match=message):
            db[bad] = 1
        with pytest.raises(TypeError, match=message):
            db.put_many([(good, "changed"), (bad, 1)])
        with pytest.raises(TypeError, match=message):
            db.get_many([good, bad])
        with pytest.raises(TypeError, match=message):
            with db.transaction() as txn:
                txn[good] = "changed too"
                txn[bad] = 1
        with pytest.raises(TypeError, match=message):
            db.items(start=bad)
        assert db._pager.meta.lsn == lsn  # no commit happened
        assert dict(db.items()) == {good: "kept"}
        db.check()


def test_wrong_value_types_are_refused(tmp_path):
    with pagestore.open(tmp_path / "a", values="str") as db:
        with pytest.raises(TypeError, match="values='str' store: value must be str, got int"):
            db[b"k"] = 1
    with pagestore.open(tmp_path / "b", values="json") as db:
        with pytest.raises(TypeError, match="values='json' store: value is not JSON"):
            db[b"k"] = {1, 2}
        with pytest.raises(ValueError, match="values='json'"):
            db[b"k"] = math.nan
        assert len(db) == 0


def test_too_deeply_nested_values_and_keys_are_refused_by_name(tmp_path):
    # A value or key nested past Python's recursion limit raised a bare RecursionError
    # naming no codec; the documented refusal is TypeError/ValueError naming it.
    deep_list: list = []
    deep_tuple: tuple = ()
    for _ in range(sys.getrecursionlimit() + 10):
        deep_list = [deep_list]
        deep_tuple = (deep_tuple,)
    with pagestore.open(tmp_path / "db", keys="tuple", values="json") as db:
        with pytest.raises(ValueError, match="values='json' store: value is nested too deeply"):
            db[("k",)] = deep_list
        with pytest.raises(ValueError, match="keys='tuple' store: key is nested too deeply"):
            db[deep_tuple] = 1
        with pytest.raises(ValueError, match="keys='tuple'"):
            db.update([(("a",), 1), (deep_tuple, 2)])
        assert len(db) == 0
        db[("k",)] = [[[1]]]
        assert db[("k",)] == [[[1]]]


def test_header_records_codecs_and_reopen_checks_them(tmp_path):
    path = tmp_path / "db"
    with pagestore.open(path, keys="tuple", values="json") as db:
        db[("a",)] = [1]
    with open(path, "rb") as f:
        head = f.read(512)
    assert head[96:112].rstrip(b"\0") == b"tuple" and head[112:128].rstrip(b"\0") == b"json"
    with pagestore.open(path) as db:  # the recorded ones
        assert db.key_codec.name == "tuple" and db.value_codec.name == "json"
        assert db[("a",)] == [1]
    with pytest.raises(ValueError, match="store was created with keys='tuple'"):
        pagestore.open(path, keys="int")
    with pytest.raises(ValueError, match="store was created with values='json'"):
        pagestore.open(path, values="bytes")
    with pytest.raises(ValueError, match="unknown key codec 'float'"):
        pagestore.open(path, keys="float")
    with pagestore.open(path, keys="tuple", values="json", readonly=True) as db:
        assert db[("a",)] == [1]


def test_a_plain_store_is_bytes_to_bytes(tmp_path):
    with pagestore.open(tmp_path / "db") as db:
        db[b"k"] = b"v"
        assert db._pager.meta.key_codec == db._pager.meta.value_codec == "bytes"
    with pytest.raises(ValueError, match="store was created with keys='bytes'"):
        pagestore.open(tmp_path / "db", keys="str")


def test_a_store_never_written_takes_the_codecs_first_named(tmp_path):
    pagestore.open(tmp_path / "db").close()  # created, nothing committed
    with pagestore.open(tmp_path / "db", keys="int") as db:
        assert db._pager.meta.key_codec == "int"
    with pagestore.open(tmp_path / "db") as db:
        assert db.key_codec.name == "int"


def test_pickle_is_opt_in_on_reopen(tmp_path):
    with pagestore.open(tmp_path / "db", values="pickle") as db:
        db[b"k"] = {"x": {1, 2}}
    with pytest.raises(ValueError, match="values='pickle'.*runs code"):
        pagestore.open(tmp_path / "db")
    with pagestore.open(tmp_path / "db", values="pickle") as db:
        assert db[b"k"] == {"x": {1, 2}}


class Reversed:
    """A custom key codec: ints in descending order."""

    name = "neg-int"
    ordered = True

    @staticmethod
    def encode(n):
        return codecs.encode_int(-n)

    @staticmethod
    def decode(raw):
        return -codecs.decode_int(raw)


class Upper:
    name = "upper"

    @staticmethod
    def encode(s):
        return s.upper().encode()

    @staticmethod
    def decode(raw):
        return raw.decode()


def test_custom_codecs(tmp_path):
    path = tmp_path / "db"
    with pagestore.open(path, keys=Reversed(), values=Upper()) as db:
        db.put_many({1: "a", 5: "b", 3: "c"})
        assert list(db.items()) == [(5, "B"), (3, "C"), (1, "A")]
    with pytest.raises(ValueError, match="keys='neg-int', a custom codec"):
        pagestore.open(path, values=Upper())
    with pytest.raises(ValueError, match="store was created with values='upper', not values='str'"):
        pagestore.open(path, keys=Reversed(), values="str")
    with pagestore.open(path, keys=Reversed(), values=Upper()) as db:
        assert db[3] == "C"

    class Unordered:
        name = "x"
        encode = decode = staticmethod(lambda x: x)

    with pytest.raises(ValueError, match="ordered = True"):
        pagestore.open(tmp_path / "other", keys=Unordered())

    class BadName(Upper):
        name = "has space"

    with pytest.raises(ValueError, match="printable ASCII"):
        pagestore.open(tmp_path / "other", values=BadName())


# ---- views, first/last, sync ----


def test_views_behave_like_dict_views(tmp_path):
    ref = {f"k{i:02d}": i * i for i in range(30)}
    with pagestore.open(tmp_path / "db", keys="str", values="json") as db:
        db.put_many(ref)
        for mine, theirs in [(db.keys(), ref.keys()), (db.values(), ref.values()), (db.items(), ref.items())]:
            assert len(mine) == len(theirs)
            assert list(mine) == list(theirs) == list(mine)  # iterable more than once
            assert list(reversed(mine)) == list(reversed(theirs))
        assert db.keys() == ref.keys() and db.items() == ref.items()
        assert db.keys() & {"k01", "zz"} == ref.keys() & {"k01", "zz"} == {"k01"}
        assert db.keys() - set(list(ref)[1:]) == {"k00"}
        assert db.keys() | {"zz"} == ref.keys() | {"zz"}
        assert db.keys().isdisjoint({"zz"})
        assert "k05" in db.keys() and "zz" not in db.keys()
        assert ("k05", 25) in db.items() and ("k05", 26) not in db.items() and "k05" not in db.items()
        assert 25 in db.values() and 26 not in db.values()
        assert list(reversed(db)) == list(reversed(ref))
        # Views are live, as a dict's are.
        keys = db.keys()
        db["k99"] = 0
        assert len(keys) == 31 and "k99" in keys
        # A range view: len by counting, `in` within its range only.
        part = db.keys("k10", "k20")
        assert len(part) == 10 and list(part) == [f"k{i}" for i in range(10, 20)]
        assert "k10" in part and "k20" not in part and "k05" not in part
        assert len(db.items(prefix="k1")) == 10
        assert list(reversed(db.items("k10", "k13", reverse=True))) == [("k10", 100), ("k11", 121), ("k12", 144)]


def test_first_last_and_sync(tmp_path):
    with pagestore.open(tmp_path / "db", keys="int", sync=False) as db:
        with pytest.raises(KeyError):
            db.first()
        with pytest.raises(pagestore.NotFoundError):
            db.last()
        db.put_many({5: b"five", -3: b"minus three", 10**30: b"big"})
        assert db.first() == (-3, b"minus three")
        assert db.last() == (10**30, b"big")
        db[7] = b"seven"
        assert not db._pager.wal._synced
        db.sync()
        assert db._pager.wal._synced
    with pytest.raises(pagestore.StoreClosedError):
        db.sync()


# ---- bulk operations ----


def test_get_many_and_put_many(tmp_path):
    with pagestore.open(tmp_path / "db", page_size=512, keys="int", values="json") as db:
        db.put_many((i, {"n": i}) for i in range(0, 3000, 3))
        assert db.check()["tree_leaves"] > 10
        ks = [5, 3, 2998, 3, -1, 2997, 0, 10**40]
        assert db.get_many(ks) == [None, {"n": 3}, None, {"n": 3}, None, {"n": 2997}, {"n": 0}, None]
        assert db.get_many(ks, default=0)[0] == 0
        assert db.get_many([]) == []
        assert db.get_many(np.arange(0, 3000, 7, dtype=np.int32)) == [db.get(i) for i in range(0, 3000, 7)]
        assert db[np.int64(9)] == {"n": 9}
        db.put_many(np.array([1, 2, 1]), [{"a": 1}, {"b": 2}, {"c": 3}])  # a later duplicate wins
        assert db.get_many([1, 2]) == [{"c": 3}, {"b": 2}]
        with pytest.raises(ValueError, match="2 keys but 1 values"):
            db.put_many([1, 2], [None])
        with pytest.raises(ValueError, match="1-d"):
            db.get_many(np.zeros((2, 2), dtype=int))
        db.check()
        # json null is a value, not a miss
        db[4] = None
        assert db.get_many([4, 7], default="missing") == [None, "missing"]


def test_get_many_matches_a_loop_with_large_values(tmp_path):
    rng = np.random.default_rng(1)
    with pagestore.open(tmp_path / "db", page_size=512) as db:
        items = {b"%06d" % i: bytes([i % 251]) * int(rng.integers(0, 3000)) for i in range(400)}
        db.put_many(items)
        ks = [b"%06d" % int(i) for i in rng.integers(0, 500, 300)]
        assert db.get_many(ks) == [items.get(k) for k in ks]


def test_numpy_values_in_a_store(tmp_path):
    with pagestore.open(tmp_path / "db", keys="int", values="numpy") as db:
        for i, arr in enumerate(ARRAYS):
            db[i] = arr
        db.put_many(np.arange(100, 104), np.arange(12.0).reshape(4, 3))  # rows
    with pagestore.open(tmp_path / "db") as db:
        got = db.get_many(range(len(ARRAYS)))
        for arr, back in zip(ARRAYS, got):
            assert back.dtype == arr.dtype and back.shape == arr.shape and np.array_equal(back, arr)
            assert not back.flags.writeable
        assert np.array_equal(db[102], [6.0, 7.0, 8.0])
        assert (101, np.array([3.0, 4.0, 5.0])) in db.items()
        with pytest.raises(TypeError, match="values='numpy'"):
            db[200] = [1, 2, 3]


def test_raw_opens_any_store_at_the_bytes_level(tmp_path):
    path = tmp_path / "db"
    with pagestore.open(path, keys=Reversed(), values="pickle") as db:
        db[4] = {"x"}
    with pagestore.open(path, keys=codecs.RAW, values=codecs.RAW) as db:
        assert (db.key_codec.name, db.value_codec.name) == ("neg-int", "pickle")
        [(k, v)] = db.items()
        assert k == codecs.encode_int(-4) and v == codecs.VALUE_CODECS["pickle"].encode({"x"})
        assert db.get_many([k]) == [v]
    with pagestore.open(tmp_path / "new", keys=codecs.raw_key_codec("tuple")) as db:
        db[codecs.encode_tuple(("a", 1))] = b"v"
    with pagestore.open(tmp_path / "new") as db:
        assert db[("a", 1)] == b"v"
    with pytest.raises(ValueError, match="unknown key codec"):
        pagestore.open(tmp_path / "never", keys="float")
    assert not (tmp_path / "never").exists()  # refused before the disk was touched
