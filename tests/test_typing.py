"""The package's annotations, checked: it ships py.typed, so they are API.

Runs ``mypy --strict pagestore`` (as .ci/run does) and fails on any error in
the modules listed in STRICT_CLEAN. Modules join the list as they become
clean; when every module is clean the list becomes the whole package and
.ci/run's mypy step becomes fatal.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Modules that must stay clean under ``mypy --strict``.
STRICT_CLEAN = ("cli", "inspect", "bench", "fileio", "errors", "__init__", "__main__", "_native")


def test_mypy_strict_clean_modules(tmp_path):
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "pagestore"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    pattern = re.compile(r"^pagestore/(%s)\.py:\d+: error" % "|".join(re.escape(m) for m in STRICT_CLEAN))
    errors = [line for line in proc.stdout.splitlines() if pattern.match(line)]
    assert not errors, "\n".join(errors)
    # mypy ran to its summary (a bad config or a crash would pass the check above)
    assert re.search(r"^(Success: no issues|Found \d+ errors? in)", proc.stdout, re.M), proc.stdout + proc.stderr
