"""Fixtures for tests that need a container registry: Debian's docker-registry on loopback, and a small
image built offline with umoci (two layers, the second deleting a file, and a configuration)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_http

IMAGE_TOOLS = ("docker-registry", "skopeo", "umoci")


@dataclass(frozen=True)
class Registry:
    """A registry serving plain HTTP at ``host`` (``address:port``)."""

    host: str
    pid: int


@dataclass(frozen=True)
class LocalImage:
    """An image in an OCI layout: ``name`` is skopeo's ``oci:`` name without the transport."""

    name: str
    digest: str


def bcrypt_hash(password: str) -> str | None:
    """A bcrypt hash of ``password`` for an htpasswd file, or None when this Python cannot make one."""
    try:
        import bcrypt

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    return hashed if hashed and hashed.startswith("$2") else None


def _require_image_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("unpacking images with their owners needs root")
    missing = [tool for tool in IMAGE_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {' '.join(missing)} (scripts/install-deps.sh installs them)")


@pytest.fixture(scope="session")
def start_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Registry]]:
    """Start registries on free ports of ``address`` (loopback unless given; ``htpasswd``: lines that turn
    on basic auth); all are stopped at the end of the session."""
    _require_image_tools()
    processes: list[subprocess.Popen[bytes]] = []

    def start(htpasswd: str | None = None, address: str = "127.0.0.1") -> Registry:
        root = tmp_path_factory.mktemp("registry")
        port = free_port()
        config = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}}}",
            f"http: {{addr: '{address}:{port}'}}",
        ]
        if htpasswd is not None:
            (root / "htpasswd").write_text(htpasswd + "\n")
            config.append(f"auth: {{htpasswd: {{realm: hutch, path: {root / 'htpasswd'}}}}}")
        (root / "config.yml").write_text("\n".join(config) + "\n")
        with open(root / "registry.log", "wb") as output:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(root / "config.yml")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        wait_http(f"http://{address}:{port}/v2/")
        return Registry(f"{address}:{port}", process.pid)

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def local_image(tmp_path_factory: pytest.TempPathFactory) -> LocalImage:
    """A two-layer image: /etc/hello.txt, /data/sub/f owned by 1000:1000, a setuid /data/su, a symlink
    /link, a device node /dev-null, and /data/gone.txt written in the first layer and deleted in the
    second; Env A=1 B=two, WorkingDir /data, User 1000:1000, Entrypoint /bin/app, Cmd serve."""
    _require_image_tools()
    work = tmp_path_factory.mktemp("image")
    layout, bundle = new_image(work)
    rootfs = bundle / "rootfs"
    (rootfs / "etc").mkdir()
    (rootfs / "etc/hello.txt").write_text("hello from hutch\n")
    (rootfs / "data/sub").mkdir(parents=True)
    (rootfs / "data/sub/f").write_text("x\n")
    os.chown(rootfs / "data/sub/f", 1000, 1000)
    (rootfs / "data/su").write_bytes(b"#!/bin/sh\n")
    (rootfs / "data/su").chmod(0o4755)
    (rootfs / "data/gone.txt").write_text("deleted in the second layer\n")
    (rootfs / "link").symlink_to("etc/hello.txt")
    os.mknod(rootfs / "dev-null", 0o666 | 0o020000, os.makedev(1, 3))
    umoci("repack", "--refresh-bundle", "--image", layout, str(bundle))
    (rootfs / "data/gone.txt").unlink()
    umoci("repack", "--image", layout, str(bundle))
    umoci(
        "config",
        "--image",
        layout,
        "--config.env=A=1",
        "--config.env=B=two",
        "--config.workingdir=/data",
        "--config.user=1000:1000",
        "--config.entrypoint=/bin/app",
        "--config.cmd=serve",
    )
    index = json.loads((work / "layout" / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return LocalImage(layout, digest)


def umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True)


def new_image(work: Path) -> tuple[str, Path]:
    """An empty OCI image in ``work/layout`` and its unpacked bundle: the image (``layout:tag``), and the
    bundle whose ``rootfs`` is filled, then repacked with ``umoci("repack", ...)``."""
    layout, bundle = f"{work / 'layout'}:1", work / "bundle"
    umoci("init", "--layout", str(work / "layout"))
    umoci("new", "--image", layout)
    umoci("unpack", "--image", layout, str(bundle))
    return layout, bundle


def push(image: str, destination: str, *options: str) -> None:
    """Copy the OCI layout image ``image`` (``path:tag``) to ``destination`` (``host:port/repository:tag``)
    over plain HTTP; ``options`` go to ``skopeo copy``."""
    argv = ["skopeo", "copy", "--dest-tls-verify=false", *options, f"oci:{image}", f"docker://{destination}"]
    subprocess.run(argv, check=True, capture_output=True)
