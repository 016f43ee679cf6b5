"""Sandbox bodies: ``NewSandboxV2``, ``ConnectSandboxV2``, ``Sandbox`` (:class:`CreatedSandbox` here),
``SandboxDetail``, ``ListedSandbox``, the ``GET /v2/sandboxes`` query (spec §1.4.1 to
§1.4.6), and pause and resume requests (§1.4.7, §1.5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from ...catalog.models import SandboxRow
from ...errors import InvalidRequest
from ..services import egress
from ..services.capabilities import refuse_unsupported
from ..services.volumes import MAX_MOUNTS, check_mount_path
from .common import WireModel

STATES = ("running", "paused", "lost")
# What a listing shows unless asked: a sandbox on a lost node only when asked for by its state.
DEFAULT_STATES = frozenset({"running", "paused"})


# The largest ``mcp`` object a create takes, serialised.
MAX_MCP_BYTES = 64 * 1024


class ProxyTls(WireModel):
    enabled: bool
    server_name: str | None = Field(default=None, alias="serverName", max_length=253)
    ca_cert: str | None = Field(default=None, alias="caCert", max_length=egress.MAX_CA_CERT_BYTES)


class EgressProxy(WireModel):
    """``SandboxEgressProxyConfig``: the proxy egress leaves through (SOCKS5, or HTTP ``CONNECT`` when its
    address is written ``http://host:port``)."""

    address: str = Field(max_length=300)
    username: str | None = Field(default=None, max_length=egress.MAX_CREDENTIAL_BYTES)
    password: str | None = Field(default=None, max_length=egress.MAX_CREDENTIAL_BYTES, repr=False)
    tls: ProxyTls | None = None

    def request(self) -> egress.ProxyRequest:
        tls = self.tls
        return egress.check_proxy(
            egress.ProxyRequest(
                address=self.address,
                username=self.username,
                password=self.password,
                tls=tls is not None and tls.enabled,
                server_name=tls.server_name if tls else None,
                ca_cert=tls.ca_cert if tls else None,
            )
        )


class _Transform(WireModel):
    headers: dict[str, str] | None = None


class _Rule(WireModel):
    transform: _Transform | None = None


class _Egress(WireModel):
    allow_out: list[str] | None = Field(default=None, alias="allowOut")
    deny_out: list[str] | None = Field(default=None, alias="denyOut")
    # Header rules by host pattern, the upstream proxy, the name servers (absent: the default; []: none).
    rules: dict[str, list[_Rule]] | None = None
    egress_proxy: EgressProxy | None = Field(default=None, alias="egressProxy")
    dns_servers: list[str] | None = Field(default=None, alias="dnsServers")

    @model_validator(mode="after")
    def _check_egress(self) -> _Egress:
        self.checked_rules()
        self.proxy()
        if self.dns_servers is not None:
            egress.check_dns_servers(self.dns_servers)
        return self

    def checked_rules(self) -> dict[str, list[dict[str, Any]]] | None:
        if not self.rules:
            return None
        return egress.check_rules(
            {
                pattern: [(rule.transform.headers or {}) if rule.transform else {} for rule in rules]
                for pattern, rules in self.rules.items()
            }
        )

    def proxy(self) -> egress.ProxyRequest | None:
        return None if self.egress_proxy is None else self.egress_proxy.request()


class NetworkConfig(_Egress):
    """``SandboxNetworkConfig`` of a create: the egress rules are applied, ``allowPublicTraffic: false``
    secures the sandbox's ports with a traffic access token, ``maskRequestHost`` sets the ``Host`` its user
    ports receive; the other keys are refused (``capabilities.REFUSED``)."""

    allow_public_traffic: bool | None = Field(default=None, alias="allowPublicTraffic")
    # The Host header the sandbox's user ports receive; ``${PORT}`` becomes the port.
    mask_request_host: str | None = Field(
        default=None, alias="maskRequestHost", max_length=1024, pattern=r"^[\x21-\x7e]+$"
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "SandboxNetworkConfig", within="network.")
        return data


class NetworkUpdate(_Egress):
    """``SandboxNetworkUpdateConfig``: the body of ``PUT /sandboxes/{id}/network`` (``allowPublicTraffic``
    is a create-time setting, so it is not read here)."""

    # snake_case on the wire, as in the create body.
    allow_internet_access: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "SandboxNetworkUpdateConfig")
        return data


class AutoResume(WireModel):
    enabled: bool = False


class VolumeMountBody(WireModel):
    """``SandboxVolumeMount``: a volume of the team, by name, and where it appears in the sandbox."""

    name: str = Field(max_length=64)
    path: str = Field(max_length=1024)


class NewSandbox(WireModel):
    """``NewSandboxV2``; ``iam`` is refused (``capabilities.REFUSED``). ``mcp`` is accepted (the SDK starts
    the gateway itself in the sandbox) within a size bound."""

    template_id: str = Field(alias="templateID", min_length=1)
    timeout: int | None = Field(default=None, ge=0)
    metadata: dict[str, str] | None = None
    env_vars: dict[str, str] | None = Field(default=None, alias="envVars")
    # snake_case on the wire, unlike every other field.
    allow_internet_access: bool | None = None
    network: NetworkConfig | None = None
    # Lifecycle: pause instead of kill at the timeout (with the memory unless ``autoPauseMemory`` is
    # false), and resume on traffic.
    auto_pause: bool = Field(default=False, alias="autoPause")
    auto_pause_memory: bool | None = Field(default=None, alias="autoPauseMemory")
    auto_resume: AutoResume | None = Field(default=None, alias="autoResume")
    volume_mounts: list[VolumeMountBody] | None = Field(default=None, alias="volumeMounts")
    mcp: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "NewSandboxV2")
        return data

    @model_validator(mode="after")
    def _check_mounts_and_mcp(self) -> NewSandbox:
        mounts = self.volume_mounts or []
        if len(mounts) > MAX_MOUNTS:
            raise InvalidRequest(f"volumeMounts: at most {MAX_MOUNTS} volumes")
        paths = [check_mount_path(mount.path) for mount in mounts]
        if len(set(paths)) != len(paths):
            raise InvalidRequest("volumeMounts: two volumes at the same path")
        if self.mcp is not None and len(json.dumps(self.mcp)) > MAX_MCP_BYTES:
            raise InvalidRequest(f"mcp may be at most {MAX_MCP_BYTES} bytes")
        return self

    def mounts(self) -> list[tuple[str, str]]:
        """(volume name, mount path) of each ``volumeMounts`` entry."""
        return [(mount.name, check_mount_path(mount.path)) for mount in self.volume_mounts or []]


class NewSandboxV1(NewSandbox):
    """v1's ``NewSandbox``: ``NewSandboxV2`` and ``secure``, of which only ``true`` passes (envd always
    requires its access token). Its check replaces ``NewSandboxV2``'s, whose refusals it includes."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "NewSandbox")
        return data


class ConnectSandbox(WireModel):
    """``ConnectSandboxV2``: an optional new time to live, which only ever extends the current one, and
    for a paused sandbox whether to restore its memory (``memory: false``: boot it from its files)."""

    timeout: int | None = Field(default=None, ge=0)
    memory: bool = True


class PauseRequest(WireModel):
    """``SandboxPauseRequest``: keep the memory (default) or only the files; ``requireHealthyGuest`` is
    refused."""

    memory: bool = True

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "SandboxPauseRequest")
        return data


class ResumeRequest(WireModel):
    """v1 ``ResumedSandbox``: a time to live from now, and how to resume; ``autoPause`` is refused."""

    timeout: int | None = Field(default=None, ge=0)
    memory: bool = True

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "ResumedSandbox")
        return data


class ConnectSandboxV1(WireModel):
    timeout: int = Field(ge=0)
    memory: bool = True


class TimeoutRequest(WireModel):
    timeout: int = Field(ge=0)


class CreatedSandbox(WireModel):
    """The answer to create and connect: enough for the SDK to reach the sandbox's envd."""

    # E2B's name for it, which the OpenAPI document uses (see ``openapi``).
    model_config = ConfigDict(title="Sandbox")

    template_id: str = Field(alias="templateID")
    sandbox_id: str = Field(alias="sandboxID")
    client_id: str = Field(alias="clientID")
    envd_version: str = Field(alias="envdVersion")
    envd_access_token: str = Field(alias="envdAccessToken")
    # Null unless the sandbox was created with ``network.allowPublicTraffic: false``.
    traffic_access_token: str | None = Field(alias="trafficAccessToken")
    alias: str | None = None
    domain: str | None = None

    @classmethod
    def of(cls, row: SandboxRow, *, domain: str | None) -> CreatedSandbox:
        return cls(
            template_id=row.template_id,
            sandbox_id=row.sandbox_id,
            client_id=row.node_id,
            envd_version=row.envd_version,
            envd_access_token=row.envd_access_token,
            traffic_access_token=row.traffic_access_token,
            alias=row.alias,
            domain=domain,
        )


class _SandboxFields(WireModel):
    """What both a listed sandbox and a sandbox's detail carry."""

    template_id: str = Field(alias="templateID")
    sandbox_id: str = Field(alias="sandboxID")
    client_id: str = Field(alias="clientID")
    envd_version: str = Field(alias="envdVersion")
    alias: str | None = None
    started_at: datetime = Field(alias="startedAt")
    end_at: datetime = Field(alias="endAt")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    state: Literal["running", "paused", "lost"]
    metadata: dict[str, str]
    # The volumes it mounts, by name (absent when none).
    volume_mounts: list[VolumeMountBody] | None = Field(default=None, alias="volumeMounts")


class ListedSandbox(_SandboxFields):
    """An item of the sandbox list."""

    @model_serializer(mode="wrap")
    def _without_null_mounts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in ("volumeMounts", "volume_mounts"):
            if key in data and data[key] is None:
                del data[key]
        return data

    @classmethod
    def of(cls, row: SandboxRow) -> ListedSandbox:
        return cls(**_listed_fields(row))


class Lifecycle(WireModel):
    auto_resume: bool = Field(alias="autoResume")
    on_timeout: Literal["kill", "pause"] = Field(alias="onTimeout")


class DetailNetwork(WireModel):
    """The ``network`` of a sandbox's detail: whether its ports take traffic without its token, and its
    header rules (secrets as placeholders, never their values), proxy (no password) and name servers."""

    allow_public_traffic: bool = Field(alias="allowPublicTraffic")
    rules: dict[str, list[dict[str, Any]]] | None = None
    egress_proxy: dict[str, Any] | None = Field(default=None, alias="egressProxy")
    dns_servers: list[str] | None = Field(default=None, alias="dnsServers")

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}

    @classmethod
    def of(cls, row: SandboxRow) -> DetailNetwork:
        shown = egress.public(row.egress)
        return cls(
            allow_public_traffic=row.traffic_access_token is None,
            rules=shown.get("rules"),
            egress_proxy=shown.get("egressProxy"),
            dns_servers=shown.get("dnsServers"),
        )


class SandboxDetail(_SandboxFields):
    """``GET /sandboxes/{id}``: the listed fields plus how to reach the sandbox. (E2B's detail has no
    ``trafficAccessToken``: create and connect return it.)"""

    envd_access_token: str = Field(alias="envdAccessToken")
    allow_internet_access: bool | None = Field(alias="allowInternetAccess")
    domain: str | None
    network: DetailNetwork
    lifecycle: Lifecycle
    # While paused: ``full`` (its memory kept) or ``filesystem``; absent otherwise (the SDK refuses null).
    pause_mode: Literal["full", "filesystem"] | None = Field(default=None, alias="pauseMode")

    @model_serializer(mode="wrap")
    def _without_null_pause_mode(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in ("pauseMode", "pause_mode", "volumeMounts", "volume_mounts"):
            if key in data and data[key] is None:
                del data[key]
        return data

    @classmethod
    def of(cls, row: SandboxRow, *, domain: str | None) -> SandboxDetail:
        return cls(
            **_listed_fields(row),
            envd_access_token=row.envd_access_token,
            allow_internet_access=row.allow_internet_access,
            domain=domain,
            network=DetailNetwork.of(row),
            lifecycle=Lifecycle(auto_resume=row.auto_resume, on_timeout=row.on_timeout),  # type: ignore[arg-type]
            pause_mode=row.pause_mode if row.state == "paused" else None,  # type: ignore[arg-type]
        )


class SandboxListQuery(WireModel):
    """``GET /v2/sandboxes``'s query; ``metadata`` and ``state`` arrive in the encodings of spec §1.4.6."""

    metadata: str | None = None
    state: str | None = None
    order: Literal["asc", "desc"] = "desc"
    started_after: datetime | None = Field(default=None, alias="startedAfter")
    template: str | None = None
    limit: int = Field(default=100, ge=1, le=100)
    next_token: str | None = Field(default=None, alias="nextToken")

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: str | None) -> str | None:
        parse_metadata(value)
        return value

    @field_validator("state")
    @classmethod
    def _check_state(cls, value: str | None) -> str | None:
        parse_states(value)
        return value

    @field_validator("started_after")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def metadata_filter(self) -> dict[str, str]:
        return parse_metadata(self.metadata)

    def states(self) -> frozenset[str]:
        return parse_states(self.state)


class SandboxListQueryV1(WireModel):
    """``GET /sandboxes`` (v1): running sandboxes, filtered by metadata only."""

    metadata: str | None = None

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: str | None) -> str | None:
        parse_metadata(value)
        return value

    def metadata_filter(self) -> dict[str, str]:
        return parse_metadata(self.metadata)


def parse_metadata(value: str | None) -> dict[str, str]:
    """Decode the ``metadata`` filter: the SDK sends ``urlencode({quote(k): quote(v)})``, which the HTTP
    layer encodes once more. The framework has undone that last layer; undo the other two here."""
    if not value:
        return {}
    pairs: dict[str, str] = {}
    for pair in unquote_plus(value).split("&"):
        key, sep, item = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"metadata filter {pair!r} is not key=value")
        pairs[unquote_plus(key)] = unquote_plus(item)
    return pairs


def parse_states(value: str | None) -> frozenset[str]:
    """``running,paused`` → the set; absent means running and paused (``lost`` is shown only when asked)."""
    if not value:
        return DEFAULT_STATES
    states = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = states.difference(STATES)
    if unknown:
        raise ValueError(f"unknown state {', '.join(sorted(unknown))}; expected {' or '.join(STATES)}")
    return states


def _listed_fields(row: SandboxRow) -> dict:
    return {
        "template_id": row.template_id,
        "sandbox_id": row.sandbox_id,
        "client_id": row.node_id,
        "envd_version": row.envd_version,
        "alias": row.alias,
        "started_at": row.started_at,
        "end_at": row.end_at,
        "cpu_count": row.cpu_count,
        "memory_mb": row.memory_mb,
        "disk_size_mb": row.disk_mb,
        "state": row.state,
        "metadata": row.metadata_,
        "volume_mounts": [VolumeMountBody(name=m["name"], path=m["path"]) for m in row.volume_mounts] or None,
    }
