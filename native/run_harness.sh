#!/usr/bin/env bash
# run_harness.sh: build native/harness.c with AddressSanitizer and UBSan and
# run it. Arguments pass through: run_harness.sh [ITERATIONS [SEED]].
# HARNESS_VALGRIND=1 also builds without sanitizers and runs a short pass
# under valgrind (if installed).
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
