#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tests/sync/https.sh — mcrdt sync through an https:// hub: git's smart
# HTTP over TLS (tests/sync/https_hub.py) on localhost, with a private CA
# and HTTP Basic authentication. Killed and removed by the EXIT trap.
#
#   bash https.sh PATH/TO/mcrdt
#
# Skipped (exit 77) without openssl or python3. Checks:
#   env_creds     replica A pushes with $MCRDT_GIT_USERNAME/PASSWORD, the CA
#                 in $SSL_CERT_FILE; replica B, empty, syncs from the hub:
#                 both list the same messages (list --json byte for byte)
#   helper        nothing in the environment but git's credential helper
#                 (a store file): a flag change on B reaches A
#   untrusted     no CA given: the certificate is refused, A unchanged
#   bad_ca        $SSL_CERT_FILE names no file: refused, naming it, A unchanged
#   wrong_pass    a wrong password: refused as an authentication failure,
#                 A unchanged
#   resumes       the cause gone, the sync goes through and A and B agree
#   ca_not_for_local  that missing CA file does not stop a sync between
#                 two directories (certificates are read for https only)
set -Eeuo pipefail
trap 'echo "FAIL: \"$BASH_COMMAND\" exited with status $? (line $LINENO)" >&2' ERR

MCRDT=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v openssl >/dev/null || ! command -v python3 >/dev/null || ! command -v git >/dev/null; then
	echo "SKIP: no openssl, python3 or git"
	exit 77
fi

# shellcheck source=remote.sh
. "$here/remote.sh"
remote_setup https

# A certificate for localhost, its own CA (mbedTLS, which Debian's libgit2
# uses, matches names, not IP addresses).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
"$MCRDT" hub init "$T/hub.git" >/dev/null
python3 "$here/https_hub.py" "$T" "$T/cert.pem" "$T/key.pem" "u:secret" >"$T/port" 2>"$T/server.log" &
pid=$!
# (no time limit: the server is waited for while it runs; ctest's
# TIMEOUT bounds the whole)
until [[ -s $T/port ]] || ! kill -0 "$pid" 2>/dev/null; do
	sleep 0.1
done
[[ -s $T/port ]] || {
	cat "$T/server.log" >&2
	echo "FAIL: the https hub did not start"
	exit 1
}
url="https://localhost:$(cat "$T/port")/hub.git"
mkdir -p "$T/home"

# mcrdt with a clean environment: that home, no credentials, no CA.
m() { env -u MCRDT_GIT_USERNAME -u MCRDT_GIT_PASSWORD -u SSL_CERT_FILE -u SSL_CERT_DIR HOME="$T/home" \
	GIT_CONFIG_GLOBAL="$T/home/gitconfig" GIT_CONFIG_NOSYSTEM=1 "$@"; }
ca=SSL_CERT_FILE="$T/cert.pem"

# env_creds
if m "$ca" MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=secret "$MCRDT" sync "$T/A" "$url" --quiet >/dev/null &&
	m "$ca" MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=secret "$MCRDT" sync "$T/B" "$url" --quiet >/dev/null &&
	[[ $(messages "$T/B") == 2 ]] &&
	same; then
	pass env_creds
else
	fail "env_creds: B did not get A's two messages over https"
fi

# helper
printf '[credential]\n\thelper = store --file %s\n' "$T/home/creds" >"$T/home/gitconfig"
echo "https://u:secret@localhost:$(cat "$T/port")" >"$T/home/creds"
"$MCRDT" flag "$T/B" 1 +'\Seen' >/dev/null
if m "$ca" "$MCRDT" sync "$T/B" "$url" --quiet >/dev/null && m "$ca" "$MCRDT" sync "$T/A" "$url" --quiet >/dev/null &&
	grep -q Seen <<<"$("$MCRDT" list "$T/A" --json)" && same; then
	pass helper
else
	fail "helper: the flag change did not come through with git's credential helper"
fi
rm "$T/home/gitconfig" "$T/home/creds"

before=$("$MCRDT" list "$T/A" --json)
printf 'Subject: three\r\n\r\nthird\r\n' | "$MCRDT" deliver "$T/B" >/dev/null

# untrusted
refused untrusted "a certificate no CA vouches for" certificate \
	m MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=secret "$MCRDT" sync "$T/A" "$url" --quiet

# bad_ca
refused bad_ca "a CA file that is not there" "certificate\|CA" \
	m SSL_CERT_FILE="$T/none.pem" MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=secret "$MCRDT" sync "$T/A" "$url" --quiet

# wrong_pass
refused wrong_pass "a wrong password" "authenticat\|401" \
	m "$ca" MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=wrong "$MCRDT" sync "$T/A" "$url" --quiet

# resumes
if m "$ca" MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=secret "$MCRDT" sync "$T/B" "$url" --quiet >/dev/null &&
	m "$ca" MCRDT_GIT_USERNAME=u MCRDT_GIT_PASSWORD=secret "$MCRDT" sync "$T/A" "$url" --quiet >/dev/null && same; then
	pass resumes
else
	fail "resumes: A and B differ after syncing again"
fi

# ca_not_for_local: certificates are read for an https remote only, so a
# CA file that is not there does not stop a sync between directories
printf 'Subject: four\r\n\r\nfourth\r\n' | "$MCRDT" deliver "$T/B" >/dev/null
if m SSL_CERT_FILE="$T/none.pem" "$MCRDT" sync "$T/A" "$T/B" --quiet >/dev/null && [[ $(messages "$T/A") == 4 ]] &&
	same; then
	pass ca_not_for_local
else
	fail "ca_not_for_local: a sync between directories failed over an https setting"
fi

[[ $fails -eq 0 ]]
