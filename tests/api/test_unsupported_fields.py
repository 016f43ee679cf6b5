"""Nothing is dropped silently: every request field the official clients send that this server does not
carry out is a 400 in E2B's error body naming it by its wire name, and the values that ask for nothing
(absent, null, empty, the default) pass. The fields are those of ``capabilities.REFUSED``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from e2b import Sandbox

from hutch.api.services.capabilities import REFUSED
from tests.api.conftest import Caller

UNKNOWN_ID = "a" * 20

# (method, path, body, the field the 400 names): one request per refused field.
REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v2/sandboxes", {"iam": {"tokens": {"aws": {"audience": "s", "tokenType": "JWT"}}}}, "iam"),
    ("POST", "/v2/sandboxes", {"network": {"httpsPorts": [8443]}}, "network.httpsPorts"),
    ("POST", "/sandboxes", {"secure": False}, "secure"),
    ("POST", f"/sandboxes/{UNKNOWN_ID}/pause", {"requireHealthyGuest": True}, "requireHealthyGuest"),
    ("POST", f"/sandboxes/{UNKNOWN_ID}/resume", {"autoPause": True}, "autoPause"),
    ("POST", "/v3/templates", {"name": "refused", "minFreeDiskMb": 2048}, "minFreeDiskMb"),
    ("POST", "/v3/templates", {"name": "refused", "teamID": "prj_other"}, "teamID"),
    (
        "POST",
        f"/v2/templates/{UNKNOWN_ID}/builds/{UNKNOWN_ID}",
        {"fromImage": "debian:13", "fromImageRegistry": {"type": "gcp", "serviceAccountJson": "{}"}},
        "fromImageRegistry",
    ),
]  # fmt: skip

# Requests whose values ask for nothing beyond what the server does anyway, and the status they get: a
# create succeeds; the others reach the service, which knows no such sandbox (or, for a build, finds that
# the fake runtime cannot build).
NEUTRAL: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/v2/sandboxes", {"volumeMounts": [], "mcp": None, "iam": {"tokens": {}}}, 201),
    ("POST", "/v2/sandboxes", {"network": {"rules": {}, "egressProxy": None, "httpsPorts": []}}, 201),
    ("POST", "/sandboxes", {"secure": True, "iam": {}}, 201),
    ("PUT", f"/sandboxes/{UNKNOWN_ID}/network", {"rules": {}, "egressProxy": None}, 404),
    ("POST", f"/sandboxes/{UNKNOWN_ID}/pause", {"requireHealthyGuest": False}, 404),
    ("POST", f"/sandboxes/{UNKNOWN_ID}/resume", {"timeout": 60}, 404),
    (
        "POST",
        f"/v2/templates/{UNKNOWN_ID}/builds/{UNKNOWN_ID}",
        {"fromImage": "debian", "fromImageRegistry": {"type": "registry", "username": "u", "password": ""}},
        501,
    ),
]  # fmt: skip


def call(caller: Caller, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    with caller.http() as client:
        return client.request(method, path, json=body)


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400
    return body["message"]


def with_template(path: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"templateID": "base", **body} if path.endswith("sandboxes") else body


@pytest.mark.parametrize(("method", "path", "body", "field"), REFUSALS)
def test_each_unsupported_field_is_a_400_naming_it(
    caller: Caller, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = set(caller.stack.handles())
    message = refusal(call(caller, method, path, with_template(path, body)))
    assert message.startswith(f"{field} is not supported by this server"), message
    assert set(caller.stack.handles()) <= before  # a refused create starts nothing


def test_every_refused_field_has_a_request_here() -> None:
    named = {field.rsplit(".", 1)[-1] for *_, field in REFUSALS}
    assert {field.name for fields in REFUSED.values() for field in fields} <= named


@pytest.mark.parametrize(("method", "path", "body", "status"), NEUTRAL)
def test_values_that_ask_for_nothing_pass(
    caller: Caller, method: str, path: str, body: dict[str, Any], status: int
) -> None:
    response = call(caller, method, path, with_template(path, body))
    assert response.status_code == status, response.text
    if status == 201:
        assert Sandbox.kill(response.json()["sandboxID"], **caller.opts)


def test_a_memory_snapshot_of_a_crun_sandbox_is_refused(caller: Caller) -> None:
    sandbox = Sandbox.create("base", metadata={"hutch.runtime": "crun"}, **caller.opts)
    try:
        path = f"/sandboxes/{sandbox.sandbox_id}/snapshots"
        message = refusal(call(caller, "POST", path, {"memory": True}))
        assert message.startswith("memory is not supported for snapshots of crun sandboxes: "), message
        assert "keeps files only" in message
        # Without ``memory: true`` the request goes on (to the fake runtime, which cannot snapshot).
        assert call(caller, "POST", path, {"memory": False}).status_code == 501
    finally:
        sandbox.kill()
