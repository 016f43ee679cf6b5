#!/usr/bin/env bash
# Installs what Hutch needs on a Debian 12/13 machine (as root): system packages, then a venv with the
# project and its test tools. Safe to run again; installs only what is missing.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

need_apt=()
command -v "$python" >/dev/null 2>&1 || need_apt+=(python3)
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v useradd >/dev/null 2>&1 || need_apt+=(passwd)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if ((${#need_apt[@]})); then
    echo "installing with apt: ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test]'
