"""Cross-origin requests, answered as E2B's envd answers them (rs/cors with any origin, the methods below,
any header, Connect's exposed headers, a two-hour max age, no credentials).

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered 204 before any
access check; every other request with an ``Origin`` gets the allowing headers on whatever it is answered.
A request without ``Origin`` gets nothing added.
"""

from __future__ import annotations

import re

from .server import Headers, Request

# OPTIONS itself always passes, as in rs/cors.
ALLOWED_METHODS = frozenset({"HEAD", "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EXPOSED_HEADERS = (
    "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options"
)
MAX_AGE_S = 7200
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
# Requested headers are echoed only as a token list of at most this many bytes.
MAX_REQUESTED_HEADERS = 4096

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_TOKEN_LIST = re.compile(rf"{_TOKEN}(?:[ \t]*,[ \t]*{_TOKEN})*")


def is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and bool(request.headers.get("origin"))
        and bool(request.headers.get("access-control-request-method"))
    )


def preflight_headers(request: Request) -> Headers:
    """The head of the 204 that answers a preflight: allowing only when the requested method is allowed."""
    headers = [("vary", PREFLIGHT_VARY)]
    method = request.headers["access-control-request-method"]
    if method not in ALLOWED_METHODS:
        return headers
    headers += [("access-control-allow-origin", "*"), ("access-control-allow-methods", method)]
    headers += [("access-control-allow-headers", value) for value in _requested_headers(request)]
    headers.append(("access-control-max-age", str(MAX_AGE_S)))
    return headers


def response_headers(request: Request) -> Headers:
    """What a response to ``request`` (not a preflight) carries beyond its own headers."""
    if not request.headers.get("origin"):
        return []
    if request.method not in ALLOWED_METHODS:
        return [("vary", "Origin")]
    return [
        ("vary", "Origin"),
        ("access-control-allow-origin", "*"),
        ("access-control-expose-headers", EXPOSED_HEADERS),
    ]


def _requested_headers(request: Request) -> list[str]:
    """The ``Access-Control-Request-Headers`` values to echo: none unless all are bounded token lists."""
    values = [value for name, value in request.header_list if name == "access-control-request-headers"]
    if not values or not values[0] or sum(map(len, values)) > MAX_REQUESTED_HEADERS:
        return []
    if not all(_TOKEN_LIST.fullmatch(value) for value in values):
        return []
    return values
