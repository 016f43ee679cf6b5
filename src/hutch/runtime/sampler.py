"""The node's sampler: one task that, every ``interval_s``, reads what each running sandbox uses (all of them
in one hop to a thread) and adds a sample to that sandbox's :class:`~.series.Series`.

A backend gives each sandbox a probe, which returns a :class:`Usage`: the CPU time it used so far and its
sizes now. A sample's CPU use is the CPU time between two readings over the time between them, as a share
of the sandbox's CPUs. Sampling a sandbox starts with a first reading (its first sample comes about one
interval later), stops while it is paused (its series stays, with a gap) and its series goes when it is
dropped. A probe that fails (its sandbox is going away) gives no sample in that pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .capabilities import MetricSample
from .series import Series, retention

log = logging.getLogger("hutch.runtime")


@dataclass(frozen=True)
class Usage:
    """What a probe reads: the CPU seconds a sandbox used so far, its CPUs and sizes now (bytes)."""

    cpu_s: float
    cpu_count: int
    mem_used: int
    mem_total: int
    mem_cache: int
    disk_used: int
    disk_total: int


Probe = Callable[[], Usage]
Clock = Callable[[], float]
# (seconds on the monotonic clock, unix seconds, usage) of one reading; None for a probe that failed
Reading = tuple[float, float, Usage] | None


@dataclass
class _Tracked:
    probe: Probe
    series: Series
    sampling: bool = False
    # (monotonic seconds, CPU seconds) of the last reading while sampling, that the next sample starts from
    last: tuple[float, float] | None = None


class Sampler:
    """The samples of the node's sandboxes, taken every ``interval_s`` while the task ``start`` made runs."""

    def __init__(
        self, interval_s: float = 5.0, *, monotonic: Clock = time.monotonic, now: Clock = time.time
    ) -> None:
        self.interval_s = interval_s
        self.pass_s = 0.0  # how long the last pass took
        self._monotonic = monotonic
        self._now = now
        self._tracked: dict[str, _Tracked] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._tracked.clear()

    def track(self, sandbox_id: str, probe: Probe, *, running: bool = True) -> None:
        """Keep a series for the sandbox, sampled from now on if it is ``running``."""
        self._tracked[sandbox_id] = _Tracked(probe, Series(retention(self.interval_s)))
        if running:
            self.resume(sandbox_id)

    def pause(self, sandbox_id: str) -> None:
        """Take no more samples of the sandbox until ``resume``; its series stays."""
        tracked = self._tracked.get(sandbox_id)
        if tracked is not None:
            tracked.sampling, tracked.last = False, None

    def resume(self, sandbox_id: str) -> None:
        """Sample the sandbox again, from a first reading now."""
        tracked = self._tracked.get(sandbox_id)
        if tracked is not None:
            tracked.sampling = True
            reading = self._read(tracked.probe)
            tracked.last = None if reading is None else (reading[0], reading[2].cpu_s)

    def drop(self, sandbox_id: str) -> None:
        """Forget the sandbox and its series."""
        self._tracked.pop(sandbox_id, None)

    def samples(
        self, sandbox_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        """The sandbox's samples whose whole second lies in [``start``, ``end``], oldest first."""
        tracked = self._tracked.get(sandbox_id)
        if tracked is None:
            return []
        return tracked.series.between(
            None if start is None else start.timestamp(), None if end is None else end.timestamp()
        )

    def latest(self, sandbox_id: str) -> MetricSample | None:
        tracked = self._tracked.get(sandbox_id)
        return None if tracked is None else tracked.series.latest()

    async def sample(self) -> None:
        """One pass: read every sandbox being sampled, add a sample to each whose reading worked."""
        started = time.perf_counter()
        due = [(sandbox_id, tracked) for sandbox_id, tracked in self._tracked.items() if tracked.sampling]
        readings = await asyncio.to_thread(lambda: [self._read(tracked.probe) for _, tracked in due])
        for (sandbox_id, tracked), reading in zip(due, readings, strict=True):
            # Dropped or paused while its probe was read: the reading may be of what was torn down.
            if reading is not None and tracked.sampling and self._tracked.get(sandbox_id) is tracked:
                self._advance(tracked, reading)
        self.pass_s = time.perf_counter() - started

    def _read(self, probe: Probe) -> Reading:
        try:
            usage = probe()
        except (OSError, ValueError):
            return None
        return self._monotonic(), self._now(), usage

    def _advance(self, tracked: _Tracked, reading: tuple[float, float, Usage]) -> None:
        at, unix_s, usage = reading
        last = tracked.last
        if last is not None and at - last[0] < self.interval_s / 2:
            return  # too close to the first reading for a fair share
        tracked.last = (at, usage.cpu_s)
        if last is None or usage.cpu_s < last[1]:
            return  # a first reading, or the counter started again (a new cgroup): where the next starts
        share = (usage.cpu_s - last[1]) / ((at - last[0]) * max(1, usage.cpu_count))
        tracked.series.add(
            MetricSample(
                timestamp=datetime.fromtimestamp(unix_s, UTC),
                cpu_count=usage.cpu_count,
                cpu_used_pct=round(min(100.0, 100 * share), 2),
                mem_used=usage.mem_used,
                mem_total=usage.mem_total,
                mem_cache=usage.mem_cache,
                disk_used=usage.disk_used,
                disk_total=usage.disk_total,
            )
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self.interval_s, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                await self.sample()
            except Exception:
                log.exception("metrics: a sampling pass failed")
