"""The host firewall of a node's sandboxes (nftables), one table per sandbox subnet.

Always: new connections from the sandboxes to the host are dropped (the proxy's connections into them and
their answers pass), and so is forwarding from or to them. With an uplink interface configured, a
sandbox's traffic may leave through it (masqueraded) as its egress policy says: ``allowOut`` first, then
``denyOut``, then — if internet access is on — anything else except link-local addresses (the cloud
metadata service). A policy is a chain per sandbox, reached through a verdict map by its host interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field

from ..errors import BackendUnavailable

log = logging.getLogger("hutch.runtime")
LINK_LOCAL = "169.254.0.0/16"


@dataclass(frozen=True)
class EgressPolicy:
    """Where a sandbox may connect to outside the node (addresses and CIDRs; names are not enforced)."""

    internet: bool = False
    allow_out: tuple[str, ...] = field(default_factory=tuple)
    deny_out: tuple[str, ...] = field(default_factory=tuple)


def _networks(entries: tuple[str, ...]) -> list[str]:
    """The entries nftables can match: IPv4 addresses and CIDRs (host names and IPv6 are skipped)."""
    found = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            log.warning("egress rule %r is not an IPv4 address or CIDR; not enforced", entry)
            continue
        if network.version == 4:
            found.append(str(network))
    return found


async def _nft(script: str, check: bool = True) -> None:
    process = await asyncio.create_subprocess_exec(
        "nft", "-f", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate(script.encode())
    if check and process.returncode != 0:
        raise BackendUnavailable(f"nft failed: {stderr.decode(errors='replace').strip()}")


def sandbox_resolv_conf(host_resolv_conf: str) -> str:
    """The host's name servers that a sandbox can reach through the uplink (not the host's own loopback
    resolvers, which are closed to sandboxes), as a ``resolv.conf``."""
    servers = []
    for line in host_resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if not address.is_loopback:
                servers.append(f"nameserver {address}")
    return "".join(f"{line}\n" for line in servers)


def _set_forwarding(interface: str) -> None:
    with open(f"/proc/sys/net/ipv4/conf/{interface}/forwarding", "w") as f:
        f.write("1")


class Firewall:
    """The nftables table of one subnet (``inet hutch_<subnet>``), and its NAT table when egress is on."""

    def __init__(self, subnet: str, uplink: str | None = None) -> None:
        self.subnet = str(ipaddress.ip_network(subnet))
        self.uplink = uplink
        self.table = "hutch_" + self.subnet.replace(".", "_").replace("/", "_")

    async def install(self) -> None:
        """(Re)create the table: a clean slate, so policies are applied again per sandbox afterwards.
        (The single ``inet hutch`` table of earlier versions is removed too.)"""
        egress = ""
        if self.uplink:
            egress = f"ip saddr {self.subnet} iifname vmap @egress\n"
        script = f"""
table inet hutch
delete table inet hutch
table inet {self.table}
delete table inet {self.table}
table inet {self.table} {{
    map egress {{ type ifname : verdict; }}
    chain input {{
        type filter hook input priority 0; policy accept;
        ip saddr {self.subnet} ct state established,related accept
        ip saddr {self.subnet} drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ip daddr {self.subnet} ct state established,related accept
        {egress}
        ip saddr {self.subnet} drop
        ip daddr {self.subnet} drop
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

    async def uninstall(self) -> None:
        """Remove the node's tables (when it stops with no sandbox left)."""
        script = f"delete table inet {self.table}\n"
        if self.uplink:
            script += f"delete table ip {self.table}_nat\n"
        await _nft(script, check=False)

    async def apply(self, index: int, host_if: str, policy: EgressPolicy) -> None:
        """Set one sandbox's egress policy (replacing any earlier one)."""
        if not self.uplink:
            return
        await self.remove(index, host_if)
        chain = f"sbx_{index}"
        rules = [f'ip daddr {net} oifname "{self.uplink}" accept' for net in _networks(policy.allow_out)]
        rules += [f"ip daddr {net} drop" for net in _networks(policy.deny_out)]
        rules.append(f"ip daddr {LINK_LOCAL} drop")
        if policy.internet:
            rules.append(f'oifname "{self.uplink}" accept')
        rules.append("drop")
        script = f"add chain inet {self.table} {chain}\n"
        script += "".join(f"add rule inet {self.table} {chain} {rule}\n" for rule in rules)
        script += f'add element inet {self.table} egress {{ "{host_if}" : jump {chain} }}\n'
        await asyncio.to_thread(_set_forwarding, host_if)
        await _nft(script)

    async def remove(self, index: int, host_if: str) -> None:
        """Forget one sandbox's egress policy (parts already gone are fine)."""
        if not self.uplink:
            return
        chain = f"sbx_{index}"
        await _nft(f'delete element inet {self.table} egress {{ "{host_if}" }}\n', check=False)
        await _nft(f"flush chain inet {self.table} {chain}\ndelete chain inet {self.table} {chain}\n", False)
