"""cffi builder for pagestore's C core (out-of-line API mode).

The declarations are read from the real header, between its CDEF markers, so
the header stays the one source of truth for both C and Python.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "pagestore.h")


def read_cdef(path: str = HEADER) -> str:
    """read_cdef returns the header's CDEF region: declarations and #defines only."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"CDEF BEGIN[^\n]*\n(.*?)/\* ---- CDEF END", text, re.S)
    if m is None:
        raise RuntimeError(f"{path}: no CDEF region")
    return m.group(1)


ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "pagestore._native_cffi",
    '#include "pagestore.h"',
    sources=[os.path.relpath(os.path.join(HERE, f)) for f in ("page.c", "node.c", "map.c", "delta.c", "crc32c.c")],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"] + os.environ.get("PS_EXTRA_CFLAGS", "").split(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
