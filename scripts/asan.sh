#!/usr/bin/env bash
# scripts/asan.sh — run the test suite under AddressSanitizer (`make asan`).
#
# Rebuilds shardopt._C in place with SHARDOPT_SANITIZE=address, runs pytest with gcc's
# libasan preloaded (an ASan-built extension loaded into an uninstrumented python needs the
# runtime first in the library list), then always relinks the normal build so that plain
# runs never pick up the ASan .so.  setup.py keeps each flag set's objects in its own
# build/temp.*-<hash> folder, so both rebuilds are mostly relinks after the first time.
# Arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
SHARDOPT_SKIP_BUILD=1
source scripts/bootstrap.sh || exit 1
unset SHARDOPT_SKIP_BUILD

libasan="$(gcc -print-file-name=libasan.so)"
if [ ! -f "$libasan" ]; then
    echo "asan: gcc's libasan.so not found (install libasan8 / gcc)" >&2
    exit 1
fi

# The whole tests/ folder unless test paths or node ids were given (as run_tests.sh does).
paths=(tests)
for a in "$@"; do
    case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && paths=() ;; esac
done

# libstdc++ must be loaded when ASan initialises, or its __cxa_throw interceptor finds no
# real function and aborts at the first C++ exception (Gloo reports peer failures by throwing).
libstdcxx="$(gcc -print-file-name=libstdc++.so)"

restore() {
    if ! env -u SHARDOPT_SANITIZE "$PY" setup.py build_ext --inplace >build/bootstrap-build.log 2>&1; then
        cat build/bootstrap-build.log >&2
        echo "asan: could not rebuild the normal extension" >&2
    fi
}
trap restore EXIT

mkdir -p build
if ! SHARDOPT_SANITIZE=address "$PY" setup.py build_ext --inplace >build/asan-build.log 2>&1; then
    cat build/asan-build.log >&2
    exit 1
fi
grep '^shardopt build:' build/asan-build.log >&2

# --capture=sys leaves fd 2 alone, so an ASan report reaches the terminal even though ASan
# aborts the process before pytest could print captured output.
# detect_leaks=0: CPython itself "leaks" at exit (toolchain.md section 4).
# allocator_may_return_null=1: absurd sizes must reach our MemoryError path, not abort.
# protect_shadow_gap=0: lets the CUDA runtime map its memory when a GPU is present.
LD_PRELOAD="$libasan $libstdcxx" PYTHONMALLOC=malloc \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:protect_shadow_gap=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    "$PY" -m pytest -q -p no:cacheprovider --capture=sys "${paths[@]}" "$@"
rc=$?
[ "$rc" -eq 5 ] && { echo "asan: no tests collected" >&2; rc=1; }
exit "$rc"
