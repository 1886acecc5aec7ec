"""Bench scripts that hook the store's internals keep working when those internals move.

bench/commit_bytes.py wrapped ``log_frames``; once the log built its frames through
``log_append`` it saw no commit ("0 durable one-put commits") and died dividing by zero.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_commit_bytes_sees_every_durable_put(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "commit_bytes.py"), "--records", "300", "--puts", "20",
         "--syncs", "0", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert out.startswith("20 durable one-put commits"), out
    frames = float(re.search(r"([\d.]+) frames per commit", out).group(1))
    # at least the leaf, the heap page and page 0 (the commit frame) per put
    assert 3.0 <= frames < 8.0, out
    assert re.search(r"^  header +1\.00 per commit", out, re.M), out
