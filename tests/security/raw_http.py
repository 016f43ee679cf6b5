"""Sending raw bytes to a server on loopback, for malformed-request and oversized-body tests."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

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


def stream_request(port: int, head: bytes, chunks: Iterator[bytes], timeout_s: float = 10) -> tuple[int, int]:
    """Send ``head``, then ``chunks`` until the server answers, stops reading or closes; the status of its
    answer and how many body bytes were sent before it. A server that neither answers nor closes within
    ``timeout_s`` of the last chunk fails the test."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head)
        wait_s = 1.0  # for an answer to the head alone
        for chunk in chunks:
            if select.select([sock], [], [], wait_s)[0]:
                break
            wait_s = 0
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed (a reset), or stopped reading
                break
            sent += len(chunk)
        answer = b""
        try:
            while b"\r\n" not in answer and (data := sock.recv(65536)):
                answer += data
        except TimeoutError:
            pytest.fail(f"the server on port {port} neither answered nor closed")
        except ConnectionResetError:
            pass
    assert answer, f"the server on port {port} closed without an answer after {sent} bytes"
    return int(answer.split(b" ", 2)[1]), sent
