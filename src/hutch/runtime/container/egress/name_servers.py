"""The name servers a node's sandboxes resolve names through, and the ``resolv.conf`` that names them.

With egress, sandboxes ask the host's name servers directly, through the uplink: the firewall's guard lets
them reach exactly those addresses, on port 53 only. A sandbox can never reach the host itself (its
loopback, its addresses), so a resolver there is left out. When the host's ``/etc/resolv.conf`` names only
such a local resolver — systemd-resolved's stub 127.0.0.53 — its upstream servers are taken instead, from
``/run/systemd/resolve/resolv.conf``. Only IPv4 servers count: sandboxes have no IPv6.

The operator may name the servers instead (``runtime.egress_name_servers``). With none at all — a host
whose only resolver is on itself, dnsmasq on 127.0.0.1 say — sandboxes resolve nothing, and the node says
so once; it picks no public resolver on the operator's behalf.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("hutch.runtime")
# The host's resolver configuration, then systemd-resolved's list of the servers behind its stub.
HOST_RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))


def listed_name_servers(resolv_conf: str) -> tuple[str, ...]:
    """The IPv4 name servers of a ``resolv.conf`` that a sandbox could reach: not loopback ones."""
    servers = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "nameserver":
            continue
        try:
            address = ipaddress.ip_address(parts[1])
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback:
            servers.append(str(address))
    return tuple(dict.fromkeys(servers))


def host_name_servers(files: Iterable[Path] = HOST_RESOLV_CONFS) -> tuple[str, ...]:
    """The host's name servers that a sandbox could reach, from the first of ``files`` that lists some."""
    for path in files:
        try:
            servers = tuple(s for s in listed_name_servers(path.read_text()) if not _is_own(s))
        except OSError:
            continue
        if servers:
            return servers
    return ()


def name_servers(configured: Iterable[str] = ()) -> tuple[str, ...]:
    """The name servers sandboxes are given: the operator's (``configured``), else the host's. None found
    is logged, once per node start."""
    servers = tuple(_ipv4(server) for server in configured) or host_name_servers()
    if not servers:
        log.warning(
            "sandboxes cannot resolve names: %s list no name server off the host itself (its loopback and "
            "addresses are closed to them); name some in runtime.egress_name_servers",
            ", ".join(map(str, HOST_RESOLV_CONFS)),
        )
    return servers


def resolv_conf(servers: Iterable[str]) -> str:
    """A sandbox's ``/etc/resolv.conf`` naming ``servers``."""
    return "".join(f"nameserver {server}\n" for server in servers)


def _ipv4(server: str) -> str:
    try:
        return str(ipaddress.IPv4Address(server.strip()))
    except ValueError:
        raise ValueError(f"runtime.egress_name_servers: {server!r} is not an IPv4 address") from None


def _is_own(address: str) -> bool:
    """Whether ``address`` is one of this host's own (a resolver there is closed to sandboxes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True
