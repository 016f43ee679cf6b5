"""Egress by host name: ``allowOut``/``denyOut`` entries such as ``allowed.test`` or ``*.wild.test``,
enforced by the node's egress proxy behind the firewall's redirect.

Most tests build the path without the container runtime: an "outside" network namespace with HTTP,
HTTPS, a server-speaks-first TCP service and a UDP echo on port 53, joined to the host by a veth used as
the uplink (a gateway on the uplink's network; outside, private and metadata addresses behind it, routed
for the sandboxes' subnets only); "sandboxes" that are bare network namespaces with a /31 veth and a
default route to the host, as the runtime makes them; and the runtime's ``Firewall`` and ``EgressProxy``
in this process. The clients (curl, python3) run inside those namespaces. Nothing leaves the machine. The
last test drives the same through the official SDK and a running stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from e2b import Sandbox

from hutch.runtime.container import backend
from hutch.runtime.container.egress.firewall import EgressPolicy, Firewall
from hutch.runtime.container.egress.proxy import EgressProxy
from tests.netns import join
from tests.security.test_egress import routed_through, serve_outside
from tests.stack import WORKER, Stack, start_stack, stop_stack

SUBNET, OPEN_SUBNET, STACK_SUBNET = (f"10.{base + WORKER}.0.0/16" for base in (80, 200, 90))
HOST_UP, GATEWAY = f"10.252.{WORKER}.1", f"10.252.{WORKER}.2"
OUTSIDE, OUTSIDE_2 = f"203.0.113.{WORKER}", f"203.0.113.{100 + WORKER}"
PRIVATE, METADATA = f"10.253.{WORKER}.2", "169.254.169.254"
TAG = uuid.uuid4().hex[:6]
OUTSIDE_NS, UPLINK = f"hxn-out-{TAG}", f"hxnu{TAG}"

SERVER = r"""
import http.server, socket, ssl, sys, threading, time

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.1)
            return
        body = f"outside {self.connection.getsockname()[0]} {self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

def banner():
    listener = socket.create_server(("0.0.0.0", 7000))
    while True:
        conn, _ = listener.accept()
        conn.sendall(b"banner\n")
        conn.close()

def udp_echo():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[3], 53))  # its own address: answers come from where the questions went
    while True:
        data, peer = sock.recvfrom(512)
        sock.sendto(b"answer:" + data, peer)

plain, secure = Server(("0.0.0.0", 80), Handler), Server(("0.0.0.0", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
for target in (plain.serve_forever, secure.serve_forever, banner, udp_echo):
    threading.Thread(target=target, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class World:
    firewall: Firewall
    proxy: EgressProxy


@dataclass
class FakeSandbox:
    index: int
    netns: str
    host_if: str
    host_ip: str
    ip: str


async def _run(netns: str, *argv: str, timeout: float = 20) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def _curl(netns: str, *args: str) -> str:
    """The body, or "blocked" if the request failed."""
    # A dropped SYN is never answered: give up on connecting soon (a veth answers in microseconds).
    code, out = await _run(
        netns, "curl", "-sk", "--noproxy", "*", "--connect-timeout", "1.5", "-m", "4", *args
    )
    return out if code == 0 else "blocked"


def _https(name: str, address: str = OUTSIDE) -> tuple[str, ...]:
    return ("--resolve", f"{name}:443:{address}", f"https://{name}/")


def _http(name: str, address: str = OUTSIDE) -> tuple[str, ...]:
    return ("-H", f"Host: {name}", f"http://{address}/")


async def _raw(netns: str, address: str, port: int) -> str:
    """The first line a TCP service sends, or "blocked"."""
    code = (
        f"import socket; s = socket.create_connection(({address!r}, {port}), timeout=3); s.settimeout(3);"
        " print(s.recv(100).decode().strip() or 'blocked')"
    )
    status, out = await _run(netns, sys.executable, "-c", code)
    return out.strip() if status == 0 else "blocked"


async def _udp(netns: str, port: int) -> str:
    code = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2);"
        f" s.sendto(b'q', ({OUTSIDE!r}, {port})); print(s.recv(100).decode())"
    )
    status, out = await _run(netns, sys.executable, "-c", code)
    return out.strip() if status == 0 else "blocked"


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("the egress tests need root")
    site = tmp_path_factory.mktemp("names")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(site / "key.pem"), "-out", str(site / "cert.pem"), "-days", "1",
         "-subj", "/CN=allowed.test", "-addext", "subjectAltName=DNS:allowed.test,DNS:*.wild.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    (site / "server.py").write_text(SERVER)
    server = None
    _ip("netns", "add", OUTSIDE_NS)
    try:
        serve_outside(OUTSIDE_NS, UPLINK, HOST_UP, GATEWAY, [OUTSIDE, OUTSIDE_2, PRIVATE, METADATA])
        server = subprocess.Popen(
            ["ip", "netns", "exec", OUTSIDE_NS, sys.executable, str(site / "server.py"),
             str(site / "cert.pem"), str(site / "key.pem"), OUTSIDE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        with routed_through(UPLINK, GATEWAY, [SUBNET, OPEN_SUBNET, STACK_SUBNET], 2100 + WORKER):
            yield UPLINK
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", UPLINK], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", OUTSIDE_NS], check=False, capture_output=True)


@contextlib.asynccontextmanager
async def _world(subnet: str, uplink: str, private_networks: tuple[str, ...] = ()) -> AsyncIterator[World]:
    firewall = Firewall(subnet, uplink, name_servers=(OUTSIDE,), private_networks=private_networks)
    proxy = EgressProxy(subnet, uplink, peek_timeout_s=2)
    await proxy.start()
    try:
        await firewall.install(proxy_port=proxy.port)
        yield World(firewall, proxy)
    finally:
        await firewall.uninstall()
        await proxy.stop()


@pytest.fixture(scope="module")
async def world(outside) -> AsyncIterator[World]:
    async with _world(SUBNET, outside) as made:
        yield made


@pytest.fixture(scope="module")
async def open_world(outside) -> AsyncIterator[World]:
    """A node whose operator opened the private network behind ``PRIVATE``."""
    async with _world(OPEN_SUBNET, outside, (f"{PRIVATE}/24",)) as made:
        yield made


@pytest.fixture()
async def make_sandbox(world) -> AsyncIterator:
    made: list[tuple[FakeSandbox, World]] = []

    def make(index: int, node: World = world) -> FakeSandbox:
        base = ipaddress.ip_network(node.firewall.subnet).network_address + 2 * index
        sandbox = FakeSandbox(index, f"hxn-sb{index}-{TAG}", f"hxns{index}{TAG}", str(base), str(base + 1))
        made.append((sandbox, node))
        join(sandbox.netns, sandbox.host_if, sandbox.host_ip, sandbox.ip, 31)
        _ip("-n", sandbox.netns, "route", "add", "default", "via", sandbox.host_ip)
        return sandbox

    yield make
    for sandbox, node in made:
        await node.firewall.remove(sandbox.index, sandbox.host_if)
        node.proxy.remove(sandbox.ip)
        subprocess.run(["ip", "link", "del", sandbox.host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", sandbox.netns], check=False, capture_output=True)


async def _apply(world: World, sandbox: FakeSandbox, policy: EgressPolicy) -> None:
    """What the container runtime does on create and on ``update_egress``."""
    world.proxy.set_policy(sandbox.ip, policy)
    await world.firewall.apply(sandbox.index, sandbox.host_if, policy)


ALLOWED = f"outside {OUTSIDE} allowed.test"


async def test_an_allowed_name_behind_a_deny_all(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(False, ("allowed.test", "*.wild.test"), ("0.0.0.0/0",)))
    before = world.proxy.counts.copy()
    assert await _curl(sandbox.netns, *_https("allowed.test")) == ALLOWED
    assert await _curl(sandbox.netns, *_http("allowed.test")) == ALLOWED
    assert await _curl(sandbox.netns, *_http("ALLOWED.Test.")) == f"outside {OUTSIDE} ALLOWED.Test."
    assert await _curl(sandbox.netns, *_https("a.b.wild.test")) == f"outside {OUTSIDE} a.b.wild.test"
    # Other names, no name, a bare address, raw TCP: refused.
    assert await _curl(sandbox.netns, *_https("other.test")) == "blocked"
    assert await _curl(sandbox.netns, *_http("other.test")) == "blocked"
    assert await _curl(sandbox.netns, *_https("wild.test")) == "blocked"
    assert await _curl(sandbox.netns, f"http://{OUTSIDE}/") == "blocked"
    assert await _curl(sandbox.netns, f"https://{OUTSIDE}/") == "blocked"
    assert await _raw(sandbox.netns, OUTSIDE, 7000) == "blocked"
    assert world.proxy.counts - before == {"allowed": 4, "refused": 6}
    # The name servers answer (port 53 only), so that the allowed names resolve.
    assert await _udp(sandbox.netns, 53) == "answer:q"
    assert await _udp(sandbox.netns, 54) == "blocked"


async def test_the_original_destination_is_kept(world, make_sandbox):
    """The proxy connects where the sandbox dialled, whatever the name says: it never resolves it."""
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(False, ("allowed.test",), ("0.0.0.0/0",)))
    assert (
        await _curl(sandbox.netns, *_https("allowed.test", OUTSIDE_2)) == f"outside {OUTSIDE_2} allowed.test"
    )


async def test_an_allowed_name_opens_nothing_on_the_host(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(True, ("*",)))
    seen = []
    listener = await asyncio.start_server(lambda r, w: seen.append(w.close()), "0.0.0.0", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        probes = [
            _curl(
                sandbox.netns, "--resolve", f"allowed.test:{port}:{address}", f"http://allowed.test:{port}/"
            )
            for address in (sandbox.host_ip, HOST_UP, "10.252.255.1")
        ]
        probes.append(_curl(sandbox.netns, *_http("allowed.test", "169.254.169.254")))
        assert await asyncio.gather(*probes) == ["blocked"] * len(probes)
    finally:
        listener.close()
    assert seen == []


async def test_denied_names_with_internet_access(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(True, (), ("blocked.test", "*.blocked.test")))
    assert await _curl(sandbox.netns, *_https("blocked.test")) == "blocked"
    assert await _curl(sandbox.netns, *_http("x.blocked.test")) == "blocked"
    assert await _curl(sandbox.netns, *_https("allowed.test")) == ALLOWED
    assert await _curl(sandbox.netns, f"http://{OUTSIDE}/") == f"outside {OUTSIDE} {OUTSIDE}"
    # A server that speaks first is reached at once, not after the proxy's peek timeout.
    started = time.monotonic()
    assert await _raw(sandbox.netns, OUTSIDE, 7000) == "banner"
    assert time.monotonic() - started < world.proxy.peek_timeout_s


async def test_addresses_only_are_not_proxied(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(False, (OUTSIDE,), ("0.0.0.0/0",)))
    before = sum(world.proxy.counts.values())
    assert await _curl(sandbox.netns, *_http("any.test")) == f"outside {OUTSIDE} any.test"
    assert await _raw(sandbox.netns, OUTSIDE, 7000) == "banner"
    assert sum(world.proxy.counts.values()) == before


async def test_the_proxy_port_is_closed_to_everyone_else(world, make_sandbox):
    named, plain = make_sandbox(1), make_sandbox(2)
    await _apply(world, named, EgressPolicy(False, ("allowed.test",), ("0.0.0.0/0",)))
    await _apply(world, plain, EgressPolicy(True))
    port = world.proxy.port
    before = sum(world.proxy.counts.values())
    probes = [
        _curl(sandbox.netns, "--resolve", f"allowed.test:{port}:{address}", f"http://allowed.test:{port}/")
        for sandbox in (named, plain)
        for address in (sandbox.host_ip, named.host_ip, HOST_UP)
    ]
    assert await asyncio.gather(*probes) == ["blocked"] * len(probes)
    code, _ = await _run(
        OUTSIDE_NS, "curl", "-s", "--max-time", "3", "-H", "Host: allowed.test", f"http://{HOST_UP}:{port}/"
    )
    assert code != 0
    assert sum(world.proxy.counts.values()) == before


async def test_policy_changes_apply_live(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(False, ("other.test",), ("0.0.0.0/0",)))
    assert await _curl(sandbox.netns, *_https("allowed.test")) == "blocked"
    await _apply(world, sandbox, EgressPolicy(False, ("allowed.test",), ("0.0.0.0/0",)))
    assert await _curl(sandbox.netns, *_https("allowed.test")) == ALLOWED
    # An open connection the new policy refuses is closed at once.
    stream = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", sandbox.netns, "curl", "-sN", "--noproxy", "*", *_http("allowed.test")[:2],
        f"http://{OUTSIDE}/slow", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert stream.stdout is not None
        assert await asyncio.wait_for(stream.stdout.read(1), 5) == b"."
        await _apply(world, sandbox, EgressPolicy(False, ("other.test",), ("0.0.0.0/0",)))
        started = time.monotonic()
        assert await asyncio.wait_for(stream.wait(), 5) != 0
        assert time.monotonic() - started < 2
    finally:
        with contextlib.suppress(ProcessLookupError):
            stream.kill()
        await stream.wait()
    # Back to addresses only: names no longer count, the address rules still do.
    await _apply(world, sandbox, EgressPolicy(False, (), ("0.0.0.0/0",)))
    assert await _curl(sandbox.netns, *_https("allowed.test")) == "blocked"
    await _apply(world, sandbox, EgressPolicy(True))
    assert await _curl(sandbox.netns, *_https("other.test")) == f"outside {OUTSIDE} other.test"


# -- the node boundary: what no policy opens ------------------------------------------------------------


def _at(address: str) -> str:
    return f"outside {address} {address}"


async def test_the_boundary_comes_before_any_policy(world, make_sandbox):
    sandbox = make_sandbox(1)
    closed = [METADATA, PRIVATE, GATEWAY]
    everything = ("0.0.0.0/0", *closed, "169.254.0.0/16", "10.0.0.0/8", f"{GATEWAY}/24")
    for policy in (EgressPolicy(True, everything), EgressPolicy(True, ("*", *everything), ("other.test",))):
        await _apply(world, sandbox, policy)
        assert await _curl(sandbox.netns, f"http://{OUTSIDE}/") == _at(OUTSIDE)
        for address in closed:
            assert await _curl(sandbox.netns, f"http://{address}/") == "blocked"
            # A name that resolves there (DNS rebinding) opens nothing.
            assert await _curl(sandbox.netns, *_http("metadata.test", address)) == "blocked"
            assert await _curl(sandbox.netns, *_https("metadata.test", address)) == "blocked"
    # Where names are judged, naming a closed address (a Host header, a CONNECT target) is refused too.
    await _apply(world, sandbox, EgressPolicy(True, ("*",), ("other.test",)))
    assert await _curl(sandbox.netns, *_http(METADATA, OUTSIDE)) == "blocked"
    assert await _curl(sandbox.netns, *_http("allowed.test", OUTSIDE)) == ALLOWED


def test_the_proxy_never_dials_a_closed_address(world):
    """Its upstream sockets pass the firewall's guard: a private address is refused even where the proxy's
    own checks let it by."""
    assert not world.proxy._may_connect(METADATA)
    assert world.proxy._may_connect(PRIVATE)
    _upstream(OUTSIDE, world.proxy.mark).close()
    _upstream(PRIVATE, 0).close()  # reachable by anyone else
    with pytest.raises(OSError):
        _upstream(PRIVATE, world.proxy.mark)


def _upstream(address: str, mark: int) -> socket.socket:
    """A connection to port 80 of ``address``, made as the proxy makes its upstream connections."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, UPLINK.encode())
        sock.settimeout(2)
        sock.connect((address, 80))
    except OSError:
        sock.close()
        raise
    return sock


async def test_the_uplinks_networks_are_followed(world, make_sandbox):
    sandbox = make_sandbox(1)
    await _apply(world, sandbox, EgressPolicy(True, ("0.0.0.0/0",)))
    lan, neighbour = f"198.18.{WORKER}.1/24", f"198.18.{WORKER}.2"
    _ip("-n", OUTSIDE_NS, "address", "add", f"{neighbour}/32", "dev", "eth0")
    try:
        assert await _curl(sandbox.netns, f"http://{neighbour}/") == _at(neighbour)
        _ip("address", "add", lan, "dev", UPLINK)  # the uplink joins the neighbour's network
        try:
            assert await _eventually_blocked(sandbox, f"http://{neighbour}/")
        finally:
            _ip("address", "del", lan, "dev", UPLINK)
        assert await _curl(sandbox.netns, f"http://{neighbour}/") == _at(neighbour)
    finally:
        _ip("-n", OUTSIDE_NS, "address", "del", f"{neighbour}/32", "dev", "eth0")


async def _eventually_blocked(sandbox: FakeSandbox, url: str) -> bool:
    for _ in range(10):
        if await _curl(sandbox.netns, url) == "blocked":
            return True
        await asyncio.sleep(0.3)
    return False


async def test_private_ranges_open_only_where_the_operator_opened_them(world, open_world, make_sandbox):
    closed, opened = make_sandbox(1), make_sandbox(5, open_world)
    for node, sandbox in ((world, closed), (open_world, opened)):
        await _apply(node, sandbox, EgressPolicy(True))
    assert await _curl(closed.netns, f"http://{PRIVATE}/") == "blocked"
    assert await _curl(opened.netns, f"http://{PRIVATE}/") == _at(PRIVATE)
    for address in (METADATA, GATEWAY):
        assert await _curl(opened.netns, f"http://{address}/") == "blocked"
    assert await _curl(opened.netns, f"http://{OUTSIDE}/") == _at(OUTSIDE)


async def test_sandboxes_do_not_reach_each_other(world, make_sandbox):
    one, other = make_sandbox(1), make_sandbox(2)
    for sandbox in (one, other):
        await _apply(world, sandbox, EgressPolicy(True, ("0.0.0.0/0", SUBNET)))
    server = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", other.netns, sys.executable, "-m", "http.server", "8000",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(50):
            if await _curl(other.netns, f"http://{other.ip}:8000/") != "blocked":
                break
            await asyncio.sleep(0.1)
        assert await _curl(one.netns, f"http://{other.ip}:8000/") == "blocked"
    finally:
        server.kill()
        await server.wait()


# -- through the official SDK ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def names_stack(tmp_path_factory, outside) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("egress-names"),
        subnet=STACK_SUBNET,
        settings={"HUTCH_RUNTIME__EGRESS_INTERFACE": outside},
    )
    yield stack
    stop_stack(stack)


def _sdk_curl(sandbox: Sandbox, *args: str) -> str:
    quoted = " ".join(f"'{arg}'" for arg in args)
    return sandbox.commands.run(f"curl -sk --max-time 4 {quoted} || echo blocked", timeout=30).stdout.strip()


@pytest.mark.skipif(
    not hasattr(backend, "EgressProxy"), reason="the container runtime does not run the egress proxy"
)
def test_names_through_the_sdk(names_stack: Stack):
    sandbox = Sandbox.create(
        network={"allow_out": ["allowed.test"], "deny_out": ["0.0.0.0/0"]}, **names_stack.opts
    )
    names_stack.seen.add(sandbox.sandbox_id)
    try:
        assert _sdk_curl(sandbox, *_https("allowed.test")) == ALLOWED
        assert _sdk_curl(sandbox, *_http("allowed.test")) == ALLOWED
        assert _sdk_curl(sandbox, *_https("other.test")) == "blocked"
        assert _sdk_curl(sandbox, f"http://{OUTSIDE}/") == "blocked"
        sandbox.update_network({"allow_out": ["other.test"], "deny_out": ["0.0.0.0/0"]})
        assert _sdk_curl(sandbox, *_https("allowed.test")) == "blocked"
        assert _sdk_curl(sandbox, *_https("other.test")) == f"outside {OUTSIDE} other.test"
    finally:
        sandbox.kill()
