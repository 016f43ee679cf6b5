"""Limits on what snapshots keep on the node: a team's number of snapshots and their disk, and the node's
free disk. A refused snapshot is a 429 in E2B's error shape, which the official SDK raises; nothing is
written."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2b import RateLimitException, Sandbox

from hutch.api import create_app
from hutch.config import Settings
from hutch.runtime.fake import FakeRuntime

from .conftest import register_test_templates, serving


def _refusal(tmp_path: Path, group: str, **limits: int) -> tuple[httpx.Response, Exception]:
    settings = Settings(data_dir=tmp_path / "data")
    settings.templates.cache_dir = tmp_path / "cache"
    for name, value in limits.items():
        setattr(getattr(settings, group), name, value)
    with serving(create_app(settings, runtime=FakeRuntime())) as stack:
        register_test_templates(stack)
        opts = {"api_key": stack.new_key(), "api_url": stack.api_url, "sandbox_url": "http://127.0.0.1:9"}
        sandbox = Sandbox.create(template="base", **opts)
        try:
            response = httpx.post(
                f"{stack.api_url}/sandboxes/{sandbox.sandbox_id}/snapshots",
                headers={"X-API-Key": opts["api_key"]},
                json={},
            )
            with pytest.raises(RateLimitException) as raised:
                sandbox.create_snapshot()
        finally:
            sandbox.kill()
    assert list((tmp_path / "cache").rglob("*")) == []  # nothing copied, no checkpoint
    return response, raised.value


def test_a_team_keeps_at_most_its_number_of_snapshots(tmp_path: Path) -> None:
    response, error = _refusal(tmp_path, "quotas", snapshots=0)
    assert response.status_code == 429
    assert response.json() == {"code": 429, "message": "quota snapshots exceeded: the team's limit is 0"}
    assert "snapshots" in str(error)


def test_a_team_keeps_at_most_its_snapshot_disk(tmp_path: Path) -> None:
    response, error = _refusal(tmp_path, "quotas", snapshot_disk_mb=1)
    assert response.status_code == 429
    assert response.json()["message"] == "quota snapshot_disk_mb exceeded: the team's limit is 1 MiB"
    assert "snapshot_disk_mb" in str(error)


def test_a_snapshot_never_takes_the_nodes_last_free_disk(tmp_path: Path) -> None:
    response, error = _refusal(tmp_path, "api", min_free_disk_mb=2**40)
    assert response.status_code == 429
    assert "not enough free disk on the node" in response.json()["message"]
    assert "free disk" in str(error)
