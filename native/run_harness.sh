#!/usr/bin/env bash
# run_harness.sh: build native/harness.c with AddressSanitizer and UBSan and
# run it. Arguments pass through: run_harness.sh [ITERATIONS [SEED]].
# HARNESS_VALGRIND=1 also builds without sanitizers and runs a short pass
# under valgrind (if installed).
# HARNESS_PYTHON=1 also builds pagestore._fastpage (native/fastpage.c, the
# CPython binding of the read path) with the same sanitizers into a scratch
# copy of the package and runs the tests that drive it (tests/test_binding.py, test_write_binding.py,
# test_readpath.py, test_corruption.py) with the sanitizer runtimes preloaded;
# it needs the package installed (the cffi module is copied from it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cc="${CC:-gcc}"
out="${HARNESS_OUT:-$here/harness}"

"$cc" -std=c11 -O1 -g -Wall -Wextra \
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -I"$here" "$here/harness.c" "$here/page.c" "$here/node.c" "$here/map.c" "$here/delta.c" "$here/crc32c.c" -o "$out"

ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$out" "$@"

if [[ "${HARNESS_VALGRIND:-0}" == 1 ]] && command -v valgrind >/dev/null; then
    "$cc" -std=c11 -O1 -g -Wall -Wextra -I"$here" \
        "$here/harness.c" "$here/page.c" "$here/node.c" "$here/map.c" "$here/delta.c" "$here/crc32c.c" -o "$out-plain"
    valgrind -q --error-exitcode=99 "$out-plain" "${VALGRIND_ITERATIONS:-20}"
    rm -f "$out-plain"
fi

if [[ "${HARNESS_PYTHON:-0}" == 1 ]]; then
    root="$(cd "$here/.." && pwd)"
    py="${PYTHON:-python}"
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    cp -r "$root/pagestore" "$root/tests" "$root/pyproject.toml" "$scratch/"
    rm -f "$scratch"/pagestore/_fastpage*.so
    cffi_so="$("$py" -c 'import pagestore._native_cffi as m; print(m.__file__)')"
    cp "$cffi_so" "$scratch/pagestore/"
    inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    suffix="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
    "$cc" -shared -fPIC -std=c11 -O1 -g -Wall -Wextra \
        -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
        -I"$inc" -I"$here" "$here/fastpage.c" "$here/page.c" "$here/node.c" "$here/map.c" "$here/delta.c" "$here/crc32c.c" \
        -o "$scratch/pagestore/_fastpage$suffix"
    (cd "$scratch" && PYTHONPATH="$scratch" PAGESTORE_NATIVE=fastpage ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" \
        LD_PRELOAD="$("$cc" -print-file-name=libasan.so) $("$cc" -print-file-name=libubsan.so)" \
        "$py" -m pytest -q -p no:cacheprovider tests/test_binding.py tests/test_write_binding.py tests/test_readpath.py tests/test_corruption.py)
fi
