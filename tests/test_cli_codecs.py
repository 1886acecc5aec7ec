"""The command line on stores with codecs: typed keys and values in and out, dump and load.

The JSON shapes are pagestore/jsonshape.py's (documented in docs/cli.md);
the round trips here check that nothing is lost between them and the bytes.
"""
from __future__ import annotations

import json
import os
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import one_error_line, run
from test_codecs import TUPLES, same

import pagestore
from pagestore import codecs, jsonshape

np = pytest.importorskip("numpy")


@given(TUPLES)
@settings(max_examples=300)
def test_tuple_keys_survive_json(t):
    raw = codecs.encode_tuple(t)
    back_raw = jsonshape.key_from_json("tuple", json.loads(json.dumps(jsonshape.key_to_json("tuple", raw))))
    if not any(_is_nan(x) for x in _leaves(t)):
        assert back_raw == raw
    assert _alike(codecs.decode_tuple(back_raw), t)


def _leaves(t):
    for x in t:
        if isinstance(x, tuple):
            yield from _leaves(x)
        else:
            yield x


def _is_nan(x):
    return isinstance(x, float) and math.isnan(x)


def _alike(a, b):
    """_alike: the same key, but a NaN need only keep its sign (its payload bits are not in the JSON)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_alike(x, y) for x, y in zip(a, b))
    if _is_nan(a) and _is_nan(b):
        return math.copysign(1.0, a) == math.copysign(1.0, b)
    return same(a, b)


@given(st.integers() | st.integers(-(2**300), 2**300), st.text())
def test_int_and_str_keys_survive_json(n, s):
    raw = codecs.encode_int(n)
    assert jsonshape.key_from_json("int", json.loads(json.dumps(jsonshape.key_to_json("int", raw)))) == raw
    raw = codecs.KEY_CODECS["str"].encode(s)
    assert jsonshape.key_from_json("str", json.loads(json.dumps(jsonshape.key_to_json("str", raw)))) == raw


@pytest.mark.parametrize("arr", [np.arange(6, dtype=">i4").reshape(2, 3), np.array(2.5), np.zeros((0, 2)),
                                 np.zeros(2, dtype=[("a", "<i2"), ("b", "S2")])])
def test_numpy_values_survive_json(arr):
    raw = codecs.VALUE_CODECS["numpy"].encode(arr)
    obj = json.loads(json.dumps(jsonshape.value_to_json("numpy", raw)))
    assert jsonshape.value_from_json("numpy", obj) == raw


def test_bad_shapes_are_named():
    with pytest.raises(jsonshape.ShapeError, match="keys='int' store is an integer"):
        jsonshape.key_from_json("int", "1")
    with pytest.raises(jsonshape.ShapeError, match="tuple element"):
        jsonshape.key_from_json("tuple", [{"x": 1}])
    with pytest.raises(jsonshape.ShapeError, match="values='numpy'"):
        jsonshape.value_from_json("numpy", {"dtype": "<f8", "shape": [3], "data": "AAAA"})


@pytest.fixture
def typed(tmp_path):
    path = str(tmp_path / "t.ps")
    with pagestore.open(path, keys="tuple", values="json") as db:
        db.put_many({("user", 2): {"n": "bob"}, ("user", 10): [1, 2], ("item", b"\x00", -0.0, math.inf): None})
    return path


def test_get_put_delete_scan_take_typed_keys(typed):
    assert run("get", typed, '["user", 10]').stdout == b"[1,2]\n"
    run("put", typed, '["user", 3]', '{"n": "carol"}')
    out = run("scan", typed, "--prefix", '["user"]').stdout.decode().splitlines()
    assert out == ['["user",2]\t{"n":"bob"}', '["user",3]\t{"n":"carol"}', '["user",10]\t[1,2]']
    assert run("scan", typed, "--start", '["user", 3]', "--keys-only", "--reverse").stdout.decode().splitlines() == [
        '["user",10]', '["user",3]']
    run("delete", typed, '["user", 3]')
    assert "not found" in one_error_line(run("get", typed, '["user", 3]', ok=False))
    assert "JSON array" in one_error_line(run("get", typed, "user", ok=False))
    assert "values='json' store is JSON text" in one_error_line(run("put", typed, '["x"]', "{bad", ok=False))
    with pagestore.open(typed) as db:
        assert db[("user", 2)] == {"n": "bob"} and ("user", 3) not in db and len(db) == 3


def test_dump_and_load_keep_codecs_and_every_bit(typed, tmp_path):
    dump = run("dump", typed).stdout
    lines = dump.decode().splitlines()
    assert json.loads(lines[0]) == {"codecs": {"keys": "tuple", "values": "json"}}
    assert json.loads(lines[1]) == {"k": ["item", {"bytes": "AA=="}, -0.0, {"float": "inf"}], "v": None}
    copy = str(tmp_path / "copy.ps")
    run("load", copy, "--no-progress", input=dump)
    assert run("dump", copy).stdout == dump
    with pagestore.open(copy) as db:
        assert db.key_codec.name == "tuple" and db[("user", 10)] == [1, 2]
    # Into a store of other codecs: refused, nothing written.
    other = str(tmp_path / "other.ps")
    with pagestore.open(other, keys="int") as db:
        db[1] = b"x"
    assert "store was created with keys='int', not keys='tuple'" in one_error_line(
        run("load", other, "--no-progress", input=dump, ok=False))
    with pagestore.open(other) as db:
        assert dict(db.items()) == {1: b"x"}


def test_pickle_and_numpy_stores_on_the_command_line(tmp_path):
    p = str(tmp_path / "p.ps")
    with pagestore.open(p, keys="str", values="pickle") as db:
        db["a"] = {1, 2}
    dump = run("dump", p).stdout  # the pickle is copied, never loaded
    copy = str(tmp_path / "p2.ps")
    run("load", copy, "--no-progress", input=dump)
    with pagestore.open(copy, values="pickle") as db:
        assert db["a"] == {1, 2}
    n = str(tmp_path / "n.ps")
    value = json.dumps(jsonshape.value_to_json("numpy", codecs.VALUE_CODECS["numpy"].encode(np.arange(3.0))))
    run("put", "--keys", "int", "--values", "numpy", n, "--", "-5", value)
    with pagestore.open(n) as db:
        assert db.key_codec.name == "int" and np.array_equal(db[-5], [0.0, 1.0, 2.0])
    assert json.loads(run("get", n, "--", "-5").stdout) == {"dtype": "<f8", "shape": [3], "data": "AAAAAAAAAAAAAAAAAADwPwAAAAAAAABA"}
    assert "--prefix needs" in one_error_line(run("scan", n, "--prefix", "1", ok=False))


def test_a_bytes_store_dumps_as_before(tmp_path):
    path = str(tmp_path / "b.ps")
    with pagestore.open(path) as db:
        db[b"k"] = b"v"
    assert run("dump", path).stdout == b'{"k":"aw==","v":"dg=="}\n'


# ---- dump and load round-trip every key a store accepts (issue 25) ----

#: Text with lone surrogates, split pairs ('\ud83d\ude00', two code points) and NULs.
SURROGATE_TEXT = st.text(alphabet=st.characters(blacklist_categories=()) | st.sampled_from(
    ["\ud800", "\udce9", "\ud83d", "\ude00", "\x00", "\U0001f600"]), max_size=10)
MAX_KEY = 1336  # node.max_key_len(4096)
KEYS_OF = {
    "bytes": st.binary(max_size=30),
    "str": SURROGATE_TEXT,
    "int": st.integers() | st.integers(-(2**600), 2**600),
    # TUPLES holds integers up to 2**2100 (263 bytes each) and up to six of them: keys past the
    # longest a 4 KiB-page store takes (1336 bytes), which the store refuses, are left out.
    "tuple": (TUPLES | st.lists(SURROGATE_TEXT | st.floats(allow_nan=True), max_size=3).map(tuple)).filter(
        lambda t: len(codecs.encode_tuple(t)) <= MAX_KEY),
}


def _dump_then_load(tmp: str, records: dict, kcodec: str, vcodec: str) -> tuple:
    """_dump_then_load: a store of ``records`` dumped and loaded into a new one (the CLI in process);
    returns (its dump, the stored bytes of both stores)."""
    from click.testing import CliRunner

    from pagestore.cli import cli

    src, dst = os.path.join(tmp, "src.ps"), os.path.join(tmp, "dst.ps")
    for p in (src, dst):
        pagestore.remove(p)
    with pagestore.open(src, keys=kcodec, values=vcodec, sync=False) as db:
        db.update(records.items())
    runner = CliRunner()
    dumped = runner.invoke(cli, ["dump", src])
    assert dumped.exit_code == 0, dumped.output
    loaded = runner.invoke(cli, ["load", dst, "--no-progress"], input=dumped.stdout_bytes)
    assert loaded.exit_code == 0, loaded.output
    stored = []
    for p in (src, dst):
        with pagestore.open(p, readonly=True, keys=codecs.RAW, values=codecs.RAW) as db:
            stored.append(list(db.items()))
    return dumped.stdout_bytes, stored[0], stored[1]


@pytest.mark.parametrize("kcodec", sorted(KEYS_OF))
def test_dump_and_load_round_trip_any_store_bit_for_bit(kcodec, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp(kcodec))
    vcodec = "str" if kcodec == "str" else "bytes"
    values = SURROGATE_TEXT if vcodec == "str" else st.binary(max_size=20)

    @given(st.dictionaries(KEYS_OF[kcodec], values, max_size=8))
    @settings(max_examples=30, deadline=None)
    def round_trip(records):
        dump, before, after = _dump_then_load(tmp, records, kcodec, vcodec)
        dump.decode("utf-8")  # valid UTF-8, whatever the keys hold
        assert after == before

    round_trip()


def test_os_listdir_names_round_trip_through_dump_and_load(tmp_path):
    """'caf\\udce9.txt' (a Latin-1 name from os.listdir) and '\\ud800' were dumped as invalid UTF-8, or not at all."""
    records = {"caf\udce9.txt": "latin-1 name", "\ud800": "lone", "\ud83d\ude00": "split pair", "plain": "\udfff"}
    dump, before, after = _dump_then_load(str(tmp_path), records, "str", "str")
    lines = dump.decode("utf-8").splitlines()
    assert '{"k":"caf\\udce9.txt","v":"latin-1 name"}' in lines
    assert after == before and len(after) == 4
    with pagestore.open(str(tmp_path / "dst.ps"), readonly=True) as db:
        assert dict(db.items()) == records
    # scan prints them too (it stopped at the first with exit 1)
    proc = run("scan", str(tmp_path / "dst.ps"))
    assert "caf\\udce9.txt\tlatin-1 name" in proc.stdout.decode("utf-8")


def test_json_values_refuse_a_lone_surrogate(tmp_path):
    with pagestore.open(str(tmp_path / "j.ps"), keys="str", values="json") as db:
        with pytest.raises(ValueError, match=r"lone surrogate \(U\+D83D\).*values='str' or 'pickle'"):
            db["k"] = {"name": "\ud83d\ude00"}
        db["k"] = {"name": "\U0001f600"}
        assert db["k"] == {"name": "\U0001f600"}
