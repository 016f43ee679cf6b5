#!/usr/bin/env bash
# Installs E2B's desktop SDK for JavaScript (npm package @e2b/desktop) at the pinned version into a cache
# directory, unless it is there already. Prints two lines: the node to run it with and the package's
# directory. Usage: install-e2b-desktop-js.sh [directory] (PYTHON: the python whose pip may fetch Node.js)
set -euo pipefail
version=2.4.0
dest=${1:-/var/cache/hutch/npm/e2b-desktop}
exec "$(dirname "$0")/install-npm.sh" @e2b/desktop "$version" "$dest"
