"""The edge is bounded: the API refuses a request body over its cap as it arrives (413), and a body on a
route that takes a team's key unless the key is valid (401), before reading it; the proxy holds no more of
a hostile sandbox's WebSocket message than its cap (then 1009), and lets go of a sandbox's connection as
soon as its client is gone, whatever the sandbox sends.

Memory is read from ``/proc/<pid>/status`` (the peak, ``VmHWM``) of the stack's main process (the API)
and of its proxy; the proxy's connections to a sandbox from ``ss``.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox
from websockets import ConnectionClosed
from websockets.sync.client import connect

from hutch.api import create_app
from hutch.config import ApiSettings, Settings
from hutch.proxy.supervisor import PID_FILE
from hutch.runtime.fake import FakeRuntime
from tests.api.conftest import Stack as Api
from tests.api.conftest import register_test_templates, serving
from tests.security.raw_http import stream_request
from tests.stack import Stack

MiB = 1 << 20
CAP_KB = 64
# Growth of a process's peak memory that counts as "barely moved".
BOUND = 64 * MiB
HOSTILE_PORT = 8765


def _chunks(total: int, size: int = 64 << 10) -> Iterator[bytes]:
    chunk = b"x" * size
    return itertools.repeat(chunk, total // size)


def _chunked(total: int, size: int = 64 << 10) -> Iterator[bytes]:
    """``total`` bytes in HTTP/1.1 chunked encoding."""
    chunk = b"%x\r\n" % size + b"x" * size + b"\r\n"
    return itertools.repeat(chunk, total // size)


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


# The API on its own (the fake runtime), with a small cap.


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("edge"), api=ApiSettings(max_body_kb=CAP_KB))
    with serving(create_app(settings, runtime=FakeRuntime(node_id="edge"))) as running:
        register_test_templates(running)
        yield running


def _port(api: Api) -> int:
    return int(api.api_url.rsplit(":", 1)[1])


def test_a_content_length_over_the_cap_is_refused_before_the_body(api: Api) -> None:
    head = _head("/sandboxes", {"Content-Length": str(300 * MiB)})
    status, sent = stream_request(_port(api), head, _chunks(300 * MiB))
    assert (status, sent) == (413, 0)


def test_a_body_without_a_valid_key_is_refused_before_it_is_read(api: Api) -> None:
    for key in ({}, {"X-API-Key": "e2b_" + "0" * 40}):
        head = _head("/sandboxes", {"Transfer-Encoding": "chunked", **key})
        status, sent = stream_request(_port(api), head, _chunked(300 * MiB))
        assert status == 401 and sent < MiB, (key, sent)
    response = httpx.post(f"{api.api_url}/sandboxes", content=b"{}" + b" " * (CAP_KB << 9))
    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "missing API key: send it in the X-API-Key header"}


def test_a_body_over_the_cap_is_refused_as_it_arrives(api: Api) -> None:
    key = {"X-API-Key": api.new_key()}
    head = _head("/sandboxes", {"Transfer-Encoding": "chunked", **key})
    status, sent = stream_request(_port(api), head, _chunked(300 * MiB))
    assert status == 413 and sent < 4 * MiB

    def body() -> Iterator[bytes]:
        yield b'{"templateID": "base", "metadata": {"x": "'
        yield b"y" * (CAP_KB << 10)
        yield b'"}}'

    response = httpx.post(f"{api.api_url}/sandboxes", headers=key, content=body())
    assert response.status_code == 413
    assert response.json() == {
        "code": 413,
        "message": f"request body too large: the limit is {CAP_KB << 10} bytes",
    }
    too_long = httpx.post(f"{api.api_url}/sandboxes", headers=key, content=b" " * ((CAP_KB << 10) + 1))
    assert too_long.status_code == 413


def test_bodies_under_the_cap_still_work(api: Api) -> None:
    sandbox = Sandbox.create(
        template="base", metadata={"note": "n" * 1000}, api_key=api.new_key(), api_url=api.api_url
    )
    assert sandbox.get_info().metadata["note"] == "n" * 1000
    sandbox.kill()


def test_template_uploads_are_not_held_to_the_json_cap(api: Api) -> None:
    # The upload route answers for itself (its signature, its own cap): never the JSON routes' 413.
    response = httpx.put(
        f"{api.api_url}/templates/t/files/{'0' * 64}/upload",
        params={"expires": "1", "signature": "x"},
        content=b"x" * (4 * CAP_KB << 10),
    )
    assert response.status_code != 413 and response.status_code < 500


# The real stack.


def test_an_unauthenticated_300_mib_post_leaves_the_api_unmoved(stack: Stack) -> None:
    before = _peak(stack.process.pid)
    started = time.monotonic()
    status, sent = stream_request(
        stack.api_port, _head("/sandboxes", {"Content-Length": str(300 * MiB)}), _chunks(300 * MiB)
    )
    assert (status, sent) == (413, 0)
    status, sent = stream_request(
        stack.api_port, _head("/sandboxes", {"Transfer-Encoding": "chunked"}), _chunked(300 * MiB)
    )
    assert status == 401 and sent < MiB
    key = {"Transfer-Encoding": "chunked", "X-API-Key": stack.api_key}
    status, sent = stream_request(stack.api_port, _head("/sandboxes", key), _chunked(300 * MiB))
    assert status == 413 and sent < 8 * MiB
    assert time.monotonic() - started < 30
    assert _peak(stack.process.pid) - before < BOUND


HOSTILE = r"""
import hashlib, base64, socket, threading, time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode, payload):
    return bytes([opcode]) + b"\x7f" + len(payload).to_bytes(8, "big") + payload


def serve(conn):
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        path = head.split(b" ", 2)[1]
        if path == b"/trickle":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
            for _ in range(1200):
                conn.sendall(b"x")
                time.sleep(0.1)
        elif path == b"/mute":
            while conn.recv(4096):
                pass
        else:
            lines = head.split(b"\r\n")
            key = [line[18:].strip() for line in lines if line.lower().startswith(b"sec-websocket-key:")][0]
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            if path == b"/announce":
                conn.sendall(b"\x82\x7f" + (1 << 40).to_bytes(8, "big"))
                for _ in range(6000):
                    conn.sendall(bytes(65536))
                    time.sleep(0.01)
            else:
                fragment = bytes(1 << 20)
                conn.sendall(frame(0x02, fragment))
                for _ in range(256):
                    conn.sendall(frame(0x00, fragment))
    except OSError:
        pass
    finally:
        conn.close()


listener = socket.create_server(("0.0.0.0", PORT))
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def serve_hostile(sandbox: Sandbox) -> None:
    """Start :data:`HOSTILE` on port 8765 of ``sandbox`` and wait until it listens."""
    sandbox.files.write("/home/user/hostile.py", HOSTILE.replace("PORT", str(HOSTILE_PORT)))
    sandbox.commands.run("python3 /home/user/hostile.py", background=True, timeout=0)
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {HOSTILE_PORT}), 1)\""
    deadline = time.monotonic() + 10
    while sandbox.commands.run(f"{probe} 2>/dev/null && echo up || true").stdout.strip() != "up":
        assert time.monotonic() < deadline, "the hostile server did not start"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def hostile(stack: Stack) -> Iterator[Sandbox]:
    """A sandbox whose port 8765 serves :data:`HOSTILE`."""
    sandbox = stack.create()
    serve_hostile(sandbox)
    yield sandbox
    sandbox.kill()


def _proxy_pid(stack: Stack) -> int:
    return int((stack.data_dir / PID_FILE).read_text())


def upstreams(owner: str) -> int:
    """Established connections to the hostile port held by the process ``ss`` shows as ``owner``
    (``pid=<n>,`` or a quoted name)."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{HOSTILE_PORT} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(owner in line for line in listing.splitlines())


def released(owner: str, timeout_s: float = 10) -> bool:
    """Whether ``owner`` lets go of its connections to the hostile port within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while upstreams(owner):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _owner(pid: int) -> str:
    return f"pid={pid},"


def _routing(sandbox: Sandbox) -> dict[str, str]:
    return {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": str(HOSTILE_PORT)}


@pytest.mark.parametrize("path", ["/announce", "/fragments"])
def test_a_giant_websocket_message_closes_with_1009(stack: Stack, hostile: Sandbox, path: str) -> None:
    pid = _proxy_pid(stack)
    before = _peak(pid)
    url = f"ws://127.0.0.1:{stack.proxy_port}{path}"
    with (
        connect(url, additional_headers=_routing(hostile), max_size=None, open_timeout=10) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert released(_owner(pid))
    assert _peak(pid) - before < BOUND


def test_a_trickled_terabyte_is_let_go_when_the_client_leaves(stack: Stack, hostile: Sandbox) -> None:
    pid = _proxy_pid(stack)
    with httpx.stream(
        "GET", f"{stack.sandbox_url}/trickle", headers=_routing(hostile), timeout=10
    ) as response:
        assert response.headers["content-length"] == "1000000000000"
        chunks = response.iter_raw()
        assert next(chunks) == b"x"
        assert upstreams(_owner(pid)) == 1
    assert released(_owner(pid))


def test_an_answer_that_never_comes_is_let_go_when_the_client_leaves(stack: Stack, hostile: Sandbox) -> None:
    pid = _proxy_pid(stack)
    routing = "".join(f"{name}: {value}\r\n" for name, value in _routing(hostile).items())
    with socket.create_connection(("127.0.0.1", stack.proxy_port), timeout=10) as client:
        client.sendall(f"GET /mute HTTP/1.1\r\nHost: 127.0.0.1\r\n{routing}\r\n".encode())
        deadline = time.monotonic() + 10
        while upstreams(_owner(pid)) != 1:
            assert time.monotonic() < deadline, "the proxy did not connect to the sandbox"
            time.sleep(0.05)
    assert released(_owner(pid))
    assert hostile.commands.run("echo still").stdout.strip() == "still"
