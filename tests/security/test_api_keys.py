"""API keys on the real stack: a key made over ``/api-keys`` works at once, and once revoked it is refused
at once, by the SDK and by every authenticated route, while the team's sandboxes stay the team's."""

from __future__ import annotations

import re

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException

from tests.stack import Stack

INVALID_KEY = {"code": 401, "message": "invalid API key"}


def _keys(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"X-API-Key": key})


def test_a_revoked_key_is_refused_at_once(stack: Stack) -> None:
    with _keys(stack, stack.api_key) as client:
        created = client.post("/api-keys", json={"name": "security test"})
        assert created.status_code == 201
        key, key_id = created.json()["key"], created.json()["id"]
        assert key_id in {item["id"] for item in client.get("/api-keys").json()}
        assert key not in client.get("/api-keys").text

    opts = {**stack.opts, "api_key": key}
    sandbox = Sandbox.create(**opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert sandbox.commands.run("echo before").stdout.strip() == "before"
        with _keys(stack, stack.api_key) as client:
            assert client.delete(f"/api-keys/{key_id}").status_code == 204

        # No grace period: the very next call with the key is refused.
        with pytest.raises(AuthenticationException):
            Sandbox.create(**opts)
        with pytest.raises(AuthenticationException):
            Sandbox.list(**opts).next_items()
        with pytest.raises(AuthenticationException):
            Sandbox.get_info(sandbox.sandbox_id, **opts)
        with pytest.raises(AuthenticationException):
            Sandbox.set_timeout(sandbox.sandbox_id, 60, **opts)
        with pytest.raises(AuthenticationException):
            Sandbox.connect(sandbox.sandbox_id, **opts)
        with pytest.raises(AuthenticationException):
            Sandbox.kill(sandbox.sandbox_id, **opts)

        paths = httpx.get(f"{stack.api_url}/openapi.json").json()["paths"]
        with _keys(stack, key) as client:
            for path, operations in paths.items():
                # The upload URL of template builds authorises itself (tests/api/test_template_builds.py).
                if path in ("/health", "/templates/{templateID}/files/{hash}/upload"):
                    continue
                url = re.sub(r"\{[^}]+\}", sandbox.sandbox_id, path)
                for method in operations:
                    response = client.request(method.upper(), url, json={})
                    assert response.status_code == 401, (method, path, response.text)
                    # A volume's content takes its token, never an API key (tests/api/test_volumes.py).
                    if not path.startswith("/volumecontent/"):
                        assert response.json() == INVALID_KEY, (method, path)

        # The sandbox is the team's, not the key's: it still runs, and the team's other key reaches it.
        assert Sandbox.get_info(sandbox.sandbox_id, **stack.opts).state.value == "running"
    finally:
        assert Sandbox.kill(sandbox.sandbox_id, **stack.opts)


def test_the_teams_last_key_stays(stack: Stack) -> None:
    with _keys(stack, stack.api_key) as client:
        keys = client.get("/api-keys").json()
        assert len(keys) == 1, "the stack's team has only the key hutch up made"
        refused = client.delete(f"/api-keys/{keys[0]['id']}")
        assert refused.status_code == 409 and refused.json()["code"] == 409
        assert client.get("/api-keys").status_code == 200
