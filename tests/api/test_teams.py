"""The operator's ``/admin/teams`` over the fake runtime: only the operator key opens it (and it opens no team
route); teams are made with their own quotas, changed, given keys and deleted (their sandboxes killed, or
the deletion refused); and a team's quotas hold against the official SDK, calls made at once included."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException, RateLimitException

from hutch.secret_files import OPERATOR_KEY_HEADER, operator_key
from tests.api.conftest import Caller, Stack


@pytest.fixture()
def admin(stack: Stack) -> httpx.Client:
    key = operator_key(stack.app.state.settings.data_dir)
    with httpx.Client(base_url=f"{stack.api_url}/admin", headers={OPERATOR_KEY_HEADER: key}) as client:
        yield client


def _team(admin: httpx.Client, **quotas: int) -> dict[str, Any]:
    response = admin.post("/teams", json={"name": f"t-{uuid.uuid4().hex[:12]}", "quotas": quotas})
    assert response.status_code == 201, response.text
    return response.json()


def _key(admin: httpx.Client, team: dict[str, Any]) -> str:
    response = admin.post(f"/teams/{team['teamID']}/keys", json={"name": "ops"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def _opts(stack: Stack, key: str) -> dict[str, Any]:
    return {"api_key": key, "api_url": stack.api_url}


def test_only_the_operator_key_opens_the_admin_routes(stack: Stack, caller: Caller) -> None:
    routes = [("GET", "/admin/teams"), ("POST", "/admin/teams"), ("DELETE", "/admin/teams/x")]
    headers: list[dict[str, str]] = [
        {},
        {"X-API-Key": caller.api_key},
        {OPERATOR_KEY_HEADER: caller.api_key},
        {OPERATOR_KEY_HEADER: "0" * 64},
        {OPERATOR_KEY_HEADER: ""},
    ]
    for method, path in routes:
        for header in headers:
            response = httpx.request(method, f"{stack.api_url}{path}", headers=header, json={"name": "x"})
            assert response.status_code == 401, (method, path, header, response.text)
            assert response.json()["code"] == 401


def test_the_operator_key_opens_no_team_route(stack: Stack) -> None:
    key = operator_key(stack.app.state.settings.data_dir)
    with pytest.raises(AuthenticationException):
        Sandbox.list(**_opts(stack, key)).next_items()
    response = httpx.get(f"{stack.api_url}/api-keys", headers={OPERATOR_KEY_HEADER: key, "X-API-Key": key})
    assert response.status_code == 401


def test_a_team_is_made_with_its_quotas_listed_changed_and_given_keys(
    stack: Stack, admin: httpx.Client
) -> None:
    team = _team(admin, concurrent_sandboxes=3, api_keys=5)
    defaults = stack.app.state.settings.quotas.model_dump()
    assert team["customQuotas"] == {"concurrent_sandboxes": 3, "api_keys": 5}
    assert team["quotas"] == {**defaults, "concurrent_sandboxes": 3, "api_keys": 5}
    assert team["sandboxes"] == 0
    assert team["teamID"] in {item["teamID"] for item in admin.get("/teams").json()}

    changed = admin.patch(f"/teams/{team['teamID']}", json={"quotas": {"api_keys": None, "snapshots": 0}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["customQuotas"] == {"concurrent_sandboxes": 3, "snapshots": 0}
    assert changed.json()["quotas"]["api_keys"] == defaults["api_keys"]

    key = _key(admin, team)
    sandbox = Sandbox.create(template="base", **_opts(stack, key))
    try:
        [listed] = [item for item in admin.get("/teams").json() if item["teamID"] == team["teamID"]]
        assert listed["sandboxes"] == 1
    finally:
        sandbox.kill()


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "ok", "quotas": {"sandboxes": 1}}, "unknown quota 'sandboxes'"),
        ({"name": "ok", "quotas": {"api_keys": -1}}, "quotas.api_keys"),
        ({"name": "ok", "quotas": {"api_keys": "many"}}, "quotas.api_keys"),
        ({"name": "ok", "owner": "me"}, "body.owner"),
        ({"name": "../x"}, "body.name"),
        ({"name": ""}, "body.name"),
        ({}, "body.name"),
    ],
)
def test_bad_team_bodies_are_400_naming_the_field(admin: httpx.Client, body: dict, named: str) -> None:
    response = admin.post("/teams", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 400 and named in response.json()["message"]


def test_a_taken_name_is_409_and_an_unknown_team_404(admin: httpx.Client) -> None:
    team = _team(admin)
    again = admin.post("/teams", json={"name": team["name"]})
    assert again.status_code == 409 and team["name"] in again.json()["message"]
    unknown = str(uuid.uuid4())
    assert admin.patch(f"/teams/{unknown}", json={"quotas": {}}).status_code == 404
    assert admin.post(f"/teams/{unknown}/keys", json={"name": "k"}).status_code == 404
    assert admin.delete(f"/teams/{unknown}").status_code == 404
    bad = admin.patch(f"/teams/{team['teamID']}", json={"quotas": {"gpus": 1}})
    assert bad.status_code == 400 and "unknown quota 'gpus'" in bad.json()["message"]


def test_deleting_a_team_with_sandboxes_is_refused_unless_forced_which_kills_them(
    stack: Stack, admin: httpx.Client
) -> None:
    team = _team(admin)
    key = _key(admin, team)
    sandboxes = [Sandbox.create(template="base", **_opts(stack, key)) for _ in range(2)]
    ids = {sandbox.sandbox_id for sandbox in sandboxes}

    refused = admin.delete(f"/teams/{team['teamID']}")
    assert refused.status_code == 409 and "2 sandboxes" in refused.json()["message"]
    assert ids <= set(stack.handles())

    assert admin.delete(f"/teams/{team['teamID']}", params={"force": "true"}).status_code == 204
    assert not ids & set(stack.handles())
    assert team["teamID"] not in {item["teamID"] for item in admin.get("/teams").json()}
    with pytest.raises(AuthenticationException):
        Sandbox.list(**_opts(stack, key)).next_items()


def test_a_team_holds_at_most_its_concurrent_sandboxes(stack: Stack, admin: httpx.Client) -> None:
    key = _key(admin, _team(admin, concurrent_sandboxes=1))
    first = Sandbox.create(template="base", **_opts(stack, key))
    try:
        with pytest.raises(RateLimitException, match="concurrent_sandboxes"):
            Sandbox.create(template="base", **_opts(stack, key))
    finally:
        first.kill()
    Sandbox.create(template="base", **_opts(stack, key)).kill()  # room again


@pytest.mark.parametrize("attempt", range(3))
def test_creates_at_once_cannot_pass_the_quota_together(
    stack: Stack, admin: httpx.Client, attempt: int
) -> None:
    key = _key(admin, _team(admin, concurrent_sandboxes=2))

    def create(_: int) -> Sandbox | Exception:
        try:
            return Sandbox.create(template="base", **_opts(stack, key))
        except RateLimitException as error:
            return error

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(create, range(12)))
    made = [result for result in results if isinstance(result, Sandbox)]
    try:
        assert len(made) == 2
        assert all(isinstance(result, RateLimitException) for result in results if result not in made)
    finally:
        for sandbox in made:
            sandbox.kill()


def test_a_team_holds_at_most_its_api_keys(stack: Stack, admin: httpx.Client) -> None:
    team = _team(admin, api_keys=2)
    key = _key(admin, team)
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": key}) as client:
        assert client.post("/api-keys", json={"name": "second"}).status_code == 201
        refused = client.post("/api-keys", json={"name": "third"})
        assert refused.status_code == 429
        assert refused.json() == {"code": 429, "message": "quota api_keys exceeded: the team's limit is 2"}
        assert len(client.get("/api-keys").json()) == 2
    assert admin.post(f"/teams/{team['teamID']}/keys", json={"name": "k"}).status_code == 429
