"""Rough edges of the public API a new user met (issue 25): remove() of an open store, a failed
open's leftovers, ``in`` with a key of another type, ``|`` and ``|=``, errors naming what is wrong,
checkpoint(), wal_limit, and stats()'s space figures."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import pagestore
from pagestore.errors import CorruptionError, PageStoreError, ReadOnlyError, StoreLockedError


def _files(tmp_path, name: str) -> list:
    return sorted(f for f in os.listdir(tmp_path) if f.startswith(name))


def test_remove_refuses_a_store_open_in_this_process(tmp_path):
    path = str(tmp_path / "r.ps")
    db = pagestore.open(path)
    db[b"k"] = b"v"
    with pytest.raises(StoreLockedError, match="open in this process"):
        pagestore.remove(path)
    db[b"k2"] = b"v2"  # the store is still there, and so are its writes
    db.close()
    with pagestore.open(path, readonly=True) as ro:
        assert dict(ro.items()) == {b"k": b"v", b"k2": b"v2"}
        with pytest.raises(StoreLockedError, match="read-only"):
            pagestore.remove(path)
    pagestore.remove(path)
    assert _files(tmp_path, "r.ps") == []
    pagestore.remove(path)  # missing: not an error


@pytest.mark.parametrize("readonly", [False, True])
def test_remove_refuses_a_store_open_in_another_process(tmp_path, readonly):
    path = str(tmp_path / "o.ps")
    with pagestore.open(path) as db:
        db[b"k"] = b"v"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, pagestore
        db = pagestore.open({path!r}, readonly={readonly})
        print("open", flush=True)
        sys.stdin.read()
        db.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"open\n"
        with pytest.raises(StoreLockedError, match="another process has it open"):
            pagestore.remove(path)
        assert os.path.exists(path)
    finally:
        child.communicate(b"", timeout=30)
    pagestore.remove(path)
    assert not os.path.exists(path)


def test_failed_writable_open_of_a_damaged_store_leaves_no_new_file(tmp_path):
    path = str(tmp_path / "d.ps")
    with pagestore.open(path) as db:
        db.update((b"k%05d" % i, b"v" * 100) for i in range(3000))
    os.truncate(path, 4096)  # `truncate -s 4096`: page 0 whole, the rest gone
    for readonly in (False, True):
        with pytest.raises(CorruptionError) as info:
            pagestore.open(path, readonly=readonly)
        assert _files(tmp_path, "d.ps") == ["d.ps"]
        assert str(info.value).startswith(path + ": corruption in page")  # names the file


def test_in_with_a_key_the_store_cannot_hold_is_false(tmp_path):
    with pagestore.open(str(tmp_path / "b.ps")) as db:
        db[b"a"] = b"1"
        assert b"a" in db and "a" not in db and 1 not in db and None not in db
        assert b"x" * 100_000 not in db  # too long to be a key
        with db.snapshot() as snap:
            assert "a" not in snap and b"a" in snap
        with db.transaction() as txn:
            assert "a" not in txn and b"a" in txn
    with pagestore.open(str(tmp_path / "i.ps"), keys="int") as db:
        db[1] = b"x"
        assert 1 in db and "1" not in db and b"1" not in db and 1.0 not in db


def test_or_and_ior_as_a_dict(tmp_path):
    with pagestore.open(str(tmp_path / "u.ps"), keys="str", values="str") as db:
        db["a"], db["b"] = "1", "2"
        merged = db | {"b": "x", "c": "3"}
        assert merged == {"a": "1", "b": "x", "c": "3"} and type(merged) is dict
        assert dict(db.items()) == {"a": "1", "b": "2"}  # unchanged
        assert {"b": "x", "z": "0"} | db == {"b": "2", "z": "0", "a": "1"}
        with pytest.raises(TypeError):
            db | [("a", "b")]  # as dict: | takes a mapping
        same = db
        db |= {"c": "3"}
        db |= [("d", "4")]  # as dict: |= takes what update takes
        assert db is same and dict(db.items()) == {"a": "1", "b": "2", "c": "3", "d": "4"}


def test_compact_blocked_by_an_open_here_says_so(tmp_path):
    path = str(tmp_path / "c.ps")
    with pagestore.open(path) as db:
        db[b"k"] = b"v"
        ro = pagestore.open(path, readonly=True)
        try:
            with pytest.raises(PageStoreError, match="this process also has the store open") as info:
                db.compact()
            assert "other processes" not in str(info.value)
        finally:
            ro.close()
        db.compact()


def test_checkpoint_copies_the_log_as_far_as_readers_allow(tmp_path):
    path = str(tmp_path / "k.ps")
    with pagestore.open(path) as db:
        for i in range(100):
            db[b"%03d" % i] = b"x" * 200
        assert db.stats()["log_frames"] > 0
        snap = db.snapshot()
        db[b"later"] = b"y"
        frames = db.stats()["log_frames"]
        done = db.checkpoint()
        assert done["log_frames"] == frames and not done["restarted"]
        assert done["copied"] < frames  # the snapshot reads the log up to its commit
        snap.close()
        done = db.checkpoint()
        assert done == {"log_frames": frames, "copied": frames, "restarted": True, "log_size": done["log_size"]}
        assert db.stats()["log_frames"] == 0 and done["log_size"] < 4096
        assert db.checkpoint()["log_frames"] == 0
        with pytest.raises(ValueError):
            db.checkpoint(wait=-1)
    with pagestore.open(path, readonly=True) as ro:
        with pytest.raises(ReadOnlyError):
            ro.checkpoint()


def test_wal_limit_bounds_the_log(tmp_path):
    sizes = {}
    for limit in (64 * 1024, 64 * 1024 * 1024):
        path = str(tmp_path / f"w{limit}.ps")
        with pagestore.open(path, wal_limit=limit, sync=False) as db:
            peak = 0
            for i in range(300):
                db[b"%04d" % i] = b"x" * 500
                peak = max(peak, db.stats()["log_size"]) if i % 50 == 49 else peak
            sizes[limit] = peak
    assert sizes[64 * 1024] < sizes[64 * 1024 * 1024]
    assert sizes[64 * 1024] < 64 * 1024 + 2 * 4096 * 4  # one commit past the limit at most


def test_stats_says_free_bytes_fragmentation_and_disk_size(tmp_path):
    with pagestore.open(str(tmp_path / "s.ps"), page_size=1024) as db:
        db.update((b"%04d" % i, b"v" * 100) for i in range(2000))
        full = db.stats()
        for i in range(0, 2000, 2):
            del db[b"%04d" % i]
        holed = db.stats()
    for st in (full, holed):
        assert st["disk_size"] == st["file_size"] + st["wal_size"]
        assert 0.0 <= st["fragmentation"] <= 1.0
        assert st["free_bytes"] == st["free_in_pages"] + st["free_pages"] * 1024
        assert st["free_bytes"] == round(st["fragmentation"] * (st["page_count"] - 1) * 1024)
    assert holed["free_bytes"] > full["free_bytes"] + 1000 * 100  # the deleted values' bytes are free
    assert holed["fragmentation"] > full["fragmentation"]


def test_remove_is_documented():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "docs", "api.md"), encoding="utf-8") as f:
        api = f.read()
    assert "pagestore.remove(path" in api
    assert "db.checkpoint(" in api and "wal_limit" in api
