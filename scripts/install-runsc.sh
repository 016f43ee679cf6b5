#!/usr/bin/env bash
# Installs gVisor's runsc (the `gvisor` sandbox engine) if it is missing or too old. Debian 13 packages a
# 2024 build; Debian 12's 2022 build fails statx inside the sandbox, so on Debian 12 the Debian 13 package
# (one static binary, no dependencies) is fetched from the Debian archive with a private apt list.
set -euo pipefail
minimum=20240101

installed=$(runsc --version 2>/dev/null | sed -n 's/^runsc version 0\.0~\([0-9]\{8\}\).*/\1/p' || true)
if [[ -n $installed && $installed -ge $minimum ]]; then
    exit 0
fi
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
if [[ ${VERSION_CODENAME:-} != bookworm ]]; then
    apt-get install -y -qq --no-install-recommends runsc >/dev/null
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" >"$work/sources.list"
apt_private=(
    -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root
)
echo "installing runsc (gVisor) from the Debian 13 archive"
apt-get -qq "${apt_private[@]}" update
(cd "$work" && apt-get -qq "${apt_private[@]}" download runsc)
dpkg -i "$work"/runsc_*.deb >/dev/null
