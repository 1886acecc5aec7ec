# Metadata lives in pyproject.toml; this file only hooks the cffi extension
# into setuptools (cffi_modules has no pyproject equivalent).
from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
