#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs
# the demo (three replicas diverge and converge).
set -euo pipefail
MCRDT_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$MCRDT_ROOT/scripts/lib.sh"
ensure_packages $MCRDT_BUILD_PKGS
configure_build "$MCRDT_ROOT/build"
exec "$MCRDT_ROOT/build/mcrdt" demo "$@"
