"""The node's sampler: CPU use is the CPU time between two readings over the time between them, as a share
of the sandbox's CPUs; the first sample comes an interval after sampling starts, none come while a sandbox
is paused or its probe fails, a counter that starts again only starts a new interval, and a dropped
sandbox's series is gone. Its task samples on its own."""

from __future__ import annotations

import asyncio

import pytest

from hutch.runtime.sampler import Sampler, Usage

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.monotonic = 100.0

    def wall(self) -> float:
        return T0 + self.monotonic

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds


class Probe:
    """A sandbox whose CPU time and memory the test sets; ``fail`` makes the next reading fail."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.mem_used = 1000
        self.fail = False

    def __call__(self) -> Usage:
        if self.fail:
            raise FileNotFoundError("cgroup gone")
        return Usage(self.cpu_s, 2, self.mem_used, 4096, 10, 200, 8192)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def sampler(clock: Clock) -> Sampler:
    return Sampler(5, monotonic=lambda: clock.monotonic, now=clock.wall)


async def _pass(sampler: Sampler, clock: Clock, probe: Probe, cpu_s: float, seconds: float = 5) -> None:
    """``seconds`` later, with ``cpu_s`` more CPU time used."""
    clock.advance(seconds)
    probe.cpu_s += cpu_s
    await sampler.sample()


async def test_cpu_use_is_a_share_of_the_sandbox_cpus(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe)
    await _pass(sampler, clock, probe, cpu_s=5.0)  # 5 s of 10 CPU-seconds
    probe.mem_used = 3000
    await _pass(sampler, clock, probe, cpu_s=10.0)  # all of both CPUs
    await _pass(sampler, clock, probe, cpu_s=0.0)
    samples = sampler.samples("s1")
    assert [sample.cpu_used_pct for sample in samples] == [50.0, 100.0, 0.0]
    assert [sample.mem_used for sample in samples] == [1000, 3000, 3000]
    assert [sample.timestamp.timestamp() for sample in samples] == [T0 + 105, T0 + 110, T0 + 115]
    assert (samples[0].cpu_count, samples[0].mem_total, samples[0].disk_used) == (2, 4096, 200)
    assert sampler.latest("s1") == samples[-1]


async def test_no_sample_too_soon_after_the_first_reading(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe)
    await _pass(sampler, clock, probe, cpu_s=1.0, seconds=1)
    assert sampler.samples("s1") == []
    await _pass(sampler, clock, probe, cpu_s=1.0, seconds=4)
    [sample] = sampler.samples("s1")
    assert sample.cpu_used_pct == 20.0  # 2 CPU-seconds over 5 s of 2 CPUs


async def test_a_paused_sandbox_gets_no_samples_and_keeps_its_series(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe)
    await _pass(sampler, clock, probe, cpu_s=1.0)
    sampler.pause("s1")
    await _pass(sampler, clock, probe, cpu_s=1.0)
    await _pass(sampler, clock, probe, cpu_s=1.0)
    assert len(sampler.samples("s1")) == 1
    sampler.resume("s1")  # a first reading again: the time paused counts for nothing
    await _pass(sampler, clock, probe, cpu_s=10.0)
    assert [sample.cpu_used_pct for sample in sampler.samples("s1")] == [10.0, 100.0]


async def test_a_sandbox_tracked_paused_is_sampled_once_resumed(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe, running=False)
    await _pass(sampler, clock, probe, cpu_s=1.0)
    assert sampler.samples("s1") == [] and sampler.latest("s1") is None
    sampler.resume("s1")
    await _pass(sampler, clock, probe, cpu_s=1.0)
    assert len(sampler.samples("s1")) == 1


async def test_a_failed_reading_gives_no_sample(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe)
    probe.fail = True
    await _pass(sampler, clock, probe, cpu_s=1.0)
    assert sampler.samples("s1") == []
    probe.fail = False
    await _pass(sampler, clock, probe, cpu_s=1.0)
    [sample] = sampler.samples("s1")
    assert sample.cpu_used_pct == 10.0  # from the last reading that worked, 10 s before


async def test_a_counter_that_starts_again_only_starts_an_interval(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe)
    await _pass(sampler, clock, probe, cpu_s=8.0)
    await _pass(sampler, clock, probe, cpu_s=-8.0)  # a new cgroup: its counter is back at 0
    await _pass(sampler, clock, probe, cpu_s=5.0)
    assert [sample.cpu_used_pct for sample in sampler.samples("s1")] == [80.0, 50.0]


async def test_a_dropped_sandbox_has_no_series(sampler: Sampler, clock: Clock) -> None:
    probe = Probe()
    sampler.track("s1", probe)
    await _pass(sampler, clock, probe, cpu_s=1.0)
    sampler.drop("s1")
    await _pass(sampler, clock, probe, cpu_s=1.0)
    assert sampler.samples("s1") == [] and sampler.latest("s1") is None


async def test_the_task_samples_every_interval() -> None:
    sampler = Sampler(0.05)
    probe = Probe()
    sampler.track("s1", probe)
    sampler.start()
    try:
        await asyncio.sleep(0.3)
        assert 3 <= len(sampler.samples("s1")) <= 6
        assert sampler.pass_s > 0
    finally:
        await sampler.close()
    assert sampler.samples("s1") == []
