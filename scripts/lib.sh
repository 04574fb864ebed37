# scripts/lib.sh — shared by demo.sh and test.sh: install what the build
# needs from Debian, then configure and build into a build directory.
# Sourced, not run.

# The Debian packages the build needs, and those the test suite adds: the
# real Maildir tools the interop tests run against ours, python3, which
# the command's tests read --json output with, an sshd (started on
# 127.0.0.1 by tests/sync/ssh.sh only; the package's own is not used),
# openssl (tests/sync/https.sh makes its CA and certificate with it), and
# strace, which the command's tests count a folder's reads with.
MCRDT_BUILD_PKGS="build-essential cmake pkg-config libgit2-dev zlib1g-dev libxxhash-dev check"
MCRDT_TEST_PKGS="dovecot-core mblaze python3 git openssh-server openssl strace"

# Installs the missing packages among "$@" (as root), or prints the line
# to run and fails (as anyone else).
ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing: ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2 || return 1
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || return 1
	else
		echo "missing packages; run as root:" >&2
		echo "  apt-get install -y ${missing[*]}" >&2
		return 1
	fi
}

# configure_build DIR [cmake options...]: configures and builds into DIR.
configure_build() {
	local dir=$1
	shift
	cmake -S "$MCRDT_ROOT" -B "$dir" "$@" >/dev/null || return 1
	cmake --build "$dir" -j "$(nproc)" >/dev/null || cmake --build "$dir" -j1 || return 1
}
