"""API keys: a missing or wrong key is 401, and a team sees only its own sandboxes."""

from __future__ import annotations

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException, SandboxNotFoundException

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
