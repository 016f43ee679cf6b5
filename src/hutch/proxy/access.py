"""Who may reach a sandbox's port: the traffic access token (spec §1.4.10, §2.3).

A sandbox created with ``network.allowPublicTraffic: false`` has a token, and then every request to one of
its ports must carry it in ``E2B-Traffic-Access-Token`` — except requests to envd's port (49983), which
envd guards with its own access token, as E2B's proxies do. The token is compared in constant time.
"""

from __future__ import annotations

import hmac

from ..runtime.types import ENVD_PORT
from . import responses
from .asgi import Scope
from .routing import SandboxRoute, Target

TRAFFIC_TOKEN_HEADER = "e2b-traffic-access-token"
# Ports the traffic token does not guard: envd's, which has its own token.
EXEMPT_PORTS = frozenset({ENVD_PORT})

_HEADER = TRAFFIC_TOKEN_HEADER.encode()
_SECURED = "Sandbox is secured with traffic access token."
MISSING = f"{_SECURED} Token header '{TRAFFIC_TOKEN_HEADER}' is missing"
INVALID = f"{_SECURED} Provided token in header '{TRAFFIC_TOKEN_HEADER}' is invalid"


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
