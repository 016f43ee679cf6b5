"""Work done alongside a container's start: the first failure is raised as it is, after the rest ended."""

from __future__ import annotations

import asyncio

import pytest

from hutch.errors import BackendUnavailable
from hutch.runtime.container.start import _together


async def test_the_first_failure_is_raised_as_it_is_once_the_other_work_ended() -> None:
    ended: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise BackendUnavailable("crun run failed")

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            ended.append("slow")

    with pytest.raises(BackendUnavailable, match="crun run failed"):
        await _together(fails(), slow())
    assert ended == ["slow"]


async def test_work_that_succeeds_all_ends() -> None:
    done: list[int] = []

    async def work(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        done.append(n)

    await _together(work(2), work(1))
    assert sorted(done) == [1, 2]
