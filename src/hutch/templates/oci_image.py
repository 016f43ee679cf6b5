"""Images from a container registry: every ``fromImage`` name that is not built from Debian.

``pull`` normalises the name as Docker does (``alpine`` is ``docker.io/library/alpine:latest``), looks up
its manifest digest with ``skopeo inspect`` and, unless that digest is cached, copies the image for the
host's platform with ``skopeo copy`` to an OCI layout and unpacks it as root with ``umoci raw unpack``
(owners, modes, setuid bits and whiteouts as in the image; device nodes are dropped, the sandbox gets its
own ``/dev``). The result is cached as::

    <cache_dir>/images/oci/<algorithm>-<hex>-<os>-<arch>[-<scope>]/  mode 0700: the image's setuid files
        rootfs/                                                      stay out of reach of the host's
        image.json      the image's OCI configuration, read by        other users
                        ``image_config``

It is built in a ``.partial-*`` directory beside it and renamed into place; the OCI layout is deleted once
unpacked. A name pinned by digest that is cached needs no registry at all. An image pulled without
credentials is public and shared by digest; one pulled with credentials is cached per team and credential
(``<scope>``, a digest of both), so a cached private image is never served to anyone who did not prove
access to it.

Registries are reached only at public addresses: a registry whose name resolves to a loopback, private
(RFC 1918, ULA), link-local or otherwise non-global address, or to one of this node's own, is refused
unless the operator lists it in ``internal_registries``, and every connection a pull makes, redirects and
token realms included, is checked again by ``pull_gate`` (except for a registry the operator listed on
this machine's loopback). Registry credentials reach skopeo in a 0600 auth file, never on its command
line. Plain HTTP is used only for registries on loopback or listed in ``insecure_registries``. Every
failure is an ``ImageUnavailable`` naming the image or the registry (a ``Forbidden`` naming the refused
address), raised within ``timeout_s`` (the manifest lookup within 30 s).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import BackendUnavailable, Forbidden, InvalidRequest
from ..runtime.safe_path import Root
from .pull_gate import Gate, Policy, PullNamespace, node_addresses

Log = Callable[[str], None]

# How long the registry has to answer the manifest lookup.
ANSWER_TIMEOUT_S = 30.0
# What a command gets beyond its own ``--command-timeout`` before it is killed.
_KILL_GRACE_S = 5.0
# A partial directory this old belongs to no running pull.
_STALE_PARTIAL_S = 24 * 3600.0

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = re.compile(rf"(?:\[[0-9a-fA-F:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::[0-9]+)?")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}
_LOGRUS = re.compile(r'level=(\w+) msg="((?:[^"\\]|\\.)*)"')

_TIMED_OUT = ("context deadline exceeded", "i/o timeout", "client.timeout", "tls handshake timeout")
_UNREACHABLE = ("connection refused", "no such host", "network is unreachable", "no route to host")
_DENIED = ("unauthorized", "authentication required", "denied", "invalid username/password")
_NOT_FOUND = ("manifest unknown", "name unknown", "not found")
_NO_PLATFORM = ("no image found in manifest list", "choosing image instance")


class ImageUnavailable(BackendUnavailable):
    """The image could not be pulled: it does not exist, access was denied, or the registry failed."""


@dataclass(frozen=True)
class RegistryCredentials:
    """A username and password for the image's registry (E2B's ``fromImageRegistry`` of type registry)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ImageConfig:
    """What an image says about how to run it: the starting environment, directory, user and command."""

    env: dict[str, str]
    workdir: str | None
    user: str | None
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


@dataclass(frozen=True)
class ImageReference:
    """A normalised image name: ``registry/repository`` with a tag, a digest or both."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.registry}/{self.repository}{tag}{digest}"

    @property
    def host(self) -> str:
        """The registry's host name or address, without port or brackets."""
        return urlsplit(f"//{self.registry}").hostname or self.registry

    @property
    def port(self) -> int | None:
        """The registry's port when its name gives one."""
        return urlsplit(f"//{self.registry}").port

    @property
    def on_loopback(self) -> bool:
        """Whether the registry is named as this machine's loopback (``localhost`` or a loopback address)."""
        if self.host == "localhost":
            return True
        try:
            return ip_address(self.host).is_loopback
        except ValueError:
            return False

    def source(self, digest: str | None = None) -> str:
        """skopeo's name for the image, pinned to ``digest`` (or this name's own digest) when given."""
        pin = digest or self.digest
        return f"docker://{self.registry}/{self.repository}" + (f"@{pin}" if pin else f":{self.tag}")

    def plain_http_allowed(self, insecure_registries: Sequence[str]) -> bool:
        """Whether the registry may be reached without verified TLS: it is listed, or on loopback."""
        return self.registry in insecure_registries or self.host in insecure_registries or self.on_loopback


def parse_reference(name: str) -> ImageReference:
    """Normalise ``name`` as Docker does; ``InvalidRequest`` when it is not a valid image name."""
    rest, at, digest = name.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "docker.io", rest
    if registry == "index.docker.io":
        registry = "docker.io"
    path, colon, tag = path.partition(":")
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    reference = ImageReference(registry, path, tag or (None if at else "latest"), digest or None)
    if (
        not _REGISTRY.fullmatch(registry)
        or not _REPOSITORY.fullmatch(path)
        or (colon and not _TAG.fullmatch(tag))
        or (at and not _DIGEST.fullmatch(digest))
    ):
        lowercase = " (repository names are lowercase)" if _REPOSITORY.fullmatch(path.lower()) else ""
        raise InvalidRequest(f"invalid image name {name!r}{lowercase}")
    return reference


def host_platform() -> tuple[str, str]:
    """The OS and architecture of images this host runs, in OCI's words (``linux``, ``amd64``)."""
    machine = platform.machine()
    return "linux", _ARCHITECTURES.get(machine, machine)


def pull(
    reference: str,
    cache_dir: Path,
    *,
    credentials: RegistryCredentials | None = None,
    team_id: str = "",
    insecure_registries: Sequence[str] = (),
    internal_registries: Sequence[str] = (),
    log: Log = print,
    timeout_s: float = 600,
) -> Path:
    """The root filesystem of the image ``reference`` for this host's platform, pulled unless cached (an
    image pulled with ``credentials`` is cached for ``team_id`` and those credentials only)."""
    ref = parse_reference(reference)
    check_registry(ref, internal_registries)
    oci_dir = Path(cache_dir) / "images" / "oci"
    scope = _scope(ref.registry, credentials, team_id)
    if ref.digest and (oci_dir / _cache_name(ref.digest, scope) / "rootfs").is_dir():
        log(f"{ref}: cached")
        return oci_dir / _cache_name(ref.digest, scope) / "rootfs"
    for tool in ("skopeo", "umoci"):
        if shutil.which(tool) is None:
            raise BackendUnavailable(f"{tool} is not installed: apt-get install skopeo umoci")
    deadline = time.monotonic() + timeout_s
    with _auth_file(ref.registry, credentials) as authfile, _gated(ref, internal_registries) as namespace:
        source = _Source(ref, ref.plain_http_allowed(insecure_registries), authfile, credentials, namespace)
        digest = _lookup(source, deadline)
        bundle = oci_dir / _cache_name(digest, scope)
        if (bundle / "rootfs").is_dir():
            log(f"{ref}: cached as {digest}")
            return bundle / "rootfs"
        log(f"{ref}: pulling {digest}")
        return _fetch(source, digest, bundle, deadline, log)


def check_registry(ref: ImageReference, internal_registries: Sequence[str]) -> None:
    """Refuse (``Forbidden``) a registry that resolves to an address that is not public or is this node's,
    unless ``internal_registries`` lists it (``host[:port]``, a host name, an address or a network). A
    name that does not resolve is left to the pull, which fails on it."""
    if ref.registry in internal_registries:
        return
    try:
        Policy(tuple(internal_registries), node_addresses()).addresses(ref.host, ref.port)
    except (OSError, UnicodeError):
        return


def image_config(rootfs: Path) -> ImageConfig:
    """The configuration of the image whose root filesystem ``pull`` returned as ``rootfs``."""
    document = json.loads((Path(rootfs).parent / "image.json").read_text())
    config = document.get("config") or {}
    env = {name: value for name, _, value in (item.partition("=") for item in config.get("Env") or ())}
    return ImageConfig(
        env=env,
        workdir=config.get("WorkingDir") or None,
        user=config.get("User") or None,
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
    )


@dataclass(frozen=True)
class _Source:
    """An image in its registry, with how to reach it."""

    ref: ImageReference
    plain_http: bool
    authfile: Path | None
    credentials: RegistryCredentials | None
    namespace: PullNamespace | None

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run where this source's connections go through the gate."""
        return self.namespace.command(argv) if self.namespace else argv

    def environment(self) -> dict[str, str] | None:
        return self.namespace.environment() if self.namespace else None

    def options(self, prefix: str) -> list[str]:
        """skopeo's options for this source (``prefix`` is ``src-`` for copy, empty for inspect)."""
        options = ["--retry-times=0"]
        if self.plain_http:
            options.append(f"--{prefix}tls-verify=false")
        if self.authfile is not None:
            options.append(f"--{prefix}authfile={self.authfile}")
        return options

    def failure(self, detail: str, timed_out: str) -> ImageUnavailable | Forbidden:
        """The error for skopeo's message ``detail``; ``timed_out`` is the message for a timeout."""
        text = detail.lower()
        registry, ref = self.ref.registry, self.ref
        if self.namespace and (refusals := self.namespace.gate.refusals):
            return Forbidden(f"pulling image {ref} was refused a connection: {refusals[0]}")
        if any(phrase in text for phrase in _TIMED_OUT):
            message = timed_out
        elif "http response to https client" in text:
            message = f"registry {registry} speaks plain HTTP: list it in insecure_registries to use it"
        elif reason := next((phrase for phrase in _UNREACHABLE if phrase in text), None):
            message = f"registry {registry} is unreachable ({reason})"
        elif any(phrase in text for phrase in _DENIED):
            message = (
                f"authentication to {registry} as {self.credentials.username} failed for image {ref}"
                if self.credentials
                else f"access to image {ref} denied: it does not exist or {registry} needs credentials"
            )
        elif any(phrase in text for phrase in _NOT_FOUND):
            message = f"image {ref} not found"
        elif any(phrase in text for phrase in _NO_PLATFORM):
            message = f"image {ref} has no {'/'.join(host_platform())} variant"
        else:
            message = f"pulling image {ref} failed: {detail}"
        return ImageUnavailable(message)


def _cache_name(digest: str, scope: str | None) -> str:
    os_name, architecture = host_platform()
    return f"{digest.replace(':', '-')}-{os_name}-{architecture}" + (f"-{scope}" if scope else "")


def _scope(registry: str, credentials: RegistryCredentials | None, team_id: str) -> str | None:
    """What a private image's cache entry is bound to: the team and its credentials (None: public)."""
    if credentials is None:
        return None
    bound = "\0".join((team_id, registry, credentials.username, credentials.password))
    return hashlib.sha256(bound.encode()).hexdigest()[:24]


def _seconds(duration: float) -> str:
    return f"{round(duration, 1):g}"


def _remaining(deadline: float, limit: float = float("inf")) -> float:
    return max(0.0, min(limit, deadline - time.monotonic()))


def _skopeo(timeout_s: float, *args: str) -> list[str]:
    os_name, architecture = host_platform()
    return [
        "skopeo",
        f"--command-timeout={max(1, int(timeout_s * 1000))}ms",
        f"--override-os={os_name}",
        f"--override-arch={architecture}",
        *args,
    ]


def _lookup(source: _Source, deadline: float) -> str:
    """The digest of the image's manifest (of its manifest list, for a multi-platform image)."""
    timeout_s = _remaining(deadline, ANSWER_TIMEOUT_S)
    timed_out = f"registry {source.ref.registry} did not answer within {_seconds(timeout_s)} s"
    template = "{{.Digest}} {{.Os}}/{{.Architecture}}"
    options = [*source.options(""), "--no-tags", f"--format={template}"]
    argv = source.command(_skopeo(timeout_s, "inspect", *options, source.ref.source()))
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s + _KILL_GRACE_S,
            env=source.environment(),
        )
    except subprocess.TimeoutExpired:
        raise ImageUnavailable(timed_out) from None
    if done.returncode != 0:
        raise source.failure(_last_message(done.stderr.splitlines()), timed_out)
    digest, _, image_platform = done.stdout.strip().partition(" ")
    if not _DIGEST.fullmatch(digest):
        raise ImageUnavailable(f"registry {source.ref.registry} gave no digest for image {source.ref}")
    if image_platform != "/".join(host_platform()):
        raise ImageUnavailable(f"image {source.ref} is for {image_platform}, not {'/'.join(host_platform())}")
    return digest


def _fetch(source: _Source, digest: str, bundle: Path, deadline: float, log: Log) -> Path:
    """Copy and unpack the image into ``bundle``, through a partial directory beside it."""
    bundle.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(bundle.parent)
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=bundle.parent))
    try:
        layout = work / "layout"
        started = time.monotonic()
        _copy(source, digest, work, layout, deadline, log)
        staged = work / "bundle"
        staged.mkdir(mode=0o700)
        _unpack(source.ref, layout, staged / "rootfs", deadline, log)
        (staged / "image.json").write_bytes(_config_blob(layout))
        _drop_device_nodes(staged / "rootfs", log)
        try:
            staged.rename(bundle)
        except OSError:
            if not (bundle / "rootfs").is_dir():
                raise
        log(f"{source.ref}: unpacked in {time.monotonic() - started:.1f} s")
        return bundle / "rootfs"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sweep_partials(oci_dir: Path) -> None:
    """Delete what pulls killed midway left behind (long before any running pull's deadline)."""
    for partial in oci_dir.glob(".partial-*"):
        try:
            stale = time.time() - partial.stat().st_mtime > _STALE_PARTIAL_S
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(partial, ignore_errors=True)


def _copy(source: _Source, digest: str, work: Path, layout: Path, deadline: float, log: Log) -> None:
    timeout_s = _remaining(deadline)
    timed_out = f"pulling image {source.ref} did not finish within {_seconds(timeout_s)} s"
    argv = _skopeo(
        timeout_s,
        f"--tmpdir={work}",
        "copy",
        *source.options("src-"),
        source.ref.source(digest),
        f"oci:{layout}:image",
    )
    status, lines = _stream(source.command(argv), timeout_s + _KILL_GRACE_S, log, source.environment())
    if status is None:
        raise ImageUnavailable(timed_out)
    if status != 0:
        raise source.failure(_last_message(lines), timed_out)


def _unpack(ref: ImageReference, layout: Path, rootfs: Path, deadline: float, log: Log) -> None:
    timeout_s = _remaining(deadline)
    status, lines = _stream(
        ["umoci", "raw", "unpack", f"--image={layout}:image", str(rootfs)], timeout_s, log
    )
    if status is None:
        raise ImageUnavailable(f"unpacking image {ref} did not finish within {_seconds(timeout_s)} s")
    if status != 0:
        raise ImageUnavailable(f"unpacking image {ref} failed: {_last_message(lines)}")


def _stream(
    argv: list[str], timeout_s: float, log: Log, environment: dict[str, str] | None = None
) -> tuple[int | None, list[str]]:
    """Run ``argv`` (in ``environment``) with each line of its output sent to ``log``: its exit status
    (None when it was killed after ``timeout_s``) and those lines."""
    lines: list[str] = []
    with subprocess.Popen(
        argv,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        output = process.stdout

        def pump() -> None:
            for raw in output:
                if line := _readable(raw):
                    lines.append(line)
                    log(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            reader.join()
            return None, lines
        reader.join()
    return process.returncode, lines


def _readable(line: str) -> str:
    """A line of skopeo's or umoci's output without logrus's decoration."""
    match = _LOGRUS.search(line)
    if match is None:
        return line.strip(" \t\r\n•")
    message = match[2].replace('\\"', '"').replace("\\\\", "\\")
    return message if match[1] == "info" else f"{match[1]}: {message}"


def _last_message(lines: Sequence[str]) -> str:
    messages = [_readable(line) for line in lines if line.strip()]
    return messages[-1] if messages else "no output"


def _config_blob(layout: Path) -> bytes:
    """The image configuration blob of the one image in the OCI layout ``layout``."""

    def blob(digest: str) -> bytes:
        algorithm, _, encoded = digest.partition(":")
        return (layout / "blobs" / algorithm / encoded).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    return blob(manifest["config"]["digest"])


def _drop_device_nodes(rootfs: Path, log: Log) -> None:
    """Remove the image's device nodes, each relative to its directory's descriptor (no link followed)."""
    removed = 0
    with Root(rootfs) as tree:
        for _directory, _dirs, files, directory_fd in tree.walk():
            for name in files:
                mode = os.stat(name, dir_fd=directory_fd, follow_symlinks=False).st_mode
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    os.unlink(name, dir_fd=directory_fd)
                    removed += 1
    if removed:
        log(f"removed {removed} device nodes from the image (a sandbox gets its own /dev)")


def _gated(
    ref: ImageReference, internal_registries: Sequence[str]
) -> AbstractContextManager[PullNamespace | None]:
    """Where the pull of ``ref`` runs: behind the gate, except from a registry the operator listed on this
    machine's own loopback (which Go's HTTP client never sends through a proxy)."""
    if ref.on_loopback:
        return nullcontext(None)
    return PullNamespace(Gate(Policy(tuple(internal_registries), node_addresses())))


@contextmanager
def _auth_file(registry: str, credentials: RegistryCredentials | None) -> Iterator[Path | None]:
    """A private auth file with ``credentials`` for ``registry``, deleted afterwards; None without any."""
    if credentials is None:
        yield None
        return
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    with tempfile.TemporaryDirectory(prefix="hutch-auth-") as private:
        path = Path(private) / "auth.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"auths": {registry: {"auth": token}}}, file)
        yield path
