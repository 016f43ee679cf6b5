"""The TLS edge's HAProxy configuration, as text made from the settings (no I/O).

HAProxy terminates TLS (1.2 and up, ALPN ``h2,http/1.1``) on ``proxy.tls_port`` and routes by ``Host``:
``api.{host}`` goes to the API; ``{port}-{sandboxId}.{host}`` goes straight to the sandbox when the edge's
maps route it (:mod:`.routes`: every running sandbox for envd's port, the public ones for every port), and
everything else to the Python proxy, which checks traffic tokens, masks hosts, wakes paused sandboxes and
answers errors as E2B does. A direct request that gets no answer from the sandbox is answered in E2B's
JSON too: port not open, or no answer. The Python proxy bounds its own waits (a wake, a connect, an idle
sandbox): the edge waits for it a little longer than all of them, so that the proxy always answers first.
Every request forwarded carries ``X-Hutch-Edge: 1`` (a client's own value is overwritten), which the Python
proxy reads as "not a local client" (:mod:`.access`); ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are
the edge's, not the client's. The maps change at run time through the admin socket, which only root can open.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..runtime.types import ENVD_PORT
from .certificates import host_of
from .forward import CONNECT_TIMEOUT_S as SANDBOX_CONNECT_TIMEOUT_S
from .responses import PORT_NOT_OPEN
from .routes import EdgeRoutes
from .server import KEEP_ALIVE_S
from .waker import WAKE_TIMEOUT_S

EDGE_HEADER = "X-Hutch-Edge"  # read by the proxy: access.EDGE_HEADER
# Marks the edge's own answers to direct requests, for their status to become 502 (then removed).
REFUSAL_HEADER = "X-Hutch-Refusal"
NO_ANSWER = "The sandbox did not answer on this port"
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
# Connections the edge holds at once, in all, unless the file limit allows fewer (each takes two
# descriptors; the edge raises the hard limit for them where the system lets it); more wait in the
# listening socket's backlog. About 20 KiB each when idle.
MAX_CONNECTIONS = 20_000
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
    routes: EdgeRoutes  # its map files and admin socket
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
        f"    stats socket {config.routes.admin_socket} mode 600 level admin",
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
        # A client that leaves before its answer ends the request to the server too.
        "    option abortonclose",
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
        *_direct_routing(config),
        "    use_backend api if to_api",
        "    default_backend sandboxes",
        "",
        "backend api",
        f"    timeout server {_seconds(max(API_TIMEOUT_S, config.idle_timeout_s))}",
        f"    server api {_address(*config.api)}",
        "",
        *_direct_backend(config),
        "backend sandboxes",
        f"    timeout server {_seconds(proxy_timeout_s(config.idle_timeout_s))}",
        f"    server proxy {_address(*config.proxy)}",
        "",
    ]
    return "\n".join(lines)


def files_needed(max_connections: int) -> int:
    """The descriptors HAProxy needs for ``max_connections`` (two each, and some to spare)."""
    return 2 * max_connections + 100


def _direct_routing(config: EdgeConfig) -> list[str]:
    """The frontend's rules that pick a routed sandbox's address (``txn.address``) from its ``Host``; none
    for a domain of other characters than a host name's, whose requests all go to the Python proxy."""
    domain = config.api_host.lower().removeprefix("api.")
    if not _HOST_NAME.fullmatch(domain):
        return []
    pattern = f"^[1-9][0-9]{{0,4}}-[a-z0-9]+[.]{domain.replace('.', '[.]')}(:[0-9]+)?$"
    envd_map, ports_map = config.routes.envd_map, config.routes.ports_map
    return [
        f"    acl sandbox_host req.hdr(host),lower -m reg {pattern}",
        "    http-request set-var(txn.label) req.hdr(host),lower,field(1,.) if sandbox_host",
        "    http-request set-var(txn.port) var(txn.label),field(1,-) if sandbox_host",
        "    http-request set-var(txn.sandbox) var(txn.label),field(2,-) if sandbox_host",
        "    acl port_valid var(txn.port) -m int 1:65535",
        f"    acl envd_port var(txn.port) -m str {ENVD_PORT}",
        f"    http-request set-var(txn.address) var(txn.sandbox),map({envd_map}) if port_valid envd_port",
        f"    http-request set-var(txn.address) var(txn.sandbox),map({ports_map}) if port_valid !envd_port",
        "    use_backend direct if { var(txn.address) -m found }",
    ]


def _direct_backend(config: EdgeConfig) -> list[str]:
    """The backend that connects to the address the frontend picked, on the port asked for. Its own
    answers (no connection: 503; a broken or missing answer: 502, 504) become E2B's 502 JSON."""
    body = '{{"sandboxId":"%[var(txn.sandbox)]","message":"{message}","code":502}}'
    refusals = [
        (503, PORT_NOT_OPEN),
        (502, NO_ANSWER),
        (504, NO_ANSWER),
    ]
    return [
        "backend direct",
        f"    timeout connect {_seconds(SANDBOX_CONNECT_TIMEOUT_S)}",
        f"    timeout server {_seconds(config.idle_timeout_s)}",
        "    retries 0",
        "    http-request set-dst var(txn.address)",
        "    http-request set-dst-port var(txn.port)",
        *(
            f"    http-error status {status} content-type application/json hdr {REFUSAL_HEADER} 1 "
            f"lf-string '{body.format(message=message)}'"
            for status, message in refusals
        ),
        f"    acl refused res.hdr({REFUSAL_HEADER}) -m found",
        '    http-after-response set-status 502 reason "Bad Gateway" if refused',
        f"    http-after-response del-header {REFUSAL_HEADER}",
        "    server sandbox 0.0.0.0:0",
        "",
    ]


def proxy_timeout_s(idle_timeout_s: float) -> float:
    """How long the edge waits for the proxy's answer, or for its next byte: past the longest the proxy
    itself waits before it answers (a wake, a connect, then an idle sandbox), so the proxy's answer wins."""
    return WAKE_TIMEOUT_S + SANDBOX_CONNECT_TIMEOUT_S + idle_timeout_s + PROXY_MARGIN_S


def _address(host: str, port: int) -> str:
    return f"ipv6@{host}:{port}" if ":" in host else f"ipv4@{host}:{port}"


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms"


def from_settings(
    settings: Settings,
    certificate: Path,
    routes: EdgeRoutes,
    *,
    ipv6: bool,
    user: str | None,
    file_limit: int | None = None,
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
        routes=routes,
        user=user,
        max_connections=MAX_CONNECTIONS
        if file_limit is None
        else min(MAX_CONNECTIONS, (file_limit - files_needed(0)) // 2),
    )


def local_address(host: str) -> str:
    """The address this machine reaches a listener bound to ``host`` at."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)
