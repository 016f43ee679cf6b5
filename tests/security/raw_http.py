"""Sending raw bytes to a server on loopback, for malformed-request tests."""

from __future__ import annotations

import socket

import pytest


def status_of_raw_request(port: int, request: bytes, timeout_s: float = 10) -> int | None:
    """Send ``request``, close the sending side and read the answer; its status, or None if the server
    closed without one. A server that neither answers nor closes within ``timeout_s`` fails the test."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pytest.fail(f"the server on port {port} hung on a malformed request")
    return int(answer.split(b" ", 2)[1]) if answer else None
