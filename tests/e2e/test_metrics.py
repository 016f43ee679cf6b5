"""Sandbox metrics through the official SDK against a real stack of its own that samples every second, on
both engines: CPU burnt, memory taken and a file written show in the series; ``start`` and ``end`` select
from it; a paused sandbox gets no new samples and a resumed one does again; a killed sandbox's metrics are
gone with it (404). The node's ``/metrics`` shows each sandbox to the operator key alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from e2b import Sandbox, SandboxMetrics
from e2b.exceptions import SandboxNotFoundException

from hutch.secret_files import operator_key
from tests.stack import ENGINES, WORKER, Stack, start_stack, stop_stack

SUBNET = f"10.{100 + WORKER}.0.0/16"  # apart from the session's stack and the other own stacks
INTERVAL_S = 1
MB = 1_000_000


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {
        "HUTCH_RUNTIME__METRICS_INTERVAL_S": str(INTERVAL_S),
        "HUTCH_RUNTIME__WARM_POOL": '{"base": 1}',
    }
    stack = start_stack(tmp_path_factory.mktemp("hutch-metrics"), subnet=SUBNET, settings=settings)
    yield stack
    stop_stack(stack)


def _until(
    sandbox: Sandbox, done: Callable[[list[SandboxMetrics]], bool], timeout_s: float = 30
) -> list[SandboxMetrics]:
    """The sandbox's series once ``done`` holds for it."""
    deadline = time.monotonic() + timeout_s
    while not done(samples := sandbox.get_metrics()):
        assert time.monotonic() < deadline, samples[-3:]
        time.sleep(INTERVAL_S / 2)
    return samples


@pytest.mark.parametrize("engine", ENGINES)
def test_cpu_memory_and_disk_show_in_the_series(sampled: Stack, engine: str) -> None:
    sandbox = sampled.create(engine)
    try:
        idle = _until(sandbox, lambda samples: len(samples) >= 3)
        assert {sample.cpu_count for sample in idle} == {2}
        assert {sample.mem_total for sample in idle} == {512 * 1024 * 1024}
        start = idle[-1]
        burner = sandbox.commands.run("sh -c 'while :; do :; done'", background=True)
        sandbox.commands.run("head -c 48000000 /dev/zero > /dev/shm/held")
        sandbox.commands.run("head -c 64000000 /dev/zero > /home/user/written && sync")
        busy = _until(
            sandbox,
            lambda samples: (
                samples[-1].mem_used > start.mem_used + 40 * MB
                and samples[-1].disk_used > start.disk_used + 60 * MB
                and max(sample.cpu_used_pct for sample in samples[len(idle) :]) > 25
            ),
        )
        burner.kill()
        times = [sample.timestamp for sample in busy]
        assert times == sorted(times) and len(busy) > len(idle)
        assert all(sample.disk_total == busy[0].disk_total > 60 * MB for sample in busy)

        middle = busy[len(busy) // 2].timestamp.replace(microsecond=0)
        later = sandbox.get_metrics(start=middle)
        assert later and all(sample.timestamp.replace(microsecond=0) >= middle for sample in later)
        earlier = Sandbox.get_metrics(sandbox.sandbox_id, end=middle, **sampled.opts)
        assert earlier and all(sample.timestamp.replace(microsecond=0) <= middle for sample in earlier)
        assert earlier[0] == busy[0]
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_paused_sandbox_gets_no_new_samples(sampled: Stack, engine: str) -> None:
    sandbox = sampled.create(engine)
    try:
        _until(sandbox, lambda samples: len(samples) >= 2)
        assert sandbox.pause() is not False
        kept = sandbox.get_metrics()
        time.sleep(4 * INTERVAL_S)
        assert sandbox.get_metrics() == kept
        resumed = Sandbox.connect(sandbox.sandbox_id, **sampled.opts)
        again = _until(resumed, lambda samples: len(samples) >= len(kept) + 2)
        assert again[: len(kept)] == kept
        assert (again[len(kept)].timestamp - kept[-1].timestamp).total_seconds() >= 4 * INTERVAL_S
    finally:
        sandbox.kill()


def test_a_killed_sandbox_has_no_metrics(sampled: Stack) -> None:
    sandbox = sampled.create()
    _until(sandbox, lambda samples: len(samples) >= 1)
    sandbox.kill()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_metrics(sandbox.sandbox_id, **sampled.opts)


def test_the_node_metrics_need_the_operator_key(sampled: Stack) -> None:
    sandbox = sampled.create()
    try:
        _until(sandbox, lambda samples: len(samples) >= 1)
        url = f"{sampled.api_url}/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"X-API-Key": sampled.api_key}).status_code == 401
        key = operator_key(sampled.data_dir)
        scraped = httpx.get(url, headers={"Authorization": f"Bearer {key}"})
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        mine = [line for line in scraped.text.splitlines() if f'sandbox_id="{sandbox.sandbox_id}"' in line]
        assert {line.split("{")[0] for line in mine} >= {
            "hutch_sandbox_cpu_used_percent",
            "hutch_sandbox_memory_used_bytes",
            "hutch_sandbox_disk_used_bytes",
        }
        assert 'template_id="' in mine[0]
        assert 'hutch_warm_pool_target{template_id="' in scraped.text
    finally:
        sandbox.kill()
