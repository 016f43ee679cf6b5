#!/usr/bin/env bash
# Installs the official E2B CLI (npm package @e2b/cli, the `e2b` command) at the pinned version into a cache
# directory, unless it is there already, and prints the path of its entry point (run it with `node`).
# Needs Node.js >= 20.18.1 and npm. Usage: install-e2b-cli.sh [directory]
set -euo pipefail
version=2.19.0
dest=${1:-/var/cache/hutch/npm/e2b-cli}
package="$dest/node_modules/@e2b/cli"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool not found: the e2b CLI needs Node.js 20 (>= 20.18.1) and npm." \
            "Install them, e.g. from NodeSource (https://github.com/nodesource/distributions);" \
            "Debian 12's nodejs package is Node.js 18, too old for @e2b/cli." >&2
        exit 1
    fi
done
if ! node -e 'const [a, b, c] = process.versions.node.split(".").map(Number);
    process.exit((a === 20 && (b > 18 || (b === 18 && c >= 1))) || a >= 22 ? 0 : 1)'; then
    echo "node $(node --version) is too old for @e2b/cli $version: it needs Node.js >= 20.18.1 (or >= 22.9)" >&2
    exit 1
fi

installed() {
    [[ -f $package/package.json ]] && [[ $(node -p "require('$package/package.json').version") == "$version" ]]
}

mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9  # one install at a time, when several test workers start together
if ! installed; then
    staging=$(mktemp -d "$dest.XXXXXX")
    trap 'rm -rf "$staging"' EXIT
    npm install --prefix "$staging" --no-audit --no-fund --no-update-notifier --loglevel=error \
        --save-exact "@e2b/cli@$version" >&2
    chmod 755 "$staging"
    rm -rf "$dest"
    mv "$staging" "$dest"
fi
echo "$package/dist/index.js"
