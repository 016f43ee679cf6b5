#!/usr/bin/env bash
# Installs the official E2B CLI (npm package @e2b/cli, the `e2b` command) at the pinned version into a cache
# directory, unless it is there already. Prints two lines: the node to run it with and its entry point.
# Usage: install-e2b-cli.sh [directory] (PYTHON: the python whose pip may fetch Node.js)
set -euo pipefail
version=2.19.0
dest=${1:-/var/cache/hutch/npm/e2b-cli}
{ read -r node; read -r package; } < <("$(dirname "$0")/install-npm.sh" @e2b/cli "$version" "$dest")
echo "$node"
echo "$package/dist/index.js"
