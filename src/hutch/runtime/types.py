"""What the runtime is asked for (:class:`SandboxSpec`) and what it hands back (:class:`SandboxHandle`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

from ..ids import new_id

ENVD_PORT = 49983

Engine = Literal["crun", "gvisor"]
"""What runs a sandbox: ``crun`` (namespaces, a user namespace, seccomp, cgroups) or ``gvisor`` (runsc, a
user-space kernel between the sandbox and the host)."""
ENGINES: tuple[Engine, ...] = ("crun", "gvisor")
# A former name of an engine, still accepted wherever an engine is named (metadata, catalog, state files).
_FORMER_NAMES: dict[str, Engine] = {"container": "crun"}


def engine_named(name: str) -> Engine | None:
    """The engine called ``name`` (or by a former name), None when there is none."""
    if name in ENGINES:
        return cast(Engine, name)
    return _FORMER_NAMES.get(name)


@dataclass(frozen=True)
class TemplateImage:
    """A built template as the runtime needs it: where its root filesystem is and how envd starts in it."""

    template_id: str
    rootfs: Path
    default_user: str = "user"
    default_workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    start_cmd: str | None = None
    ready_cmd: str | None = None
    # Who runs the start command (None: ``default_user``): E2B's code interpreter runs Jupyter as root.
    start_user: str | None = None
    # The engine its sandboxes run on unless the create asks for another.
    engine: Engine = "crun"
    # A gVisor checkpoint (a snapshot's memory and processes): its gVisor sandboxes are restored from it,
    # over ``rootfs``, instead of booted. See ``runtime.container.checkpoints``.
    checkpoint: Path | None = None


@dataclass(frozen=True)
class VolumeMount:
    """A volume mounted read-write in a sandbox: the volume's id and the absolute path it appears at."""

    volume_id: str
    path: str


@dataclass(frozen=True)
class HeaderRule:
    """Headers set on a sandbox's outbound HTTPS requests to the hosts ``pattern`` matches (an exact name,
    or ``*.suffix`` for every name under it); values may hold ``${e2b.secrets.NAME}`` placeholders."""

    pattern: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamProxy:
    """The proxy a sandbox's outbound TCP leaves through (spec: ``network.egressProxy``): SOCKS5, or an HTTP
    proxy that takes ``CONNECT`` (``scheme`` ``http``, from an address written ``http://host:port``)."""

    address: str  # host:port
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    server_name: str | None = None
    ca_cert: str | None = None  # PEM; None: the host's trust store
    scheme: str = "socks5"  # socks5 | http


@dataclass(frozen=True)
class EgressSettings:
    """What a sandbox's outbound traffic gets beyond allow and deny: header rules per host, the values of
    the secrets those rules name (resolved by the node's egress proxy, never shown to the sandbox), the
    upstream proxy it leaves through, and the name servers it may reach when ``allow_out`` names hosts
    (None: the default)."""

    rules: tuple[HeaderRule, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # never in a log line
    proxy: UpstreamProxy | None = None
    dns_servers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SandboxSpec:
    """A sandbox to start: template, limits, and what envd's ``/init`` receives."""

    template: TemplateImage
    cpu_count: int = 2
    memory_mb: int = 512
    disk_mb: int = 1024
    env_vars: dict[str, str] = field(default_factory=dict)
    access_token: str | None = None
    allow_internet_access: bool = False
    # Egress rules beyond that switch (spec: network.allowOut / denyOut): addresses and CIDRs.
    allow_out: tuple[str, ...] = ()
    deny_out: tuple[str, ...] = ()
    engine: Engine = "crun"
    egress: EgressSettings = field(default_factory=EgressSettings)
    volumes: tuple[VolumeMount, ...] = ()


@dataclass(frozen=True)
class SandboxHandle:
    """A running sandbox: its id, where its ports are reached from the host, and its node."""

    sandbox_id: str
    template_id: str
    host: str
    node_id: str
    started_at: datetime
    # Ports served somewhere other than host:port (the fake backend runs envd on a free host port).
    port_overrides: dict[int, int] = field(default_factory=dict)

    def address(self, port: int) -> tuple[str, int]:
        """Where the sandbox's ``port`` is reached from this host."""
        return self.host, self.port_overrides.get(port, port)


def new_sandbox_id() -> str:
    """A new sandbox's id (:func:`hutch.ids.new_id`)."""
    return new_id()
