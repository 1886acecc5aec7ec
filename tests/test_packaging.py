"""What a source distribution must carry, checked without building one.

.ci/run builds the sdist and installs it into a fresh venv; this test catches
the usual way that breaks (a new C file or header the manifest does not
name) in a second, in the ordinary test run.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _manifest_patterns():
    with open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if words and words[0] == "include":
                yield from words[1:]


def _shipped(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pattern) for pattern in _manifest_patterns())


def test_sdist_manifest_ships_everything_the_c_build_needs():
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        builder = re.search(r'cffi_modules=\["([^":]+):', f.read()).group(1)
    needed = {builder}
    for path in glob.glob(os.path.join(ROOT, "native", "*.[ch]")):
        needed.add(os.path.relpath(path, ROOT))
        with open(path, encoding="utf-8") as f:
            for name in re.findall(r'#include "([^"]+)"', f.read()):
                needed.add(os.path.join("native", name))
    missing = sorted(rel for rel in needed if not _shipped(rel))
    assert not missing, f"MANIFEST.in does not ship {missing}"
    assert {"native/pagestore.h", "native/crc32c_table.h", "native/build_ffi.py"} <= needed


def test_sdist_manifest_ships_the_tests_and_what_they_read():
    for path in glob.glob(os.path.join(ROOT, "tests", "*.py")) + [os.path.join(ROOT, "docs", "format.md")]:
        assert _shipped(os.path.relpath(path, ROOT)), path


def test_distribution_name_is_not_the_unrelated_pagestore():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import pytest

        tomllib = pytest.importorskip("tomli")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["name"] == "pagestore-kv"  # 'pagestore' on the index is another project
    assert project["scripts"]["pagestore"] == "pagestore.cli:main"
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "pagestore-kv" in f.read()
