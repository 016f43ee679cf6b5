"""The per-sandbox locks: one call at a time per sandbox, and nothing kept for a sandbox no call holds or
waits for, so that calls naming sandboxes that do not exist (a hostile client's) cannot grow them."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from e2b import NotFoundException, Sandbox

from hutch.api.services.locks import SandboxLocks
from tests.api.conftest import Caller

CALLS = 3


async def test_calls_on_one_sandbox_take_turns_and_leave_no_lock() -> None:
    locks = SandboxLocks()
    inside: list[int] = []
    overlaps: list[int] = []

    async def call(number: int) -> None:
        async with locks.of("sandbox"):
            inside.append(number)
            overlaps.append(len(inside))
            await asyncio.sleep(0.01)
            inside.remove(number)

    await asyncio.gather(*(call(number) for number in range(5)))
    assert overlaps == [1] * 5
    assert len(locks) == 0


async def test_a_call_that_fails_under_its_lock_leaves_no_lock() -> None:
    locks = SandboxLocks()
    with pytest.raises(LookupError):
        async with locks.of("missing"):
            raise LookupError("not found")
    assert len(locks) == 0


async def test_a_waiter_keeps_the_lock_its_holder_used() -> None:
    locks = SandboxLocks()
    held, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with locks.of("sandbox"):
            held.set()
            await release.wait()
            order.append("first")

    async def second() -> None:
        await held.wait()
        async with locks.of("sandbox"):
            order.append("second")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await held.wait()
    await asyncio.sleep(0)
    assert len(locks) == 1
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "second"]
    assert len(locks) == 0


def test_calls_on_sandboxes_that_do_not_exist_leave_no_locks(caller: Caller) -> None:
    locks = caller.stack.app.state.sandboxes._locks
    before = len(locks)
    for _ in range(CALLS):  # through the official SDK
        missing = secrets.token_hex(10)
        assert Sandbox.kill(missing, **caller.opts) is False
        with pytest.raises(NotFoundException):
            Sandbox.connect(missing, **caller.opts)
        with pytest.raises(NotFoundException):
            Sandbox.pause(missing, **caller.opts)
    with caller.http() as http:
        for _ in range(CALLS):
            missing = secrets.token_hex(10)
            for method, path in (
                ("POST", f"/sandboxes/{missing}/connect"),
                ("POST", f"/sandboxes/{missing}/pause"),
                ("POST", f"/sandboxes/{missing}/resume"),
                ("DELETE", f"/sandboxes/{missing}"),
                ("POST", f"/sandboxes/{missing}/snapshots"),
            ):
                response = http.request(method, path, json={"timeout": 60})
                assert response.status_code == 404, (path, response.text)
    assert len(locks) == before
