"""The sandbox's name servers come from the host's, without the host's own loopback resolvers."""

from __future__ import annotations

from hutch.runtime.firewall import sandbox_resolv_conf


def test_loopback_resolvers_are_left_out():
    host = (
        "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"
        "nameserver ::1\nnameserver 2001:db8::1\n"
    )
    assert sandbox_resolv_conf(host) == "nameserver 10.0.0.2\nnameserver 2001:db8::1\n"


def test_nothing_usable_gives_nothing():
    assert sandbox_resolv_conf("nameserver 127.0.0.1\nsearch example\nnameserver not-an-address\n") == ""
