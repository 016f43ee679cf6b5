"""Egress policies with host names: the decision, and the firewall rules that send connections to the
egress proxy only where a name could change it."""

from __future__ import annotations

import pytest

from hutch.runtime.container.egress.firewall import EgressPolicy, policy_rules

REDIRECT = "meta l4proto tcp redirect to :5016"


def rules(policy: EgressPolicy, proxy_port: int | None = 5016) -> tuple[list[str], list[str]]:
    return policy_rules(policy, uplink="up0", proxy_port=proxy_port, name_servers=("192.0.2.53",))


def test_entries_are_sorted_into_addresses_and_names():
    policy = EgressPolicy(
        False, ("1.2.3.4", "Example.com", "*.x.test", "2001:db8::1", "bad name"), ("10.0.0.0/8",)
    )
    assert [str(n) for n in policy.allow_networks] == ["1.2.3.4/32"]
    assert policy.allow_names == ("example.com", "*.x.test")
    assert [str(n) for n in policy.deny_networks] == ["10.0.0.0/8"]
    assert policy.deny_names == ()
    assert policy.has_names


@pytest.mark.parametrize(
    ("policy", "address", "name", "allowed"),
    [
        (EgressPolicy(False, ("a.test",), ("0.0.0.0/0",)), "203.0.113.1", "a.test", True),
        (EgressPolicy(False, ("a.test",), ("0.0.0.0/0",)), "203.0.113.1", "b.test", False),
        (EgressPolicy(False, ("a.test",), ("0.0.0.0/0",)), "203.0.113.1", None, False),
        (EgressPolicy(False, ("a.test", "203.0.113.1")), "203.0.113.1", None, True),
        (EgressPolicy(True, (), ("a.test",)), "203.0.113.1", "a.test", False),
        (EgressPolicy(True, (), ("a.test",)), "203.0.113.1", "b.test", True),
        (EgressPolicy(True, (), ("a.test",)), "203.0.113.1", None, True),
        (EgressPolicy(True, (), ("*.a.test",)), "203.0.113.1", "x.a.test", False),
        # allowOut before denyOut, for names and addresses alike
        (EgressPolicy(False, ("a.test",), ("a.test",)), "203.0.113.1", "a.test", True),
        (EgressPolicy(True, ("a.test",), ("203.0.113.0/24",)), "203.0.113.1", "a.test", True),
        (EgressPolicy(True, ("203.0.113.1",), ("a.test",)), "203.0.113.1", "a.test", True),
    ],
)
def test_precedence(policy, address, name, allowed):
    assert policy.allows(address, name) is allowed


def test_addresses_only_need_no_redirect():
    forward, rerouted = rules(EgressPolicy(True, ("1.2.3.4",), ("5.6.7.0/24",)))
    assert rerouted == []
    assert forward == [
        'ip daddr 1.2.3.4/32 oifname "up0" accept',
        "ip daddr 5.6.7.0/24 drop",
        'oifname "up0" accept',
        "drop",
    ]


def test_allowed_names_behind_a_deny_all():
    forward, rerouted = rules(EgressPolicy(False, ("a.test", "1.2.3.4"), ("0.0.0.0/0",)))
    # The name servers stay reachable, so that the allowed names resolve.
    assert forward[:2] == [
        'ip daddr 192.0.2.53 udp dport 53 oifname "up0" accept',
        'ip daddr 192.0.2.53 tcp dport 53 oifname "up0" accept',
    ]
    # What the guard closes is never sent to the proxy (the guard drops it in the forward path).
    assert rerouted == [
        "ip daddr @closed return",
        "ip daddr @node return",
        "fib daddr type local return",
        "meta l4proto != tcp return",
        "ip daddr 192.0.2.53 tcp dport 53 return",
        "ip daddr 1.2.3.4/32 return",
        f"ip daddr 0.0.0.0/0 {REDIRECT}",
        REDIRECT,
    ]


def test_denied_names_with_internet_on():
    forward, rerouted = rules(EgressPolicy(True, (), ("a.test", "9.9.9.9")))
    assert not any("dport 53" in rule for rule in forward)
    assert rerouted[-2:] == ["ip daddr 9.9.9.9/32 return", REDIRECT]


def test_denied_names_with_internet_off_change_nothing():
    _, rerouted = rules(EgressPolicy(False, (), ("a.test",)))
    assert REDIRECT not in rerouted


def test_names_without_a_proxy_are_not_redirected():
    forward, rerouted = rules(EgressPolicy(False, ("a.test",), ("0.0.0.0/0",)), proxy_port=None)
    assert rerouted == []
    assert forward == ["ip daddr 0.0.0.0/0 drop", "drop"]
