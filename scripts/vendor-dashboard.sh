#!/usr/bin/env bash
# Copies the dashboard's front-end libraries, at pinned versions from the npm registry, into the package
# (src/hutch/api/dashboard/static/vendor), with their licences. The copies are committed: the dashboard
# needs no build step and no network at run time. Run again after changing a version here.
set -euo pipefail
dest=$(cd "$(dirname "$0")/.." && pwd)/src/hutch/api/dashboard/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# package@version  file-in-package  name-under-vendor
files=(
    "htm@3.1.1 preact/standalone.module.js preact-htm.mjs"
    "@xterm/xterm@6.0.0 lib/xterm.mjs xterm.mjs"
    "@xterm/xterm@6.0.0 css/xterm.css xterm.css"
    "@xterm/addon-fit@0.11.0 lib/addon-fit.mjs xterm-addon-fit.mjs"
    "uplot@1.6.32 dist/uPlot.iife.min.js uplot.min.js"
    "uplot@1.6.32 dist/uPlot.min.css uplot.min.css"
)
rm -rf "$dest" && mkdir -p "$dest"
: >"$dest/LICENSES.txt"
for entry in "${files[@]}"; do
    read -r spec path name <<<"$entry"
    unpacked="$work/${spec//[@\/]/_}"
    if [[ ! -d $unpacked ]]; then
        mkdir -p "$unpacked"
        tarball=$(cd "$work" && npm pack --silent "$spec" | tail -1)
        tar xzf "$work/$tarball" -C "$unpacked"
        printf '== %s ==\n%s\n\n' "$spec" "$(cat "$unpacked/package/LICENSE")" >>"$dest/LICENSES.txt"
    fi
    # The source maps are not shipped: drop the reference to them.
    sed '/sourceMappingURL=/d' "$unpacked/package/$path" >"$dest/$name"
done
echo "vendored into $dest:" && ls "$dest"
