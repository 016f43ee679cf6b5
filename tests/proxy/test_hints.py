"""Route hints (the API's word to its proxy child that a sandbox runs or stops): a hinted route is found
without the catalog for as long as a catalog read would be cached, a close forgets it at once, hints never
wait on the proxy, and what is not a hint the API sends (malformed, oversized, stale) is ignored."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest

from hutch.catalog import Catalog
from hutch.catalog.models import SandboxRow
from hutch.proxy import hints
from hutch.proxy.resolver import TTL_S, CatalogResolver

SANDBOX_ID = "hintedsandbox0000000"


def _row(**fields: object) -> SandboxRow:
    values: dict[str, object] = {
        "sandbox_id": SANDBOX_ID,
        "host": "10.9.0.2",
        "port_overrides": {"49983": 40001},
        "traffic_access_token": None,
        "mask_request_host": None,
    }
    return SandboxRow(**(values | fields))


@pytest.fixture()
async def resolver(tmp_path: Path):
    catalog = await Catalog.open(f"sqlite+aiosqlite:///{tmp_path}/hutch.db")
    try:
        yield CatalogResolver(catalog)
    finally:
        await catalog.close()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_a_hinted_route_is_found_until_the_cache_would_expire_or_a_close(resolver):
    sender = hints.RouteHints()
    child_end = socket.socket(fileno=os.dup(sender.child_fd))  # as the proxy child has it
    try:
        hints.follow(child_end, resolver)
        await sender.open(_row(traffic_access_token="t0ken", mask_request_host="${PORT}.example"))
        await _settle()
        route = await resolver(SANDBOX_ID)  # the catalog has no such row: the hint alone answers
        assert route is not None
        assert route.address(49983) == ("10.9.0.2", 40001) and route.address(8000) == ("10.9.0.2", 8000)
        assert route.traffic_access_token == "t0ken" and route.host_for(8000) == "8000.example"
        await sender.close(SANDBOX_ID)
        await _settle()
        assert await resolver(SANDBOX_ID) is None
        await sender.open(_row())
        await asyncio.sleep(TTL_S + 0.05)
        assert await resolver(SANDBOX_ID) is None  # expired: the catalog, which has no row, answers
    finally:
        asyncio.get_running_loop().remove_reader(child_end.fileno())
        child_end.close()
        sender.shut()


async def test_sending_never_waits_for_the_proxy():
    sender = hints.RouteHints()  # nobody reads the other end
    try:
        started = time.monotonic()
        for _ in range(20_000):
            await sender.open(_row())
        assert time.monotonic() - started < 5
    finally:
        sender.shut()


HOSTILE = [
    b"",
    b"not json",
    b"[]",
    b'{"at": "soon", "close": "x"}',
    b'{"close": "x"}',
    b'{"at": 0, "open": {}}',
    json.dumps({"at": "NOW", "open": {"id": SANDBOX_ID}}).encode(),
    json.dumps({"open": {"id": 7, "host": "h", "ports": {}, "traffic_access_token": None}}).encode(),
    json.dumps({"open": {"id": SANDBOX_ID, "host": ["h"], "ports": {}}}).encode(),
    json.dumps({"open": {"id": SANDBOX_ID, "host": "h", "ports": {"1": "x"}}}).encode(),
    json.dumps({"open": {"id": SANDBOX_ID, "host": "h", "ports": [1, 2]}}).encode(),
    json.dumps({"close": {"id": SANDBOX_ID}}).encode(),
    b'{"open": ' * 5000,
    b"x" * (hints.MAX_HINT * 2),
]


async def test_what_is_not_a_hint_is_ignored_and_the_next_one_applies(resolver):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        hints.follow(theirs, resolver)
        now = time.monotonic()
        good = {"id": SANDBOX_ID, "host": "10.9.0.2", "ports": {}, "traffic_access_token": None}
        for datagram in [
            *HOSTILE,
            *(
                json.dumps({"at": now, "open": {**good, "ports": {"1": "x"}}}).encode(),
                json.dumps({"at": now, "open": {**good, "host": ""}}).encode(),
                json.dumps({"at": now - 10, "open": {**good, "mask_request_host": None}}).encode(),  # stale
            ),
        ]:
            ours.send(datagram)
        await _settle()
        assert await resolver(SANDBOX_ID) is None
        ours.send(json.dumps({"at": time.monotonic(), "open": {**good, "mask_request_host": None}}).encode())
        await _settle()
        route = await resolver(SANDBOX_ID)
        assert route is not None and route.address(49983) == ("10.9.0.2", 49983)
    finally:
        asyncio.get_running_loop().remove_reader(theirs.fileno())
        ours.close()
        theirs.close()
