"""``GET /metrics``: the node in Prometheus' text format, opened only by the operator key (as a bearer
token or in ``X-Hutch-Operator-Key``): each running sandbox's latest sample labelled by sandbox and
template, the sandboxes by state, the last sampling pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from e2b import Sandbox

from hutch.api import create_app
from hutch.api.routes.prometheus import render
from hutch.config import Settings
from hutch.runtime.fake import FakeRuntime
from hutch.runtime.node_client import MetricSample, NodeUsage, SandboxUsage, WarmPoolUsage
from hutch.secret_files import OPERATOR_KEY_HEADER, operator_key
from tests.api.conftest import BASE_TEMPLATE_ID, Stack, register_test_templates, serving


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API over a fake runtime that samples every 0.2 s."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("hutch-prometheus"))
    runtime = FakeRuntime(node_id=settings.runtime.node_id, metrics_interval_s=0.2)
    with serving(create_app(settings, runtime=runtime)) as stack:
        register_test_templates(stack)
        yield stack


def _scrape(stack: Stack, **headers: str) -> httpx.Response:
    return httpx.get(f"{stack.api_url}/metrics", headers=headers)


def test_only_the_operator_key_opens_it(sampled: Stack) -> None:
    key = operator_key(sampled.app.state.settings.data_dir)
    refused = _scrape(sampled)
    assert refused.status_code == 401
    assert refused.json()["code"] == 401
    assert _scrape(sampled, authorization="Bearer not-the-key").status_code == 401
    assert _scrape(sampled, authorization=f"Basic {key}").status_code == 401
    assert _scrape(sampled, **{"X-API-Key": sampled.new_key()}).status_code == 401
    assert _scrape(sampled, authorization=f"Bearer {key}").status_code == 200
    assert _scrape(sampled, **{OPERATOR_KEY_HEADER: key}).status_code == 200


def test_each_sandbox_latest_sample_as_gauges(sampled: Stack) -> None:
    key = operator_key(sampled.app.state.settings.data_dir)
    sandbox = Sandbox.create(api_key=sampled.new_key(), api_url=sampled.api_url)
    try:
        labels = f'{{sandbox_id="{sandbox.sandbox_id}",template_id="{BASE_TEMPLATE_ID}"}}'
        deadline = time.monotonic() + 10
        while labels not in (text := _scrape(sampled, authorization=f"Bearer {key}").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        response = _scrape(sampled, authorization=f"Bearer {key}")
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        values = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#"))
        assert int(values[f"hutch_sandbox_cpu_count{labels}"]) >= 1
        assert 0 <= float(values[f"hutch_sandbox_cpu_used_percent{labels}"]) <= 100
        assert int(values[f"hutch_sandbox_memory_used_bytes{labels}"]) > 0
        assert int(values[f"hutch_sandbox_disk_used_bytes{labels}"]) > 0
        taken = float(values[f"hutch_sandbox_sample_timestamp_seconds{labels}"])
        assert abs(taken - time.time()) < 10
        assert int(values['hutch_sandboxes{state="running"}']) >= 1
        assert float(values["hutch_metrics_sampling_seconds"]) > 0
        assert "# TYPE hutch_sandbox_memory_total_bytes gauge" in response.text
    finally:
        sandbox.kill()


def test_the_text_format() -> None:
    sample = MetricSample(datetime.fromtimestamp(1_700_000_000, UTC), 2, 12.5, 100, 1000, 10, 200, 2000)
    usage = NodeUsage(
        sandboxes=(
            SandboxUsage("s1", 'odd"name\\\n', paused=False, latest=sample),
            SandboxUsage("s2", "base", paused=True, latest=sample),  # a paused sandbox's sample is stale
            SandboxUsage("s3", "base", paused=False, latest=None),
        ),
        warm_pools=(WarmPoolUsage("base", "crun", ready=1, target=2),),
        sampling_s=0.0025,
    )
    text = render(usage)
    assert text.endswith("\n")
    lines = text.splitlines()
    labels = '{sandbox_id="s1",template_id="odd\\"name\\\\\\n"}'
    assert f"hutch_sandbox_cpu_used_percent{labels} 12.5" in lines
    assert f"hutch_sandbox_memory_used_bytes{labels} 100" in lines
    assert f"hutch_sandbox_sample_timestamp_seconds{labels} 1700000000.0" in lines
    assert not any('sandbox_id="s2"' in line or 'sandbox_id="s3"' in line for line in lines)
    assert 'hutch_sandboxes{state="running"} 2' in lines
    assert 'hutch_sandboxes{state="paused"} 1' in lines
    assert 'hutch_warm_pool_ready{template_id="base",engine="crun"} 1' in lines
    assert 'hutch_warm_pool_target{template_id="base",engine="crun"} 2' in lines
    assert "hutch_metrics_sampling_seconds 0.0025" in lines
    for name in ("hutch_sandboxes", "hutch_sandbox_disk_total_bytes", "hutch_warm_pool_ready"):
        assert f"# TYPE {name} gauge" in lines
