#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tests/sync/ssh.sh — mcrdt sync through an ssh:// hub served by a real
# sshd on 127.0.0.1 (its own config, host key and user key in a temporary
# directory; killed and removed by the EXIT trap).
#
#   bash ssh.sh PATH/TO/mcrdt
#
# Skipped (exit 77) when sshd or ssh-keygen is missing; scripts/lib.sh
# installs openssh-server, so CI runs it. Checks:
#   key_file     replica A pushes to the hub with the key in $MCRDT_SSH_KEY
#                and no ssh agent; replica B, empty, syncs from it: both
#                list the same messages (list --json byte for byte)
#   default_key  the key found as ~/.ssh/id_ed25519, nothing set: a flag
#                change on B reaches A
#   unknown_host a host key that is not in ~/.ssh/known_hosts: refused,
#                naming the host key, and A is unchanged
#   wrong_key    a key the server does not know: refused as an
#                authentication failure, A unchanged
#   resumes      the cause gone, the sync goes through and A and B agree
set -Eeuo pipefail
trap 'echo "FAIL: \"$BASH_COMMAND\" exited with status $? (line $LINENO)" >&2' ERR

MCRDT=$(realpath "$1")
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
if [[ ! -x $SSHD ]] || ! command -v ssh-keygen >/dev/null; then
	echo "SKIP: no sshd or ssh-keygen (apt-get install openssh-server)"
	exit 77
fi

# Under the sanitizers: libgit2's own leak in its ssh connection setup is
# suppressed (see lsan-ssh.supp; full stacks are needed to match it), and
# quietly: a refusal must stay one line on stderr.
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan-ssh.supp:print_suppressions=0"

# shellcheck source=remote.sh
. "$here/remote.sh"
remote_setup ssh

ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/userkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/otherkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/otherhost"
cp "$T/userkey.pub" "$T/authorized_keys"
[[ $(id -u) -eq 0 ]] && mkdir -p /run/sshd # its privilege separation directory

# A free port: sshd says so in its log once it listens.
for try in 1 2 3 4 5 6 7 8; do
	port=$((20000 + RANDOM % 20000))
	cat >"$T/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $T/hostkey
AuthorizedKeysFile $T/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PidFile none
EOF
	"$SSHD" -D -e -f "$T/sshd_config" 2>"$T/sshd.log" &
	pid=$!
	# (waited for while it runs, no time limit: one that exits, its port
	# taken, makes way for the next port)
	until grep -q "Server listening" "$T/sshd.log" || ! kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
	done
	grep -q "Server listening" "$T/sshd.log" && break
	kill "$pid" 2>/dev/null || true
	pid=
	[[ $try -eq 8 ]] && {
		cat "$T/sshd.log" >&2
		echo "FAIL: sshd did not start"
		exit 1
	}
done

user=$(id -un)
hub="$T/hub.git"
url="ssh://$user@127.0.0.1:$port$hub"
mkdir -p "$T/home/.ssh"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$T/hostkey.pub")" >"$T/home/.ssh/known_hosts"

# mcrdt with a clean environment: that home, no agent.
m() { env -u SSH_AUTH_SOCK HOME="$T/home" "$@"; }

"$MCRDT" hub init "$hub" >/dev/null
# key_file
if m MCRDT_SSH_KEY="$T/userkey" "$MCRDT" sync "$T/A" "$url" --quiet >/dev/null &&
	m MCRDT_SSH_KEY="$T/userkey" "$MCRDT" sync "$T/B" "$url" --quiet >/dev/null &&
	[[ $(messages "$T/B") == 2 ]] &&
	same; then
	pass key_file
else
	fail "key_file: B did not get A's two messages over ssh"
fi

# default_key
cp "$T/userkey" "$T/home/.ssh/id_ed25519"
"$MCRDT" flag "$T/B" 1 +'\Seen' >/dev/null
if m "$MCRDT" sync "$T/B" "$url" --quiet >/dev/null && m "$MCRDT" sync "$T/A" "$url" --quiet >/dev/null &&
	grep -q Seen <<<"$("$MCRDT" list "$T/A" --json)" && same; then
	pass default_key
else
	fail "default_key: the flag change did not come through with ~/.ssh/id_ed25519"
fi
rm "$T/home/.ssh/id_ed25519"

before=$("$MCRDT" list "$T/A" --json)
printf 'Subject: three\r\n\r\nthird\r\n' | "$MCRDT" deliver "$T/B" >/dev/null

# unknown_host
cp "$T/home/.ssh/known_hosts" "$T/known_hosts.good"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$T/otherhost.pub")" >"$T/home/.ssh/known_hosts"
refused unknown_host "a sync with a host key not in known_hosts" "hostkey\|host key" \
	m MCRDT_SSH_KEY="$T/userkey" "$MCRDT" sync "$T/A" "$url" --quiet
cp "$T/known_hosts.good" "$T/home/.ssh/known_hosts"

# wrong_key
refused wrong_key "a key the server does not know" authenticat \
	m MCRDT_SSH_KEY="$T/otherkey" "$MCRDT" sync "$T/A" "$url" --quiet

# The cause gone, the sync resumes: B's third message reaches A.
if m MCRDT_SSH_KEY="$T/userkey" "$MCRDT" sync "$T/B" "$url" --quiet >/dev/null &&
	m MCRDT_SSH_KEY="$T/userkey" "$MCRDT" sync "$T/A" "$url" --quiet >/dev/null && same; then
	pass resumes
else
	fail "resumes: A and B differ after syncing again"
fi

[[ $fails -eq 0 ]]
