"""After a restart the node takes back the sandboxes that can go on as they were and tears down the rest:
first the decision alone, for every case a state file and an engine can present; then a node that stops
and starts again over the same data directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hutch.runtime.container import ContainerRuntime, state
from hutch.runtime.container.recovery import IN_CONTAINER, ON_DISK, adoption
from hutch.runtime.types import SandboxSpec, TemplateImage
from hutch.templates import base
from hutch.templates.envd_zipapp import build

SUBNET = f"10.{40 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw') or 0)}.0.0/16"
CACHE = Path("/var/cache/hutch")
RUNNING = {"status": "running", "pid": 1234}


@pytest.mark.parametrize(
    ("paused", "has_spec", "checkpoint_kept", "engine_state", "expected"),
    [
        # Running, or frozen in its container: taken back if its container is still there.
        (None, True, False, RUNNING, IN_CONTAINER),
        (None, True, False, {"status": "stopped", "pid": 0}, None),
        (None, True, False, {}, None),
        ("full", True, False, {"status": "paused", "pid": 1234}, IN_CONTAINER),
        ("full", True, False, {}, None),
        # Paused to disk: taken back only without a container, and only if it can boot (its spec).
        ("filesystem", True, False, {}, ON_DISK),
        ("filesystem", False, False, {}, None),
        ("filesystem", True, False, RUNNING, None),
        ("full", True, True, {}, ON_DISK),  # a gVisor checkpoint
        ("full", False, True, {}, None),
        ("full", True, True, RUNNING, None),
    ],
)
def test_adoption(paused, has_spec, checkpoint_kept, engine_state, expected):
    assert adoption(paused, has_spec, checkpoint_kept, engine_state) == expected


def _runtime(data_dir: Path, envd: Path) -> ContainerRuntime:
    return ContainerRuntime(data_dir=data_dir, cache_dir=CACHE, envd_path=envd, subnet=SUBNET)


async def test_a_restarted_node_keeps_a_paused_sandbox_and_removes_the_rest(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    envd = build(tmp_path / "envd.pyz")
    template = TemplateImage("base", base.build(CACHE))
    first = _runtime(tmp_path / "data", envd)
    await first.start()
    try:
        kept = await first.create(SandboxSpec(template=template))
        await first.pause(kept.sandbox_id, memory=False)
    finally:
        await first.close()  # the paused sandbox stays
    # What a node that died halfway through a create leaves: a directory whose sandbox was never a user's.
    sandboxes = tmp_path / "data" / "sandboxes"
    half_made = sandboxes / "halfmade000000000000"
    half_made.mkdir()
    (half_made / state.FILE).write_text(json.dumps({"claimed": False, "engine": "container"}))

    second = _runtime(tmp_path / "data", envd)
    await second.start()
    try:
        assert [handle.sandbox_id for handle in await second.list()] == [kept.sandbox_id]
        assert sorted(p.name for p in sandboxes.iterdir()) == [kept.sandbox_id]
        await second.resume(kept.sandbox_id)
        assert (await second.metrics(kept.sandbox_id)) is not None
    finally:
        await second.kill(kept.sandbox_id)
        await second.close()
    assert list(sandboxes.iterdir()) == []
