#!/usr/bin/env bash
# Installs what Hutch needs on a Debian 12/13 machine (as root): system packages, then a venv with the
# project and its test tools. Safe to run again; installs only what is missing.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

# command or file -> Debian package
declare -A wanted=(
    [/usr/bin/python3]=python3
    [crun]=crun
    [mmdebstrap]=mmdebstrap
    [ip]=iproute2
    [mkfs.ext4]=e2fsprogs                            # each sandbox's disk
    [losetup]=mount
    [nft]=nftables
    [useradd]=passwd
    [curl]=curl
    [openssl]=openssl                                # tests: the egress tests' outside certificates
    [skopeo]=skopeo [umoci]=umoci [docker-registry]=docker-registry  # fromImage pulls; a registry for tests
    [ps]=procps
    [/usr/sbin/haproxy]=haproxy                     # the TLS edge (E2B_DOMAIN)
    [/usr/lib/*/libnss_myhostname.so.2]=libnss-myhostname  # *.localhost names resolve to loopback
    [chromium]=chromium [certutil]=libnss3-tools     # tests: a browser through the TLS edge
    [/usr/lib/python3/dist-packages/seccomp.cpython-*.so]=python3-seccomp
    [/usr/lib/postgresql/*/bin/initdb]=postgresql   # the catalog's PostgreSQL tests
    [/var/lib/dpkg/info/busybox-static.list]=busybox-static  # the init of crun sandboxes whose envd is forked
    [/bin/bash-static]=bash-static  # static: a template without Python, for tests
)
missing=()
for probe in "${!wanted[@]}"; do
    if [[ $probe == /* ]]; then
        compgen -G "$probe" >/dev/null || missing+=("${wanted[$probe]}")
    else
        command -v "$probe" >/dev/null 2>&1 || missing+=("${wanted[$probe]}")
    fi
done
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
    echo "installing with apt: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Hutch runs HAProxy itself, with its own configuration: the distribution's service has nothing to do.
    if [[ " ${missing[*]} " == *" haproxy "* ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        systemctl disable --now haproxy >/dev/null 2>&1 || true
    fi
fi
"$(dirname "$0")/install-runsc.sh"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test]'
# Helm, for the chart's offline checks (exit code 3: none for this architecture, and those checks skip).
PYTHON="$venv/bin/python" "$(dirname "$0")/install-deploy-tools.sh" >/dev/null || [[ $? -eq 3 ]]
