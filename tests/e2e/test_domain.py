"""E2B's self-hosting path: a client given only ``E2B_DOMAIN`` and ``E2B_API_KEY`` reaches the API at
``https://api.<domain>`` and every sandbox port at ``https://<port>-<id>.<domain>``, through the TLS edge.

The stack runs the edge on a free port (domain ``hutch.localhost:<port>``) with the tests' certificate
authority, which this process trusts through ``SSL_CERT_FILE`` (:mod:`tests.edge_ca`) and Node through
``NODE_EXTRA_CA_CERTS``. No call here passes an API or sandbox URL.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox, Secret, Volume
from e2b.exceptions import SandboxNotRunningException
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests import edge_ca
from tests.cli.test_e2b_npm_cli import Cli, e2b_cli  # noqa: F401 (a fixture)
from tests.e2e.domain_fixtures import ca_context, node_environment, serve, use_only_domain
from tests.in_flight import CommandInFlight
from tests.stack import WORKER, Stack, running_stack

# Apart from the session's stack (tests/stack.py), which runs at the same time.
SUBNET = f"10.{160 + WORKER}.0.0/16"  # the domain tests' own stack

WEB_PORT = 8000
WS_PORT = 8765
# A WebSocket echo server with the standard library only (the base template has no WebSocket package):
# one handshake, then text frames (client frames are masked) sent back unmasked.
WS_ECHO = textwrap.dedent(
    """
    import base64, hashlib, socketserver, struct
    MAGIC = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            key = b""
            while (line := self.rfile.readline().strip()):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key + MAGIC).digest())
            self.wfile.write(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n"
                             b"Connection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + b"\\r\\n\\r\\n")
            while True:
                head = self.rfile.read(2)
                if len(head) < 2 or head[0] & 0x0F == 8:
                    return
                size = head[1] & 0x7F
                if size == 126:
                    size = struct.unpack(">H", self.rfile.read(2))[0]
                mask = self.rfile.read(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
                reply = b"echo: " + data
                self.wfile.write(bytes([0x81, len(reply)]) + reply)
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer(("0.0.0.0", PORT), Echo).serve_forever()
    """
).replace("PORT", str(WS_PORT))
NODE_SCRIPT = textwrap.dedent(
    """
    const path = require('node:path')
    const { Sandbox } = require(require.resolve('e2b', { paths: [path.dirname(process.argv[2])] }))
    ;(async () => {
      const sandbox = await Sandbox.create()
      const result = await sandbox.commands.run('echo hello from node')
      console.log(JSON.stringify({ id: sandbox.sandboxId, stdout: result.stdout }))
      await sandbox.kill()
    })().catch((err) => { console.error(err); process.exit(1) })
    """
)


@pytest.fixture(scope="module")
def domain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "hutch-domain", subnet=SUBNET, edge=True) as running:
        yield running


@pytest.fixture()
def only_domain(domain_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The process environment of a client given ``E2B_DOMAIN`` and ``E2B_API_KEY``, nothing else."""
    return use_only_domain(domain_stack, monkeypatch)


@pytest.fixture()
def sandbox(only_domain: Stack) -> Iterator[Sandbox]:
    created = Sandbox.create()
    only_domain.seen.add(created.sandbox_id)
    yield created
    created.kill()


def test_hutch_up_writes_the_domain_settings(domain_stack: Stack):
    port = domain_stack.domain.rpartition(":")[2] if domain_stack.domain else ""
    assert domain_stack.domain == f"hutch.localhost:{port}" and port.isdigit()
    assert set(domain_stack.client_env) == {"E2B_DOMAIN", "E2B_API_KEY", "NODE_EXTRA_CA_CERTS"}
    assert domain_stack.client_env["NODE_EXTRA_CA_CERTS"] == str(edge_ca.ca_path())


def test_the_sdk_works_with_only_the_domain_and_a_key(only_domain: Stack, sandbox: Sandbox):
    assert sandbox.sandbox_domain == only_domain.domain
    assert sandbox.envd_api_url == f"https://49983-{sandbox.sandbox_id}.{only_domain.domain}"
    assert sandbox.commands.run("echo hello").stdout == "hello\n"
    sandbox.files.write("/home/user/notes.txt", "through the edge")
    assert sandbox.files.read("/home/user/notes.txt") == "through the edge"
    assert sandbox.sandbox_id in {info.sandbox_id for info in Sandbox.list().next_items()}


def test_volumes_and_secrets_with_only_the_domain_and_a_key(only_domain: Stack):
    volume = Volume.create(f"edge-{uuid.uuid4().hex[:10]}")
    try:
        content = os.urandom(8 << 20)  # streamed through the edge both ways
        volume.write_file("/data/blob.bin", content, force=True)
        assert volume.read_file("/data/blob.bin", format="bytes") == content
        assert [entry.name for entry in volume.list("/data")] == ["blob.bin"]
        sandbox = Sandbox.create(volume_mounts={"/mnt/shared": volume})
        only_domain.seen.add(sandbox.sandbox_id)
        try:
            assert sandbox.commands.run("sha256sum /mnt/shared/data/blob.bin").stdout.split()[0] == (
                hashlib.sha256(content).hexdigest()
            )
        finally:
            sandbox.kill()
    finally:
        assert Volume.destroy(volume.volume_id)
    name = f"edge-{uuid.uuid4().hex[:10]}"
    created = Secret.create(name, "edge-value")
    assert Secret.get_info(name).secret_id == created.secret_id
    assert Secret.destroy(name)


def test_a_sandbox_port_over_http2_and_http1(only_domain: Stack, sandbox: Sandbox):
    sandbox.files.write("/home/user/site/index.html", "served from the sandbox")
    host = serve(sandbox, f"cd /home/user/site && python3 -m http.server {WEB_PORT}", WEB_PORT)
    assert host == f"{WEB_PORT}-{sandbox.sandbox_id}.{only_domain.domain}"

    response = httpx.get(f"https://{host}/", verify=ca_context())
    assert response.status_code == 200 and response.text == "served from the sandbox"
    # Python's http.server answers in HTTP/1.0, which the edge passes on as it is over HTTP/1.1.
    for flag, versions in (("--http2", {"2"}), ("--http1.1", {"1.1", "1.0", "1"})):
        done = subprocess.run(
            [
                "curl",
                "-sS",
                flag,
                "--cacert",
                str(edge_ca.ca_path()),
                "-w",
                "\n%{http_version}",
                f"https://{host}/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        body, version = done.stdout.rsplit("\n", 1)
        assert body == "served from the sandbox" and version in versions


async def _open_websocket(host: str) -> ClientConnection:
    """A WebSocket to the echo server at ``host``, once it listens (until then: refused, or a 502)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await connect(f"wss://{host}/", ssl=ca_context())
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _serve_ws_echo(sandbox: Sandbox) -> str:
    """Start :data:`WS_ECHO` in ``sandbox``; its host name."""
    sandbox.files.write("/home/user/ws_echo.py", WS_ECHO)
    sandbox.commands.run("python3 /home/user/ws_echo.py", background=True)
    return sandbox.get_host(WS_PORT)


def test_a_websocket_through_the_edge(sandbox: Sandbox):
    host = _serve_ws_echo(sandbox)

    async def exchange() -> str:
        async with await _open_websocket(host) as websocket:
            await websocket.send("ping")
            return str(await websocket.recv())

    assert asyncio.run(exchange()) == "echo: ping"


def test_a_websocket_ends_when_its_sandbox_pauses(only_domain: Stack):
    sandbox = Sandbox.create()
    only_domain.seen.add(sandbox.sandbox_id)
    try:
        host = _serve_ws_echo(sandbox)

        async def held_through_a_pause() -> float:
            async with await _open_websocket(host) as websocket:
                await websocket.send("ping")
                assert await websocket.recv() == "echo: ping"
                await asyncio.to_thread(sandbox.pause)
                paused = time.monotonic()
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(websocket.recv(), 10)
                return time.monotonic() - paused

        assert asyncio.run(held_through_a_pause()) < 5
    finally:
        sandbox.kill()


def test_signed_file_urls_work_from_curl(only_domain: Stack, sandbox: Sandbox, tmp_path: Path):
    upload = sandbox.upload_url("/home/user/uploaded.txt")
    download = sandbox.download_url("/home/user/uploaded.txt")
    prefix = f"https://49983-{sandbox.sandbox_id}.{only_domain.domain}/files?"
    assert upload.startswith(prefix) and download.startswith(prefix)
    assert "signature=" in upload and "signature=" in download

    source = tmp_path / "source.txt"
    source.write_text("sent with curl")
    cacert = ["--cacert", str(edge_ca.ca_path())]
    sent = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *cacert, "-F", f"file=@{source}", upload],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    got = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *cacert, download], capture_output=True, text=True, timeout=30
    )
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout == "sent with curl"
    assert sandbox.files.read("/home/user/uploaded.txt") == "sent with curl"


def test_the_npm_sdk_works_with_only_the_domain_and_a_key(only_domain: Stack, e2b_cli: Cli, tmp_path: Path):  # noqa: F811
    env = node_environment(only_domain, tmp_path)
    script = tmp_path / "create.cjs"
    script.write_text(NODE_SCRIPT)
    done = subprocess.run(
        [e2b_cli.node, str(script), e2b_cli.entry], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    only_domain.seen.add(result["id"])
    assert result["stdout"] == "hello from node\n"


NODE_VOLUME_SCRIPT = textwrap.dedent(
    """
    const path = require('node:path')
    const e2b = require.resolve('e2b', { paths: [path.dirname(process.argv[2])] })
    const { Sandbox, Secret, Volume } = require(e2b)
    ;(async () => {
      const volume = await Volume.create('node-' + Date.now())
      await volume.writeFile('/notes/from-node.txt', 'written by node', { force: true })
      const sandbox = await Sandbox.create({ volumeMounts: { '/mnt/shared': volume } })
      const seen = await sandbox.commands.run('cat /mnt/shared/notes/from-node.txt')
      await sandbox.files.write('/mnt/shared/notes/back.txt', 'written in the sandbox')
      const back = await volume.readFile('/notes/back.txt')
      await sandbox.kill()
      const destroyed = await Volume.destroy(volume.volumeId)
      const secret = await Secret.create('node-' + Date.now(), 'value-from-node')
      const gone = await Secret.destroy(secret.name)
      console.log(JSON.stringify({ id: sandbox.sandboxId, seen: seen.stdout, back, destroyed, gone }))
    })().catch((err) => { console.error(err); process.exit(1) })
    """
)


def test_volumes_and_secrets_from_the_npm_sdk(only_domain: Stack, e2b_cli: Cli, tmp_path: Path):  # noqa: F811
    env = node_environment(only_domain, tmp_path)
    script = tmp_path / "volumes.cjs"
    script.write_text(NODE_VOLUME_SCRIPT)
    done = subprocess.run(
        [e2b_cli.node, str(script), e2b_cli.entry], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    only_domain.seen.add(result["id"])
    assert result == {
        "id": result["id"], "seen": "written by node", "back": "written in the sandbox", "destroyed": True,
        "gone": True,
    }  # fmt: skip


def test_the_hutch_command_finds_the_api_from_the_domain(
    only_domain: Stack, sandbox: Sandbox, tmp_path: Path
):
    hutch = (
        Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[2] / ".venv")) / "bin" / "hutch"
    )
    listed = subprocess.run(
        [str(hutch), "sandbox", "ls"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert sandbox.sandbox_id in listed.stdout


def _edge_requests(stack: Stack) -> dict[str, int]:
    """Requests the edge sent to each of its backends so far (HAProxy's counters, on its admin socket)."""
    with socket.socket(socket.AF_UNIX) as admin:
        admin.connect(str(stack.data_dir / "edge" / "admin.sock"))
        admin.sendall(b"show stat\n")
        text = b"".join(iter(lambda: admin.recv(65536), b"")).decode()
    rows = list(csv.DictReader(text.removeprefix("# ").splitlines()))
    return {row["pxname"]: int(row["stot"]) for row in rows if row["svname"] == "BACKEND"}


def test_the_edge_reaches_a_running_sandbox_itself_and_a_paused_one_through_the_proxy(only_domain: Stack):
    sandbox = Sandbox.create()
    only_domain.seen.add(sandbox.sandbox_id)
    try:
        before = _edge_requests(only_domain)
        for _ in range(5):
            assert sandbox.commands.run("echo direct").stdout == "direct\n"
        after = _edge_requests(only_domain)
        assert after["direct"] - before["direct"] >= 5
        assert after["sandboxes"] == before["sandboxes"]

        sandbox.pause()
        assert not sandbox.is_running()  # the Python proxy's answer: paused, not found
        paused = _edge_requests(only_domain)
        assert paused["sandboxes"] > after["sandboxes"] and paused["direct"] == after["direct"]

        sandbox.connect()
        assert sandbox.commands.run("echo again").stdout == "again\n"
        assert _edge_requests(only_domain)["direct"] > paused["direct"]
    finally:
        sandbox.kill()
    assert not sandbox.is_running()


def test_a_command_in_flight_when_the_sandbox_is_killed_ends_as_not_running(only_domain: Stack):
    sandbox = Sandbox.create()
    only_domain.seen.add(sandbox.sandbox_id)
    running = CommandInFlight(sandbox)
    started = time.monotonic()
    Sandbox.kill(sandbox.sandbox_id)
    error = running.outcome(timeout_s=30)
    assert time.monotonic() - started < 10
    assert isinstance(error, SandboxNotRunningException), error
    assert "killed or reached its end of life" in str(error)
