"""``runtime.egress_interface``: ``auto`` finds the uplink from the host's IPv4 default route and feeds it to
the same firewall, routes and egress proxy as a named interface; ``off`` (or nothing) means no egress.

Detection runs in network namespaces made here (``uplink_probe.py`` under ``ip netns exec``): one with a
default route over a veth, one with two default routes, one with none. Nothing is sent anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hutch.runtime.container.egress import uplink
from hutch.runtime.container.egress.uplink import find_uplink
from tests.netns import ip, joined_namespace

WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
HOST_IP, INSIDE_IP = f"10.245.{WORKER}.1", f"10.245.{WORKER}.2"
SUBNET = f"10.{60 + WORKER}.0.0/16"
ADDED = f"192.0.2.{WORKER + 1}/24"  # given to the uplink while the firewall follows it
PROBE = Path(__file__).with_name("uplink_probe.py")


def probe(netns: str, setting: str, work: Path) -> tuple[dict, str]:
    """What the runtime made with ``setting`` in ``netns`` wired up, and what it logged."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, str(PROBE), setting, str(work), SUBNET, ADDED],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.fixture()
def namespace():
    if os.geteuid() != 0:
        pytest.fail("the uplink tests need root (network namespaces)")
    with joined_namespace("ul", HOST_IP, INSIDE_IP, 30) as joined:
        yield joined.netns


@pytest.mark.parametrize("setting", [None, "", "off", " off "])
def test_off_means_no_uplink(monkeypatch, setting):
    monkeypatch.setattr(uplink, "default_route_interface", lambda: pytest.fail("no route is read"))
    assert find_uplink(setting) is None


def test_a_named_interface_is_taken_as_given(monkeypatch):
    monkeypatch.setattr(uplink, "default_route_interface", lambda: pytest.fail("no route is read"))
    assert find_uplink("ens5") == "ens5"


def test_auto_takes_the_default_routes_interface_and_the_firewall_follows_it(namespace, tmp_path):
    ip("-n", namespace, "route", "add", "default", "via", HOST_IP)
    found, _ = probe(namespace, "auto", tmp_path)
    assert (found["firewall"], found["default_route"], found["egress_proxy"]) == ("eth0", True, "eth0")
    # The uplink's own network is closed to sandboxes from the start, and a network it gains later too.
    assert f"10.245.{WORKER}.0/30" in found["node_before"]
    assert "192.0.2.0/24" not in found["node_before"]
    assert "192.0.2.0/24" in found["node_after"]


def test_a_named_uplink_is_wired_the_same_way(namespace, tmp_path):
    found, _ = probe(namespace, "eth0", tmp_path)
    assert (found["firewall"], found["default_route"], found["egress_proxy"]) == ("eth0", True, "eth0")
    assert "192.0.2.0/24" in found["node_after"]


def test_auto_takes_the_default_route_of_the_lowest_metric(namespace, tmp_path):
    ip("-n", namespace, "route", "add", "default", "via", HOST_IP, "metric", "200")
    ip("-n", namespace, "link", "add", "second", "type", "veth", "peer", "name", "secondpeer")
    ip("-n", namespace, "address", "add", "198.51.100.1/24", "dev", "second")
    ip("-n", namespace, "link", "set", "secondpeer", "up")
    ip("-n", namespace, "link", "set", "second", "up")
    ip("-n", namespace, "route", "add", "default", "via", "198.51.100.254", "metric", "50")
    found, _ = probe(namespace, "auto", tmp_path)
    assert found["firewall"] == "second"


def test_auto_without_a_default_route_is_no_egress_with_a_warning(namespace, tmp_path):
    found, logged = probe(namespace, "auto", tmp_path)
    assert found == {"firewall": None, "default_route": False, "egress_proxy": None}
    assert logged.count("no IPv4 default route") == 1


def test_off_in_a_namespace_with_a_default_route_is_no_egress(namespace, tmp_path):
    ip("-n", namespace, "route", "add", "default", "via", HOST_IP)
    found, logged = probe(namespace, "off", tmp_path)
    assert found == {"firewall": None, "default_route": False, "egress_proxy": None}
    assert logged == ""
