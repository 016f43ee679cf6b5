"""``GET /templates`` and ``DELETE /templates/{id}``: a team lists what it may use and deletes its own."""

from __future__ import annotations

import uuid

import httpx

from hutch.catalog import create_api_key, register_template
from tests.api.conftest import BASE_TEMPLATE_ID, Caller, Stack


def _team(stack: Stack) -> tuple[str, Caller]:
    name = f"team-{uuid.uuid4().hex}"
    return name, Caller(stack, stack.run(create_api_key(stack.app.state.catalog, team_name=name)))


def _own_template(stack: Stack, team_name: str, *, public: bool = False) -> str:
    template_id = f"tpl{uuid.uuid4().hex[:17]}"
    stack.run(
        register_template(
            stack.app.state.catalog,
            template_id=template_id,
            aliases=[f"mine-{template_id}"],
            rootfs="/",
            public=public,
            team_name=team_name,
        )
    )
    return template_id


def _listed(caller: Caller) -> dict[str, dict]:
    with caller.http() as client:
        response = client.get("/templates")
    assert response.status_code == 200, response.text
    return {item["templateID"]: item for item in response.json()}


def test_list_shows_built_ins_and_own_templates_in_e2b_shape(stack: Stack) -> None:
    name, caller = _team(stack)
    own = _own_template(stack, name)
    listed = _listed(caller)
    assert {BASE_TEMPLATE_ID, own} <= set(listed)
    base = listed[BASE_TEMPLATE_ID]
    assert base["aliases"] == ["base"] and base["names"] == ["base"] and base["isDefault"] is True
    assert base["buildStatus"] == "ready" and base["envdVersion"] and base["createdBy"] is None
    uuid.UUID(base["buildID"])
    for key in ("cpuCount", "memoryMB", "diskSizeMB", "public", "createdAt", "updatedAt", "spawnCount"):
        assert key in base
    assert listed[own]["isDefault"] is False and listed[own]["public"] is False


def test_another_teams_private_template_is_not_listed(stack: Stack) -> None:
    owner, _ = _team(stack)
    private = _own_template(stack, owner)
    public = _own_template(stack, owner, public=True)
    _, other = _team(stack)
    listed = _listed(other)
    assert private not in listed and public in listed


def test_delete_removes_the_teams_own_template_by_id_or_alias(stack: Stack) -> None:
    name, caller = _team(stack)
    by_id, by_alias = _own_template(stack, name), _own_template(stack, name)
    with caller.http() as client:
        assert client.delete(f"/templates/{by_id}").status_code == 204
        assert client.delete(f"/templates/mine-{by_alias}").status_code == 204
        again = client.delete(f"/templates/{by_id}")
    assert again.status_code == 404 and again.json()["code"] == 404
    assert not {by_id, by_alias} & set(_listed(caller))


def test_delete_refuses_built_ins_and_other_teams_templates(stack: Stack, caller: Caller) -> None:
    owner, _ = _team(stack)
    theirs = _own_template(stack, owner, public=True)
    with caller.http() as client:
        built_in: httpx.Response = client.delete("/templates/base")
        foreign = client.delete(f"/templates/{theirs}")
        unknown = client.delete("/templates/no-such-template")
    assert built_in.status_code == 403 and "built in" in built_in.json()["message"]
    assert foreign.status_code == 404 and unknown.status_code == 404
    assert BASE_TEMPLATE_ID in _listed(caller) and theirs in _listed(caller)


def test_templates_need_an_api_key(stack: Stack) -> None:
    assert httpx.get(f"{stack.api_url}/templates").status_code == 401
    assert httpx.delete(f"{stack.api_url}/templates/base").status_code == 401
