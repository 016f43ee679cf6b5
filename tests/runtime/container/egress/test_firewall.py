"""The firewall's pure parts: the node boundary (what no egress policy opens); its transactions' end."""

from __future__ import annotations

import asyncio
import ipaddress
import os

import pytest

from hutch.runtime.container.egress import firewall
from hutch.runtime.container.egress.firewall import closed_networks, closes

SUBNET = ipaddress.IPv4Network("10.11.0.0/16")


def _closed(address: str, *opened: str) -> bool:
    networks = closed_networks(SUBNET, tuple(map(ipaddress.IPv4Network, opened)))
    return any(ipaddress.IPv4Address(address) in network for network in networks)


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "127.0.0.1", "0.0.0.0", "224.0.0.251", "255.255.255.255", "10.11.0.3",
     "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "100.127.255.254"],
)  # fmt: skip
def test_the_boundary_closes_by_default(address):
    assert _closed(address)


@pytest.mark.parametrize("address", ["203.0.113.5", "8.8.8.8", "100.128.0.1", "172.32.0.1", "192.0.2.1"])
def test_outside_addresses_stay_open(address):
    assert not _closed(address)


def test_the_operator_opens_private_ranges_and_nothing_else():
    assert not _closed("10.20.1.2", "10.20.0.0/16")
    assert _closed("10.21.1.2", "10.20.0.0/16")
    everything = "0.0.0.0/0"
    assert not _closed("192.168.1.1", everything)
    for address in ("169.254.169.254", "127.0.0.1", "10.11.0.3", "224.0.0.1"):
        assert _closed(address, everything)
    assert _closed("10.11.0.3", "10.11.0.0/16")  # never the sandboxes' own subnet


@pytest.mark.parametrize(
    ("host", "closed"),
    [("169.254.169.254", True), ("127.0.0.1", True), ("0.0.0.0", True), ("fe80::1", True), ("::1", True),
     ("::ffff:169.254.169.254", True), ("203.0.113.5", False), ("example.com", False)],
)  # fmt: skip
def test_addresses_and_literals_closed_to_every_sandbox(host, closed):
    assert closes(host) is closed


# An nft that takes its time, then marks that its transaction ended.
SLOW_NFT = """#!/bin/sh
cat > /dev/null
sleep 0.3
touch "$(dirname "$0")/committed"
"""


async def test_a_cancelled_transaction_ends_before_the_cancellation_goes_on(tmp_path, monkeypatch):
    """A create cancelled while its policy is applied tears the sandbox down, which removes the policy:
    that removal must not run alongside the transaction (a policy left for an address a later sandbox
    gets)."""
    nft = tmp_path / "nft"
    nft.write_text(SLOW_NFT)
    nft.chmod(0o700)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    applying = asyncio.ensure_future(firewall._nft("add table inet t\n"))
    await asyncio.sleep(0.05)
    applying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await applying
    assert (tmp_path / "committed").exists()
