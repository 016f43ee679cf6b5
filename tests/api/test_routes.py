"""What the API tells the edge's routes, and when: a sandbox is opened once it runs, and closed before a
pause or kill begins (while the node still runs it), opened again if its pause fails; a start resets the
routes to the node's running sandboxes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException

from hutch.api import create_app
from hutch.catalog import create_api_key
from hutch.catalog.models import SandboxRow
from hutch.config import Settings
from hutch.errors import BackendUnavailable
from hutch.runtime.fake import FakeRuntime
from tests.api.conftest import Stack, register_test_templates, serving


class Recorder:
    """Routes that remember what they were told, and whether the node ran the sandbox at a close."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime
        self.events: list[tuple[str, object]] = []

    async def open(self, sandbox: SandboxRow) -> None:
        self.events.append(("open", sandbox.sandbox_id))

    async def close(self, sandbox_id: str) -> None:
        running = sandbox_id in {handle.sandbox_id for handle in await self.runtime.list()}
        self.events.append(("close while running" if running else "close", sandbox_id))

    async def reset(self, sandboxes: Iterable[SandboxRow]) -> None:
        self.events.append(("reset", sorted(sandbox.sandbox_id for sandbox in sandboxes)))


@pytest.fixture()
def routed(tmp_path) -> Iterator[tuple[Stack, Recorder, dict]]:
    settings = Settings(data_dir=tmp_path)
    runtime = FakeRuntime(node_id=settings.runtime.node_id)
    recorder = Recorder(runtime)
    with serving(create_app(settings, runtime=runtime, routes=recorder)) as stack:
        register_test_templates(stack)
        key = stack.run(create_api_key(stack.app.state.catalog, team_name="routed"))
        yield stack, recorder, {"api_key": key, "api_url": stack.api_url}


def test_a_sandbox_is_routed_while_it_runs_and_closed_before_it_is_killed(routed):
    _, recorder, opts = routed
    assert recorder.events == [("reset", [])]
    sandbox = Sandbox.create("base", **opts)
    assert recorder.events[-1] == ("open", sandbox.sandbox_id)
    Sandbox.kill(sandbox.sandbox_id, **opts)
    assert recorder.events[-1] == ("close while running", sandbox.sandbox_id)


def test_a_failed_pause_routes_the_sandbox_again(routed):
    _, recorder, opts = routed
    sandbox = Sandbox.create("base", **opts)
    with pytest.raises(SandboxException):
        sandbox.pause()  # the fake runtime cannot pause
    assert recorder.events[-2:] == [("close while running", sandbox.sandbox_id), ("open", sandbox.sandbox_id)]
    sandbox.kill()


def test_a_failed_kill_keeps_the_sandbox_and_its_route(routed, monkeypatch):
    stack, recorder, opts = routed
    sandbox = Sandbox.create("base", **opts)
    runtime = stack.app.state.runtime

    async def broken(sandbox_id: str) -> None:
        raise BackendUnavailable("the node could not kill it")

    monkeypatch.setattr(runtime, "kill", broken)
    with pytest.raises(SandboxException):
        Sandbox.kill(sandbox.sandbox_id, **opts)
    assert recorder.events[-2:] == [("close while running", sandbox.sandbox_id), ("open", sandbox.sandbox_id)]
    assert Sandbox.get_info(sandbox.sandbox_id, **opts).sandbox_id == sandbox.sandbox_id

    monkeypatch.undo()
    Sandbox.kill(sandbox.sandbox_id, **opts)
    assert sandbox.sandbox_id not in {info.sandbox_id for info in Sandbox.list(**opts).next_items()}


def test_another_teams_kill_leaves_the_sandbox_and_its_route(routed):
    stack, recorder, opts = routed
    sandbox = Sandbox.create("base", **opts)
    theirs = {**opts, "api_key": stack.run(create_api_key(stack.app.state.catalog, team_name="other"))}
    assert not Sandbox.kill(sandbox.sandbox_id, **theirs)  # not found, for them
    assert recorder.events[-1] == ("open", sandbox.sandbox_id)
    assert Sandbox.get_info(sandbox.sandbox_id, **opts).sandbox_id == sandbox.sandbox_id
    running = stack.run(stack.app.state.runtime.list())
    assert sandbox.sandbox_id in {handle.sandbox_id for handle in running}
    sandbox.kill()
