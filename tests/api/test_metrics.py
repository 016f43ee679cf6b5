"""Sandbox metrics through the official SDK, on the fake runtime sampling every 0.2 s: a time series
oldest first, filtered by ``start`` and ``end`` (400 when ``start`` is after ``end``), the latest sample of
several sandboxes (``GET /sandboxes/metrics``), and a killed sandbox's metrics gone with it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from e2b import Sandbox, SandboxMetrics
from e2b.exceptions import SandboxException, SandboxNotFoundException

from hutch.api import create_app
from hutch.config import Settings
from hutch.runtime.fake import FakeRuntime
from tests.api.conftest import Caller, Stack, register_test_templates, serving

INTERVAL_S = 0.2
FIELDS = {
    "timestamp",
    "timestampUnix",
    "cpuCount",
    "cpuUsedPct",
    "memUsed",
    "memTotal",
    "memCache",
    "diskUsed",
}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API over a fake runtime that samples every ``INTERVAL_S``."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("hutch-metrics"))
    runtime = FakeRuntime(node_id=settings.runtime.node_id, metrics_interval_s=INTERVAL_S)
    with serving(create_app(settings, runtime=runtime)) as stack:
        register_test_templates(stack)
        yield stack


@pytest.fixture()
def owner(sampled: Stack) -> Caller:
    return Caller(stack=sampled, api_key=sampled.new_key())


def _samples(sandbox: Sandbox, at_least: int, timeout_s: float = 10) -> list[SandboxMetrics]:
    deadline = time.monotonic() + timeout_s
    while len(samples := sandbox.get_metrics()) < at_least:
        assert time.monotonic() < deadline, f"only {len(samples)} samples after {timeout_s} s"
        time.sleep(INTERVAL_S)
    return samples


def test_a_series_of_samples_oldest_first(owner: Caller) -> None:
    sandbox = Sandbox.create(**owner.opts)
    try:
        samples = _samples(sandbox, 3)
        times = [sample.timestamp for sample in samples]
        assert times == sorted(times) and len(set(times)) == len(times)
        for sample in samples:
            assert sample.cpu_count >= 1
            assert 0 <= sample.cpu_used_pct <= 100
            assert 0 < sample.mem_used <= sample.mem_total
            assert 0 < sample.disk_used <= sample.disk_total
            assert abs((sample.timestamp - datetime.now(UTC)).total_seconds()) < 10
        assert Sandbox.get_metrics(sandbox.sandbox_id, **owner.opts)[: len(samples)] == samples
    finally:
        sandbox.kill()


def test_start_and_end_select_whole_seconds(owner: Caller) -> None:
    sandbox = Sandbox.create(**owner.opts)
    try:
        samples = _samples(sandbox, 8)
        middle = samples[len(samples) // 2].timestamp.replace(microsecond=0)
        # The sampler may still be adding samples to the second of ``middle``: wait until it is past it.
        deadline = time.monotonic() + 10
        while samples[-1].timestamp.replace(microsecond=0) <= middle:
            assert time.monotonic() < deadline, "no sample after the middle one's second"
            time.sleep(INTERVAL_S)
            samples = sandbox.get_metrics()
        later = sandbox.get_metrics(start=middle)
        assert later and all(sample.timestamp.replace(microsecond=0) >= middle for sample in later)
        earlier = sandbox.get_metrics(end=middle)
        assert earlier and all(sample.timestamp.replace(microsecond=0) <= middle for sample in earlier)
        assert sandbox.get_metrics(start=middle, end=middle) == [
            sample for sample in later if sample.timestamp.replace(microsecond=0) == middle
        ]
        assert sandbox.get_metrics(end=datetime.now(UTC) - timedelta(hours=1)) == []
        assert sandbox.get_metrics(start=datetime.now(UTC) + timedelta(hours=1)) == []
    finally:
        sandbox.kill()


def test_start_after_end_is_refused(owner: Caller) -> None:
    sandbox = Sandbox.create(**owner.opts)
    try:
        now = datetime.now(UTC)
        with pytest.raises(SandboxException, match="start time cannot be after end time"):
            sandbox.get_metrics(start=now, end=now - timedelta(seconds=1))
        with owner.http() as http:
            response = http.get(f"/sandboxes/{sandbox.sandbox_id}/metrics", params={"start": 20, "end": 10})
            assert response.status_code == 400
            assert response.json() == {"code": 400, "message": "start time cannot be after end time"}
            assert http.get(f"/sandboxes/{sandbox.sandbox_id}/metrics?start=-1").status_code == 400
            assert http.get(f"/sandboxes/{sandbox.sandbox_id}/metrics?end=soon").status_code == 400
    finally:
        sandbox.kill()


def test_a_killed_sandbox_has_no_metrics(owner: Caller) -> None:
    sandbox = Sandbox.create(**owner.opts)
    _samples(sandbox, 1)
    sandbox.kill()
    with pytest.raises(SandboxNotFoundException):
        sandbox.get_metrics()


def test_the_latest_sample_of_several_sandboxes(owner: Caller, sampled: Stack) -> None:
    first, second = Sandbox.create(**owner.opts), Sandbox.create(**owner.opts)
    stranger = Sandbox.create(api_key=sampled.new_key(), api_url=sampled.api_url)
    try:
        latest = {s.sandbox_id: _samples(s, 1)[-1] for s in (first, second, stranger)}
        ids = ",".join([first.sandbox_id, second.sandbox_id, stranger.sandbox_id, "unknown0000000000000"])
        with owner.http() as http:
            response = http.get("/sandboxes/metrics", params={"sandbox_ids": ids})
            assert response.status_code == 200
            found = response.json()["sandboxes"]
            assert set(found) == {first.sandbox_id, second.sandbox_id}  # not another team's, not unknown
            for sandbox_id, metric in found.items():
                assert datetime.fromisoformat(metric["timestamp"]) >= latest[sandbox_id].timestamp
                assert metric["timestampUnix"] == int(datetime.fromisoformat(metric["timestamp"]).timestamp())
                assert set(metric) >= {*FIELDS, "diskUsed", "diskTotal"}
            too_many = http.get("/sandboxes/metrics", params={"sandbox_ids": ",".join(["x"] * 101)})
            assert too_many.status_code == 400
            assert too_many.json()["message"] == "Too many sandboxes requested, maximum is 100"
            assert http.get("/sandboxes/metrics").status_code == 400
    finally:
        for sandbox in (first, second, stranger):
            sandbox.kill()
