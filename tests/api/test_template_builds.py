"""The template build API over the fake runtime (which cannot build): build requests, names, upload links
and their signatures, status paging, aliases and tags, through the official SDK where it reaches them."""

from __future__ import annotations

import uuid

import httpx
import pytest
from e2b import Template

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
