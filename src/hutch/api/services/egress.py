"""A sandbox's egress settings beyond allow and deny (E2B's ``network.rules``, ``egressProxy`` and
``dnsServers``): checked, kept on the sandbox's row (and a snapshot's) without any secret's value, and
turned into the runtime's :class:`EgressSettings` with the values of the secrets the rules name, read again
each time a sandbox starts (so a secret changed later applies to sandboxes started afterwards).

Stored form (JSON)::

    {"rules": {pattern: [{"headers": {name: value}}, ...]},     # values keep ${e2b.secrets.NAME}
     "proxy": {"address", "username", "sealed_password", "tls", "server_name", "ca_cert"} | null,
     "dns_servers": [ipv4, ...] | null}                          # null: the default

The proxy's password is sealed with the server key; it is never shown back.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog.repos import secrets
from ...errors import InvalidRequest
from ...runtime.node_client import EgressSettings, HeaderRule, UpstreamProxy
from .server_keys import ServerKeys

# Bounds on what a create or a network update may carry.
MAX_PATTERNS = 64
MAX_RULES_PER_PATTERN = 8
MAX_HEADERS = 32
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8192
MAX_DNS_SERVERS = 8
MAX_CREDENTIAL_BYTES = 255
MAX_SERVER_NAME = 253
MAX_CA_CERT_BYTES = 8192

PROXY_SCHEMES = ("socks5", "http")
PLACEHOLDER = re.compile(r"\$\{e2b\.secrets\.([^{}\x00-\x1f\x7f-\x9f]*)\}")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Control characters a header value may not hold (tab is allowed, as in HTTP).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class ProxyRequest:
    """``egressProxy`` as asked for (the password in clear, until it is stored)."""

    address: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    server_name: str | None = None
    ca_cert: str | None = None


def is_dns_name(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def check_pattern(pattern: str) -> str:
    """A rule's host pattern, lower-cased: an exact DNS name, or ``*.`` and one (a bare ``*`` is not)."""
    lowered = pattern.lower()
    name = lowered[2:] if lowered.startswith("*.") else lowered
    if not is_dns_name(name):
        raise InvalidRequest(
            f"network.rules key {pattern[:300]!r} is not a host pattern: an exact DNS name"
            " (api.example.com) or '*.' and one (*.example.com)"
        )
    return lowered


def check_headers(pattern: str, headers: Mapping[str, Any]) -> dict[str, str]:
    """A rule's headers: bounded names that are HTTP tokens, bounded values with no CR, LF or other control
    character; secret placeholders' names lower-cased."""
    if len(headers) > MAX_HEADERS:
        raise InvalidRequest(f"network.rules[{pattern!r}]: at most {MAX_HEADERS} headers per rule")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_HEADER_NAME or not _TOKEN.fullmatch(name):
            raise InvalidRequest(f"network.rules[{pattern!r}]: header name {str(name)[:300]!r} is not valid")
        if not isinstance(value, str) or len(value.encode()) > MAX_HEADER_VALUE:
            raise InvalidRequest(
                f"network.rules[{pattern!r}]: the value of header {name!r} must be a string of at most"
                f" {MAX_HEADER_VALUE} bytes"
            )
        if _CONTROL.search(value):
            raise InvalidRequest(
                f"network.rules[{pattern!r}]: the value of header {name!r} holds a control character"
                " (CR, LF…)"
            )
        for match in PLACEHOLDER.finditer(value):
            if not match.group(1):
                raise InvalidRequest(
                    f"network.rules[{pattern!r}]: header {name!r} names a secret with no name"
                )
        checked[name] = PLACEHOLDER.sub(lambda m: "${e2b.secrets." + m.group(1).lower() + "}", value)
    return checked


def check_rules(rules: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``network.rules`` ({pattern: [{"transform": {"headers": {...}}}]}) in the stored form."""
    if len(rules) > MAX_PATTERNS:
        raise InvalidRequest(f"network.rules: at most {MAX_PATTERNS} host patterns")
    stored: dict[str, list[dict[str, Any]]] = {}
    for pattern, entries in rules.items():
        key = check_pattern(pattern)
        if key in stored:
            raise InvalidRequest(f"network.rules: the pattern {key!r} is given twice")
        if len(entries) > MAX_RULES_PER_PATTERN:
            raise InvalidRequest(f"network.rules[{key!r}]: at most {MAX_RULES_PER_PATTERN} rules")
        stored[key] = [{"headers": check_headers(key, entry)} for entry in entries]
    return stored


def proxy_scheme(address: str) -> tuple[str, str]:
    """An ``egressProxy.address``'s protocol and ``host:port``: SOCKS5 unless it is written
    ``http://host:port`` (an HTTP proxy that takes ``CONNECT``); ``socks5://`` may be written too."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        return "socks5", address
    if scheme.lower() not in PROXY_SCHEMES:
        raise InvalidRequest(
            f"network.egressProxy.address: {scheme[:20]!r} is not a proxy protocol this server speaks"
            f" ({', '.join(PROXY_SCHEMES)})"
        )
    return scheme.lower(), rest


def check_proxy(proxy: ProxyRequest) -> ProxyRequest:
    """``egressProxy``: ``host:port`` (a DNS name, or a public IP address; ``http://`` first for an HTTP
    proxy), credentials of at most 255 bytes (a password only with a username), TLS settings only with
    TLS."""
    host, sep, port = proxy_scheme(proxy.address)[1].rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InvalidRequest(f"network.egressProxy.address {proxy.address[:300]!r} is not host:port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not is_dns_name(host.lower()):
            raise InvalidRequest(f"network.egressProxy.address: {host[:300]!r} is not a host name") from None
    else:
        if not address.is_global:
            raise InvalidRequest(
                f"network.egressProxy.address: {host} is an internal address; the proxy must be reachable"
                " from outside"
            )
    for field, value in (("username", proxy.username), ("password", proxy.password)):
        if value is not None and not 0 < len(value.encode()) <= MAX_CREDENTIAL_BYTES:
            raise InvalidRequest(f"network.egressProxy.{field} must be 1 to {MAX_CREDENTIAL_BYTES} bytes")
    if proxy.password is not None and proxy.username is None:
        raise InvalidRequest("network.egressProxy.password is only valid with a username")
    if not proxy.tls and (proxy.server_name is not None or proxy.ca_cert is not None):
        raise InvalidRequest("network.egressProxy.tls: serverName and caCert need enabled: true")
    if proxy.server_name is not None and not is_dns_name(proxy.server_name.lower()):
        raise InvalidRequest("network.egressProxy.tls.serverName is not a DNS name")
    if proxy.ca_cert is not None and (
        len(proxy.ca_cert.encode()) > MAX_CA_CERT_BYTES or "-----BEGIN CERTIFICATE-----" not in proxy.ca_cert
    ):
        raise InvalidRequest(
            f"network.egressProxy.tls.caCert must be PEM certificates of at most {MAX_CA_CERT_BYTES} bytes"
        )
    return proxy


def check_dns_servers(servers: list[str]) -> list[str]:
    if len(servers) > MAX_DNS_SERVERS:
        raise InvalidRequest(f"network.dnsServers: at most {MAX_DNS_SERVERS} servers")
    for server in servers:
        try:
            ipaddress.IPv4Address(server)
        except ValueError:
            raise InvalidRequest(f"network.dnsServers: {server[:300]!r} is not an IPv4 address") from None
    return list(servers)


def stored(
    *,
    rules: dict[str, list[dict[str, Any]]] | None,
    proxy: ProxyRequest | None,
    dns_servers: list[str] | None,
    keys: ServerKeys,
) -> dict[str, Any] | None:
    """The stored form of checked settings (None when there are none)."""
    if not rules and proxy is None and dns_servers is None:
        return None
    kept_proxy = None
    if proxy is not None:
        kept_proxy = {
            "address": proxy.address,
            "username": proxy.username,
            "sealed_password": None if proxy.password is None else keys.seal(proxy.password).decode(),
            "tls": proxy.tls,
            "server_name": proxy.server_name,
            "ca_cert": proxy.ca_cert,
        }
    return {"rules": rules or {}, "proxy": kept_proxy, "dns_servers": dns_servers}


def secret_names(egress: Mapping[str, Any] | None) -> set[str]:
    """The secrets the stored settings' header values name."""
    names: set[str] = set()
    for entries in (egress or {}).get("rules", {}).values():
        for entry in entries:
            for value in entry["headers"].values():
                names.update(match.group(1) for match in PLACEHOLDER.finditer(value))
    return names


def settings(
    egress: Mapping[str, Any] | None, *, secrets: dict[str, str], keys: ServerKeys
) -> EgressSettings:
    """The runtime's settings from the stored form and the values of the secrets it names."""
    if not egress:
        return EgressSettings()
    rules = tuple(
        HeaderRule(pattern=pattern, headers={k: v for entry in entries for k, v in entry["headers"].items()})
        for pattern, entries in egress.get("rules", {}).items()
    )
    proxy = None
    if (kept := egress.get("proxy")) is not None:
        sealed = kept.get("sealed_password")
        scheme, address = proxy_scheme(kept["address"])
        proxy = UpstreamProxy(
            address=address,
            scheme=scheme,
            username=kept.get("username"),
            password=None if sealed is None else keys.open(sealed.encode()),
            tls=bool(kept.get("tls")),
            server_name=kept.get("server_name"),
            ca_cert=kept.get("ca_cert"),
        )
    dns = egress.get("dns_servers")
    return EgressSettings(
        rules=rules,
        secrets={name: secrets[name] for name in secret_names(egress)},
        proxy=proxy,
        dns_servers=None if dns is None else tuple(dns),
    )


def public(egress: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a sandbox's detail shows of its settings, in E2B's names: the rules (with placeholders, never a
    secret's value), the proxy without its password, the name servers."""
    if not egress:
        return {}
    shown: dict[str, Any] = {}
    if egress.get("rules"):
        shown["rules"] = {
            pattern: [{"transform": {"headers": dict(entry["headers"])}} for entry in entries]
            for pattern, entries in egress["rules"].items()
        }
    if (kept := egress.get("proxy")) is not None:
        proxy: dict[str, Any] = {"address": kept["address"]}
        if kept.get("username") is not None:
            proxy["username"] = kept["username"]
        if kept.get("tls"):
            proxy["tls"] = {"enabled": True}
            if kept.get("server_name"):
                proxy["tls"]["serverName"] = kept["server_name"]
            if kept.get("ca_cert"):
                proxy["tls"]["caCert"] = kept["ca_cert"]
        shown["egressProxy"] = proxy
    if egress.get("dns_servers") is not None:
        shown["dnsServers"] = list(egress["dns_servers"])
    return shown


async def resolve(
    session: AsyncSession, *, team_id: str, egress: Mapping[str, Any] | None, keys: ServerKeys
) -> EgressSettings:
    """The runtime's settings, with the current values of the team's secrets the rules name;
    ``InvalidRequest`` naming the first secret the team does not have (never a value)."""
    values = await current_values(session, team_id=team_id, egress=egress, keys=keys)
    missing = sorted(secret_names(egress) - values.keys())
    if missing:
        raise InvalidRequest(f"network.rules name the secret {missing[0]!r}, which the team does not have")
    return settings(egress, secrets=values, keys=keys)


async def current_values(
    session: AsyncSession, *, team_id: str, egress: Mapping[str, Any] | None, keys: ServerKeys
) -> dict[str, str]:
    """The current values of the team's secrets that the stored settings' rules name (those it has)."""
    found = await secrets.by_names(session, team_id=team_id, names=secret_names(egress))
    return {name: keys.open(row.sealed_value) for name, row in found.items()}
