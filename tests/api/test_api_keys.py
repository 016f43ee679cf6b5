"""``/api-keys``: a team lists, creates, renames and revokes its keys with one of them (``X-API-Key``)."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException

from tests.api.conftest import Caller

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _create(caller: Caller, name: str) -> dict:
    with caller.http() as client:
        response = client.post("/api-keys", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def _list(caller: Caller) -> list[dict]:
    with caller.http() as client:
        response = client.get("/api-keys")
    assert response.status_code == 200, response.text
    return response.json()


def test_create_returns_the_key_once_and_list_shows_only_its_mask(caller: Caller) -> None:
    created = _create(caller, "ci")
    key = created["key"]
    assert re.fullmatch(r"e2b_[0-9a-f]{40}", key) and UUID.fullmatch(created["id"])
    assert created["name"] == "ci" and created["createdBy"] is None and created["lastUsed"] is None
    body = key.removeprefix("e2b_")
    assert created["mask"] == {
        "prefix": "e2b_",
        "valueLength": 40,
        "maskedValuePrefix": body[:2],
        "maskedValueSuffix": body[-4:],
    }
    datetime.fromisoformat(created["createdAt"])

    listed = _list(caller)
    assert [item["name"] for item in listed] == ["Unnamed API key", "ci"]
    assert key not in str(listed)
    [mine] = [item for item in listed if item["id"] == created["id"]]
    assert mine["mask"] == created["mask"] and "key" not in mine
    # The new key works at once, for the same team.
    assert Sandbox.list(api_key=key, api_url=caller.stack.api_url).next_items() == []
    assert {item["id"] for item in _list(Caller(caller.stack, key))} == {item["id"] for item in listed}


def test_list_shows_when_a_key_was_last_used(caller: Caller) -> None:
    [first] = _list(caller)
    assert first["lastUsed"] is not None
    datetime.fromisoformat(first["lastUsed"])


def test_rename(caller: Caller) -> None:
    created = _create(caller, "old name")
    with caller.http() as client:
        response = client.patch(f"/api-keys/{created['id']}", json={"name": "new name"})
        assert response.status_code == 200 and response.content == b""
        assert client.patch(f"/api-keys/{created['id']}", json={"name": ""}).status_code == 400
        assert client.patch(f"/api-keys/{created['id']}", json={}).status_code == 400
    assert [item["name"] for item in _list(caller) if item["id"] == created["id"]] == ["new name"]


def test_create_wants_a_name(caller: Caller) -> None:
    with caller.http() as client:
        for body in ({}, {"name": ""}, {"name": 3}):
            response = client.post("/api-keys", json=body)
            assert response.status_code == 400 and response.json()["code"] == 400


def test_a_revoked_key_is_refused_at_once(caller: Caller) -> None:
    created = _create(caller, "short-lived")
    revoked = Caller(caller.stack, created["key"])
    sandbox = Sandbox.create(**revoked.opts)
    with caller.http() as client:
        assert client.delete(f"/api-keys/{created['id']}").status_code == 204
    with pytest.raises(AuthenticationException):
        Sandbox.list(**revoked.opts).next_items()
    with pytest.raises(AuthenticationException):
        Sandbox.get_info(sandbox.sandbox_id, **revoked.opts)
    with revoked.http() as client:
        response = client.get("/api-keys")
    assert response.status_code == 401 and response.json() == {"code": 401, "message": "invalid API key"}
    # The team's sandbox is still the team's, for its other keys.
    assert Sandbox.kill(sandbox.sandbox_id, **caller.opts)
    assert created["id"] not in {item["id"] for item in _list(caller)}


def test_a_revoked_key_is_refused_by_every_authenticated_route(caller: Caller) -> None:
    created = _create(caller, "revoked")
    with caller.http() as client:
        assert client.delete(f"/api-keys/{created['id']}").status_code == 204
    paths = httpx.get(f"{caller.stack.api_url}/openapi.json").json()["paths"]
    # The health check, and the upload URL of template builds, which authorises itself (its signature is
    # checked in tests/api/test_template_builds.py).
    unauthenticated = {"/health", "/templates/{templateID}/files/{hash}/upload"}
    # A volume's content API authorises with the volume's token (tests/api/test_volumes.py).
    unauthenticated |= {path for path in paths if path.startswith("/volumecontent/")}
    routes = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path not in unauthenticated
        for method in operations
    ]
    assert len(routes) >= 15
    with Caller(caller.stack, created["key"]).http() as client:
        for method, path in routes:
            url = re.sub(r"\{[^}]+\}", "x", path)
            response = client.request(method, url, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json() == {"code": 401, "message": "invalid API key"}, (method, path)


def test_a_key_may_revoke_itself_but_not_the_teams_last_one(caller: Caller) -> None:
    [only] = _list(caller)
    with caller.http() as client:
        response = client.delete(f"/api-keys/{only['id']}")
    assert response.status_code == 409
    assert response.json()["code"] == 409 and "last API key" in response.json()["message"]

    other = _create(caller, "other")
    with caller.http() as client:
        assert client.delete(f"/api-keys/{only['id']}").status_code == 204
        assert client.get("/api-keys").status_code == 401
    assert [item["id"] for item in _list(Caller(caller.stack, other["key"]))] == [other["id"]]


def test_another_teams_keys_are_not_found(caller: Caller) -> None:
    stranger = Caller(caller.stack, caller.stack.new_key())
    [theirs] = _list(stranger)
    _create(caller, "spare")
    with caller.http() as client:
        for response in (
            client.delete(f"/api-keys/{theirs['id']}"),
            client.patch(f"/api-keys/{theirs['id']}", json={"name": "mine now"}),
            client.delete("/api-keys/no-such-key"),
        ):
            assert response.status_code == 404 and response.json()["code"] == 404
    assert [(item["id"], item["name"]) for item in _list(stranger)] == [(theirs["id"], theirs["name"])]
    assert theirs["id"] not in {item["id"] for item in _list(caller)}


def test_the_routes_want_a_key(caller: Caller) -> None:
    for method in ("GET", "POST"):
        response = httpx.request(method, f"{caller.stack.api_url}/api-keys", json={"name": "x"})
        assert response.status_code == 401 and response.json()["code"] == 401
