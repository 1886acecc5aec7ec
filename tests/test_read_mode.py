"""The ``read_mode`` fixture (conftest.py) really runs a test both ways: every store opened
inside a ``[no-mmap]`` run reads without the map, whichever way it was opened."""
from __future__ import annotations

from pathlib import Path

import pytest

import pagestore
from pagestore import Store

pytestmark = pytest.mark.usefixtures("read_mode")


def _mapped(db: Store) -> int:
    db[b"k"] = b"v" * 100
    db.checkpoint()  # the commit's pages reach the data file, which then has pages to map
    return int(db.stats()["mapped_bytes"])


def test_store_takes_the_mode(tmp_path: Path, read_mode: bool) -> None:
    with Store(str(tmp_path / "db")) as db:
        assert (_mapped(db) > 0) is read_mode
    with Store(str(tmp_path / "db"), create=False) as db:  # a reopen too
        assert (_mapped(db) > 0) is read_mode


def test_open_takes_the_mode(tmp_path: Path, read_mode: bool) -> None:
    with pagestore.open(tmp_path / "db") as db:
        assert (_mapped(db) > 0) is read_mode
    with pagestore.open(tmp_path / "db", readonly=True) as ro:
        assert (int(ro.stats()["mapped_bytes"]) > 0) is read_mode


def test_naming_the_mode_wins(tmp_path: Path, read_mode: bool) -> None:
    with pagestore.open(tmp_path / "db", mmap=True) as db:
        assert _mapped(db) > 0
    with pagestore.open(tmp_path / "db", mmap=False) as db:
        assert _mapped(db) == 0
