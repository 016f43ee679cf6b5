"""Sandbox networks: a network namespace per sandbox, joined to the host by a veth pair.

Each sandbox gets the index ``i`` of a /31 in the subnet (default 10.11.0.0/16): the host side
``hh<address in hex>`` holds the even address, the sandbox's ``eth0`` the odd one; the proxy reaches any
port of it at the odd address. Without egress there is no default route inside, so nothing leaves the
sandbox; with egress the route points at the host and ``firewall`` decides what may leave. The host side
takes no IPv6 at all (a sandbox would otherwise reach the host's services at its link-local address) and
only the sandbox's own source address (strict reverse-path filtering). While the node runs, the whole
subnet is an ``unreachable`` route on the host: an address no sandbox holds (a killed sandbox's, still in a
client's cache) fails at once, instead of being sent out through the host's default gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from dataclasses import dataclass

from ...errors import BackendUnavailable, QuotaExceeded

log = logging.getLogger(__name__)
# Neighbour entries the host keeps besides its sandboxes' (its own network's).
NEIGHBOUR_SLACK = 1024


@dataclass(frozen=True)
class SandboxNetwork:
    """The addresses and names of one sandbox's network."""

    index: int
    netns: str
    host_if: str
    host_ip: str
    sandbox_ip: str

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"


async def _ip(*args: str, script: str, check: bool = True) -> None:
    process = await asyncio.create_subprocess_exec(
        "ip", *args, "-batch", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate(script.encode())
    if check and process.returncode != 0:
        raise BackendUnavailable(f"ip {' '.join(args)} failed: {stderr.decode(errors='replace').strip()}")


class Networks:
    """Allocates /31s to sandboxes and builds or removes their namespaces."""

    def __init__(self, subnet: str = "10.11.0.0/16", *, default_route: bool = False) -> None:
        self.subnet = ipaddress.ip_network(subnet)
        # With egress on, the sandbox routes everything to the host; the firewall decides what leaves.
        self.default_route = default_route
        self.capacity = self.subnet.num_addresses // 2
        self.used: set[int] = set()
        self._last = 0

    async def fence(self) -> None:
        """Make the subnet unreachable from the host, except the sandboxes' own /31s (more specific); and
        give the host's neighbour table room for every sandbox of the subnet."""
        await _ip(script=f"route replace unreachable {self.subnet}\n")
        await asyncio.to_thread(room_for_neighbours, self.capacity)

    async def unfence(self) -> None:
        """Remove the route of :meth:`fence`; already gone is fine."""
        await _ip("-force", script=f"route del unreachable {self.subnet}\n", check=False)

    def plan(self, sandbox_id: str, index: int) -> SandboxNetwork:
        base = self.subnet.network_address + 2 * index
        # Named after the address, so that nodes on different subnets never pick the same name.
        return SandboxNetwork(index, f"hutch-{sandbox_id}", f"hh{int(base):08x}", str(base), str(base + 1))

    def allocate(self, sandbox_id: str) -> SandboxNetwork:
        """The next free /31 after the last one handed out: an address comes back into use as late as
        possible, so that no client still holding a connection to a dead sandbox (a gVisor sandbox dies
        without closing its connections) reaches its successor."""
        for step in range(1, self.capacity):
            index = (self._last + step - 1) % (self.capacity - 1) + 1
            if index not in self.used:
                self.used.add(index)
                self._last = index
                return self.plan(sandbox_id, index)
        raise QuotaExceeded(f"no free sandbox address left in {self.subnet}")

    def release(self, network: SandboxNetwork) -> None:
        self.used.discard(network.index)

    async def create(self, net: SandboxNetwork) -> None:
        """The namespace and its veth pair. The index is this node's, so a host interface already named
        after its address is stale (left by a sandbox whose teardown failed): it is removed, once."""
        script = (
            f"netns add {net.netns}\n"
            f"link add {net.host_if} type veth peer name eth0 netns {net.netns}\n"
            f"address add {net.host_ip}/31 dev {net.host_if}\n"
            f"link set {net.host_if} up\n"
        )
        try:
            await _ip(script=script)
        except BackendUnavailable as err:
            if "File exists" not in str(err):
                raise
            log.warning("sandbox network %s: replacing a stale interface: %s", net.host_if, err)
            await _ip("-force", script=f"link del {net.host_if}\nnetns del {net.netns}\n", check=False)
            await _ip(script=script)
        await asyncio.to_thread(_close_host_side, net.host_if)
        await self.address(net)

    async def address(self, net: SandboxNetwork) -> None:
        """Give the sandbox's ``eth0`` its address and route: at creation, and again before gVisor boots a
        sandbox a second time (runsc moves the address into its own network stack at each start)."""
        inside = f"address replace {net.sandbox_ip}/31 dev eth0\nlink set eth0 up\nlink set lo up\n"
        if self.default_route:
            inside += f"route replace default via {net.host_ip}\n"
        await _ip("-n", net.netns, script=inside)

    async def delete(self, net: SandboxNetwork, *, cut_connections: bool = True) -> None:
        """Remove the veth (freed at once) and the namespace; parts already gone are fine. With
        ``cut_connections``, host sockets still connected to the sandbox are closed first: a gVisor sandbox
        dies without closing its end, and a client (the proxy) would otherwise wait for an answer that never
        comes. A crun sandbox's kernel closed its end when its processes died."""
        if cut_connections:
            await cut(net)
        await _ip("-force", script=f"link del {net.host_if}\nnetns del {net.netns}\n", check=False)
        if os.path.exists(net.netns_path):
            raise BackendUnavailable(f"network namespace {net.netns} could not be removed")
        self.release(net)


def room_for_neighbours(sandboxes: int) -> None:
    """The host holds a neighbour (ARP) entry for each sandbox it talks to; past its table's hard limit
    (1,024 by default, reached by a few hundred sandboxes) new connections to sandboxes fail. The limits
    are raised, never lowered, to what ``sandboxes`` need (a few hundred bytes of kernel memory each). They
    are the host's, seen only from its own network namespace: a node in another one leaves them be."""
    wanted = {2: sandboxes + NEIGHBOUR_SLACK, 3: 2 * sandboxes + NEIGHBOUR_SLACK}
    for level, value in wanted.items():
        path = f"/proc/sys/net/ipv4/neigh/default/gc_thresh{level}"
        try:
            with open(path) as f:
                if int(f.read()) >= value:
                    continue
            with open(path, "w") as f:
                f.write(str(value))
        except FileNotFoundError:
            log.info("the neighbour table's limits are not this network namespace's to set")
            return


def _close_host_side(host_if: str) -> None:
    """No IPv6 on the host's end of the veth, and strict reverse-path filtering of what arrives on it."""
    settings = {f"ipv6/conf/{host_if}/disable_ipv6": "1", f"ipv4/conf/{host_if}/rp_filter": "1"}
    for key, value in settings.items():
        # A kernel without IPv6 has no such file.
        with contextlib.suppress(FileNotFoundError), open(f"/proc/sys/net/{key}", "w") as f:
            f.write(value)


async def cut(net: SandboxNetwork) -> None:
    """Close the host's TCP connections to the sandbox (its peers then see them end at once)."""
    quiet = asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(
        "ss", "--kill", "--tcp", "dst", net.sandbox_ip, stdin=quiet, stdout=quiet, stderr=quiet
    )
    await process.wait()
