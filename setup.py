# Metadata lives in pyproject.toml; this file only hooks the C into setuptools
# (cffi_modules has no pyproject equivalent).
#
# Two bindings of the same page-local C (native/*.c): the cffi module, the
# build of the whole page API, and pagestore._fastpage, a small CPython
# extension with the read path's hot calls (native/fastpage.c). The second is
# optional: not built on PyPy, and a failed build leaves the cffi fallback
# (pagestore/_native.py chooses at import).
import platform

from setuptools import Extension, setup

ext_modules = []
if platform.python_implementation() == "CPython":
    ext_modules.append(
        Extension(
            "pagestore._fastpage",
            sources=["native/fastpage.c", "native/page.c", "native/node.c", "native/map.c", "native/crc32c.c", "native/delta.c"],
            include_dirs=["native"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        )
    )

setup(cffi_modules=["native/build_ffi.py:ffibuilder"], ext_modules=ext_modules)
