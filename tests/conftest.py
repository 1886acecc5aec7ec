"""Shared fixtures.

``read_mode``: runs a test twice, once with the data file mapped (the
default, ``mmap=True``) and once with every page read into the private cache
(``mmap=False``), by changing the default of ``Store``'s ``mmap`` argument
for the test's duration. Every Store the test opens, its reopens included,
takes the mode. Modules whose tests must pass both ways say
``pytestmark = pytest.mark.usefixtures("read_mode")``.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from pagestore.store import Store


@pytest.fixture(params=[True, False], ids=["mmap", "no-mmap"])
def read_mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    defaults = Store.__init__.__kwdefaults__
    assert defaults is not None and "mmap" in defaults
    old = defaults["mmap"]
    defaults["mmap"] = request.param
    try:
        yield request.param
    finally:
        defaults["mmap"] = old
