"""The name servers sandboxes are given: the host's that a sandbox can reach (never one on the host
itself), systemd-resolved's upstream servers behind its stub, or the operator's; IPv4 only."""

from __future__ import annotations

import logging
import os

import pytest

from hutch.runtime.container.egress.name_servers import (
    host_name_servers,
    listed_name_servers,
    name_servers,
    resolv_conf,
)
from tests.netns import joined_namespace

WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
HOST_IP, INSIDE_IP = f"10.244.{WORKER}.1", f"10.244.{WORKER}.2"

# What /etc/resolv.conf says on a host running systemd-resolved, and the list of its upstream servers.
STUB = "# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\n"
UPSTREAM = "# This is /run/systemd/resolve/resolv.conf\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"


def test_loopback_and_ipv6_resolvers_are_left_out():
    host = (
        "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"
        "nameserver ::1\nnameserver 2001:db8::1\nnameserver 10.0.0.2\n"
    )
    assert listed_name_servers(host) == ("10.0.0.2",)


def test_nothing_usable_gives_nothing():
    assert listed_name_servers("nameserver 127.0.0.1\nsearch example\nnameserver not-an-address\n") == ()


def test_behind_the_systemd_stub_its_upstream_servers_are_taken(tmp_path):
    etc, systemd = tmp_path / "resolv.conf", tmp_path / "systemd-resolv.conf"
    etc.write_text(STUB)
    systemd.write_text(UPSTREAM)
    assert host_name_servers((etc, systemd)) == ("192.0.2.53",)


def test_the_host_file_wins_when_it_names_reachable_servers(tmp_path):
    etc, systemd = tmp_path / "resolv.conf", tmp_path / "systemd-resolv.conf"
    etc.write_text("nameserver 198.51.100.53\n")
    systemd.write_text(UPSTREAM)
    assert host_name_servers((etc, systemd)) == ("198.51.100.53",)


def test_a_resolver_at_an_address_of_the_host_is_left_out(tmp_path):
    """The node's own addresses are as closed to sandboxes as its loopback: a resolver there is none of
    theirs (the host's end of a veth made here is such an address; the other end is not the host's)."""
    etc = tmp_path / "resolv.conf"
    etc.write_text(f"nameserver {HOST_IP}\nnameserver {INSIDE_IP}\n")
    with joined_namespace("dns", HOST_IP, INSIDE_IP, 30):
        assert host_name_servers((etc, tmp_path / "missing")) == (INSIDE_IP,)


def test_the_operators_servers_win():
    assert name_servers(["192.0.2.1 ", "198.51.100.1"]) == ("192.0.2.1", "198.51.100.1")
    with pytest.raises(ValueError, match="not an IPv4 address"):
        name_servers(["2001:db8::1"])


def test_none_at_all_is_said_once(monkeypatch, caplog):
    monkeypatch.setattr("hutch.runtime.container.egress.name_servers.host_name_servers", lambda: ())
    with caplog.at_level(logging.WARNING, logger="hutch.runtime"):
        assert name_servers() == ()
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "runtime.egress_name_servers" in caplog.text


def test_resolv_conf():
    assert resolv_conf(("192.0.2.53", "198.51.100.53")) == "nameserver 192.0.2.53\nnameserver 198.51.100.53\n"
