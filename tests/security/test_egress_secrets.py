"""Header rules and secrets, the upstream SOCKS5 proxy and ``dnsServers``, enforced by the node's egress
proxy and firewall (``EgressSettings``).

The path is built without the container runtime, as in ``test_egress_names``: an "outside" network
namespace (``egress_outside.py``: HTTPS with a test CA's certificate, logging the headers it gets; a SOCKS5
server with auth; UDP echoes on port 53) joined to the host by a veth used as the uplink; "sandboxes"
that are bare network namespaces with a /31 veth; the runtime's ``Firewall`` and ``EgressProxy`` in this
process, the proxy trusting the test CA as a node's setting would make it. Each sandbox has its own CA
(``authority``), which its clients are given (curl ``--cacert``), as a real sandbox's trust files do.
Nothing leaves the machine. Subnets: 172.31.{200+worker}.0/24 (sandboxes), 172.31.{180+worker}.0/24
(uplink); outside addresses 203.0.113.{200+worker} and 203.0.113.{220+worker}.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hutch.runtime.container.egress import intercept
from hutch.runtime.container.egress.authority import CA_ONLY, TRUST, prepare_trust
from hutch.runtime.container.egress.firewall import EgressPolicy, Firewall
from hutch.runtime.container.egress.proxy import EgressProxy
from hutch.runtime.types import EgressSettings, HeaderRule, UpstreamProxy
from tests.netns import join
from tests.security.outside_https import make_certificates, running_outside
from tests.security.test_egress import routed_through
from tests.stack import WORKER

SUBNET = f"172.31.{200 + WORKER}.0/24"
HOST_UP, GATEWAY = f"172.31.{180 + WORKER}.1", f"172.31.{180 + WORKER}.2"
OUTSIDE, OUTSIDE_2 = f"203.0.113.{200 + WORKER}", f"203.0.113.{220 + WORKER}"
TAG = uuid.uuid4().hex[:6]
OUTSIDE_NS, UPLINK = f"hxs-out-{TAG}", f"hxsu{TAG}"
HERE = Path(__file__).parent
SECRET = "S3CRET"
SOCKS_USER, SOCKS_PASSWORD = "proxyuser", "proxy-pass"
BEARER = {"Authorization": "Bearer ${e2b.secrets.tok}"}
BEARER_SETTINGS = EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET})


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Outside:
    site: Path
    ca: Path  # the test CA, which the outside's certificate is signed by

    def requests(self) -> list[dict]:
        log = self.site / "https.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def tunnels(self) -> list[dict]:
        log = self.site / "socks.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@dataclass
class World:
    firewall: Firewall
    proxy: EgressProxy
    outside: Outside


@dataclass
class FakeSandbox:
    index: int
    netns: str
    host_if: str
    host_ip: str
    ip: str
    directory: Path  # its CA and trust files

    @property
    def ca(self) -> Path:
        return self.directory / TRUST / CA_ONLY


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Iterator[Outside]:
    if os.geteuid() != 0:
        pytest.fail("the egress tests need root")
    site = tmp_path_factory.mktemp("secrets")
    names = ["api.test", "other.test", "wild.test", "*.wild.test", "*.y.wild.test", "*.deep.wild.test"]
    ca = make_certificates(site, names)
    outside = running_outside(
        site, netns=OUTSIDE_NS, uplink=UPLINK, host_ip=HOST_UP, gateway=GATEWAY,
        addresses=[OUTSIDE, OUTSIDE_2], socks_login=(SOCKS_USER, SOCKS_PASSWORD),
    )  # fmt: skip
    with outside, routed_through(UPLINK, GATEWAY, [SUBNET], 2300 + WORKER):
        yield Outside(site, ca)


@pytest.fixture(scope="module")
async def world(outside) -> AsyncIterator[World]:
    firewall = Firewall(SUBNET, UPLINK, name_servers=(OUTSIDE,))
    proxy = EgressProxy(SUBNET, UPLINK, peek_timeout_s=2, upstream_ca_file=str(outside.ca))
    await proxy.start()
    try:
        await firewall.install(proxy_port=proxy.port)
        yield World(firewall, proxy, outside)
    finally:
        await firewall.uninstall()
        await proxy.stop()


@pytest.fixture()
async def make_sandbox(world, tmp_path) -> AsyncIterator:
    made: list[FakeSandbox] = []
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc/ssl/certs").mkdir(parents=True)
    (rootfs / "etc/ssl/certs/ca-certificates.crt").write_bytes(world.outside.ca.read_bytes())

    def make(index: int) -> FakeSandbox:
        base = ipaddress.ip_network(SUBNET).network_address + 2 * index
        directory = tmp_path / f"sandbox{index}"
        directory.mkdir()
        prepare_trust(directory, rootfs)
        sandbox = FakeSandbox(
            index, f"hxs-sb{index}-{TAG}", f"hxss{index}{TAG}", str(base), str(base + 1), directory
        )
        made.append(sandbox)
        join(sandbox.netns, sandbox.host_if, sandbox.host_ip, sandbox.ip, 31)
        _ip("-n", sandbox.netns, "route", "add", "default", "via", sandbox.host_ip)
        return sandbox

    yield make
    for sandbox in made:
        await world.firewall.remove(sandbox.index, sandbox.host_if)
        world.proxy.remove(sandbox.ip)
        subprocess.run(["ip", "link", "del", sandbox.host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", sandbox.netns], check=False, capture_output=True)


async def _apply(world: World, sandbox: FakeSandbox, settings: EgressSettings, **policy) -> None:
    """What the container runtime does on create and on ``update_egress``."""
    allow = policy.pop("allow_out", ("api.test", "other.test", "*.wild.test", "wild.test"))
    made = EgressPolicy(
        policy.pop("internet", False),
        allow,
        policy.pop("deny_out", ("0.0.0.0/0",)),
        settings,
        sandbox.directory,
    )
    world.proxy.set_policy(sandbox.ip, made)
    await world.firewall.apply(sandbox.index, sandbox.host_if, made)


async def _run(netns: str, *argv: str, timeout: float = 60) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def _curl(sandbox: FakeSandbox, name: str, *args: str, ca: Path | None = None) -> tuple[int, str]:
    """curl -v to ``https://name/`` at the outside's address, trusting ``ca`` (default: the sandbox's)."""
    return await _run(
        sandbox.netns, "curl", "-sS", "-v", "--noproxy", "*", "--connect-timeout", "2", "-m", "10",
        "--cacert", str(ca or sandbox.ca), "--resolve", f"{name}:443:{OUTSIDE}", *args, f"https://{name}/",
    )  # fmt: skip


def _last(world: World) -> dict[str, str]:
    """The headers of the last request the outside got (names lower-cased)."""
    return {name.lower(): value for name, value in world.outside.requests()[-1]["headers"]}


async def test_a_rule_adds_its_header_with_the_secret(world, make_sandbox):
    sandbox = make_sandbox(1)
    settings = EgressSettings(
        rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET, "other": "NOT-FOR-API"}
    )
    await _apply(world, sandbox, settings)
    before = world.proxy.counts["intercepted"]
    code, out = await _curl(
        sandbox, "api.test",
        "-H", "Authorization: Basic mine",  # replaced by the rule's header of the same name
        "-H", "X-Mine: key=${e2b.secrets.tok}",  # a secret the rule names: resolved
        "-H", "X-Other: ${e2b.secrets.other}",  # one it does not name: left as it is
    )  # fmt: skip
    assert code == 0, out
    assert "ok api.test" in out
    assert world.proxy.counts["intercepted"] == before + 1
    got = _last(world)
    assert got["authorization"] == f"Bearer {SECRET}"
    assert got["x-mine"] == f"key={SECRET}"
    assert got["x-other"] == "${e2b.secrets.other}"
    assert "NOT-FOR-API" not in json.dumps(world.outside.requests())
    # The sandbox sees none of it: its verbose output shows what it sent and what came back.
    assert SECRET not in out
    assert "ALPN: server accepted http/1.1" in out
    # The certificate it got is its own CA's.
    assert "Hutch egress CA" in out


async def test_a_secret_goes_only_to_the_hosts_whose_rule_names_it(world, make_sandbox):
    sandbox = make_sandbox(1)
    settings = EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET})
    await _apply(world, sandbox, settings)
    # No rule for other.test: not intercepted, the outside's own certificate reaches the client.
    before = world.proxy.counts["intercepted"]
    code, out = await _curl(sandbox, "other.test", "-H", "X-Mine: ${e2b.secrets.tok}", ca=world.outside.ca)
    assert code == 0, out
    assert "Hutch test outside CA" in out
    assert world.proxy.counts["intercepted"] == before
    got = _last(world)
    assert got["x-mine"] == "${e2b.secrets.tok}"
    assert "authorization" not in got
    # Nor does a client trusting only the sandbox's CA accept other.test: nothing of its was forged.
    code, _ = await _curl(sandbox, "other.test")
    assert code != 0


async def test_exact_rules_win_then_the_longest_wildcard(world, make_sandbox):
    sandbox = make_sandbox(1)
    rules = (
        HeaderRule("*.wild.test", {"X-Rule": "wild"}),
        HeaderRule("exact.wild.test", {"X-Rule": "exact"}),
        HeaderRule("*.deep.wild.test", {"X-Rule": "deep"}),
    )
    await _apply(world, sandbox, EgressSettings(rules=rules))
    for name, expected in (
        ("exact.wild.test", "exact"),
        ("x.y.wild.test", "wild"),
        ("z.deep.wild.test", "deep"),
    ):
        code, out = await _curl(sandbox, name)
        assert code == 0, out
        assert _last(world)["x-rule"] == expected
    # The apex is not under its wildcard: passed through untouched.
    code, out = await _curl(sandbox, "wild.test", ca=world.outside.ca)
    assert code == 0, out
    assert "x-rule" not in _last(world)


async def test_rules_grant_no_access(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(
        world, sandbox, EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET}),
        allow_out=("other.test",),
    )  # fmt: skip
    count = len(world.outside.requests())
    code, _ = await _curl(sandbox, "api.test")
    assert code != 0
    assert len(world.outside.requests()) == count


async def test_a_sandbox_ca_is_trusted_by_that_sandbox_only(world, make_sandbox):
    first, second = make_sandbox(1), make_sandbox(2)
    settings = EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET})
    await _apply(world, first, settings)
    await _apply(world, second, settings)
    code, out = await _curl(second, "api.test", ca=first.ca)
    assert code != 0 and SECRET not in out
    code, out = await _curl(second, "api.test")
    assert code == 0, out
    # The host trusts neither.
    host = ssl.create_default_context()
    pems = {ssl.DER_cert_to_PEM_cert(der) for der in host.get_ca_certs(binary_form=True)}
    assert first.ca.read_text() not in pems and second.ca.read_text() not in pems
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    if system.exists():
        assert first.ca.read_text().strip() not in system.read_text()


async def test_keep_alive_requests_each_get_the_rule(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(
        world, sandbox, EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET})
    )
    count = len(world.outside.requests())
    code, out = await _hostile(sandbox, "keep-alive")
    assert code == 0
    assert out.count("ok api.test") == 4 and SECRET not in out
    got = world.outside.requests()[count:]
    assert [r["path"] for r in got] == ["/k0", "/k1", "/k2", "/last"]
    assert all(
        dict((k.lower(), v) for k, v in r["headers"])["authorization"] == f"Bearer {SECRET}" for r in got
    )


async def test_a_rule_change_closes_intercepted_connections(world, make_sandbox):
    sandbox = make_sandbox(1)
    settings = EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET})
    await _apply(world, sandbox, settings)
    slow = asyncio.ensure_future(_hostile(sandbox, "slowloris"))
    await asyncio.sleep(2)
    await _apply(world, sandbox, EgressSettings(rules=(HeaderRule("api.test", {"X-New": "1"}),)))
    code, out = await slow
    assert "took" in out and float(out.rsplit("took", 1)[1]) < 10
    code, out = await _curl(sandbox, "api.test")
    assert code == 0, out
    got = _last(world)
    assert got["x-new"] == "1" and "authorization" not in got


async def _hostile(sandbox: FakeSandbox, mode: str, name: str = "api.test") -> tuple[int, str]:
    return await _run(
        sandbox.netns, sys.executable, str(HERE / "egress_hostile.py"), mode, OUTSIDE, name, str(sandbox.ca)
    )


async def test_hostile_requests_are_bounded_and_closed(world, make_sandbox, monkeypatch):
    monkeypatch.setattr(intercept, "HEAD_TIMEOUT_S", 2.0)
    sandbox = make_sandbox(1)
    await _apply(
        world, sandbox, EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET})
    )
    count = len(world.outside.requests())
    outs = {}
    for mode in ("huge-header", "malformed", "slowloris", "smuggle", "long-sni"):
        _, outs[mode] = await _hostile(sandbox, mode)
        assert SECRET not in outs[mode], mode
        assert float(outs[mode].rsplit("took", 1)[1]) < 15, (mode, outs[mode])
    # The 100 MB header: refused after the head's bound, long before it was all sent.
    sent = int(outs["huge-header"].split("sent ", 1)[1].split()[0])
    assert sent < 8 * 1024 * 1024, outs["huge-header"]
    assert "431" in outs["huge-header"] or "400" in outs["huge-header"] or "closed" in outs["huge-header"]
    assert "400 Bad Request" in outs["malformed"]
    assert "400 Bad Request" in outs["smuggle"]
    assert "ok api.test" not in outs["slowloris"]
    assert "ok" not in outs["long-sni"].split("took")[0]
    # None of them reached the server (the smuggled request least of all).
    assert world.outside.requests()[count:] == []


async def test_an_upstream_socks5_proxy_carries_the_tcp(world, make_sandbox):
    sandbox = make_sandbox(1)
    proxy = UpstreamProxy(f"{OUTSIDE_2}:1080", SOCKS_USER, SOCKS_PASSWORD)
    settings = EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET}, proxy=proxy)
    await _apply(world, sandbox, settings, allow_out=("api.test", "other.test", OUTSIDE))
    tunnels = len(world.outside.tunnels())
    code, out = await _curl(sandbox, "api.test")
    assert code == 0, out
    assert _last(world)["authorization"] == f"Bearer {SECRET}"
    # Name-matched: the name goes to the proxy (ATYP=domain), also when passed through untouched.
    code, out = await _curl(sandbox, "other.test", ca=world.outside.ca)
    assert code == 0, out
    # Allowed by its address: the address goes.
    code, out = await _run(
        sandbox.netns,
        "curl",
        "-sS",
        "-m",
        "10",
        "--cacert",
        str(world.outside.ca),
        "-k",
        f"https://{OUTSIDE}/",
    )
    assert code == 0, out
    assert world.outside.tunnels()[tunnels:] == [
        {"kind": 3, "host": "api.test", "port": 443},
        {"kind": 3, "host": "other.test", "port": 443},
        {"kind": 1, "host": OUTSIDE, "port": 443},
    ]
    # Wrong credentials: nothing gets through.
    bad = EgressSettings(proxy=UpstreamProxy(f"{OUTSIDE_2}:1080", SOCKS_USER, "wrong"))
    await _apply(world, sandbox, bad, allow_out=("other.test",))
    code, _ = await _curl(sandbox, "other.test", ca=world.outside.ca)
    assert code != 0


async def test_an_upstream_http_proxy_carries_the_tcp(world, make_sandbox):
    sandbox = make_sandbox(1)
    proxy = UpstreamProxy(f"{OUTSIDE_2}:3128", SOCKS_USER, SOCKS_PASSWORD, scheme="http")
    settings = EgressSettings(rules=(HeaderRule("api.test", BEARER),), secrets={"tok": SECRET}, proxy=proxy)
    await _apply(world, sandbox, settings, allow_out=("api.test", "other.test", OUTSIDE))
    tunnels = len(world.outside.tunnels())
    code, out = await _curl(sandbox, "api.test")
    assert code == 0, out
    assert _last(world)["authorization"] == f"Bearer {SECRET}"
    code, out = await _curl(sandbox, "other.test", ca=world.outside.ca)
    assert code == 0, out
    code, out = await _run(
        sandbox.netns, "curl", "-sS", "-m", "10", "-k", f"https://{OUTSIDE}/"
    )  # fmt: skip
    assert code == 0, out
    assert world.outside.tunnels()[tunnels:] == [
        {"kind": "http", "host": "api.test", "port": 443},
        {"kind": "http", "host": "other.test", "port": 443},
        {"kind": "http", "host": OUTSIDE, "port": 443},
    ]
    bad = EgressSettings(proxy=UpstreamProxy(f"{OUTSIDE_2}:3128", SOCKS_USER, "wrong", scheme="http"))
    await _apply(world, sandbox, bad, allow_out=("other.test",))
    code, _ = await _curl(sandbox, "other.test", ca=world.outside.ca)
    assert code != 0


async def _udp(sandbox: FakeSandbox, address: str) -> str:
    code = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5);"
        f" s.sendto(b'q', ({address!r}, 53)); print(s.recv(100).decode())"
    )
    status, out = await _run(sandbox.netns, sys.executable, "-c", code)
    return out.strip() if status == 0 else "blocked"


async def test_dns_servers(world, make_sandbox):
    sandbox = make_sandbox(1)
    # Absent: the node's name server.
    await _apply(world, sandbox, EgressSettings())
    assert [await _udp(sandbox, OUTSIDE), await _udp(sandbox, OUTSIDE_2)] == ["answer:q", "blocked"]
    # Named: those instead.
    await _apply(world, sandbox, EgressSettings(dns_servers=(OUTSIDE_2,)))
    assert [await _udp(sandbox, OUTSIDE), await _udp(sandbox, OUTSIDE_2)] == ["blocked", "answer:q"]
    # Empty: none.
    await _apply(world, sandbox, EgressSettings(dns_servers=()))
    assert [await _udp(sandbox, OUTSIDE), await _udp(sandbox, OUTSIDE_2)] == ["blocked", "blocked"]
    # Only when allowOut names a host.
    await _apply(world, sandbox, EgressSettings(dns_servers=(OUTSIDE_2,)), allow_out=())
    assert await _udp(sandbox, OUTSIDE_2) == "blocked"
