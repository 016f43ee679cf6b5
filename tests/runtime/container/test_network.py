"""Sandbox networks on the real kernel: a namespace with its veth pair, made without leaving the node's
threads in another namespace; a stale host interface or namespace of the same address (left by a failed
teardown) replaced rather than failing the sandbox's start; rtnetlink's refusals raised as the kernel's
errors; and the fence that keeps a dead sandbox's address from being routed out of the host, with room in
the host's neighbour table for every sandbox."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest

from hutch.runtime.container.netlink import Netlink
from hutch.runtime.container.network import Networks, room_for_neighbours

WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SUBNET = f"10.{70 + WORKER}.0.0/16"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


async def test_a_network_is_made_and_removed() -> None:
    networks = Networks(SUBNET)
    net = networks.allocate("netmade")
    await networks.create(net)
    try:
        assert net.sandbox_ip in _ip("-n", net.netns, "-4", "address", "show", "dev", "eth0")
        assert net.host_ip in _ip("-4", "address", "show", "dev", net.host_if)
    finally:
        await networks.delete(net)
    assert not os.path.exists(net.netns_path)
    assert net.host_if not in _ip("link", "show")
    assert net.index not in networks.used


def _netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


async def test_the_node_s_threads_stay_in_its_namespace() -> None:
    networks = Networks(SUBNET)
    net = networks.allocate("netthreads")
    before = (_netns(), await asyncio.to_thread(_netns))
    await networks.create(net)
    try:
        await networks.address(net)  # as before a gVisor sandbox boots again
        assert (_netns(), await asyncio.to_thread(_netns)) == before
        assert os.stat(net.netns_path).st_ino != before[0]
        assert "UP" in _ip("-n", net.netns, "-br", "link", "show", "dev", "lo")
        assert _ip("-6", "address", "show", "dev", net.host_if) == ""  # no IPv6 on the host's end
    finally:
        await networks.delete(net)


async def test_a_stale_namespace_of_the_same_name_is_replaced() -> None:
    networks = Networks(SUBNET)
    net = networks.allocate("netoldns")
    subprocess.run(["ip", "netns", "add", net.netns], check=True)
    try:
        await networks.create(net)
        assert net.sandbox_ip in _ip("-n", net.netns, "-4", "address", "show", "dev", "eth0")
    finally:
        await networks.delete(net)
    assert not os.path.exists(net.netns_path)


def test_rtnetlink_refusals_are_the_kernel_s_errors() -> None:
    here = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Netlink() as host:
            host.delete_link("hutchnosuch0")  # already gone is fine
            with pytest.raises(OSError) as missing:
                host.up("hutchnosuch0")
            assert missing.value.errno == errno.ENODEV
            with pytest.raises(FileExistsError):
                host.add_veth("lo", "hutchnosuch1", here)
    finally:
        os.close(here)
    assert "hutchnosuch1" not in _ip("link", "show")


async def test_a_stale_interface_of_the_same_address_is_replaced() -> None:
    networks = Networks(SUBNET)
    net = networks.allocate("netstale")
    subprocess.run(["ip", "link", "add", net.host_if, "type", "veth", "peer", "name", "stale0"], check=True)
    try:
        await networks.create(net)
        assert "stale0" not in _ip("link", "show")
        assert net.sandbox_ip in _ip("-n", net.netns, "-4", "address", "show", "dev", "eth0")
    finally:
        await networks.delete(net)
        subprocess.run(["ip", "link", "del", "stale0"], capture_output=True)
    assert not os.path.exists(net.netns_path)


async def test_while_fenced_an_address_no_sandbox_holds_is_unreachable_from_the_host() -> None:
    networks = Networks(SUBNET)
    await networks.fence()
    net = networks.allocate("netfence")
    await networks.create(net)
    try:
        # A sandbox's own address goes to its veth; any other address of the subnet goes nowhere (not
        # out through the host's default gateway, where whatever answers is not the sandbox).
        assert f"dev {net.host_if}" in _ip("route", "get", net.sandbox_ip)
        idle = networks.plan("netidle", net.index + 1).sandbox_ip
        with pytest.raises(subprocess.CalledProcessError) as refused:
            subprocess.run(["ip", "route", "get", idle], capture_output=True, text=True, check=True)
        assert "no route to host" in refused.value.stderr.lower()
        with pytest.raises(OSError) as failed, socket.create_connection((idle, 8000), timeout=5):
            pass
        assert failed.value.errno == errno.EHOSTUNREACH
    finally:
        await networks.delete(net)
        await networks.unfence()
    assert SUBNET not in _ip("-4", "route", "show", "type", "unreachable")


def _neighbour_limits() -> tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        int(Path(f"/proc/sys/net/ipv4/neigh/default/gc_thresh{level}").read_text()) for level in (2, 3)
    )


async def test_the_fence_makes_room_in_the_neighbour_table_and_never_shrinks_it() -> None:
    for level, default in ((2, 512), (3, 1024)):  # the kernel's defaults, as on a fresh host
        Path(f"/proc/sys/net/ipv4/neigh/default/gc_thresh{level}").write_text(str(default))
    networks = Networks(SUBNET)
    await networks.fence()
    try:
        soft, hard = _neighbour_limits()
        assert soft >= networks.capacity and hard >= 2 * networks.capacity  # one entry per sandbox, and more
        room_for_neighbours(1)
        assert _neighbour_limits() == (soft, hard)
    finally:
        await networks.unfence()
