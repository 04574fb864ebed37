# shellcheck shell=bash
# tests/sync/remote.sh — what ssh.sh and https.sh share. Sourced, with
# MCRDT set to the mcrdt command.

fails=0
pass() { echo "PASS: $1"; }
fail() {
	echo "FAIL: $1" >&2
	fails=$((fails + 1))
}

# remote_setup NAME: a temporary directory $T (removed at exit, and the
# server whose pid is in $pid killed), stores $T/A and $T/B, two messages
# delivered to A.
remote_setup() {
	T=$(mktemp -d "/tmp/mcrdt-$1-XXXXXX")
	pid=
	trap remote_cleanup EXIT
	"$MCRDT" init "$T/A" >/dev/null
	"$MCRDT" init "$T/B" >/dev/null
	printf 'Subject: one\r\n\r\nfirst\r\n' | "$MCRDT" deliver "$T/A" >/dev/null
	printf 'Subject: two\r\n\r\nsecond\r\n' | "$MCRDT" deliver "$T/A" >/dev/null
}

remote_cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null
	rm -rf "$T"
}

# A and B list the same messages, byte for byte.
same() { [[ $("$MCRDT" list "$T/A" --json) == "$("$MCRDT" list "$T/B" --json)" ]]; }

# The number of messages in store $1's INBOX.
messages() { "$MCRDT" status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])'; }

# refused NAME WHAT PATTERN COMMAND...: COMMAND (a sync into A) fails with
# one line on stderr naming the cause (PATTERN, for grep -i), and A still
# lists as $before.
refused() {
	local name=$1 what=$2 pattern=$3 out
	shift 3
	if out=$("$@" 2>&1); then
		fail "$name: $what went through"
	elif ! grep -qi "$pattern" <<<"$out"; then
		fail "$name: the error does not name the cause ($pattern): $out"
	elif [[ $(wc -l <<<"$out") -ne 1 ]]; then
		fail "$name: more than one line on stderr: $out"
	elif [[ $("$MCRDT" list "$T/A" --json) != "$before" ]]; then
		fail "$name: A changed"
	else
		pass "$name ($out)"
	fi
}
