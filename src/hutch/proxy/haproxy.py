"""The TLS edge's HAProxy configuration, as text made from the settings (no I/O).

HAProxy terminates TLS (1.2 and up, ALPN ``h2,http/1.1``) on ``proxy.tls_port`` and routes by ``Host``:
``api.{host}`` goes to the API, everything else to the Python proxy, which routes
``{port}-{sandboxId}.{host}`` to the sandbox, checks traffic tokens, wakes paused sandboxes and answers
errors as E2B does. Both are reached over HTTP/1.1 on loopback. The proxy bounds its own waits (a wake, a
connect, an idle sandbox): the edge waits for it a little longer than all of them, so that the proxy
always answers first, with E2B's JSON. Every request forwarded carries
``X-Hutch-Edge: 1`` (a client's own value is overwritten), which the Python proxy reads as "not a local
client" (:mod:`.access`); ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are the edge's, not the client's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .certificates import host_of
from .forward import CONNECT_TIMEOUT_S as SANDBOX_CONNECT_TIMEOUT_S
from .server import KEEP_ALIVE_S
from .waker import WAKE_TIMEOUT_S

EDGE_HEADER = "X-Hutch-Edge"  # read by the proxy: access.EDGE_HEADER
# Connections the edge holds at once, in all, unless the file limit allows fewer (each takes two
# descriptors); more wait in the listening socket's backlog.
MAX_CONNECTIONS = 10_000
CONNECT_TIMEOUT_S = 5
# The whole header block of a request must arrive within this.
REQUEST_TIMEOUT_S = 30
# The API's slowest calls (a create that boots a sandbox, a resume) end well within this.
API_TIMEOUT_S = 300
# How much longer than the proxy's own bounds the edge waits for it.
PROXY_MARGIN_S = 5
# A WebSocket (or any upgraded connection) with no traffic either way for this long is closed.
TUNNEL_TIMEOUT_S = 3600
# Modern TLS 1.2 suites (TLS 1.3's are OpenSSL's defaults).
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)


@dataclass(frozen=True)
class EdgeConfig:
    """What the configuration is made of: where the edge listens, where it sends requests, with what."""

    listen: Sequence[str]  # addresses
    port: int
    api_host: str  # ``api.{host}``, the Host that goes to the API
    api: tuple[str, int]
    proxy: tuple[str, int]
    certificate: Path  # certificate and key, one PEM file
    idle_timeout_s: float
    user: str | None = None  # the workers drop to this user (and its group) after binding
    max_connections: int = MAX_CONNECTIONS


def render(config: EdgeConfig) -> str:
    """The ``haproxy.cfg`` text."""
    crt = f"ssl crt {config.certificate} alpn h2,http/1.1"
    binds = [
        f"    bind {_address(address, config.port)}{' v6only' if ':' in address else ''} {crt}"
        for address in config.listen
    ]
    user = [f"    user {config.user}", f"    group {config.user}"] if config.user else []
    lines = [
        "global",
        "    log stderr format raw local0 warning",
        f"    maxconn {config.max_connections}",
        *user,
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        f"    ssl-default-bind-ciphers {TLS12_CIPHERS}",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlognull",
        "    option forwardfor",
        f"    timeout connect {CONNECT_TIMEOUT_S}s",
        f"    timeout http-request {REQUEST_TIMEOUT_S}s",
        f"    timeout client {KEEP_ALIVE_S}s",
        f"    timeout http-keep-alive {KEEP_ALIVE_S}s",
        f"    timeout tunnel {TUNNEL_TIMEOUT_S}s",
        "    timeout client-fin 30s",
        "    timeout server-fin 30s",
        "",
        "frontend edge",
        *binds,
        "    http-request del-header X-Forwarded-For",
        "    http-request set-header X-Forwarded-Proto https",
        f"    http-request set-header {EDGE_HEADER} 1",
        f"    acl to_api req.hdr(host),lower,field(1,:) -m str {config.api_host.lower()}",
        "    use_backend api if to_api",
        "    default_backend sandboxes",
        "",
        "backend api",
        f"    timeout server {_seconds(max(API_TIMEOUT_S, config.idle_timeout_s))}",
        f"    server api {_address(*config.api)}",
        "",
        "backend sandboxes",
        f"    timeout server {_seconds(proxy_timeout_s(config.idle_timeout_s))}",
        f"    server proxy {_address(*config.proxy)}",
        "",
    ]
    return "\n".join(lines)


def proxy_timeout_s(idle_timeout_s: float) -> float:
    """How long the edge waits for the proxy's answer, or for its next byte: past the longest the proxy
    itself waits before it answers (a wake, a connect, then an idle sandbox), so the proxy's answer wins."""
    return WAKE_TIMEOUT_S + SANDBOX_CONNECT_TIMEOUT_S + idle_timeout_s + PROXY_MARGIN_S


def _address(host: str, port: int) -> str:
    return f"ipv6@{host}:{port}" if ":" in host else f"ipv4@{host}:{port}"


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms"


def from_settings(
    settings: Settings, certificate: Path, *, ipv6: bool, user: str | None, file_limit: int | None = None
) -> EdgeConfig:
    """The edge of ``settings``: on ``proxy.host`` (and on ``::1`` too when that is IPv4 loopback and
    ``ipv6``, since ``*.localhost`` names resolve to ``::1`` first), in front of the API and the proxy;
    ``file_limit`` is the most descriptors HAProxy may open (the hard ``RLIMIT_NOFILE``)."""
    host = settings.proxy.host
    listen = [host]
    if host in ("127.0.0.1", "localhost"):
        listen = ["127.0.0.1", "::1"] if ipv6 else ["127.0.0.1"]
    elif host == "::":
        listen = ["::", "0.0.0.0"]
    return EdgeConfig(
        listen=listen,
        port=settings.proxy.tls_port,
        api_host=f"api.{host_of(settings.proxy.domain)}",
        api=(local_address(settings.api.host), settings.api.port),
        proxy=(local_address(settings.proxy.host), settings.proxy.port),
        certificate=certificate,
        idle_timeout_s=settings.proxy.idle_timeout_s,
        user=user,
        max_connections=MAX_CONNECTIONS
        if file_limit is None
        else min(MAX_CONNECTIONS, (file_limit - 100) // 2),
    )


def local_address(host: str) -> str:
    """The address this machine reaches a listener bound to ``host`` at."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)
