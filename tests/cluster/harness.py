"""A whole cluster on this machine, as the tests and the cluster benchmark run it: PostgreSQL, three
``hutch node`` processes each in a network namespace of its own (with its own sandbox subnet, reached by
the others only over its veth), two ``hutch api`` and two ``hutch proxy`` replicas, and HAProxy in front of
them as the load balancer with TLS for ``E2B_DOMAIN`` (the tests' certificate authority).

Every process is a real one, started the way an operator starts it; the official SDK sees only the domain
and an API key. Egress is off everywhere: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests import edge_ca
from tests.conftest import EGRESS_OFF, free_port
from tests.netns import Joined, ip
from tests.postgres import postgres_server

from bench.leftovers import leftovers
from hutch.catalog import Catalog, create_api_key
from hutch.proxy.certificates import ensure
from hutch.proxy.edge import haproxy_binary

START_TIMEOUT_S = 600  # a node's first start builds the templates it lacks
# The network of the cluster of worker ``w``: the host at 10.243.w.1, node ``i`` at 10.243.w.(10+i).
LINK_NETWORK = "10.243.{worker}.0/24"


def _link(worker: int, index: int) -> tuple[str, str]:
    """The host's address on the cluster's bridge, and node ``index``'s."""
    return f"10.243.{worker}.1", f"10.243.{worker}.{10 + index}"


@contextlib.contextmanager
def _cluster_network(worker: int, nodes: int) -> Iterator[list[Joined]]:
    """One namespace per node, all on a bridge of the host's (``10.243.<worker>.1/24``), as machines on one
    network: they reach the host (PostgreSQL, the replicas) and one another; removed afterwards."""
    bridge = f"hutch-clbr{worker}"
    host_ip, _ = _link(worker, 0)
    joined: list[Joined] = []
    ip("link", "add", bridge, "type", "bridge")
    try:
        ip("address", "add", f"{host_ip}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for index in range(nodes):
            tag = secrets.token_hex(4)
            link = Joined(f"hutch-cl{index}-{tag}", f"cl{index}{tag}")
            ip("netns", "add", link.netns)
            joined.append(link)
            ip("link", "add", link.host_if, "type", "veth", "peer", "name", "eth0", "netns", link.netns)
            ip("link", "set", link.host_if, "master", bridge, "up")
            ip("-n", link.netns, "address", "add", f"{_link(worker, index)[1]}/24", "dev", "eth0")
            ip("-n", link.netns, "link", "set", "eth0", "up")
            ip("-n", link.netns, "link", "set", "lo", "up")
        yield joined
    finally:
        for link in joined:
            subprocess.run(["ip", "link", "del", link.host_if], check=False, capture_output=True)
            subprocess.run(["ip", "netns", "del", link.netns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


@dataclass
class Process:
    """One process of the cluster, started again with the same settings by :meth:`start`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM, then SIGKILL if it has not ended in ``timeout_s``."""
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self) -> None:
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait()

    def log(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class Node:
    node_id: str
    process: Process
    data_dir: Path
    subnet: str
    namespace: Joined
    address: str
    # The node's own layer cache, when it has one (the other nodes share this machine's).
    own_layers: Path | None = None


@dataclass
class Cluster:
    base: Path
    database_url: str
    key_file: Path
    operator_key_file: Path
    api_key: str
    domain: str
    nodes: list[Node]
    apis: list[Process]
    proxies: list[Process]
    balancer: Process
    api_ports: list[int]
    proxy_ports: list[int]
    seen: set[str] = field(default_factory=set)

    @property
    def api_url(self) -> str:
        return f"https://api.{self.domain}"

    @property
    def opts(self) -> dict:
        """What points the official SDK at the cluster: the domain and the key, nothing else."""
        return {"domain": self.domain, "api_key": self.api_key}

    def admin(self) -> httpx.Client:
        """The API (through the balancer) with the operator key."""
        key = self.operator_key_file.read_bytes().hex()
        return httpx.Client(base_url=self.api_url, headers={"X-Hutch-Operator-Key": key}, timeout=30)

    def team(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"X-API-Key": self.api_key}, timeout=60)

    def node_of(self, sandbox_id: str) -> str:
        """The node holding the sandbox (its ``clientID`` in the listing)."""
        with self.team() as client:
            found = client.get("/v2/sandboxes", params={"state": "running,paused,lost", "limit": 100})
        found.raise_for_status()
        return next(s["clientID"] for s in found.json() if s["sandboxID"] == sandbox_id)

    def nodes_status(self) -> dict[str, str]:
        with self.admin() as client:
            answer = client.get("/nodes")
        answer.raise_for_status()
        return {node["nodeID"]: node["status"] for node in answer.json()}

    def wait_nodes(self, wanted: dict[str, str], timeout_s: float = 30) -> float:
        """Wait until the nodes named have these statuses; returns how long it took."""
        started = time.monotonic()
        while True:
            status = self.nodes_status()
            if all(status.get(node) == state for node, state in wanted.items()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"nodes are {status}, not {wanted} after {timeout_s} s")
            time.sleep(0.2)


def _node_env(
    base: Path, index: int, worker: int, subnet_base: int, database_url: str, key_file: Path
) -> dict[str, str]:
    host_ip, inside_ip = _link(worker, index)
    return {
        **os.environ,
        **EGRESS_OFF,
        "HUTCH_DATA_DIR": str(base / f"node{index}"),
        "HUTCH_CATALOG__URL": database_url.replace("127.0.0.1", host_ip),
        "HUTCH_CLUSTER__SECRET_FILE": str(key_file),
        "HUTCH_RUNTIME__NODE_ID": f"node{index}",
        "HUTCH_CLUSTER__HEARTBEAT_S": "1",  # the replicas mark a node lost after 4 s
        "HUTCH_RUNTIME__SUBNET": f"10.{subnet_base + index}.0.0/16",
        "HUTCH_RUNTIME__WARM_POOL": json.dumps({"base": 1}),
        "HUTCH_NODE__HOST": inside_ip,
        "HUTCH_NODE__PORT": "5007",
        "HUTCH_NODE__TRAFFIC_PORT": "5008",
        # Room for the tests, whatever this machine has: a sandbox of the base template is 512 MiB.
        "HUTCH_NODE__MEMORY_MB": "8192",
    }


def _balancer_config(base: Path, port: int, pem: Path, api_ports: list[int], proxy_ports: list[int]) -> Path:
    def servers(prefix: str, ports: list[int]) -> str:
        return "".join(
            f"    server {prefix}{i} 127.0.0.1:{p} check inter 500 fall 1 rise 1\n"
            for i, p in enumerate(ports)
        )

    config = base / "balancer.cfg"
    config.write_text(
        "global\n    maxconn 4096\n    log stdout format raw local0\n"
        "defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n"
        "    timeout client 10m\n    timeout server 10m\n    timeout tunnel 1h\n"
        "    retries 3\n    option redispatch\n"
        f"frontend edge\n    bind 127.0.0.1:{port} ssl crt {pem} alpn h2,http/1.1\n"
        "    http-request set-header X-Forwarded-Proto https\n"
        "    use_backend apis if { req.hdr(host),field(1,:) -m beg api. }\n"
        "    default_backend proxies\n"
        "backend apis\n    option httpchk GET /health\n    retry-on conn-failure empty-response 502 503\n"
        # A create cut short by a dying replica may have been recorded: sent again it would make a second
        # sandbox, the first one's id never answered to anyone. HAProxy does not send it again itself, but
        # it refuses the client's HTTP/2 stream (REFUSED_STREAM) when the server's connection closes before
        # any answer, and the SDK's HTTP/2 client, told so that it was never processed, sends it again.
        "    http-request disable-l7-retry if METH_POST\n"
        + servers("api", api_ports)
        + "backend proxies\n    option httpchk GET /health\n    http-check send hdr Host localhost\n"
        "    retry-on conn-failure empty-response\n" + servers("proxy", proxy_ports)
    )
    return config


def _with_own_layers(argv: list[str], own: Path) -> list[str]:
    """``argv`` in a mount namespace of its own where the template cache's layers are ``own``: the node
    shares the built-in templates with the others but not the layers of the templates built or copied."""
    layers = Path(os.environ.get("HUTCH_TEMPLATES__CACHE_DIR", "/var/cache/hutch")) / "layers"
    script = (
        'own=$1 layers=$2; shift 2; mkdir -p "$own" "$layers" && mount --bind "$own" "$layers" && exec "$@"'
    )
    inner = [
        "unshare",
        "--mount",
        "--propagation",
        "slave",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        str(own),
        str(layers),
    ]
    return [*argv[: argv.index("--") + 1], *inner, *argv[argv.index("--") + 1 :]]


def _wait(url: str, process: Process, timeout_s: float = START_TIMEOUT_S, **options: object) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2, **options).status_code < 300:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            pass
        if process.popen is not None and process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} did not come up:\n{process.log()}")
        time.sleep(0.2)


async def _make_key(url: str) -> str:
    catalog = await Catalog.open(url)  # migrates the new database
    try:
        return await create_api_key(catalog)
    finally:
        await catalog.close()


def _hutch(*args: str) -> list[str]:
    return [sys.executable, "-m", "hutch.cli.main", *args]


@contextlib.contextmanager
def running_cluster(
    base: Path, *, worker: int = 0, nodes: int = 3, replicas: int = 2, subnet_base: int | None = None
) -> Iterator[Cluster]:
    """The cluster, up and registered; at the end every sandbox is killed through the API, every process
    stopped, the namespaces and the database removed, and nothing may be left behind on any node. Node
    ``i``'s sandboxes get ``10.<subnet_base + i>.0.0/16`` (default: ``220 + 4 * worker``)."""
    subnet_base = 220 + 4 * worker if subnet_base is None else subnet_base
    with contextlib.ExitStack() as stack:
        links = stack.enter_context(_cluster_network(worker, nodes))
        hosts = ["127.0.0.1", _link(worker, 0)[0]]
        server = stack.enter_context(
            postgres_server(listen=hosts, trusted=[LINK_NETWORK.format(worker=worker)])
        )
        database_url = server.rsplit("/", 1)[0] + "/postgres"
        api_key = asyncio.run(_make_key(database_url))
        key_file = base / "cluster.key"
        key_file.write_text(secrets.token_urlsafe(36))
        key_file.chmod(0o600)
        operator_key_file = base / "operator.key"
        operator_key_file.write_bytes(secrets.token_bytes(32))
        operator_key_file.chmod(0o600)
        cluster_nodes = []
        for i, link in enumerate(links):
            env = _node_env(base, i, worker, subnet_base, database_url, key_file)
            argv = ["nsenter", f"--net=/run/netns/{link.netns}", "--", *_hutch("node")]
            own_layers = None
            if i == nodes - 1 and nodes > 1:  # as on a machine of its own: template layers copied to it
                own_layers = base / f"node{i}-layers"
                argv = _with_own_layers(argv, own_layers)
            process = Process(f"node{i}", argv, env, base / f"node{i}.log")
            cluster_nodes.append(
                Node(f"node{i}", process, Path(env["HUTCH_DATA_DIR"]), env["HUTCH_RUNTIME__SUBNET"], link,
                     _link(worker, i)[1], own_layers)
            )  # fmt: skip
        shared = {
            **os.environ,
            **EGRESS_OFF,
            "HUTCH_CATALOG__URL": database_url,
            "HUTCH_CLUSTER__SECRET_FILE": str(key_file),
            "HUTCH_API__OPERATOR_KEY_FILE": str(operator_key_file),
            "HUTCH_CLUSTER__HEARTBEAT_S": "1",
            "HUTCH_CLUSTER__LOST_AFTER_S": "4",
        }
        balancer_port = free_port()
        domain = f"{edge_ca.DOMAIN}:{balancer_port}"
        api_ports = [free_port() for _ in range(replicas)]
        proxy_ports = [free_port() for _ in range(replicas)]
        apis = [
            Process(
                f"api{i}",
                _hutch("api"),
                {**shared, "HUTCH_DATA_DIR": str(base / f"api{i}"), "HUTCH_API__PORT": str(port),
                 "HUTCH_PROXY__DOMAIN": edge_ca.DOMAIN, "HUTCH_PROXY__TLS_PORT": str(balancer_port)},
                base / f"api{i}.log",
            )
            for i, port in enumerate(api_ports)
        ]  # fmt: skip
        proxies = [
            Process(
                f"proxy{i}",
                _hutch("proxy"),
                {**shared, "HUTCH_DATA_DIR": str(base / f"proxy{i}"), "HUTCH_PROXY__PORT": str(port),
                 "HUTCH_PROXY__DOMAIN": edge_ca.DOMAIN, "HUTCH_CLUSTER__API_URL": f"http://127.0.0.1:{api_ports[0]}"},
                base / f"proxy{i}.log",
            )
            for i, port in enumerate(proxy_ports)
        ]  # fmt: skip
        certificate = ensure(edge_ca.TLS_DIR, edge_ca.DOMAIN)
        haproxy = haproxy_binary()
        assert haproxy is not None, "haproxy is not installed (scripts/install-deps.sh installs it)"
        config = _balancer_config(base, balancer_port, certificate.pem_path, api_ports, proxy_ports)
        balancer = Process(
            "balancer", [haproxy, "-W", "-db", "-f", str(config)], dict(os.environ), base / "lb.log"
        )
        cluster = Cluster(
            base=base,
            database_url=database_url,
            key_file=key_file,
            operator_key_file=operator_key_file,
            api_key=api_key,
            domain=domain,
            nodes=cluster_nodes,
            apis=apis,
            proxies=proxies,
            balancer=balancer,
            api_ports=api_ports,
            proxy_ports=proxy_ports,
        )
        everything = [*(n.process for n in cluster_nodes), *apis, *proxies, balancer]
        try:
            for process in everything:
                process.start()
            for port, process in zip(api_ports, apis, strict=True):
                _wait(f"http://127.0.0.1:{port}/health", process)
            _wait(f"{cluster.api_url}/health", balancer)
            cluster.wait_nodes({node.node_id: "ready" for node in cluster_nodes}, timeout_s=START_TIMEOUT_S)
            for port, process in zip(proxy_ports, proxies, strict=True):
                _wait(f"http://127.0.0.1:{port}/health", process)
            _wait(f"https://{domain}/health", balancer)  # the proxies, through the balancer
            yield cluster
        finally:
            try:
                _kill_sandboxes(cluster)
            finally:
                for process in reversed(everything):
                    process.stop()
        problems = [
            f"{node.node_id}: {problem}"
            for node in cluster_nodes
            for problem in leftovers(node.data_dir, node.subnet, cluster.seen)
        ]
        assert not problems, f"left behind after the cluster stopped: {problems}"


def _kill_sandboxes(cluster: Cluster) -> None:
    """Kill every sandbox through the API, so that the nodes (which leave their sandboxes running when
    they stop, for their next start) leave nothing behind."""
    with contextlib.suppress(httpx.HTTPError), cluster.team() as client:
        listed = client.get("/v2/sandboxes", params={"state": "running,paused,lost", "limit": 100})
        listed.raise_for_status()
        for sandbox in listed.json():
            cluster.seen.add(sandbox["sandboxID"])
            client.delete(f"/sandboxes/{sandbox['sandboxID']}")
