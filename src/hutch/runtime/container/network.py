"""Sandbox networks: a network namespace per sandbox, joined to the host by a veth pair.

Each sandbox gets the index ``i`` of a /31 in the subnet (default 10.11.0.0/16): the host side
``hh<address in hex>`` holds the even address, the sandbox's ``eth0`` the odd one; the proxy reaches any
port of it at the odd address. Without egress there is no default route inside, so nothing leaves the
sandbox; with egress the route points at the host and ``firewall`` decides what may leave. The host side
takes no IPv6 at all (a sandbox would otherwise reach the host's services at its link-local address) and
only the sandbox's own source address (strict reverse-path filtering). While the node runs, the whole
subnet is an ``unreachable`` route on the host: an address no sandbox holds (a killed sandbox's, still in a
client's cache) fails at once, instead of being sent out through the host's default gateway.

All of it is made by rtnetlink requests (:mod:`.netlink`) and system calls, without a program: a namespace is
made by a thread of its own that leaves the node's, names it where ``ip netns`` does (``/run/netns``) and
ends, so no thread the node keeps ever changes its namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ...errors import BackendUnavailable, QuotaExceeded
from ..linux import CLONE_NEWNET, MS_BIND, MS_REC, MS_SHARED, detach, mount, setns, unshare
from .netlink import Netlink

log = logging.getLogger(__name__)
# Neighbour entries the host keeps besides its sandboxes' (its own network's).
NEIGHBOUR_SLACK = 1024
NETNS_DIR = "/run/netns"
_netns_dir_shared = threading.Lock()  # two first namespaces at once would bind the directory twice
_Result = TypeVar("_Result")


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


async def _in_own_thread(work: Callable[[], _Result]) -> _Result:
    """Run ``work`` in a new thread, which ends with it: a thread that changes its network namespace is
    never one the node uses again. Once begun, it is waited for even when the caller is cancelled."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[_Result] = loop.create_future()

    def settle(result: _Result | None, error: BaseException | None) -> None:
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = work()
        except BaseException as error:  # handed to the caller
            loop.call_soon_threadsafe(settle, None, error)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="hutch-netns", daemon=True).start()
    try:
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        await asyncio.gather(outcome, return_exceptions=True)
        raise


def _host_netlink(work: Callable[[Netlink], None]) -> None:
    with Netlink() as host:
        work(host)


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
        await asyncio.to_thread(_host_netlink, lambda host: host.set_unreachable(self.subnet, True))
        await asyncio.to_thread(room_for_neighbours, self.capacity)

    async def unfence(self) -> None:
        """Remove the route of :meth:`fence`; already gone is fine."""
        await asyncio.to_thread(_host_netlink, lambda host: host.set_unreachable(self.subnet, False))

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
        """The namespace and its veth pair. The index is this node's, so a host interface or namespace
        already named after its address is stale (left by a sandbox whose teardown failed): it is removed,
        once."""
        try:
            await _in_own_thread(lambda: self._make(net))
        except FileExistsError as err:
            log.warning("sandbox network %s: replacing a stale interface: %s", net.host_if, err)
            await asyncio.to_thread(_remove, net)
            await _in_own_thread(lambda: self._make(net))

    def _make(self, net: SandboxNetwork) -> None:
        """In a thread of its own: make the namespace and name it, join it to the node's by the veth pair,
        and configure both ends (the host's with no IPv6 and strict reverse-path filtering)."""
        node = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with Netlink() as host:  # made in the node's namespace, before this thread leaves it
                _name_namespace_here(net)
                with Netlink() as inside:
                    inside.add_veth("eth0", net.host_if, node)
                    self._configure_inside(inside, net)
                setns(node, CLONE_NEWNET)
                _close_host_side(net.host_if)
                host.set_address(net.host_if, net.host_ip, 31)
                host.up(net.host_if)
        except FileExistsError:
            raise
        except OSError as err:
            raise BackendUnavailable(f"sandbox network {net.netns}: {err}") from err
        finally:
            os.close(node)

    async def address(self, net: SandboxNetwork) -> None:
        """Give the sandbox's ``eth0`` its address and route: at creation, and again before gVisor boots a
        sandbox a second time (runsc moves the address into its own network stack at each start)."""

        def configure() -> None:
            descriptor = os.open(net.netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(descriptor, CLONE_NEWNET)
            finally:
                os.close(descriptor)
            with Netlink() as inside:
                self._configure_inside(inside, net)

        try:
            await _in_own_thread(configure)
        except OSError as err:
            raise BackendUnavailable(f"sandbox network {net.netns}: {err}") from err

    def _configure_inside(self, inside: Netlink, net: SandboxNetwork) -> None:
        inside.set_address("eth0", net.sandbox_ip, 31)
        inside.up("eth0")
        inside.up("lo")
        if self.default_route:
            inside.set_default_route(net.host_ip)

    async def delete(self, net: SandboxNetwork, *, cut_connections: bool = True) -> None:
        """Remove the veth (freed at once) and the namespace; parts already gone are fine. With
        ``cut_connections``, host sockets still connected to the sandbox are closed first: a gVisor sandbox
        dies without closing its end, and a client (the proxy) would otherwise wait for an answer that never
        comes. A crun sandbox's kernel closed its end when its processes died."""
        if cut_connections:
            await cut(net)
        await asyncio.to_thread(_remove, net)
        if os.path.exists(net.netns_path):
            raise BackendUnavailable(f"network namespace {net.netns} could not be removed")
        self.release(net)


def _remove(net: SandboxNetwork) -> None:
    """The host's end of the veth (the sandbox's goes with it), then the namespace's name (the namespace
    goes once nothing holds it); the name is removed even if the link could not be."""
    try:
        with Netlink() as host:
            host.delete_link(net.host_if)
    finally:
        detach(net.netns_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(net.netns_path)


def _name_namespace_here(net: SandboxNetwork) -> None:
    """Move the calling thread into a new network namespace and name it ``net.netns``, as ``ip netns add``
    does: a bind mount of it on ``/run/netns/<name>``, a directory shared with the mount namespaces made
    after (so that those of crun's runs see it). ``FileExistsError`` if the name is taken."""
    with _netns_dir_shared:
        os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
        try:
            mount("", NETNS_DIR, None, MS_SHARED | MS_REC)
        except OSError as err:
            if err.errno != errno.EINVAL:  # not a mount point yet
                raise
            mount(NETNS_DIR, NETNS_DIR, None, MS_BIND | MS_REC)
            mount("", NETNS_DIR, None, MS_SHARED | MS_REC)
    os.close(os.open(net.netns_path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    try:
        unshare(CLONE_NEWNET)
        mount("/proc/thread-self/ns/net", net.netns_path, None, MS_BIND)
    except BaseException:
        os.unlink(net.netns_path)
        raise


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
