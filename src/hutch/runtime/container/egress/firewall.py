"""The host firewall of a node's sandboxes (nftables), one table per sandbox subnet.

Always: new connections from the sandboxes to the host are dropped (the proxy's connections into them and
their answers pass), and so is forwarding from or to them. With an uplink interface configured, a
sandbox's traffic may leave through it (masqueraded) as its egress policy says: ``allowOut`` first, then
``denyOut``, then internet access. A policy is a chain per sandbox, reached through a verdict map by its
host interface.

Before any policy, the ``guard`` chain drops what no policy can open (the node boundary): loopback,
link-local (the cloud metadata service), multicast, broadcast and reserved addresses, the sandbox subnet
(one sandbox never reaches another), the node's own addresses, the networks of the uplink (kept current as
its addresses change), and the private ranges (RFC 1918, CGNAT) except those the operator opened. Only the
node's name servers are exempt, on port 53, as sandboxes resolve names through them. The egress proxy's
own connections (marked ``PROXY_MARK``) pass the same chain on their way out.

Host names in a policy (``example.com``, ``*.example.com``) are judged by the node's egress proxy
(``proxy``): a second chain per sandbox, in a NAT prerouting hook, redirects the sandbox's new TCP
connections whose fate a name could change to the proxy's port, which reads the name the client sends
and decides with the same precedence. Only redirected connections may reach that port; nothing else,
from a sandbox or from anywhere, can open a connection to it. Such a sandbox may also reach its name
servers (port 53), as it must resolve the names it is allowed; or, where the sandbox's egress settings name
``dns_servers``, those addresses instead (all traffic to them; none if the list is empty).

A sandbox with header rules has its HTTPS (TCP port 443) redirected to the proxy too, which terminates the
connections to hosts with a rule (``intercept``); one with an upstream proxy has all its TCP redirected,
which the proxy tunnels through it (``upstream``). UDP is never tunneled: it leaves directly, as the
policy allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ....errors import BackendUnavailable
from ...types import EgressSettings
from .name_servers import name_servers as find_name_servers
from .sni import matches, pattern

log = logging.getLogger("hutch.runtime")
# "This network", loopback, link-local, multicast, reserved and broadcast: never reachable from a sandbox.
CLOSED = tuple(
    map(ipaddress.IPv4Network, ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"))
)
# Reachable only where the operator opens them (``runtime.egress_private_networks``).
PRIVATE = tuple(
    map(ipaddress.IPv4Network, ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16"))
)
# The mark of the egress proxy's upstream sockets, so that their packets pass the node boundary too (clear
# of the bits kube-proxy, Calico and Cilium give meaning to).
PROXY_MARK = 0x1068


@dataclass(frozen=True)
class EgressPolicy:
    """Where a sandbox may connect to outside the node: IPv4 addresses and CIDRs, and host-name patterns
    (``example.com``, ``*.example.com``, ``*``); anything else (IPv6, ``host:port``) is ignored. ``settings``:
    header rules, secrets, upstream proxy and name servers; ``authority``: the directory of the sandbox's CA
    (``authority``), with which the proxy terminates the connections its rules rewrite."""

    internet: bool = False
    allow_out: tuple[str, ...] = field(default_factory=tuple)
    deny_out: tuple[str, ...] = field(default_factory=tuple)
    settings: EgressSettings = field(default_factory=EgressSettings)
    authority: Path | None = None

    @cached_property
    def allow_networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        return _networks(self.allow_out)

    @cached_property
    def deny_networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        return _networks(self.deny_out)

    @cached_property
    def allow_names(self) -> tuple[str, ...]:
        return _names(self.allow_out)

    @cached_property
    def deny_names(self) -> tuple[str, ...]:
        return _names(self.deny_out)

    @property
    def has_names(self) -> bool:
        return bool(self.allow_names or self.deny_names)

    @property
    def needs_proxy(self) -> bool:
        """Whether some of its connections go through the egress proxy."""
        return self.has_names or bool(self.settings.rules) or self.settings.proxy is not None

    def allows(self, address: str, name: str | None) -> bool:
        """Whether a TCP connection to ``address`` that names the host ``name`` (normalised, or ``None``
        when it names none) may leave by this policy: what the firewall's rules and the egress proxy decide
        together, after the node boundary (the guard, ``closes``), which no policy opens."""
        ip = ipaddress.IPv4Address(address)
        if any(ip in network for network in self.allow_networks):
            return True
        if name is not None and matches(name, self.allow_names):
            return True
        if any(ip in network for network in self.deny_networks):
            return False
        if name is not None and matches(name, self.deny_names):
            return False
        return self.internet


def closes(host: str) -> bool:
    """Whether ``host`` is an address in a range closed to every sandbox (``CLOSED``), a dialled address or
    an address literal a client names (a ``Host``, a ``CONNECT`` target)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        return not ip.is_global  # sandboxes have no IPv6 route out; a literal names no outside host
    return any(ip in network for network in CLOSED)


def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network, ...]:
    """The entries nftables can match: IPv4 addresses and CIDRs."""
    found = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            if pattern(entry) is None:
                log.warning("egress rule %r is not an IPv4 address, CIDR or host name; ignored", entry)
            continue
        if isinstance(network, ipaddress.IPv4Network):
            found.append(network)
        else:
            log.warning("egress rule %r is IPv6; sandboxes have no IPv6 route out, ignored", entry)
    return tuple(found)


def _addresses(entries: tuple[str, ...]) -> list[str]:
    """The IPv4 addresses among ``entries`` (the API checked them; nothing else reaches a rule)."""
    found = []
    for entry in entries:
        try:
            found.append(str(ipaddress.IPv4Address(entry.strip())))
        except ValueError:
            log.warning("egress name server %r is not an IPv4 address; ignored", entry)
    return found


def _names(entries: tuple[str, ...]) -> tuple[str, ...]:
    """The host-name patterns among the entries (normalised), for the egress proxy."""
    return tuple(dict.fromkeys(p for p in map(pattern, entries) if p is not None))


async def _nft(script: str, check: bool = True) -> None:
    """Run one nft transaction. A cancellation waits for it to end: what the cancelled call leads to (a
    teardown removing what the transaction adds) must not run alongside it."""
    process = await asyncio.create_subprocess_exec(
        "nft", "-f", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    exchange = asyncio.ensure_future(process.communicate(script.encode()))
    try:
        _, stderr = await asyncio.shield(exchange)
    except asyncio.CancelledError:
        await exchange
        raise
    if check and process.returncode != 0:
        raise BackendUnavailable(f"nft failed: {stderr.decode(errors='replace').strip()}")


def policy_rules(
    policy: EgressPolicy, *, uplink: str, proxy_port: int | None, name_servers: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """The rules of a sandbox's two chains: the forward chain (what may leave as routed packets) and the
    redirect chain (which new TCP connections go to the egress proxy; empty without host names)."""
    allow = [str(n) for n in policy.allow_networks]
    deny = [str(n) for n in policy.deny_networks]
    redirect = f"meta l4proto tcp redirect to :{proxy_port}"
    names = policy.needs_proxy and proxy_port is not None
    if policy.needs_proxy and proxy_port is None:
        log.warning(
            "egress host names %s, header rules and upstream proxy are not enforced: no egress proxy",
            policy.allow_names + policy.deny_names,
        )
    chosen = policy.settings.dns_servers
    dns = list(name_servers if chosen is None else _addresses(chosen))
    if not (names and policy.allow_names):
        dns = []
    if chosen is None:
        forward = [
            f'ip daddr {ns} {proto} dport 53 oifname "{uplink}" accept'
            for ns in dns
            for proto in ("udp", "tcp")
        ]
    else:
        forward = [f'ip daddr {ns} oifname "{uplink}" accept' for ns in dns]
    forward += [f'ip daddr {net} oifname "{uplink}" accept' for net in allow]
    forward += [f"ip daddr {net} drop" for net in deny]
    if policy.internet:
        forward.append(f'oifname "{uplink}" accept')
    forward.append("drop")
    if not names:
        return forward, []
    # A connection goes to the proxy only where a name could change what the addresses decide: an
    # allowed name can open what denyOut or the default closes, a denied name can close what the
    # internet default opens. What the guard closes is never proxied (it is dropped later).
    rerouted = [
        "ip daddr @closed return",
        "ip daddr @node return",
        "fib daddr type local return",
        "meta l4proto != tcp return",
    ]
    if chosen is None:
        rerouted += [f"ip daddr {ns} tcp dport 53 return" for ns in dns]
    else:
        rerouted += [f"ip daddr {ns} return" for ns in dns]
    if policy.settings.proxy is not None:
        return forward, [*rerouted, redirect]  # all TCP: the proxy judges and tunnels it
    if policy.settings.rules:
        rerouted.append(f"tcp dport 443 {redirect}")
    rerouted += [f"ip daddr {net} return" for net in allow]
    if policy.allow_names:
        rerouted += [f"ip daddr {net} {redirect}" for net in deny]
    else:
        rerouted += [f"ip daddr {net} return" for net in deny]
    if policy.deny_names if policy.internet else policy.allow_names:
        rerouted.append(redirect)
    return forward, rerouted


def closed_networks(
    subnet: ipaddress.IPv4Network, private_networks: tuple[ipaddress.IPv4Network, ...]
) -> list[ipaddress.IPv4Network]:
    """What the guard drops whatever the node's addresses: ``CLOSED``, the sandbox subnet, and the private
    ranges less the parts the operator opened (which never open anything else)."""
    closed = [*CLOSED, subnet]
    for private in PRIVATE:
        parts = [private]
        for opened in private_networks:
            parts = [rest for part in parts for rest in _without(part, opened)]
        closed += parts
    return list(ipaddress.collapse_addresses(closed))


def _without(network: ipaddress.IPv4Network, removed: ipaddress.IPv4Network) -> list[ipaddress.IPv4Network]:
    if network.subnet_of(removed):
        return []
    if removed.subnet_of(network):
        return list(network.address_exclude(removed))
    return [network]


async def _uplink_networks(uplink: str) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of the uplink's addresses now (none if it has none or is gone)."""
    process = await asyncio.create_subprocess_exec(
        "ip", "-j", "-4", "address", "show", "dev", uplink,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode != 0:
        return []
    networks = [
        ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
        for link in json.loads(out or b"[]")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    ]
    return list(ipaddress.collapse_addresses(networks))


def _elements(networks: list[ipaddress.IPv4Network] | tuple[str, ...]) -> str:
    return f"elements = {{ {', '.join(map(str, networks))} }}" if networks else ""


def _set_forwarding(interface: str) -> None:
    with open(f"/proc/sys/net/ipv4/conf/{interface}/forwarding", "w") as f:
        f.write("1")


class Firewall:
    """The nftables table of one subnet (``inet hutch_<subnet>``), and its NAT table when egress is on.

    ``private_networks``: the parts of the private ranges sandboxes may reach as their policies allow (the
    operator's setting; a tenant's policy never opens more)."""

    def __init__(
        self,
        subnet: str,
        uplink: str | None = None,
        *,
        name_servers: tuple[str, ...] = (),
        private_networks: tuple[str, ...] = (),
    ):
        self.subnet = str(ipaddress.ip_network(subnet))
        self.uplink = uplink
        self.table = "hutch_" + self.subnet.replace(".", "_").replace("/", "_")
        # Where sandboxes resolve names, the only addresses the guard opens (on port 53) past the node
        # boundary: these, or the host's (``name_servers``), settled at install.
        self.name_servers = name_servers
        self.closed = closed_networks(
            ipaddress.IPv4Network(self.subnet),
            tuple(ipaddress.IPv4Network(network, strict=False) for network in private_networks),
        )
        self.proxy_port: int | None = None
        self._monitor: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task | None = None

    async def install(self, *, proxy_port: int | None = None) -> None:
        """(Re)create the table: a clean slate, so policies are applied again per sandbox afterwards.
        ``proxy_port``: the egress proxy's port on this host, if one runs (needs the uplink).
        (The single ``inet hutch`` table of earlier versions is removed too.)"""
        self.proxy_port = proxy_port if self.uplink else None
        if self.uplink:
            self.name_servers = await asyncio.to_thread(find_name_servers, self.name_servers)
        egress = redirect = proxied = closed = ""
        if self.uplink:
            egress = f"ip saddr {self.subnet} iifname vmap @egress\n"
        if self.proxy_port is not None:
            port = self.proxy_port
            # Redirected connections keep their sandbox source; only they may reach the proxy's port.
            proxied = f"ip saddr {self.subnet} meta l4proto tcp th dport {port} ct status dnat accept\n"
            closed = f"meta l4proto tcp th dport {port} drop\n"
            redirect = f"""
    map names {{ type ifname : verdict; }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        ip saddr {self.subnet} iifname vmap @names
    }}"""
        script = f"""
table inet hutch
delete table inet hutch
table inet {self.table}
delete table inet {self.table}
table inet {self.table} {{
    map egress {{ type ifname : verdict; }}{redirect}
    set closed {{ type ipv4_addr; flags interval; {_elements(self.closed)} }}
    set node {{ type ipv4_addr; flags interval; }}
    set name_servers {{ type ipv4_addr; {_elements(self.name_servers)} }}
    chain guard {{
        ip daddr @name_servers meta l4proto {{ tcp, udp }} th dport 53 return
        ip daddr @closed drop
        ip daddr @node drop
        fib daddr type {{ local, broadcast, multicast }} drop
    }}
    chain input {{
        type filter hook input priority 0; policy accept;
        ip saddr {self.subnet} ct state established,related accept
        {proxied}
        ip saddr {self.subnet} drop
        {closed}
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ip daddr {self.subnet} ct state established,related accept
        ip saddr {self.subnet} jump guard
        {egress}
        ip saddr {self.subnet} drop
        ip daddr {self.subnet} drop
    }}
    chain output {{
        type filter hook output priority 0; policy accept;
        meta mark {PROXY_MARK:#x} ct state new jump guard
    }}
}}
"""
        if self.uplink:
            script += f"""
table ip {self.table}_nat
delete table ip {self.table}_nat
table ip {self.table}_nat {{
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        ip saddr {self.subnet} oifname "{self.uplink}" masquerade
    }}
}}
"""
            await asyncio.to_thread(_set_forwarding, self.uplink)
        await _nft(script)
        if self.uplink:
            await self._watch(self.uplink)

    async def uninstall(self) -> None:
        """Remove the node's tables (when it stops with no sandbox left)."""
        await self._unwatch()
        script = f"delete table inet {self.table}\n"
        if self.uplink:
            script += f"delete table ip {self.table}_nat\n"
        await _nft(script, check=False)

    async def _watch(self, uplink: str) -> None:
        """Fill the ``node`` set with the uplink's networks, and refill it whenever an address of the node
        changes (watched before the first fill, so that no change falls between)."""
        await self._unwatch()
        quiet = asyncio.subprocess.DEVNULL
        self._monitor = await asyncio.create_subprocess_exec(
            "ip", "-o", "monitor", "address",
            stdin=quiet, stdout=asyncio.subprocess.PIPE, stderr=quiet,
        )  # fmt: skip
        await self._refresh_node(uplink)
        self._watcher = asyncio.create_task(self._follow(self._monitor, uplink))

    async def _follow(self, monitor: asyncio.subprocess.Process, uplink: str) -> None:
        assert monitor.stdout is not None
        while line := await monitor.stdout.readline():
            if uplink.encode() in line.split():
                await self._refresh_node(uplink)
        log.error("the node's address monitor ended; the uplink's networks are no longer followed")

    async def _refresh_node(self, uplink: str) -> None:
        networks = await _uplink_networks(uplink)
        table = f"inet {self.table}"
        script = f"flush set {table} node\n"
        if networks:
            script += f"add element {table} node {{ {', '.join(map(str, networks))} }}\n"
        try:
            await _nft(script)
        except BackendUnavailable as err:
            log.error("the uplink's networks could not be closed to sandboxes: %s", err)

    async def _unwatch(self) -> None:
        watcher, self._watcher = self._watcher, None
        monitor, self._monitor = self._monitor, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if monitor is not None:
            with contextlib.suppress(ProcessLookupError):
                monitor.kill()
            await monitor.wait()

    async def apply(self, index: int, host_if: str, policy: EgressPolicy) -> None:
        """Set one sandbox's egress policy, replacing any earlier one in one transaction (a connection
        never sees half of either). With host names in it, give the egress proxy the policy first."""
        if not self.uplink:
            return
        forward, rerouted = policy_rules(
            policy,
            uplink=self.uplink,
            proxy_port=self.proxy_port,
            name_servers=self.name_servers,
        )
        table, chain = f"inet {self.table}", f"sbx_{index}"
        script = f"add chain {table} {chain}\nflush chain {table} {chain}\n"
        script += "".join(f"add rule {table} {chain} {rule}\n" for rule in forward)
        script += f'add element {table} egress {{ "{host_if}" : jump {chain} }}\n'
        if self.proxy_port is not None:
            names = f"names_{index}"
            script += f"add chain {table} {names}\nflush chain {table} {names}\n"
            script += "".join(f"add rule {table} {names} {rule}\n" for rule in rerouted)
            script += f'add element {table} names {{ "{host_if}" : jump {names} }}\n'
            if not rerouted:
                script += f'delete element {table} names {{ "{host_if}" }}\ndelete chain {table} {names}\n'
        await asyncio.to_thread(_set_forwarding, host_if)
        await _nft(script)

    async def remove(self, index: int, host_if: str) -> None:
        """Forget one sandbox's egress policy (parts already gone are fine)."""
        if not self.uplink:
            return
        table = f"inet {self.table}"
        # Adding before deleting makes each step valid whether or not the part still exists.
        maps = [("egress", f"sbx_{index}")]
        if self.proxy_port is not None:
            maps.append(("names", f"names_{index}"))
        script = ""
        for name, chain in maps:
            script += f"add chain {table} {chain}\n"
            script += f'add element {table} {name} {{ "{host_if}" : jump {chain} }}\n'
            script += f'delete element {table} {name} {{ "{host_if}" }}\n'
            script += f"flush chain {table} {chain}\ndelete chain {table} {chain}\n"
        await _nft(script, check=False)
