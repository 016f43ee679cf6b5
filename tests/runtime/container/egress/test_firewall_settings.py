"""The firewall's rules for a sandbox's egress settings: header rules send its HTTPS to the proxy, an
upstream proxy all its TCP, and ``dns_servers`` replaces the name servers it may reach."""

from __future__ import annotations

from hutch.runtime.container.egress.firewall import EgressPolicy, policy_rules
from hutch.runtime.types import EgressSettings, HeaderRule, UpstreamProxy

REDIRECT = "meta l4proto tcp redirect to :9000"


def _rules(policy: EgressPolicy) -> tuple[list[str], list[str]]:
    return policy_rules(policy, uplink="up0", proxy_port=9000, name_servers=("192.0.2.53",))


def test_header_rules_send_https_to_the_proxy():
    rules = EgressSettings(rules=(HeaderRule("api.test", {"A": "b"}),))
    forward, rerouted = _rules(EgressPolicy(True, settings=rules))
    assert f"tcp dport 443 {REDIRECT}" in rerouted
    assert REDIRECT not in rerouted  # other ports leave as routed packets
    assert forward[-2:] == ['oifname "up0" accept', "drop"]
    _, plain = _rules(EgressPolicy(True))
    assert plain == []


def test_an_upstream_proxy_takes_all_tcp():
    settings = EgressSettings(proxy=UpstreamProxy("203.0.113.9:1080"))
    _, rerouted = _rules(EgressPolicy(False, ("203.0.113.7",), settings=settings))
    assert rerouted[-1] == REDIRECT
    assert "ip daddr 203.0.113.7/32 return" not in rerouted  # allowed addresses are tunneled too
    assert "meta l4proto != tcp return" in rerouted  # UDP is not


def test_dns_servers():
    names = ("api.test",)
    forward, rerouted = _rules(EgressPolicy(False, names))
    assert 'ip daddr 192.0.2.53 udp dport 53 oifname "up0" accept' in forward
    chosen = EgressSettings(dns_servers=("198.51.100.1", "not an address; drop"))
    forward, rerouted = _rules(EgressPolicy(False, names, settings=chosen))
    assert 'ip daddr 198.51.100.1 oifname "up0" accept' in forward
    assert "ip daddr 198.51.100.1 return" in rerouted
    assert not any("192.0.2.53" in rule or "not an address" in rule for rule in forward + rerouted)
    forward, _ = _rules(EgressPolicy(False, names, settings=EgressSettings(dns_servers=())))
    assert not any("dport 53" in rule or "198.51" in rule for rule in forward)
    # Without a name in allowOut they open nothing.
    forward, _ = _rules(EgressPolicy(False, ("203.0.113.7",), settings=chosen))
    assert not any("198.51.100.1" in rule for rule in forward)
