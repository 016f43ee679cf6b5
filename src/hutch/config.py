"""Hutch's settings: one typed object, built only by entry points and passed down.

Precedence, highest first: environment variables (prefix ``HUTCH_``, ``__`` between a section and its key,
e.g. ``HUTCH_API__PORT=3000``), then the TOML file named by ``HUTCH_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class ApiSettings(BaseModel):
    # Loopback unless configured: a public bind is the operator's explicit choice.
    host: str = "127.0.0.1"
    port: int = 3000
    # The largest request body of a JSON route, refused with 413 as it arrives, before the API key is
    # checked (template uploads have their own cap, ``templates.max_upload_mb``).
    max_body_kb: int = 1024
    default_timeout_s: int = 300
    max_timeout_s: int = 24 * 3600
    # How long a paused sandbox is kept (then killed, its disk freed).
    paused_retention_s: int = 30 * 24 * 3600
    # A snapshot is refused when the node's disk could have less free space than this after it.
    min_free_disk_mb: int = 2048
    reaper_interval_s: float = 0.5
    # Per team, token buckets (0 turns one off): any request, and sandbox creates.
    requests_per_s: float = 500
    requests_burst: int = 1000
    creates_per_s: float = 50
    creates_burst: int = 100
    # Returned to clients as each sandbox's ``domain`` instead of the edge's (``Settings.sandbox_domain``).
    sandbox_domain: str | None = None
    # The peers whose X-Forwarded-Proto and X-Forwarded-For the API believes (the load balancer or ingress
    # in front of it), which decide the scheme of the upload URLs it hands out; "*" believes any.
    forwarded_allow_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    # The operator key's file; unset: ``<data_dir>/secrets/operator.key``, made on first use. In a cluster,
    # every API replica reads the same one (a mounted secret).
    operator_key_file: Path | None = None
    # The key that seals secrets' values in the catalog and signs volume tokens; unset:
    # ``<data_dir>/secrets/server.key``, made on first use, or in a cluster one derived from the cluster
    # secret. Every API replica of a cluster must have the same.
    server_key_file: Path | None = None


class QuotaSettings(BaseModel):
    """What one team may hold at once, unless the operator set the team its own limit
    (``hutch team create NAME --quota name=value``). A call beyond a limit is a 429."""

    concurrent_sandboxes: int = 100
    templates: int = 100
    concurrent_builds: int = 4
    upload_mb: int = 4096
    # Snapshots kept, and the disk they may take: each counts as its sandbox's disk (plus its memory when
    # the snapshot keeps that too), the most its copy can hold.
    snapshots: int = 100
    snapshot_disk_mb: int = 100 * 1024
    api_keys: int = 100
    # Volumes: how many, all their sizes together, and the size of each (its quota on its node).
    volumes: int = 100
    volume_disk_mb: int = 100 * 1024
    volume_size_mb: int = 10 * 1024
    # Secrets kept.
    secrets: int = 1000


class CatalogSettings(BaseModel):
    # SQLite file by default; a postgresql+asyncpg:// URL for clusters.
    url: str = ""


class RuntimeSettings(BaseModel):
    backend: str = "container"
    node_id: str = "local"
    # Ready sandboxes kept per template, so that a create only claims and initialises one.
    warm_pool: dict[str, int] = Field(
        default_factory=lambda: {"base": 4, "code-interpreter-v1": 1, "desktop": 1}
    )
    # The same for sandboxes created with metadata ``hutch.runtime: gvisor`` (none by default).
    gvisor_warm_pool: dict[str, int] = Field(default_factory=dict)
    # Seconds between two samples of each running sandbox's CPU, memory and disk use (its metrics).
    metrics_interval_s: float = Field(default=5.0, gt=0)
    subnet: str = "10.11.0.0/16"
    # Moving a process into a cgroup (two per sandbox start) without waiting for the kernel: cgroup2's
    # ``favordynmods`` on the host's cgroup2 mount, for the whole host (forks and exits then cost a little
    # more). Left on once set; false leaves the mount as it is.
    favor_cgroup_moves: bool = True
    # The pages the envds of crun sandboxes hold alike merged by the kernel (KSM): ``ksmd`` is turned on for
    # the whole host at its own scan rate and left on; false: envd's memory is not offered to it.
    merge_envd_memory: bool = True
    # Sandbox networks made ahead: a sandbox started for a create (not for the warm pool), a fork or a
    # snapshot takes one instead of making its own; 0: each start makes its own.
    spare_networks: int = Field(default=2, ge=0, le=64)
    # The interface sandboxes may reach the outside through (masqueraded), as each one's egress policy
    # allows: "auto" finds it from the host's IPv4 default route when the node starts (none found: no
    # egress, with a warning); "off" (or empty, or None as older configurations say): no sandbox has any
    # route out; anything else names the interface.
    egress_interface: str | None = "auto"
    # The IPv4 name servers sandboxes are given with egress; empty: the host's (see docs/security.md).
    egress_name_servers: list[str] = Field(default_factory=list)
    # Parts of the private IPv4 ranges (10/8, 172.16/12, 192.168/16, 100.64/10) that sandboxes may reach
    # through the uplink as their policies allow, e.g. ["10.20.0.0/16"]; closed to them otherwise. Never
    # opens the uplink's own networks, the node's addresses, link-local or the sandbox subnet.
    egress_private_networks: list[str] = Field(default_factory=list)
    # A PEM bundle of extra CAs the egress proxy trusts, besides the host's store, for the servers it
    # sends requests rewritten by header rules to (a private CA; tests). None: the host's store only.
    egress_upstream_ca_file: str | None = None


class NodeSettings(BaseModel):
    """``hutch node``: where its node API and its sandbox traffic listener bind, and the host the API and
    proxies reach them at."""

    host: str = "127.0.0.1"
    port: int = 5007
    traffic_port: int = 5008
    # The address other machines dial; unset: ``host`` (which then must not be a wildcard).
    advertise_host: str | None = None
    # What the node offers to sandboxes; 0: all the machine's CPUs, its memory less 1 GiB, and the free
    # disk of the data directory less 2 GiB, measured at start.
    cpu_count: int = 0
    memory_mb: int = 0
    disk_mb: int = 0


class ClusterSettings(BaseModel):
    """Many machines over one PostgreSQL catalog: ``hutch api`` and ``hutch proxy`` replicas, ``hutch node``
    on every machine that hosts sandboxes. Unused by ``hutch up``."""

    # The secret that API and proxies show nodes (``X-Hutch-Cluster-Key``): inline, or read from a file.
    secret: str = ""
    secret_file: Path | None = None
    # Where proxies reach an API replica, to wake a paused sandbox created with ``autoResume``.
    api_url: str = "http://127.0.0.1:3000"
    # A node heartbeats this often; one silent for ``lost_after_s`` is marked lost, its sandboxes with it.
    heartbeat_s: float = Field(default=2.0, gt=0)
    lost_after_s: float = Field(default=6.0, gt=0)
    # Placement compares this many nodes sampled at random among those that fit (best of K).
    placement_sample: int = Field(default=3, ge=1)
    # CPUs may be promised this many times over (sandboxes seldom use all theirs); memory and disk never.
    cpu_overcommit: float = Field(default=4.0, ge=1)

    def key(self) -> str:
        """The cluster secret; ``ValueError`` when none is configured or it is too short to be one."""
        value = self.secret or (self.secret_file.read_text().strip() if self.secret_file else "")
        if len(value) < 32:
            raise ValueError(
                "a cluster needs a secret of at least 32 characters (HUTCH_CLUSTER__SECRET_FILE or "
                "HUTCH_CLUSTER__SECRET)"
            )
        return value


class ProxySettings(BaseModel):
    # Loopback unless configured: a public bind is the operator's explicit choice.
    host: str = "127.0.0.1"
    port: int = 49983
    # The domain clients use (``E2B_DOMAIN``): the API at ``api.{domain}``, each sandbox port at
    # ``{port}-{sandboxId}.{domain}``, both through the TLS edge.
    domain: str = "hutch.localhost"
    # The TLS edge (HAProxy) on ``host``: 0 turns it off (only the plain-HTTP API and proxy ports serve).
    tls_port: int = 443
    # The edge's certificate and key (PEM files) for ``domain`` and ``*.domain``; unset: a local
    # certificate authority made in ``tls_dir`` (default ``<data_dir>/tls``) signs one.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    tls_dir: Path | None = None
    # Add the local certificate authority to the system's trust store (``hutch up``).
    trust_local_ca: bool = True
    # Serve the SDK's debug mode (``E2B_DEBUG=true``: no API key, one shared development sandbox, root in
    # it) to loopback clients. ``hutch up --dev``; refused when ``host`` is not a loopback address.
    local_development: bool = False
    # A WebSocket message larger than this, from either side, closes the connection with 1009.
    max_websocket_message_mb: int = 16
    # An upstream HTTP read or write that makes no progress for this long ends the request. Above the
    # keepalives of envd's streams (the SDK asks for one every 50 s; 90 s without asking).
    idle_timeout_s: float = 300


class TemplateSettings(BaseModel):
    cache_dir: Path = Path("/var/cache/hutch")
    # Build and serve ``code-interpreter-v1`` (Jupyter; about a minute to build once, ~0.7 GB on disk).
    code_interpreter: bool = True
    # Build and serve ``desktop`` (Xfce for e2b-desktop; about a minute to build once, ~1.2 GB on disk).
    desktop: bool = True
    # Build and serve ``mcp-gateway`` (Sandbox.create(mcp=...); about 35 s to build once, ~0.7 GB on disk).
    mcp_gateway: bool = True
    # Template builds: at most this many at once; each step's sandbox gets a sparse disk of this size and
    # may run this long.
    max_parallel_builds: int = 2
    build_disk_mb: int = 8192
    build_step_timeout_s: float = 3600
    # Egress of build sandboxes (through ``runtime.egress_interface``; none without one): anything, or
    # only ``build_allow_out`` (addresses, CIDRs, host names like ``pypi.org``, ``*.debian.org``).
    build_internet: bool = True
    build_allow_out: list[str] = Field(default_factory=list)
    # A CA bundle that build steps trust too (for networks that inspect TLS), e.g. the host's
    # /etc/ssl/certs/ca-certificates.crt.
    build_ca_bundle: Path | None = None
    # The largest ``COPY`` upload, and registries reached over plain HTTP (loopback ones always are).
    max_upload_mb: int = 4096
    insecure_registries: list[str] = Field(default_factory=list)
    # Registries that images may come from although they are at internal addresses (loopback, private,
    # link-local, the node's own), which are refused otherwise: ``host[:port]``, host names, addresses or
    # networks. Apart from ``insecure_registries``, which is only about plain HTTP.
    internal_registries: list[str] = Field(default_factory=list)
    # What a build's steps print into its log: a line's length (cut beyond it), and the lines one build
    # keeps, in all and per second (the rest are counted and dropped).
    build_log_line_chars: int = 4096
    build_log_entries: int = 10_000
    build_log_entries_per_s: int = 200


class Settings(BaseSettings):
    """Everything configurable, by component."""

    model_config = SettingsConfigDict(env_prefix="HUTCH_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("/var/lib/hutch")
    api: ApiSettings = Field(default_factory=ApiSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    node: NodeSettings = Field(default_factory=NodeSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)

    @property
    def catalog_url(self) -> str:
        return self.catalog.url or f"sqlite+aiosqlite:///{self.data_dir / 'hutch.db'}"

    @property
    def edge_domain(self) -> str:
        """The domain clients give as ``E2B_DOMAIN``: ``proxy.domain``, with the edge's port unless 443."""
        port = self.proxy.tls_port
        return self.proxy.domain if port in (0, 443) else f"{self.proxy.domain}:{port}"

    @property
    def sandbox_domain(self) -> str:
        """Each sandbox's ``domain`` in the API's answers: ``api.sandbox_domain`` if set, else the edge's."""
        return self.api.sandbox_domain or self.edge_domain

    @property
    def tls_dir(self) -> Path:
        return self.proxy.tls_dir or self.data_dir / "tls"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls)


class _TomlSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``HUTCH_CONFIG`` (if any)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data().get(field_name), field_name, False

    def _data(self) -> dict[str, Any]:
        path = os.environ.get("HUTCH_CONFIG")
        if not path:
            return {}
        with open(path, "rb") as f:
            return tomllib.load(f)

    def __call__(self) -> dict[str, Any]:
        return self._data()
