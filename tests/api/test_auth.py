"""API keys: a missing or wrong key is 401, and a team sees only its own sandboxes and templates (and the
installation's, and other teams' public ones)."""

from __future__ import annotations

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException, SandboxException, SandboxNotFoundException

from hutch.catalog import register_template
from hutch.catalog.models import ApiKey, Team
from hutch.catalog.repos import teams
from tests.api.conftest import Caller


@pytest.fixture()
def stranger(caller: Caller) -> Caller:
    return Caller(stack=caller.stack, api_key=caller.stack.new_key())


def test_wrong_key_is_an_authentication_error(caller: Caller) -> None:
    sandbox = Sandbox.create(**caller.opts)
    wrong = {"api_key": "e2b_" + "0" * 40, "api_url": caller.stack.api_url}
    with pytest.raises(AuthenticationException):
        Sandbox.create(**wrong)
    with pytest.raises(AuthenticationException):
        Sandbox.list(**wrong).next_items()
    with pytest.raises(AuthenticationException):
        Sandbox.get_info(sandbox.sandbox_id, **wrong)
    with pytest.raises(AuthenticationException):
        Sandbox.kill(sandbox.sandbox_id, **wrong)
    assert sandbox.kill()


def test_missing_key_is_401_with_an_error_body(caller: Caller) -> None:
    for method, path in [("POST", "/v2/sandboxes"), ("GET", "/v2/sandboxes"), ("GET", "/sandboxes/x")]:
        response = httpx.request(method, f"{caller.stack.api_url}{path}", json={"templateID": "base"})
        assert response.status_code == 401
        body = response.json()
        assert body["code"] == 401 and "X-API-Key" in body["message"]


def test_other_teams_sandboxes_are_not_found(caller: Caller, stranger: Caller) -> None:
    sandbox = Sandbox.create(**caller.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(sandbox.sandbox_id, **stranger.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.set_timeout(sandbox.sandbox_id, 1, **stranger.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox.sandbox_id, **stranger.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_metrics(sandbox.sandbox_id, **stranger.opts)
    assert Sandbox.kill(sandbox.sandbox_id, **stranger.opts) is False

    assert sandbox.get_info().state.value == "running"
    assert sandbox.kill()


def _team_of(caller: Caller) -> Team:
    async def lookup() -> Team:
        async with caller.stack.app.state.catalog.transaction() as session:
            found = await teams.key_with_team(session, caller.api_key)
            assert found is not None
            stored, team = found
            assert isinstance(stored, ApiKey)
            return team

    return caller.stack.run(lookup())


def test_other_teams_private_templates_are_not_found(caller: Caller, stranger: Caller) -> None:
    owner = _team_of(stranger).name
    catalog = caller.stack.app.state.catalog
    private, shared = f"private-{owner}", f"shared-{owner}"
    caller.stack.run(
        register_template(catalog, template_id=private, rootfs="/", team_name=owner, public=False)
    )
    caller.stack.run(register_template(catalog, template_id=shared, rootfs="/", team_name=owner, public=True))

    with pytest.raises(SandboxException) as refused:
        Sandbox.create(private, **caller.opts)
    assert "404" in str(refused.value) and private not in str(refused.value).split("known templates:")[1]
    with caller.http() as client:
        response = client.post("/v2/sandboxes", json={"templateID": private})
    assert response.status_code == 404 and response.json()["code"] == 404

    # The owner uses it; everyone uses the owner's public template and the installation's.
    for sandbox in (
        Sandbox.create(private, **stranger.opts),
        Sandbox.create(shared, **caller.opts),
        Sandbox.create("base", **caller.opts),
    ):
        assert sandbox.kill()
