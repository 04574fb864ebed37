#!/usr/bin/env bash
# fuzz/smoke.sh — a short smoke run of the libFuzzer targets.
#
# Installs what is missing (clang and its libFuzzer runtime; as root, or
# prints the apt-get line and fails), builds fuzz/ with clang into
# build-fuzz/, then runs each target on a temporary copy of its seed corpus
# (the committed corpus is never written to). Fails if any target crashes,
# leaks, times out or trips one of its checks; the input that did it is
# kept under build-fuzz/artifacts/.
#
#   fuzz/smoke.sh [SECONDS]    seconds per target (default 30)
#
# MCRDT_FUZZ_RUNS bounds the runs per target (default 20000000);
# MCRDT_FUZZ_BUILD overrides the build directory;
set -euo pipefail
MCRDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$MCRDT_ROOT/scripts/lib.sh"
ensure_packages clang libclang-rt-dev cmake pkg-config libxxhash-dev

secs=${1:-30}
runs=${MCRDT_FUZZ_RUNS:-20000000}
dir=${MCRDT_FUZZ_BUILD:-$MCRDT_ROOT/build-fuzz}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac

CC=clang cmake -S "$MCRDT_ROOT/fuzz" -B "$dir" >/dev/null
if ! grep -q 'CMAKE_C_COMPILER:[A-Z]*=.*clang' "$dir/CMakeCache.txt"; then
	echo "$dir was configured with another compiler: remove it and run again" >&2
	exit 1
fi
cmake --build "$dir" -j "$(nproc)" --target fuzz_record fuzz_segment >/dev/null ||
	cmake --build "$dir" -j1 --target fuzz_record fuzz_segment

# The segment target writes files on every run: a tmpfs makes it ~20x faster.
tmp=${TMPDIR:-}
if [ -z "$tmp" ]; then
	tmp=/tmp
	[ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
fi
work=$(mktemp -d "$tmp/mcrdt-fuzz-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
# run TARGET CORPUS MAX_LEN
run() {
	local name=$1 corpus=$2 maxlen=$3 rc=0
	mkdir -p "$work/$name/corpus" "$work/$name/tmp"
	cp "$MCRDT_ROOT/fuzz/corpus/$corpus/"* "$work/$name/corpus/"
	local start=$SECONDS
	TMPDIR="$work/$name/tmp" "$dir/$name" -max_total_time="$secs" -runs="$runs" -max_len="$maxlen" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/$name-" "$work/$name/corpus" >"$work/$name.log" 2>&1 || rc=$?
	local execs persec cov
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -1)
	persec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$name.log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$work/$name.log" | tail -1 || true)
	if [ "$rc" -ne 0 ]; then
		failed=1
		echo "FAIL $name after $((SECONDS - start)) s (exit $rc):" >&2
		grep -E 'fuzz check failed|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY' \
			"$work/$name.log" | head -10 >&2 || true
		grep -E 'Test unit written to' "$work/$name.log" >&2 || true
		cp "$work/$name.log" "$dir/artifacts/$name.log"
		echo "  full log: $dir/artifacts/$name.log" >&2
	else
		echo "ok   $name: ${execs:-?} runs in $((SECONDS - start)) s, ${persec:-?} exec/s, ${cov:-cov: ?}, no crash"
	fi
}

run fuzz_record record 4096
run fuzz_segment segment 8192
exit $failed
