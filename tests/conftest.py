"""Shared fixtures.

``read_mode``: runs a test twice, once with the data file mapped (the
default, ``mmap=True``) and once with every page read into the private cache
(``mmap=False``), by changing the default of the ``mmap`` argument of both
``Store`` and ``pagestore.open`` (which passes its own default on to
``Store`` explicitly) for the test's duration. Every store the test opens
without naming ``mmap``, its reopens included, takes the mode;
tests/test_read_mode.py proves it. Modules whose tests must pass both ways
say ``pytestmark = pytest.mark.usefixtures("read_mode")``.

Shared test constants and helpers live in tests/helpers.py.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List

import pytest

from pagestore import store as _store


def _mmap_defaults() -> List[Dict[str, Any]]:
    """_mmap_defaults returns the keyword defaults that decide an open's read mode: ``Store.__init__``'s and
    ``open``'s (``pagestore.open`` is ``store.open``, the same function object)."""
    found = []
    fn: Callable[..., Any]
    for fn in (_store.Store.__init__, _store.open):
        defaults = fn.__kwdefaults__
        assert defaults is not None and "mmap" in defaults, fn
        found.append(defaults)
    return found


@pytest.fixture(params=[True, False], ids=["mmap", "no-mmap"])
def read_mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    defaults = _mmap_defaults()
    old = [d["mmap"] for d in defaults]
    for d in defaults:
        d["mmap"] = request.param
    try:
        yield request.param
    finally:
        for d, value in zip(defaults, old):
            d["mmap"] = value
