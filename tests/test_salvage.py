"""Salvage (pagestore/salvage.py): every record still readable in a damaged store, exactly as stored.

The three damaged stores of issue 25, each against a model dict: page 0 with
one byte flipped, a damaged root, a bulk-loaded store cut to 70%; and the
log's committed pages, overflow chains, page sizes guessed, ``inspect --page``
on a file that will not open.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest

import pagestore
from pagestore import inspect, salvage
from pagestore.errors import CorruptionError

N = 5000


def _model(n: int = N, seed: int = 1, big: bool = True) -> Dict[bytes, bytes]:
    rng = random.Random(seed)
    sizes = (0, 8, 40, 200, 3000, 9000) if big else (0, 8, 40, 200)
    out: Dict[bytes, bytes] = {}
    while len(out) < n:
        out[b"key%09d" % rng.randrange(10**9)] = rng.randbytes(rng.choice(sizes))
    return out


def _build(path: str, model: Dict[bytes, bytes], *, bulk: bool = False, page_size: int = 4096) -> None:
    with pagestore.open(path, page_size=page_size) as db:
        if bulk:
            db.update(sorted(model.items()))  # built bottom-up: root and map at the end of the file
            return
        items = list(model.items())
        random.Random(2).shuffle(items)  # grown by splits, in random order
        for i in range(0, len(items), 500):
            with db.transaction() as txn:
                for k, v in items[i : i + 500]:
                    txn[k] = v


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def _exact(got: List[Tuple[bytes, bytes]], model: Dict[bytes, bytes]) -> int:
    """_exact: how many records came back; fails if any is not exactly as stored, repeated or out of order."""
    keys = [k for k, _ in got]
    assert keys == sorted(set(keys))
    for k, v in got:
        assert model[k] == v, k
    return len(got)


def test_damaged_page0_gives_back_nearly_everything(tmp_path):
    path = str(tmp_path / "h.ps")
    model = _model()
    _build(path, model)
    _flip(path, 200)
    with pytest.raises(CorruptionError):
        pagestore.open(path, readonly=True)
    damaged: List[int] = []
    got = _exact(list(salvage.salvage_path(path, damaged)), model)
    assert got >= 0.9 * N, got
    assert damaged == [0]


def test_damaged_root_gives_back_nearly_everything(tmp_path):
    path = str(tmp_path / "r.ps")
    model = _model()
    _build(path, model)
    with inspect.open_pager(path) as pager:
        root, ps = pager.meta.root, pager.page_size
    _flip(path, root * ps + ps // 2)
    damaged: List[int] = []
    with pagestore.open(path, readonly=True) as db:
        with pytest.raises(CorruptionError):
            db[next(iter(model))]
        got = _exact(list(db.salvage(damaged)), model)
    assert got >= 0.9 * N, got
    assert damaged == [root]
    assert _exact(list(salvage.salvage_path(path)), model) == got  # the same from the file alone


def test_bulk_loaded_store_cut_to_70_percent_gives_back_half(tmp_path):
    path = str(tmp_path / "t.ps")
    model = _model()
    _build(path, model, bulk=True)
    size = os.path.getsize(path)
    os.truncate(path, int(size * 0.7) // 4096 * 4096)
    damaged: List[int] = []
    got = _exact(list(salvage.salvage_path(path, damaged)), model)
    assert got >= 0.5 * N, got
    assert damaged and max(damaged) * 4096 >= int(size * 0.7)  # the missing pages are named


def test_sound_store_salvages_to_its_items(tmp_path):
    path = str(tmp_path / "s.ps")
    model = _model(800)
    _build(path, model, page_size=512)
    with pagestore.open(path, readonly=True) as db:
        damaged: List[int] = []
        assert list(db.salvage(damaged)) == sorted(model.items())
        assert damaged == []
    assert list(salvage.salvage_path(path)) == sorted(model.items())


@pytest.mark.parametrize("page_size", [512, 16384])
def test_page_size_found_when_page0_is_damaged(tmp_path, page_size):
    path = str(tmp_path / "p.ps")
    model = _model(300, big=False)
    _build(path, model, page_size=page_size)
    with open(path, "r+b") as f:
        f.write(b"\x00" * 512)  # the whole header, magic and page size included
    source = salvage.FileSource(path)
    try:
        assert source.page_size == page_size and source.header_damaged
    finally:
        source.close()
    assert list(salvage.salvage_path(path)) == sorted(model.items())


def test_log_pages_are_read_newest_first(tmp_path):
    """Commits still in the log (no checkpoint yet) come back, and the log's newer value wins."""
    path = str(tmp_path / "w.ps")
    model = _model(400, big=False)
    _build(path, model, page_size=1024)
    copy = str(tmp_path / "copy.ps")
    with pagestore.open(path) as db:
        for k in list(model)[:50]:
            model[k] = b"new " + k
            db[k] = model[k]
        for k in list(model)[50:60]:
            del db[k]
            del model[k]
        model[b"only in the log"] = b"x" * 3000
        db[b"only in the log"] = model[b"only in the log"]
        # the files as a crash would leave them: the commits in the log, not the data file
        shutil.copyfile(path, copy)
        shutil.copyfile(path + "-wal", copy + "-wal")
    assert os.path.getsize(copy + "-wal") > 0
    _flip(copy, 200)
    got = list(salvage.salvage_path(copy))
    assert dict(got) == model


def test_damaged_overflow_page_loses_only_its_value(tmp_path):
    path = str(tmp_path / "o.ps")
    model = {b"a": b"small", b"big": bytes(range(256)) * 40, b"z": b"also small"}
    _build(path, model, page_size=1024)
    with inspect.open_pager(path) as pager:
        overflow = [i.pgno for i in inspect.page_infos(pager) if i.kind == "overflow"]
    _flip(path, overflow[len(overflow) // 2] * 1024 + 600)
    damaged: List[int] = []
    assert list(salvage.salvage_path(path, damaged)) == [(b"a", b"small"), (b"z", b"also small")]
    assert damaged == [overflow[len(overflow) // 2]]


def _cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pagestore", *args], capture_output=True, timeout=120)
    assert "Traceback" not in proc.stderr.decode(errors="replace"), proc.stderr
    return proc


def test_cli_dump_salvage_and_inspect_page_with_page0_damaged(tmp_path):
    path = str(tmp_path / "c.ps")
    model = {("k%04d" % i): "v" * (i % 50) for i in range(600)}
    with pagestore.open(path, keys="str", values="str", page_size=1024) as db:
        db.update(model.items())
    _flip(path, 200)
    proc = _cli("dump", "--salvage", path)
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr.decode()
    assert "page 0 is damaged: page size 1024 found" in err and "skipped 1 damaged page" in err
    back = str(tmp_path / "back.ps")
    load = subprocess.run([sys.executable, "-m", "pagestore", "load", back], input=proc.stdout, capture_output=True)
    assert load.returncode == 0, load.stderr
    with pagestore.open(back, readonly=True) as db:
        assert dict(db.items()) == model  # the codecs came from the damaged header too

    for pgno, kind in ((5, "page 5: "), (0, "page 0: file header -- FAILS VERIFICATION")):
        proc = _cli("inspect", path, "--page", str(pgno))
        assert proc.returncode == 0, proc.stderr
        assert kind in proc.stdout.decode()
    assert _cli("inspect", path).returncode == 1  # the summary still needs a header
