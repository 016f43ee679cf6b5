"""Images from a registry: names normalised as Docker does, a pull from a local registry unpacked with
owners, modes and whiteouts, the digest cache, fast clear failures, basic auth, and the image's config;
registries at internal addresses refused unless allowed, and private images cached per team and
credentials."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.errors import Forbidden, InvalidRequest
from hutch.templates.oci_image import (
    ImageReference,
    ImageUnavailable,
    RegistryCredentials,
    check_registry,
    image_config,
    parse_reference,
    pull,
)
from tests.conftest import free_port
from tests.registry import LocalImage, Registry, bcrypt_hash, push

DIGEST = "sha256:" + "ab" * 32
# The test registries run on loopback, which a pull refuses unless the operator allows it.
LOOPBACK = ("127.0.0.0/8", "::1", "localhost")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alpine", ImageReference("docker.io", "library/alpine", "latest")),
        ("alpine:3.20", ImageReference("docker.io", "library/alpine", "3.20")),
        ("user/img:tag", ImageReference("docker.io", "user/img", "tag")),
        ("docker.io/library/python", ImageReference("docker.io", "library/python", "latest")),
        ("index.docker.io/user/img", ImageReference("docker.io", "user/img", "latest")),
        ("ghcr.io/org/team/img:v1.2", ImageReference("ghcr.io", "org/team/img", "v1.2")),
        ("localhost/img", ImageReference("localhost", "img", "latest")),
        (f"host:5000/img@{DIGEST}", ImageReference("host:5000", "img", None, DIGEST)),
        (f"host:5000/img:1@{DIGEST}", ImageReference("host:5000", "img", "1", DIGEST)),
        ("[::1]:5000/a/b", ImageReference("[::1]:5000", "a/b", "latest")),
    ],
)
def test_names_are_normalised_as_docker_does(name: str, expected: ImageReference) -> None:
    assert parse_reference(name) == expected


def test_normalised_names_print_in_full() -> None:
    assert str(parse_reference("alpine")) == "docker.io/library/alpine:latest"
    assert parse_reference(f"host:5000/img:1@{DIGEST}").source() == f"docker://host:5000/img@{DIGEST}"


@pytest.mark.parametrize("name", ["", "Alpine", "img:", "img@sha256:12", "a//b", "-img", "img:t@g", "x/y:-1"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid image name"):
        parse_reference(name)


@pytest.mark.parametrize(
    ("name", "insecure", "allowed"),
    [
        ("127.0.0.1:5000/img", (), True),
        ("localhost:5000/img", (), True),
        ("[::1]:5000/img", (), True),
        ("registry.example:5000/img", (), False),
        ("registry.example:5000/img", ("registry.example:5000",), True),
        ("registry.example/img", ("registry.example",), True),
        ("alpine", ("registry.example",), False),
    ],
)
def test_plain_http_on_loopback_or_when_listed(name: str, insecure: tuple[str, ...], allowed: bool) -> None:
    assert parse_reference(name).plain_http_allowed(insecure) is allowed


@pytest.fixture(scope="module")
def registry(start_registry, local_image: LocalImage) -> Registry:
    served = start_registry()
    push(local_image.name, f"{served.host}/hutch/test:1")
    return served


def _pull(name: str, cache_dir: Path, **options) -> tuple[Path, list[str], float]:
    lines: list[str] = []
    started = time.monotonic()
    options.setdefault("internal_registries", LOOPBACK)
    rootfs = pull(name, cache_dir, log=lines.append, **options)
    return rootfs, lines, time.monotonic() - started


def test_pull_unpacks_the_image_with_owners_modes_and_whiteouts(registry: Registry, tmp_path: Path) -> None:
    rootfs, lines, _ = _pull(f"{registry.host}/hutch/test:1", tmp_path)
    assert (rootfs / "etc/hello.txt").read_text() == "hello from hutch\n"
    assert (rootfs / "link").is_symlink() and str((rootfs / "link").readlink()) == "etc/hello.txt"
    owned = (rootfs / "data/sub/f").stat()
    assert (owned.st_uid, owned.st_gid) == (1000, 1000)
    assert stat.S_IMODE((rootfs / "data/su").stat().st_mode) == 0o4755
    assert not (rootfs / "data/gone.txt").exists()
    assert not (rootfs / "dev-null").exists(), "device nodes are dropped"
    assert any("Copying blob" in line for line in lines), lines
    bundle = rootfs.parent
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    assert sorted(p.name for p in bundle.iterdir()) == ["image.json", "rootfs"]
    assert [p.name for p in bundle.parent.iterdir()] == [bundle.name], "no partial or layout left"
    assert bundle.name.endswith("-linux-amd64") and bundle.name.startswith("sha256-")


def test_a_pull_deletes_what_a_killed_pull_left_behind(registry: Registry, tmp_path: Path) -> None:
    oci_dir = tmp_path / "images/oci"
    old, running = oci_dir / ".partial-old", oci_dir / ".partial-running"
    (old / "layout").mkdir(parents=True)
    running.mkdir()
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    _pull(f"{registry.host}/hutch/test:1", tmp_path)
    assert not old.exists() and running.exists()


def test_a_second_pull_of_the_same_digest_is_a_cache_hit(
    registry: Registry, local_image: LocalImage, tmp_path: Path
) -> None:
    first, _, _ = _pull(f"{registry.host}/hutch/test:1", tmp_path)
    inode = first.stat().st_ino
    again, lines, elapsed = _pull(f"localhost:{registry.host.split(':')[1]}/hutch/test:1", tmp_path)
    assert again == first and again.stat().st_ino == inode
    assert not any("Copying" in line for line in lines), lines
    assert elapsed < 2, elapsed
    # A name pinned to a cached digest needs no registry at all.
    pinned, _, _ = _pull(f"127.0.0.1:{free_port()}/hutch/test@{local_image.digest}", tmp_path)
    assert pinned == first


def test_the_image_config_is_read_from_the_bundle(registry: Registry, tmp_path: Path) -> None:
    rootfs, _, _ = _pull(f"{registry.host}/hutch/test:1", tmp_path)
    config = image_config(rootfs)
    assert config.env["A"] == "1" and config.env["B"] == "two"
    assert config.workdir == "/data"
    assert config.user == "1000:1000"
    assert config.entrypoint == ("/bin/app",)
    assert config.cmd == ("serve",)


@pytest.fixture(scope="module")
def multi_platform(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Push ``hutch/multi:1``, a manifest list of an amd64 and an arm64 image, and ``hutch/arm:1``."""
    layout = tmp_path_factory.mktemp("multi") / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    for tag, arch in (("amd", "amd64"), ("arm", "arm64")):
        subprocess.run(["umoci", "new", "--image", f"{layout}:{tag}"], check=True)
        config = ["--architecture", arch, f"--config.env=ARCH={arch}"]
        subprocess.run(["umoci", "config", "--image", f"{layout}:{tag}", *config], check=True)
    index = json.loads((layout / "index.json").read_text())
    entries = [
        {**entry, "platform": {"os": "linux", "architecture": arch}}
        for entry, arch in zip(index["manifests"], ("amd64", "arm64"), strict=True)
    ]
    for entry in entries:
        entry.pop("annotations")
    listing = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    digest = hashlib.sha256(listing).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(listing)
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": f"sha256:{digest}",
            "size": len(listing),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }
    )
    (layout / "index.json").write_text(json.dumps(index))
    push(f"{layout}:multi", f"{registry.host}/hutch/multi:1", "--all")
    push(f"{layout}:arm", f"{registry.host}/hutch/arm:1")
    return f"sha256:{digest}"


def test_a_manifest_list_gives_the_hosts_platform(
    registry: Registry, multi_platform: str, tmp_path: Path
) -> None:
    rootfs, _, _ = _pull(f"{registry.host}/hutch/multi:1", tmp_path)
    assert image_config(rootfs).env == {"ARCH": "amd64"}
    assert rootfs.parent.name == f"{multi_platform.replace(':', '-')}-linux-amd64"


def test_an_image_for_another_platform_is_refused(
    registry: Registry, multi_platform: str, tmp_path: Path
) -> None:
    with pytest.raises(ImageUnavailable, match="is for linux/arm64, not linux/amd64"):
        pull(f"{registry.host}/hutch/arm:1", tmp_path, log=lambda _line: None, internal_registries=LOOPBACK)


def test_a_missing_tag_fails_fast_naming_the_image(registry: Registry, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ImageUnavailable, match=f"image {registry.host}/hutch/test:missing not found"):
        pull(
            f"{registry.host}/hutch/test:missing",
            tmp_path,
            log=lambda _line: None,
            internal_registries=LOOPBACK,
        )
    assert time.monotonic() - started < 10
    assert not (tmp_path / "images/oci").exists() or not any((tmp_path / "images/oci").iterdir())


def test_an_unreachable_registry_fails_fast(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ImageUnavailable, match=rf"registry {host} is unreachable \(connection refused\)"):
        pull(f"{host}/hutch/test:1", tmp_path, log=lambda _line: None, internal_registries=LOOPBACK)
    assert time.monotonic() - started < 10


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_silent_registry_fails_within_the_timeout(silent_registry: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ImageUnavailable, match=f"registry {silent_registry} did not answer within 2 s"):
        pull(
            f"{silent_registry}/hutch/test:1",
            tmp_path,
            log=lambda _line: None,
            internal_registries=LOOPBACK,
            timeout_s=2,
        )
    assert time.monotonic() - started < 8


@pytest.fixture(scope="module")
def private_registry(start_registry, local_image: LocalImage) -> Registry:
    hashed = bcrypt_hash("s3cret")
    if hashed is None:
        pytest.skip("no bcrypt here (neither the bcrypt package nor the crypt module) for an htpasswd file")
    served = start_registry(htpasswd=f"alice:{hashed}")
    push(local_image.name, f"{served.host}/hutch/private:1", "--dest-creds=alice:s3cret")
    return served


def test_basic_auth_accepts_the_right_credentials(private_registry: Registry, tmp_path: Path) -> None:
    credentials = RegistryCredentials("alice", "s3cret")
    rootfs, _, _ = _pull(f"{private_registry.host}/hutch/private:1", tmp_path, credentials=credentials)
    assert (rootfs / "etc/hello.txt").read_text() == "hello from hutch\n"


def test_basic_auth_rejects_wrong_or_missing_credentials(private_registry: Registry, tmp_path: Path) -> None:
    name = f"{private_registry.host}/hutch/private:1"
    wrong = RegistryCredentials("alice", "wrong")
    with pytest.raises(ImageUnavailable, match=f"authentication to {private_registry.host} as alice failed"):
        pull(name, tmp_path, credentials=wrong, log=lambda _line: None, internal_registries=LOOPBACK)
    with pytest.raises(ImageUnavailable, match=f"access to image {name} denied"):
        pull(name, tmp_path, log=lambda _line: None, internal_registries=LOOPBACK)


def test_credentials_are_not_printed() -> None:
    assert "s3cret" not in repr(RegistryCredentials("alice", "s3cret"))


@pytest.mark.parametrize(
    "registry",
    [
        "127.0.0.1:5000",
        "localhost:5000",
        "10.1.2.3",
        "172.16.0.9:443",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0:5000",
        "[::1]:5000",
        "[fd00::1]",
        "[fe80::1]",
        "[::ffff:127.0.0.1]",
    ],
)
def test_a_registry_at_an_internal_address_is_refused(registry: str, tmp_path: Path) -> None:
    with pytest.raises(Forbidden, match="internal address"):
        pull(f"{registry}/hutch/test:1", tmp_path, log=lambda _line: None)
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize(
    ("registry", "allowed"),
    [
        ("127.0.0.1:5000", ("127.0.0.1:5000",)),
        ("127.0.0.1:5000", ("127.0.0.1",)),
        ("localhost:5000", ("localhost",)),
        ("10.1.2.3", ("10.0.0.0/8",)),
        ("[fd00::1]", ("fd00::/8",)),
    ],
)
def test_an_internal_registry_the_operator_lists_is_allowed(registry: str, allowed: tuple[str, ...]) -> None:
    check_registry(parse_reference(f"{registry}/hutch/test:1"), allowed)


def test_a_public_address_is_allowed_but_not_the_nodes_own() -> None:
    """In a network namespace of the test's own, with a public address on its loopback (no traffic)."""
    script = (
        "from hutch.errors import Forbidden\n"
        "from hutch.templates.oci_image import check_registry, parse_reference\n"
        "check_registry(parse_reference('1.2.3.5/a'), ())\n"
        "try:\n"
        "    check_registry(parse_reference('1.2.3.4/a'), ())\n"
        "except Forbidden as error:\n"
        "    print(error.message)\n"
    )
    setup = "ip link set lo up && ip address add 1.2.3.4/32 dev lo"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", f'{setup} && "$0" -c "$1"', sys.executable, script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "registry 1.2.3.4 is at 1.2.3.4, an internal address" in done.stdout


def test_a_private_image_is_cached_per_team_and_credentials(
    private_registry: Registry, local_image: LocalImage, tmp_path: Path
) -> None:
    name = f"{private_registry.host}/hutch/private:1"
    alice = RegistryCredentials("alice", "s3cret")
    first, _, _ = _pull(name, tmp_path, credentials=alice, team_id="team-a")
    again, lines, _ = _pull(name, tmp_path, credentials=alice, team_id="team-a")
    assert again == first and not any("Copying" in line for line in lines)
    # Another team, even with the same credentials, gets its own copy.
    other, lines, _ = _pull(name, tmp_path, credentials=alice, team_id="team-b")
    assert other != first and any("Copying" in line for line in lines)
    # Pinned to the cached digest, without credentials: the registry is asked, and refuses.
    pinned = f"{private_registry.host}/hutch/private@{local_image.digest}"
    with pytest.raises(ImageUnavailable, match="denied"):
        pull(pinned, tmp_path, team_id="team-a", log=lambda _line: None, internal_registries=LOOPBACK)
    cached, lines, _ = _pull(pinned, tmp_path, credentials=alice, team_id="team-a")
    assert cached == first and lines == [f"{parse_reference(pinned)}: cached"]
