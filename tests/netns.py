"""A network namespace of a test's own, joined to the host by a veth: the way tests build a client or an
"outside" without sending traffic off the machine."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Joined:
    """The namespace and the host's end of its veth (the other end is ``eth0`` inside)."""

    netns: str
    host_if: str


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def join(netns: str, host_if: str, host_ip: str, inside_ip: str, prefix_len: int) -> None:
    """Make the namespace ``netns`` and join it to the host by the veth ``host_if``: ``host_ip`` on the
    host's end, ``inside_ip`` on ``eth0`` inside, both ``/prefix_len`` and up. The caller removes both."""
    ip("netns", "add", netns)
    ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("address", "add", f"{host_ip}/{prefix_len}", "dev", host_if)
    ip("link", "set", host_if, "up")
    ip("-n", netns, "address", "add", f"{inside_ip}/{prefix_len}", "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")
    ip("-n", netns, "link", "set", "lo", "up")


@contextlib.contextmanager
def joined_namespace(prefix: str, host_ip: str, inside_ip: str, prefix_len: int) -> Iterator[Joined]:
    """A new namespace named ``<prefix>-<tag>``, ``host_ip`` on the host's end of its veth and ``inside_ip``
    on ``eth0``, both ``/prefix_len``; removed afterwards, whatever happened."""
    tag = uuid.uuid4().hex[:8]
    joined = Joined(f"hutch-{prefix}-{tag}", f"{prefix[:2]}{tag}")
    try:
        join(joined.netns, joined.host_if, host_ip, inside_ip, prefix_len)
        yield joined
    finally:
        subprocess.run(["ip", "link", "del", joined.host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", joined.netns], check=False, capture_output=True)


def wait_for_http(url: str, timeout_s: float = 10) -> None:
    """Wait until an HTTP server answers at ``url`` (any status), for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing answered at {url} within {timeout_s} s"
            time.sleep(0.1)
