#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs
# the whole test suite through ctest.
#
#   scripts/test.sh               normal build in build/
#   scripts/test.sh --sanitize    the same suite under ASan+UBSan in build-asan/
#
# MCRDT_SIM_SCHEDULES and MCRDT_SIM_SEED steer the property tests.
set -euo pipefail
MCRDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$MCRDT_ROOT/scripts/lib.sh"
ensure_packages $MCRDT_BUILD_PKGS $MCRDT_TEST_PKGS
dir="$MCRDT_ROOT/build"
opts=()
if [ "${1:-}" = "--sanitize" ]; then
	dir="$MCRDT_ROOT/build-asan"
	opts=(-DMCRDT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DMCRDT_BENCH=OFF)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
configure_build "$dir" "${opts[@]}"
cd "$dir"
ctest --output-on-failure -j "$(nproc)"
