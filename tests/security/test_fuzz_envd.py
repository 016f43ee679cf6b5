"""Malformed input against envd: broken envelopes, wrong JSON types, bad HTTP. envd answers with a 4xx (or
a Connect error), never a 5xx, never hangs, and keeps serving."""

from __future__ import annotations

import json
import struct

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.envd.conftest import Envd
from tests.security.raw_http import status_of_raw_request

UNARY = [
    "/process.Process/List",
    "/process.Process/SendInput",
    "/process.Process/SendSignal",
    "/process.Process/CloseStdin",
    "/process.Process/Update",
    "/filesystem.Filesystem/Stat",
    "/filesystem.Filesystem/ListDir",
    "/filesystem.Filesystem/MakeDir",
    "/filesystem.Filesystem/Move",
    "/filesystem.Filesystem/Remove",
    "/filesystem.Filesystem/CreateWatcher",
    "/filesystem.Filesystem/GetWatcherEvents",
    "/filesystem.Filesystem/RemoveWatcher",
]
STREAMS = ["/process.Process/Start", "/process.Process/Connect", "/filesystem.Filesystem/WatchDir"]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "path", "depth", "source", "destination", "process", "pid", "tag", "input", "stdin", "pty", "signal",
    "size", "cols", "rows", "watcherId", "recursive", "cmd", "args", "envs", "cwd",
]  # fmt: skip
MESSAGES = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=5) | JSON_VALUES


def _envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _envelopes(body: bytes) -> list[tuple[int, bytes]]:
    found = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        found.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return found


def _healthy(envd: Envd) -> None:
    assert httpx.get(f"{envd.url}/health", timeout=5).status_code == 204


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(path=st.sampled_from(UNARY), message=MESSAGES)
def test_unary_calls_with_any_json(envd, path, message):
    headers = {"content-type": "application/json"}
    response = httpx.post(f"{envd.url}{path}", content=json.dumps(message), headers=headers, timeout=10)
    assert response.status_code < 500, (path, message, response.text)
    assert response.headers["content-type"].startswith("application/json")


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(path=st.sampled_from(STREAMS), message=MESSAGES)
def test_streams_with_any_json(envd, path, message):
    # A real process may start when the message happens to be valid: give it one second to live.
    headers = {"content-type": "application/connect+json", "connect-timeout-ms": "1000"}
    body = _envelope(json.dumps(message).encode())
    response = httpx.post(f"{envd.url}{path}", content=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert _envelopes(response.content)[-1][0] == 0x02  # always closed by an end-stream envelope


RAW_BODIES = {
    "length beyond the body": _envelope(b"{}")[:-1] + b"",
    "huge declared length": struct.pack(">BI", 0, 2**31) + b"{}",
    "compressed flag": _envelope(b"{}", flags=1),
    "not json": _envelope(b"\xff\xfe not json"),
    "json array": _envelope(b"[1, 2, 3]"),
    "two messages": _envelope(b"{}") + _envelope(b"{}"),
    "empty": b"",
    "end-stream only": _envelope(b"{}", flags=2),
    "garbage": b"\x00\x01\x02",
}


@pytest.mark.parametrize("name", sorted(RAW_BODIES))
@pytest.mark.parametrize("path", STREAMS)
def test_broken_envelopes(envd, path, name):
    headers = {"content-type": "application/connect+json", "connect-timeout-ms": "1000"}
    response = httpx.post(f"{envd.url}{path}", content=RAW_BODIES[name], headers=headers, timeout=10)
    assert response.status_code < 500
    _healthy(envd)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",  # no Host
        b"POST /files?path=/tmp/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /files?path=/tmp/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /process.Process/List HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\n\r\n{",
    ],
)
def test_malformed_http(envd, request_bytes):
    status = status_of_raw_request(envd.port, request_bytes)
    assert status is None or 400 <= status < 500, status
    _healthy(envd)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=file\r\n\r\nno filename\r\n--x--\r\n",
        ),
        ("multipart/form-data; boundary=x", b"not multipart at all"),
        ("text/plain", b"hello"),
        ("application/octet-stream", b"no path"),
    ],
)
def test_malformed_uploads(envd, content_type, body):
    response = httpx.post(
        f"{envd.url}/files", content=body, headers={"content-type": content_type}, timeout=10
    )
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"code", "message"}
    _healthy(envd)
