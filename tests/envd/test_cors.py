"""Cross-origin requests: preflights answered before any access check, and every answer to a request with an
``Origin`` allowing it, as E2B's envd does."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from collections.abc import Iterator

import httpx
import pytest

from tests.envd.conftest import Envd, start_envd, stop_envd
from tests.envd.host import make_file

TOKEN = "cors-token"
ORIGIN = "https://api.example.test"
EXPOSED = (
    "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options"
)
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
START = "/process.Process/Start"


@pytest.fixture(scope="module")
def secure(test_user) -> Iterator[Envd]:
    server = start_envd(*test_user, accessToken=TOKEN)
    yield server
    stop_envd(server)


def preflight(envd: Envd, path: str, method: str, requested: str | None = None) -> httpx.Response:
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": method}
    if requested is not None:
        headers["Access-Control-Request-Headers"] = requested
    return httpx.request("OPTIONS", f"{envd.url}{path}", headers=headers)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}


def allowed(response: httpx.Response) -> bool:
    return cors_headers(response) == {
        "vary": "Origin",
        "access-control-allow-origin": "*",
        "access-control-expose-headers": EXPOSED,
    }


def envelope(message: dict) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">BI", 0, len(data)) + data


def envelopes(body: bytes) -> list[tuple[int, dict]]:
    found = []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        found.append((flags, json.loads(body[5 : 5 + size])))
        body = body[5 + size :]
    return found


def raw_exchange(envd: Envd, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read the answer's head."""
    with socket.create_connection(("127.0.0.1", envd.port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.partition(b"\r\n\r\n")[0]


def test_preflight_of_a_connect_stream_needs_no_token(secure):
    requested = "content-type,x-access-token,connect-protocol-version"
    response = preflight(secure, START, "POST", requested)
    assert response.status_code == 204
    assert response.content == b""
    assert cors_headers(response) == {
        "vary": PREFLIGHT_VARY,
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": requested,
        "access-control-max-age": "7200",
    }
    assert "access-control-allow-credentials" not in response.headers


def test_preflight_without_requested_headers_allows_none(secure):
    response = preflight(secure, "/files", "PUT")
    assert response.status_code == 204
    assert response.headers["access-control-allow-methods"] == "PUT"
    assert "access-control-allow-headers" not in response.headers


@pytest.mark.parametrize("method", ["CONNECT", "TRACE", "get"])
def test_preflight_of_a_method_not_allowed_only_varies(secure, method):
    response = preflight(secure, START, method, "x-access-token")
    assert response.status_code == 204
    assert cors_headers(response) == {"vary": PREFLIGHT_VARY}


def test_connect_stream_from_another_origin(secure):
    headers = {
        "Origin": ORIGIN,
        "X-Access-Token": TOKEN,
        "Content-Type": "application/connect+json",
        "Connect-Protocol-Version": "1",
    }
    body = envelope({"process": {"cmd": "/bin/echo", "args": ["cross-origin"]}})
    with httpx.stream("POST", f"{secure.url}{START}", headers=headers, content=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        assert allowed(response)
        messages = envelopes(response.read())
    stdout = base64.b64encode(b"cross-origin\n").decode()
    assert (0, {"event": {"data": {"stdout": stdout}}}) in messages
    assert messages[-1] == (2, {})


def test_connect_unary_from_another_origin(secure):
    headers = {"Origin": ORIGIN, "X-Access-Token": TOKEN, "Connect-Protocol-Version": "1"}
    response = httpx.post(f"{secure.url}/process.Process/List", headers=headers, json={})
    assert response.status_code == 200
    assert allowed(response)


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-token", "wrong-token"])
def test_refusals_allow_the_origin_too(secure, token):
    headers = {"Origin": ORIGIN, "Content-Type": "application/connect+json"}
    if token is not None:
        headers["X-Access-Token"] = token
    response = httpx.post(f"{secure.url}{START}", headers=headers, content=envelope({}))
    assert response.status_code == 401
    assert allowed(response)
    missing = httpx.get(f"{secure.url}/no-such-route", headers={"Origin": ORIGIN, "X-Access-Token": TOKEN})
    assert missing.status_code == 404
    assert allowed(missing)


def test_file_download_from_another_origin(secure, tmp_path):
    path = os.path.join(tmp_path, "shared.txt")
    make_file(path, b"across origins")
    response = httpx.get(
        f"{secure.url}/files",
        params={"path": path, "username": "root"},
        headers={"Origin": ORIGIN, "X-Access-Token": TOKEN},
    )
    assert response.status_code == 200
    assert response.content == b"across origins"
    assert allowed(response)


def test_without_origin_nothing_is_added(secure):
    plain = httpx.post(f"{secure.url}/process.Process/List", headers={"X-Access-Token": TOKEN}, json={})
    refused = httpx.post(f"{secure.url}/process.Process/List", json={})
    assert (plain.status_code, refused.status_code) == (200, 401)
    assert cors_headers(plain) == cors_headers(refused) == {}


def test_options_that_is_no_preflight_goes_to_the_routes(secure):
    without_method = httpx.request("OPTIONS", f"{secure.url}/files", headers={"Origin": ORIGIN})
    assert without_method.status_code == 405
    assert allowed(without_method)
    without_origin = httpx.request(
        "OPTIONS", f"{secure.url}/files", headers={"Access-Control-Request-Method": "GET"}
    )
    assert without_origin.status_code == 405
    assert cors_headers(without_origin) == {}


@pytest.mark.parametrize(
    "requested",
    [
        ",".join(f"x-header-{i:04d}" for i in range(500)),  # a valid list, but 6 KB of it
        "x-access-token;evil",
        "x-a, <script>",
        "x-a,,x-b",
    ],
    ids=["too-long", "semicolon", "markup", "empty-item"],
)
def test_hostile_requested_headers_are_not_echoed(secure, requested):
    response = preflight(secure, START, "POST", requested)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-headers" not in response.headers


@pytest.mark.parametrize(
    "requested", [b"x" * 100_000, b"x-a\rx-b", b"x-a\x00", b"x-a\x7f"], ids=["100kb", "cr", "nul", "del"]
)
def test_raw_hostile_requested_headers_are_not_echoed_and_envd_stays_up(secure, requested):
    head = raw_exchange(
        secure,
        b"OPTIONS /files HTTP/1.1\r\nHost: envd\r\nOrigin: " + ORIGIN.encode() + b"\r\n"
        b"Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: " + requested + b"\r\n\r\n",
    )
    status = head.split(b" ")[1]
    assert status == b"204" or status.startswith(b"4")  # refused as malformed, or answered without an echo
    assert b"access-control-allow-headers" not in head.lower()
    assert httpx.get(f"{secure.url}/health").status_code == 204
