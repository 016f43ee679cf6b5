"""A network namespace of a test's own, joined to the host by a veth: the way tests build a client or an
"outside" without sending traffic off the machine."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Joined:
    """The namespace and the host's end of its veth (the other end is ``eth0`` inside)."""

    netns: str
    host_if: str


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def joined_namespace(prefix: str, host_ip: str, inside_ip: str, prefix_len: int) -> Iterator[Joined]:
    """A new namespace named ``<prefix>-<tag>``, ``host_ip`` on the host's end of its veth and ``inside_ip``
    on ``eth0``, both ``/prefix_len``; removed afterwards, whatever happened."""
    tag = uuid.uuid4().hex[:8]
    joined = Joined(f"hutch-{prefix}-{tag}", f"{prefix[:2]}{tag}")
    ip("netns", "add", joined.netns)
    try:
        ip("link", "add", joined.host_if, "type", "veth", "peer", "name", "eth0", "netns", joined.netns)
        ip("address", "add", f"{host_ip}/{prefix_len}", "dev", joined.host_if)
        ip("link", "set", joined.host_if, "up")
        ip("-n", joined.netns, "address", "add", f"{inside_ip}/{prefix_len}", "dev", "eth0")
        ip("-n", joined.netns, "link", "set", "eth0", "up")
        ip("-n", joined.netns, "link", "set", "lo", "up")
        yield joined
    finally:
        subprocess.run(["ip", "link", "del", joined.host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", joined.netns], check=False, capture_output=True)
