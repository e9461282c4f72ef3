#!/usr/bin/env bash
# run_tests.sh — set up (scripts/bootstrap.sh) and run the test suite.
# Extra arguments go to pytest, e.g. `./run_tests.sh -k matmul` or `./run_tests.sh tests/test_x.py`.
set -uo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh || exit 1

# Run the whole tests/ folder unless a test path or node id was given.
paths=(tests)
for a in "$@"; do
    case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && paths=() ;; esac
done
opts=(-q -p no:cacheprovider)
# A per-test limit when the pytest-timeout plugin happens to be installed (not required).
if "$PY" -c 'import pytest_timeout' >/dev/null 2>&1; then
    opts+=(--timeout="${SHARDOPT_TEST_TIMEOUT:-600}")
fi

"$PY" -m pytest "${opts[@]}" "${paths[@]}" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run_tests.sh: pytest collected no tests; counting that as a failure" >&2
    exit 1
fi
exit "$rc"
