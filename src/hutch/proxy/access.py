"""Who may reach a sandbox's port: the traffic access token (spec §1.4.10, §2.3), and the SDK's debug mode.

A sandbox created with ``network.allowPublicTraffic: false`` has a token, and then every request to one of
its ports must carry it in ``E2B-Traffic-Access-Token`` — except requests to envd's port (49983), which
envd guards with its own access token, as E2B's proxies do. The token is compared in constant time.

The SDK's debug mode (``E2B_DEBUG=true``) sends no key and no token: the id ``debug_sandbox_id`` names the
development sandbox, where its client is root. It is served only in local development mode, and only to a
peer on loopback (the connection's own address: forwarding headers are not trusted) whose request did not
come through the TLS edge: behind HAProxy every peer is loopback, so a request carrying ``X-Hutch-Edge``
(which the edge always sets) is refused it, whoever sent it.
"""

from __future__ import annotations

import hmac
import ipaddress

from ..runtime.types import ENVD_PORT
from . import responses
from .asgi import Scope
from .routing import DEBUG_SANDBOX_ID, SandboxRoute, Target

TRAFFIC_TOKEN_HEADER = "e2b-traffic-access-token"
# Ports the traffic token does not guard: envd's, which has its own token.
EXEMPT_PORTS = frozenset({ENVD_PORT})

_HEADER = TRAFFIC_TOKEN_HEADER.encode()
_SECURED = "Sandbox is secured with traffic access token."
MISSING = f"{_SECURED} Token header '{TRAFFIC_TOKEN_HEADER}' is missing"
INVALID = f"{_SECURED} Provided token in header '{TRAFFIC_TOKEN_HEADER}' is invalid"
DEBUG_MODE_OFF = (
    "The SDK's debug mode (E2B_DEBUG) is served only in local development mode (hutch up --dev): "
    "create sandboxes with an API key instead"
)
DEBUG_MODE_REMOTE = "The SDK's debug mode (E2B_DEBUG) is served only to clients on loopback"
DEBUG_MODE_EDGE = (
    "The SDK's debug mode (E2B_DEBUG) is not served through the TLS edge: it talks plain HTTP to the proxy"
)
# Set by the TLS edge on every request it forwards (``haproxy.EDGE_HEADER``).
EDGE_HEADER = b"x-hutch-edge"


def check(route: SandboxRoute, target: Target, scope: Scope) -> None:
    """Raise :class:`responses.Refusal` (403) unless the request may reach ``target``."""
    expected = route.traffic_access_token
    if expected is None or target.port in EXEMPT_PORTS:
        return
    given = next((value for name, value in scope["headers"] if name.lower() == _HEADER), None)
    if not given:
        raise responses.Refusal(responses.sandbox_error(target.sandbox_id, MISSING, status=403))
    if not hmac.compare_digest(given, expected.encode()):
        raise responses.Refusal(responses.sandbox_error(target.sandbox_id, INVALID, status=403))


def check_debug_mode(target: Target, scope: Scope, *, enabled: bool) -> None:
    """Raise :class:`responses.Refusal` (403) for the debug sandbox unless local development mode is on
    and the peer is on loopback, not the TLS edge."""
    if target.sandbox_id != DEBUG_SANDBOX_ID:
        return
    if not enabled:
        raise responses.Refusal(responses.sandbox_error(target.sandbox_id, DEBUG_MODE_OFF, status=403))
    if any(name.lower() == EDGE_HEADER for name, _ in scope["headers"]):
        raise responses.Refusal(responses.sandbox_error(target.sandbox_id, DEBUG_MODE_EDGE, status=403))
    client = scope.get("client")
    if not client or not is_loopback(client[0]):
        raise responses.Refusal(responses.sandbox_error(target.sandbox_id, DEBUG_MODE_REMOTE, status=403))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or the name ``localhost``) is on loopback."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
