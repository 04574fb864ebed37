#!/usr/bin/env bash
# tests/install/test_symbols.sh — the shared library exports only the public
# API: every exported symbol starts with mcrdt_, every function declared with
# MCRDT_EXTERN in the public headers is exported, and nothing else is.
#
#   test_symbols.sh LIBMCRDT_SO INCLUDE_DIR...
#
# INCLUDE_DIRs hold the public headers (include/ and the build's generated
# include/). NM (env) names the nm to use; default nm.
set -Eeuo pipefail

trap 'echo "FAIL: \"$BASH_COMMAND\" exited with status $? (line $LINENO)" >&2' ERR

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[[ $# -ge 2 ]] || fail "usage: $0 LIBMCRDT_SO INCLUDE_DIR..."
lib=$1
shift
[[ -f $lib ]] || fail "$lib does not exist (build the mcrdt target first)"
nm=${NM:-nm}

# Symbols the linker may define in any shared object; they are not ours.
ignored=(_init _fini _edata _end __bss_start)

listing=$("$nm" -D --defined-only "$lib")
# "ADDRESS TYPE NAME[@VERSION]"; keep NAME.
mapfile -t exported < <(awk 'NF >= 2 { print $NF }' <<<"$listing" | sed 's/@.*//' | sort -u)
[[ ${#exported[@]} -gt 0 ]] || fail "$nm -D --defined-only $lib listed no symbols"

status=0
offenders=()
for sym in "${exported[@]}"; do
	[[ $sym == mcrdt_* ]] && continue
	for ign in "${ignored[@]}"; do
		[[ $sym == "$ign" ]] && continue 2
	done
	offenders+=("$sym")
done
if [[ ${#offenders[@]} -gt 0 ]]; then
	echo "FAIL: $lib exports symbols without the mcrdt_ prefix (internal code must stay hidden):" >&2
	printf '  %s\n' "${offenders[@]}" >&2
	grep -E " ($(IFS='|'; echo "${offenders[*]}"))(@|$)" <<<"$listing" | sed 's/^/    nm: /' >&2 || true
	status=1
fi

is_exported() {
	local s
	for s in "${exported[@]}"; do
		[[ $s == "$1" ]] && return 0
	done
	return 1
}

for sym in mcrdt_version mcrdt_strerror mcrdt_error_last; do
	is_exported "$sym" || { echo "FAIL: $lib does not export $sym" >&2; status=1; }
done

# Public declarations: "MCRDT_EXTERN(type) name(" in the installed headers.
mapfile -t headers < <(find "$@" -path '*/mcrdt/*' -name '*.h' | sort)
[[ ${#headers[@]} -gt 0 ]] || fail "no public headers found under $*"
mapfile -t declared < <(cat "${headers[@]}" | grep -v '^[[:space:]]*#' |
	grep -oE 'MCRDT_EXTERN\([^)]*\)[[:space:]*]*[A-Za-z_][A-Za-z0-9_]*' |
	sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)$/\1/' | sort -u)
[[ ${#declared[@]} -gt 0 ]] || fail "found no MCRDT_EXTERN declarations in: ${headers[*]}"
for sym in "${declared[@]}"; do
	is_exported "$sym" ||
		{ echo "FAIL: $sym is declared MCRDT_EXTERN in a public header but not exported by $lib" >&2; status=1; }
done
# (A here-string, not printf | grep -q: with pipefail, grep -q leaving
# early could fail the pipeline with printf's SIGPIPE.)
declared_list=$(printf '%s\n' "${declared[@]}")
for sym in "${exported[@]}"; do
	[[ $sym == mcrdt_* ]] || continue
	grep -qxF "$sym" <<<"$declared_list" ||
		{ echo "FAIL: $lib exports $sym, which no public header declares" >&2; status=1; }
done

[[ $status -eq 0 ]] || exit 1
echo "ok: $lib exports ${#exported[@]} symbols, all public: ${exported[*]}"
