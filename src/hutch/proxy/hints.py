"""Route hints: under ``hutch up`` the API tells its proxy child of each sandbox it starts or stops, so that
the first request for a new sandbox finds its route without reading the catalog.

The two processes share a Unix datagram socket pair (the child's end is ``--hints-fd``). A hint is one JSON
datagram: ``{"open": {...}, "at": <CLOCK_MONOTONIC s>}`` with the sandbox's address and the tokens the proxy
checks, or ``{"close": "<id>", "at": ...}``. Sending never waits: a hint the socket has no room for is
dropped, and the proxy reads the catalog as it does for a sandbox it was not told of. An opened route is
cached as a catalog read would be, for the resolver's short TTL; one older than that (queued while a proxy
was being started again) is ignored, and a close forgets the route at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

from ..catalog.models import SandboxRow
from .resolver import TTL_S, CatalogResolver

log = logging.getLogger("hutch.proxy")

MAX_HINT = 8192  # bytes of one datagram; a longer one arrives cut and is ignored
SEND_BUFFER = 1 << 20


class RouteHints:
    """The API's side: a ``SandboxRoutes`` that tells the proxy child. ``child_fd`` is the end to pass it."""

    def __init__(self) -> None:
        self._ours, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._ours.setblocking(False)
        self._ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)

    @property
    def child_fd(self) -> int:
        return self._theirs.fileno()

    async def open(self, sandbox: SandboxRow) -> None:
        self._send(
            {
                "open": {
                    "id": sandbox.sandbox_id,
                    "host": sandbox.host,
                    "ports": dict(sandbox.port_overrides),
                    "traffic_access_token": sandbox.traffic_access_token,
                    "mask_request_host": sandbox.mask_request_host,
                }
            }
        )

    async def close(self, sandbox_id: str) -> None:
        self._send({"close": sandbox_id})

    async def reset(self, sandboxes: Iterable[SandboxRow]) -> None:
        return None  # the proxy reads the catalog for what it was not told

    def shut(self) -> None:
        self._ours.close()
        self._theirs.close()

    def _send(self, hint: dict[str, Any]) -> None:
        try:
            self._ours.send(json.dumps({**hint, "at": time.monotonic()}).encode())
        except OSError:  # no room (no proxy reading), or shut: the proxy reads the catalog instead
            pass


def follow(hints: socket.socket, resolver: CatalogResolver) -> None:
    """Apply every hint that arrives on ``hints`` to ``resolver`` (the proxy's side), from the running
    loop until the socket is closed."""
    hints.setblocking(False)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        while True:
            try:
                datagram = hints.recv(MAX_HINT)
            except BlockingIOError:
                return
            except OSError:
                loop.remove_reader(hints.fileno())
                return
            if not datagram:
                return
            _apply(datagram, resolver)

    loop.add_reader(hints.fileno(), readable)


def _apply(datagram: bytes, resolver: CatalogResolver) -> None:
    try:
        hint = json.loads(datagram)
        age = time.monotonic() - float(hint["at"])
        if "close" in hint:
            resolver.forget(_text(hint["close"]))
        elif age < TTL_S:
            opened = hint["open"]
            row = SandboxRow(  # as the catalog would give it, never stored
                sandbox_id=_text(opened["id"]),
                state="running",
                host=_text(opened["host"]),
                port_overrides={str(port): int(target) for port, target in dict(opened["ports"]).items()},
                traffic_access_token=_optional_text(opened["traffic_access_token"]),
                mask_request_host=_optional_text(opened["mask_request_host"]),
            )
            resolver.learn(row, until=float(hint["at"]) + TTL_S)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        log.warning("a route hint was not understood: %s", error)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {type(value).__name__}")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)
