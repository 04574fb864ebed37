#!/usr/bin/env bash
# tests/install/test_install.sh — installs a build into a fresh prefix and
# builds a program against it the way a user outside the tree would.
#
#   test_install.sh pkgconfig BUILD_DIR VERSION CC CMAKE
#       cc $(pkg-config --cflags --libs mcrdt) with PKG_CONFIG_PATH at the prefix
#   test_install.sh cmake BUILD_DIR VERSION CC CMAKE
#       tests/install/consumer/: find_package(mcrdt) with CMAKE_PREFIX_PATH=prefix
#
# VERSION is the version the build should report. MCRDT_CONSUMER_FLAGS (env,
# may be empty) is added when compiling and linking the consumer: a library
# built with -fsanitize=address,undefined needs the same at link time.
# Every failure prints a line starting with "FAIL:" and exits non-zero.
set -Eeuo pipefail

trap 'echo "FAIL: \"$BASH_COMMAND\" exited with status $? (line $LINENO)" >&2' ERR

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[[ $# -eq 5 ]] || fail "usage: $0 pkgconfig|cmake BUILD_DIR VERSION CC CMAKE"
mode=$1 build=$2 version=$3 cc=$4 cmake=$5
[[ $mode == pkgconfig || $mode == cmake ]] || fail "unknown mode '$mode'"
[[ -f $build/cmake_install.cmake ]] || fail "$build is not a configured build directory"
read -ra extra_flags <<<"${MCRDT_CONSUMER_FLAGS:-}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcrdt-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$(realpath "$tmp")/prefix

# ---- install ----
if ! "$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	fail "cmake --install $build --prefix $prefix failed"
fi

mapfile -t pcs < <(find "$prefix" -name mcrdt.pc -path '*/pkgconfig/*')
[[ ${#pcs[@]} -eq 1 ]] ||
	fail "expected one installed mcrdt.pc under $prefix, found ${#pcs[@]}: ${pcs[*]:-none}"
pcdir=$(dirname "${pcs[0]}")
libdir=$(dirname "$pcdir") # GNUInstallDirs: lib, lib64 or lib/<multiarch>
[[ -e $libdir/libmcrdt.so ]] || fail "no libmcrdt.so next to ${pcs[0]} (in $libdir)"
mapfile -t hdrs < <(find "$prefix" -path '*/mcrdt/mcrdt.h')
[[ ${#hdrs[@]} -eq 1 ]] || fail "expected one installed mcrdt/mcrdt.h under $prefix, found ${#hdrs[@]}"
includedir=$(dirname "$(dirname "${hdrs[0]}")")
[[ -f $includedir/mcrdt/version.h ]] || fail "the generated mcrdt/version.h was not installed"

export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# The consumer must load libmcrdt.so from the prefix (not the build tree or
# the system), or not at all when linked statically.
check_linked_from_prefix() { # EXE shared|static
	local resolved
	resolved=$(ldd "$1" | awk '$1 ~ /^libmcrdt\.so/ { print $3 }')
	if [[ $2 == static ]]; then
		[[ -z $resolved ]] || fail "$1 links the static library but loads libmcrdt.so ($resolved)"
		return 0
	fi
	[[ -n $resolved && -e $resolved ]] || fail "$1 does not load libmcrdt.so: $(ldd "$1")"
	[[ $(realpath "$resolved") == "$libdir"/* ]] ||
		fail "$1 loads $resolved instead of the installed copy in $libdir"
}

check_output() { # EXE
	local out
	if ! out=$("$1"); then
		fail "$1 failed (see its message above)"
	fi
	[[ $out == "mcrdt $version" ]] || fail "$1 printed '$out', expected 'mcrdt $version'"
	echo "ok: $(basename "$1") printed '$out'"
}

# ---- pkg-config ----
if [[ $mode == pkgconfig ]]; then
	export PKG_CONFIG_PATH=$pcdir
	pkg-config --exists --print-errors mcrdt || fail "pkg-config cannot read ${pcs[0]}"
	modver=$(pkg-config --modversion mcrdt)
	[[ $modver == "$version" ]] || fail "mcrdt.pc says version $modver, expected $version"

	# The .pc file must describe where it was installed: a consumer given
	# only PKG_CONFIG_PATH has no other way to find the headers and library.
	for var in includedir libdir; do
		val=$(pkg-config --variable=$var mcrdt)
		want=${!var}
		[[ $(realpath -m "$val") == "$want" ]] ||
			fail "mcrdt.pc: $var=$val but the files were installed to $want" \
				"(prefix=$(pkg-config --variable=prefix mcrdt); the .pc file must" \
				"follow 'cmake --install --prefix', e.g. prefix=\${pcfiledir}/<relative path>)"
	done

	read -ra pc_flags <<<"$(pkg-config --cflags --libs mcrdt)"
	echo "pkg-config --cflags --libs mcrdt: ${pc_flags[*]}"
	"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror ${extra_flags[@]+"${extra_flags[@]}"} \
		"$here/consumer.c" -o "$tmp/consumer" "${pc_flags[@]}" ||
		fail "compiling consumer.c with the flags from mcrdt.pc failed"
	check_linked_from_prefix "$tmp/consumer" shared
	check_output "$tmp/consumer"
	exit 0
fi

# ---- CMake package ----
cb=$tmp/consumer-build
if ! "$cmake" -S "$here/consumer" -B "$cb" \
	-DCMAKE_C_COMPILER="$cc" \
	-DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
	-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
	-DCMAKE_C_FLAGS="${MCRDT_CONSUMER_FLAGS:-}" \
	-DCMAKE_EXE_LINKER_FLAGS="${MCRDT_CONSUMER_FLAGS:-}" \
	-DMCRDT_EXPECTED_VERSION="$version" >"$tmp/configure.log" 2>&1; then
	cat "$tmp/configure.log" >&2
	fail "configuring a project with find_package(mcrdt $version EXACT REQUIRED) against $prefix failed"
fi
found=$(sed -n 's/^mcrdt_DIR:PATH=//p' "$cb/CMakeCache.txt")
[[ -n $found && $(realpath -m "$found") == "$prefix"/* ]] ||
	fail "find_package(mcrdt) used '$found', not the package installed under $prefix"
echo "find_package(mcrdt) found $found"
if ! "$cmake" --build "$cb" >"$tmp/build.log" 2>&1; then
	cat "$tmp/build.log" >&2
	fail "building the consumer against mcrdt::mcrdt / mcrdt::mcrdt_static failed"
fi
check_linked_from_prefix "$cb/consumer" shared
check_output "$cb/consumer"
check_linked_from_prefix "$cb/consumer_static" static
check_output "$cb/consumer_static"
