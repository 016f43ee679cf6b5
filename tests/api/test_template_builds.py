"""The template build API over the fake runtime (which cannot build): build requests, names, upload links
and their signatures, uploads that never change once stored, the team's quotas on templates and upload
bytes, status paging, aliases and tags, through the official SDK where it reaches them."""

from __future__ import annotations

import uuid

import httpx
import pytest
from e2b import Template

from hutch.catalog.repos import teams
from tests.api.conftest import Caller


def _request(caller: Caller, name: str, **body) -> dict:
    with caller.http() as http:
        response = http.post("/v3/templates", json={"name": name, **body})
    assert response.status_code == 202, response.text
    return response.json()


def test_a_build_request_makes_a_template_with_a_uuid_build(caller: Caller) -> None:
    name = f"app-{uuid.uuid4().hex[:8]}"
    created = _request(caller, f"{name}:v1", tags=["extra"], cpuCount=1, memoryMB=512)
    uuid.UUID(created["buildID"])
    assert created["aliases"] == [name] and created["tags"] == ["v1", "extra"]
    assert created["names"] == [f"{name}:v1", f"{name}:extra"] and created["public"] is False
    again = _request(caller, name)
    assert again["templateID"] == created["templateID"] and again["buildID"] != created["buildID"]
    assert again["tags"] == ["default"]
    assert Template.exists(name, **caller.opts)


@pytest.mark.parametrize("name", ["UPPER", "a b", "x:bad tag", "-lead", "a/b/c", ""])
def test_bad_names_are_refused(caller: Caller, name: str) -> None:
    with caller.http() as http:
        response = http.post("/v3/templates", json={"name": name})
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"}


def test_a_name_taken_by_another_team_or_a_builtin_is_a_conflict(caller: Caller, stack) -> None:
    name = f"taken-{uuid.uuid4().hex[:8]}"
    _request(caller, name)
    other = Caller(stack, stack.new_key())
    with other.http() as http:
        assert http.post("/v3/templates", json={"name": name}).status_code == 409
        assert http.post("/v3/templates", json={"name": "base"}).status_code == 409
        # Another team's private template exists, but is not its to see.
        assert http.get(f"/templates/aliases/{name}").status_code == 403
    assert Template.exists(name, **other.opts)


def test_upload_links_and_their_signatures(caller: Caller) -> None:
    created = _request(caller, f"files-{uuid.uuid4().hex[:8]}")
    template_id, files_hash = created["templateID"], "0f" * 32
    with caller.http() as http:
        link = http.get(f"/templates/{template_id}/files/{files_hash}")
        assert link.status_code == 201 and link.json()["present"] is False
        url = link.json()["url"]
        assert http.get(f"/templates/{template_id}/files/not-a-hash").status_code == 400
        assert http.get(f"/templates/unknown/files/{files_hash}").status_code == 404
    assert httpx.put(url.replace("signature=", "signature=00"), content=b"x").status_code == 401
    assert httpx.put(url.replace("expires=", "expires=1"), content=b"x").status_code == 401
    assert httpx.put(url, content=b"").status_code == 400
    assert httpx.put(url, content=b"tar bytes").status_code == 201
    with caller.http() as http:
        assert http.get(f"/templates/{template_id}/files/{files_hash}").json() == {"present": True}


def test_status_of_a_waiting_build_and_unknown_ones(caller: Caller) -> None:
    created = _request(caller, f"status-{uuid.uuid4().hex[:8]}")
    template_id, build_id = created["templateID"], created["buildID"]
    with caller.http() as http:
        status = http.get(f"/templates/{template_id}/builds/{build_id}/status", params={"logsOffset": 0})
        assert status.status_code == 200
        assert status.json() == {
            "templateID": template_id, "buildID": build_id, "status": "waiting", "logs": [], "logEntries": [],
        }  # fmt: skip
        assert http.get(f"/templates/{template_id}/builds/{uuid.uuid4()}/status").status_code == 404
        assert http.get(f"/templates/{template_id}/builds/{build_id}/status?level=loud").status_code == 400


def test_starting_a_build_on_a_runtime_that_cannot_build(caller: Caller) -> None:
    created = _request(caller, f"nobuild-{uuid.uuid4().hex[:8]}")
    path = f"/v2/templates/{created['templateID']}/builds/{created['buildID']}"
    with caller.http() as http:
        response = http.post(path, json={"fromTemplate": "base", "steps": []})
    assert response.status_code == 501 or response.status_code == 400
    assert "cannot build" in response.json()["message"]


def _set_quotas(caller: Caller, **limits: int) -> None:
    async def change() -> None:
        async with caller.stack.app.state.catalog.transaction() as session:
            team = await teams.for_key(session, caller.api_key)
            assert team is not None
            await teams.set_quotas(session, team, dict(limits))

    caller.stack.run(change())


def _upload_url(caller: Caller, template_id: str, files_hash: str) -> str:
    with caller.http() as http:
        link = http.get(f"/templates/{template_id}/files/{files_hash}")
    assert link.status_code == 201, link.text
    return link.json()["url"]


def test_other_bytes_under_an_uploaded_hash_are_refused(caller: Caller) -> None:
    template_id, files_hash = _request(caller, f"same-{uuid.uuid4().hex[:8]}")["templateID"], "1e" * 32
    url = _upload_url(caller, template_id, files_hash)
    assert httpx.put(url, content=b"the real files").status_code == 201
    assert httpx.put(url, content=b"the real files").status_code == 201
    refused = httpx.put(url, content=b"other files")
    assert refused.status_code == 409 and "already uploaded with other content" in refused.json()["message"]
    assert set(refused.json()) == {"code", "message"}


def test_a_team_beyond_its_templates_quota_gets_a_429(caller: Caller) -> None:
    _set_quotas(caller, templates=1)
    first = f"quota-{uuid.uuid4().hex[:8]}"
    _request(caller, first)
    with caller.http() as http:
        refused = http.post("/v3/templates", json={"name": f"quota-{uuid.uuid4().hex[:8]}"})
        assert refused.status_code == 429 and "quota templates exceeded" in refused.json()["message"]
        # A new build of the template it has is no new template.
        assert http.post("/v3/templates", json={"name": first}).status_code == 202


def test_a_team_beyond_its_upload_quota_gets_a_429_and_keeps_nothing(caller: Caller) -> None:
    _set_quotas(caller, upload_mb=1)
    template_id = _request(caller, f"bytes-{uuid.uuid4().hex[:8]}")["templateID"]
    url = _upload_url(caller, template_id, "2a" * 32)
    assert httpx.put(url, content=b"x" * (600 << 10)).status_code == 201
    refused = httpx.put(_upload_url(caller, template_id, "2b" * 32), content=b"y" * (600 << 10))
    assert refused.status_code == 429 and "quota upload_mb exceeded" in refused.json()["message"]
    with caller.http() as http:
        assert http.get(f"/templates/{template_id}/files/{'2b' * 32}").json()["present"] is False
