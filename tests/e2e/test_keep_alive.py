"""The API keeps an idle connection open longer than the SDK's connection pool does (300 s), so that a
client never sends a request on a connection the server is closing (a reset the SDK does not retry)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.stack import Stack

REQUEST = b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n"


def _answer(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_an_idle_connection_is_kept_past_the_default_five_seconds(stack: Stack) -> None:
    address = urlsplit(stack.api_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(REQUEST)
        assert _answer(conn).startswith(b"HTTP/1.1 204")
        time.sleep(6)  # uvicorn's default keep-alive is 5 s
        conn.sendall(REQUEST)
        assert _answer(conn).startswith(b"HTTP/1.1 204")
