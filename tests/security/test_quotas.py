"""Teams on the real stack, made over the operator's routes, each with its own API key: a team's quotas are
429s that the official SDK raises (sandboxes, resumes and forks beyond ``concurrent_sandboxes``, snapshots
beyond ``snapshots``, keys beyond ``api_keys``), and one team can neither see nor touch another's
sandboxes, snapshots or templates."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import RateLimitException, SandboxException, SandboxNotFoundException

from tests.stack import Stack, Team


@pytest.fixture()
def teams(stack: Stack) -> Iterator[list[Team]]:
    """Teams the test makes with ``make(**quotas)``; removed afterwards, with anything they still run."""
    made: list[Team] = []
    yield made
    with stack.admin() as admin:
        for team in made:
            assert admin.delete(f"/teams/{team.team_id}", params={"force": "true"}).status_code == 204


def _team(stack: Stack, teams: list[Team], **quotas: int) -> Team:
    team = stack.new_team(**quotas)
    teams.append(team)
    return team


def test_sandboxes_resumes_and_forks_beyond_the_quota_are_429(stack: Stack, teams: list[Team]) -> None:
    team = _team(stack, teams, concurrent_sandboxes=2)
    first, second = team.create(), team.create()
    with pytest.raises(RateLimitException, match="concurrent_sandboxes"):
        team.create()
    with pytest.raises(RateLimitException, match="concurrent_sandboxes"):
        first.fork(count=2)

    second.pause()  # a paused sandbox leaves room
    third = team.create()
    with pytest.raises(RateLimitException, match="concurrent_sandboxes"):
        Sandbox.connect(second.sandbox_id, **team.opts)
    assert Sandbox.get_info(second.sandbox_id, **team.opts).state.value == "paused"

    third.kill()
    resumed = Sandbox.connect(second.sandbox_id, **team.opts)
    assert resumed.commands.run("echo back").stdout.strip() == "back"
    first.kill()
    # One fork fits beside the two running sandboxes, the other is a 429 of its own.
    made, refused = Sandbox.fork(second.sandbox_id, count=2, **team.opts)
    assert isinstance(made, Sandbox) and isinstance(refused, RateLimitException)
    stack.seen.add(made.sandbox_id)
    assert made.commands.run("echo fork").stdout.strip() == "fork"


def test_snapshots_and_keys_beyond_the_quota_are_429(stack: Stack, teams: list[Team]) -> None:
    team = _team(stack, teams, snapshots=1, api_keys=2)
    sandbox = team.create()
    snapshot = sandbox.create_snapshot()
    with pytest.raises(RateLimitException, match="snapshots"):
        sandbox.create_snapshot()
    assert Sandbox.delete_snapshot(snapshot.snapshot_id, **team.opts)
    sandbox.create_snapshot()  # room again

    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": team.api_key}) as client:
        assert client.post("/api-keys", json={"name": "second"}).status_code == 201
        refused = client.post("/api-keys", json={"name": "third"})
    assert refused.status_code == 429
    assert refused.json() == {"code": 429, "message": "quota api_keys exceeded: the team's limit is 2"}


def test_a_team_cannot_reach_another_teams_sandboxes_or_snapshots(stack: Stack, teams: list[Team]) -> None:
    owner, other = _team(stack, teams), _team(stack, teams)
    sandbox = owner.create()
    snapshot = sandbox.create_snapshot()
    sandbox_id = sandbox.sandbox_id

    assert sandbox_id not in {item.sandbox_id for item in Sandbox.list(**other.opts).next_items()}
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sandbox_id, **other.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox_id, **other.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.set_timeout(sandbox_id, 5, **other.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.pause(sandbox_id, **other.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.create_snapshot(sandbox_id, **other.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.fork(sandbox_id, **other.opts)
    assert Sandbox.kill(sandbox_id, **other.opts) is False

    assert snapshot.snapshot_id not in {
        s.snapshot_id for s in Sandbox.list_snapshots(**other.opts).next_items()
    }
    with pytest.raises(SandboxException, match="404: template") as unknown:
        Sandbox.create(template=snapshot.snapshot_id, **other.opts)
    assert snapshot.snapshot_id not in str(unknown.value).partition("known templates:")[2]
    assert Sandbox.delete_snapshot(snapshot.snapshot_id, **other.opts) is False
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": other.api_key}) as client:
        assert snapshot.snapshot_id not in client.get("/templates").text
        assert client.get(f"/templates/{snapshot.snapshot_id}").status_code == 404

    # All of that left the owner's sandbox and snapshot as they were.
    assert Sandbox.get_info(sandbox_id, **owner.opts).state.value == "running"
    assert sandbox.commands.run("echo still").stdout.strip() == "still"
    from_snapshot = owner.create(template=snapshot.snapshot_id)
    assert from_snapshot.commands.run("echo copy").stdout.strip() == "copy"
