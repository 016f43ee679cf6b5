"""Volumes, secrets and egress settings end to end, through the official SDK against the real stack: a
volume written through its content API is seen in the sandboxes that mount it, and what they write comes
back through the API; the mount stays across a pause, and a snapshot's sandboxes and a fork mount the same
volume (shared, not copied); a mounted volume is not deleted; a full volume is a 507; a sandbox's header
rules name the team's secrets, whose values its detail never shows."""

from __future__ import annotations

import uuid

import httpx
import pytest
from e2b import Sandbox, Secret, Volume
from e2b.exceptions import VolumeException

from tests.stack import Stack


def _name() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def test_a_volume_is_shared_by_the_sandboxes_that_mount_it(stack: Stack) -> None:
    volume = Volume.create(_name(), **stack.opts)
    content = {"api_url": stack.api_url}
    volume.write_file("/from-api.txt", "written by the API", **content)
    sandbox = stack.create(volume_mounts={"/mnt/data": volume})
    children: list[Sandbox] = []
    try:
        assert sandbox.files.read("/mnt/data/from-api.txt") == "written by the API"
        sandbox.files.write("/mnt/data/from-sandbox.txt", "written in the sandbox")
        assert volume.read_file("/from-sandbox.txt", **content) == "written in the sandbox"

        with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": stack.api_key}) as client:
            refused = client.delete(f"/volumes/{volume.volume_id}")
        assert refused.status_code == 409 and sandbox.sandbox_id in refused.json()["message"]

        sandbox.pause()
        sandbox = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
        assert sandbox.files.read("/mnt/data/from-sandbox.txt") == "written in the sandbox"

        snapshot = sandbox.create_snapshot(mode="filesystem")
        from_snapshot = Sandbox.create(snapshot.snapshot_id, **stack.opts)
        stack.seen.add(from_snapshot.sandbox_id)
        children.append(from_snapshot)
        from_snapshot.files.write("/mnt/data/from-snapshot.txt", "shared")
        (fork,) = sandbox.fork(count=1, **stack.opts)
        assert isinstance(fork, Sandbox), fork
        stack.seen.add(fork.sandbox_id)
        children.append(fork)
        assert fork.files.read("/mnt/data/from-snapshot.txt") == "shared"  # the same volume, not a copy
        assert volume.read_file("/from-snapshot.txt", **content) == "shared"
        Sandbox.delete_snapshot(snapshot.snapshot_id, **stack.opts)
    finally:
        for child in children:
            child.kill()
        sandbox.kill()
    assert Volume.destroy(volume.volume_id, **stack.opts) is True


def test_a_full_volume_is_a_507(stack: Stack) -> None:
    team = stack.new_team(volume_size_mb=16)
    volume = Volume.create(_name(), **team.opts)
    try:
        with pytest.raises(VolumeException, match="507"):
            volume.write_file("/big.bin", b"\0" * (32 << 20), api_url=stack.api_url)
        assert not volume.exists("/big.bin", api_url=stack.api_url)  # nothing half-written is left
    finally:
        Volume.destroy(volume.volume_id, **team.opts)


def test_rules_with_secrets_start_and_the_detail_shows_no_value(stack: Stack) -> None:
    value = f"e2e-{uuid.uuid4().hex}"
    name = _name()
    Secret.create(name, value, **stack.opts)
    network = {
        "allow_out": ["api.example.com"],
        "rules": {"api.example.com": [{"transform": {"headers": {"X-Key": Secret.fill(name)}}}]},
        "dns_servers": [],
    }
    sandbox = stack.create(network=network)
    try:
        with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": stack.api_key}) as client:
            detail = client.get(f"/sandboxes/{sandbox.sandbox_id}").text
        assert value not in detail and "${e2b.secrets." + name in detail
        assert value not in sandbox.commands.run("env; cat /proc/1/environ || true").stdout
    finally:
        sandbox.kill()
        Secret.destroy(name, **stack.opts)
