"""Where a data-plane request goes: a sandbox id and a port, read from the Host header or the routing
headers (spec §2.2). Pure functions, no I/O.

* Header routing: Host is ``localhost``, an IP literal or ``sandbox.{domain}``, and the request carries
  ``E2b-Sandbox-Id`` or ``E2b-Sandbox-Port`` — then both are required. This is what the SDK sends when
  ``E2B_SANDBOX_URL`` points at the proxy.
* Host routing otherwise: Host is ``{port}-{sandboxId}.{domain}`` — what the SDK builds from ``E2B_DOMAIN``
  through the TLS edge (default domain ``hutch.localhost``) — or ``{port}-{sandboxId}.localhost``
  (``*.localhost`` resolves to loopback, so ``http://8000-abc.localhost:49983/`` works in a browser with no
  DNS set up).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import InvalidRequest
from ..runtime.types import ENVD_PORT

SANDBOX_ID_HEADER = "e2b-sandbox-id"
SANDBOX_PORT_HEADER = "e2b-sandbox-port"
# The cluster secret's header, which a node's traffic listener wants (``runtime.node_wire``'s).
CLUSTER_KEY_HEADER = "x-hutch-cluster-key"
# The SDK's debug mode names every sandbox this; the resolver decides what it maps to.
DEBUG_SANDBOX_ID = "debug_sandbox_id"

# Host routing under this domain too, whatever the configured one: plain HTTP to the proxy's port.
_LOOPBACK_DOMAIN = "localhost"
_SANDBOX_ID = re.compile(r"[a-z0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Target:
    """A port of a sandbox."""

    sandbox_id: str
    port: int


class Reachable(Protocol):
    """What says where a sandbox's ports are reached: a runtime's ``SandboxHandle``, a catalog row."""

    def address(self, port: int) -> tuple[str, int]: ...


@dataclass(frozen=True)
class NodeHop:
    """In a cluster: the traffic listener of the node that holds the sandbox, which a proxy forwards to
    with the sandbox and port in the routing headers, and the cluster secret that node wants."""

    address: tuple[str, int]
    key: str


@dataclass(frozen=True)
class SandboxRoute:
    """What the resolver knows of a sandbox: where it runs, and the traffic access token its ports want
    (``None``: the sandbox takes public traffic)."""

    sandbox: Reachable
    traffic_access_token: str | None = None
    # The Host header for the sandbox's user ports (``${PORT}`` expanded), instead of the client's.
    mask_request_host: str | None = None
    # Through the node that holds it (a cluster), rather than straight to the sandbox.
    hop: NodeHop | None = None
    # Why the sandbox cannot be reached now although it exists (its node is lost): answered with a 503.
    unavailable: str | None = None

    def host_for(self, port: int) -> str | None:
        """The ``Host`` to send to ``port``; None keeps the client's (always for envd's port)."""
        if self.mask_request_host is None or port == ENVD_PORT:
            return None
        return self.mask_request_host.replace("${PORT}", str(port))

    def address(self, port: int) -> tuple[str, int]:
        return self.sandbox.address(port)


def route(host: str, headers: Mapping[str, str], *, domain: str) -> Target:
    """The sandbox and port a request is for. ``headers`` maps lower-case names to values (only the
    routing headers are read); a request that names no valid target raises :class:`InvalidRequest`."""
    hostname = hostname_of(host)
    domain = domain.lower().rstrip(".")
    if _is_shared_host(hostname, domain) and (SANDBOX_ID_HEADER in headers or SANDBOX_PORT_HEADER in headers):
        return _from_headers(headers)
    return _from_hostname(hostname, domain)


def route_headers(headers: Mapping[str, str]) -> Target:
    """The target named by the routing headers alone (a node's traffic listener, which a cluster's proxy
    tells in them where each request goes)."""
    return _from_headers(headers)


def hostname_of(host: str) -> str:
    """The host name of a ``Host`` value, without its port, lower-cased: ``[::1]:80`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def is_valid_sandbox_id(sandbox_id: str) -> bool:
    """Sandbox ids are ``[a-z0-9]+`` (they sit inside host names); the SDK's debug id is accepted too."""
    return sandbox_id == DEBUG_SANDBOX_ID or _SANDBOX_ID.fullmatch(sandbox_id) is not None


def _is_shared_host(hostname: str, domain: str) -> bool:
    if hostname in ("localhost", f"sandbox.{domain}"):
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _from_headers(headers: Mapping[str, str]) -> Target:
    sandbox_id = headers.get(SANDBOX_ID_HEADER, "").strip()
    port = headers.get(SANDBOX_PORT_HEADER, "").strip()
    if not sandbox_id:
        raise InvalidRequest("Missing header: E2b-Sandbox-Id")
    if not port:
        raise InvalidRequest("Missing header: E2b-Sandbox-Port")
    return _target(sandbox_id, port)


def _from_hostname(hostname: str, domain: str) -> Target:
    label, dot, rest = hostname.partition(".")
    if not dot or rest not in (domain, _LOOPBACK_DOMAIN):
        raise InvalidRequest(f"Invalid host: expected {{port}}-{{sandboxId}}.{domain}, got {hostname!r}")
    port, dash, sandbox_id = label.partition("-")
    if not dash:
        raise InvalidRequest(f"Invalid host: expected {{port}}-{{sandboxId}}.{domain}, got {hostname!r}")
    return _target(sandbox_id, port)


def _target(sandbox_id: str, port: str) -> Target:
    if not is_valid_sandbox_id(sandbox_id):
        raise InvalidRequest(f"Invalid sandbox ID: {sandbox_id!r}")
    if _PORT.fullmatch(port) is None or not 0 < int(port) < 65536:
        raise InvalidRequest(f"Invalid sandbox port: {port!r}")
    return Target(sandbox_id, int(port))
