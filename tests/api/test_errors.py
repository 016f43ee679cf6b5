"""Error answers: E2B's ``{"code", "message"}`` body for bad input, unknown things and runtime failures,
and nothing left behind when a create fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from e2b import Sandbox
from e2b.api.client.api.sandboxes import post_sandboxes, post_sandboxes_sandbox_id_connect
from e2b.api.client.models import ConnectSandbox, NewSandbox
from e2b.api.client_sync import get_api_client
from e2b.connection_config import ConnectionConfig
from e2b.exceptions import SandboxException, SandboxNotFoundException

from hutch.api import create_app
from hutch.catalog import register_template
from hutch.config import Settings
from hutch.errors import BackendUnavailable
from hutch.runtime.fake import FakeRuntime
from hutch.runtime.types import SandboxHandle, SandboxSpec
from tests.api.conftest import BASE_TEMPLATE_ID, OTHER_TEMPLATE_ID, Caller, serving

UNKNOWN_ID = "a" * 20


class ScriptedRuntime(FakeRuntime):
    """The fake runtime, except for the templates named after what they do."""

    slow_creates = 0

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        match spec.template.template_id:
            case "broken":
                raise BackendUnavailable("no capacity on this node")
            case "crashing":
                raise RuntimeError("boom")
            case "slow":
                self.slow_creates += 1
                await asyncio.sleep(0.5)
        return await super().create(spec)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Caller]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hutch-scripted"))
    with serving(create_app(settings, runtime=ScriptedRuntime())) as stack:
        for name in ("broken", "crashing", "slow"):
            stack.run(register_template(stack.app.state.catalog, template_id=name, rootfs="/"))
        yield Caller(stack=stack, api_key=stack.new_key())


def post(caller: Caller, path: str, **kwargs) -> httpx.Response:
    with caller.http() as client:
        return client.post(path, **kwargs)


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]
    return body["message"]


def test_unknown_sandbox(caller: Caller) -> None:
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info(UNKNOWN_ID, **caller.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.set_timeout(UNKNOWN_ID, 10, **caller.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(UNKNOWN_ID, **caller.opts)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_metrics(UNKNOWN_ID, **caller.opts)
    assert Sandbox.kill(UNKNOWN_ID, **caller.opts) is False
    with caller.http() as client:
        assert UNKNOWN_ID in assert_error(client.delete(f"/sandboxes/{UNKNOWN_ID}"), 404)


def test_unknown_template_lists_the_known_names(caller: Caller) -> None:
    with pytest.raises(SandboxException) as raised:
        Sandbox.create("no-such-template", **caller.opts)
    message = str(raised.value)
    assert message.startswith("404:") and "no-such-template" in message
    for name in ("base", "other", BASE_TEMPLATE_ID, OTHER_TEMPLATE_ID):
        assert name in message


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"templateID": 5},
        {"templateID": ""},
        {"templateID": "base", "timeout": -1},
        {"templateID": "base", "timeout": "soon"},
        {"templateID": "base", "metadata": {"a": 1}},
        {"templateID": "base", "envVars": ["A=1"]},
    ],
)
def test_invalid_create_bodies_are_400(caller: Caller, body: dict) -> None:
    assert_error(post(caller, "/v2/sandboxes", json=body), 400)


def test_malformed_json_and_headers_are_400(caller: Caller) -> None:
    headers = {"content-type": "application/json"}
    assert_error(post(caller, "/v2/sandboxes", content=b"{not json", headers=headers), 400)
    bad_key = {"Idempotency-Key": "Not Valid!"}
    assert_error(post(caller, "/v2/sandboxes", json={"templateID": "base"}, headers=bad_key), 400)


def test_timeout_beyond_the_maximum_is_400(caller: Caller) -> None:
    message = assert_error(post(caller, "/v2/sandboxes", json={"templateID": "base", "timeout": 10**9}), 400)
    assert "timeout" in message
    assert Sandbox.list(**caller.opts).next_items() == []


def test_invalid_timeout_and_list_queries_are_400(caller: Caller) -> None:
    assert_error(post(caller, f"/sandboxes/{UNKNOWN_ID}/timeout", json={}), 400)
    with caller.http() as client:
        assert_error(client.get("/v2/sandboxes", params={"state": "sleeping"}), 400)
        assert_error(client.get("/v2/sandboxes", params={"metadata": "no-equals-sign"}), 400)
        assert_error(client.get("/v2/sandboxes", params={"order": "sideways"}), 400)
        assert_error(client.get("/v2/sandboxes", params={"startedAfter": "yesterday"}), 400)


def test_routing_errors_have_the_error_body(caller: Caller) -> None:
    with caller.http() as client:
        assert_error(client.get("/no/such/path"), 404)
        assert_error(client.put("/v2/sandboxes"), 405)


def test_runtime_failure_is_an_error_and_leaves_nothing(scripted: Caller) -> None:
    with pytest.raises(SandboxException, match="500: no capacity on this node"):
        Sandbox.create("broken", **scripted.opts)
    with pytest.raises(SandboxException, match="500: internal error"):
        Sandbox.create("crashing", **scripted.opts)
    assert Sandbox.list(**scripted.opts).next_items() == []
    assert scripted.stack.handles() == {}


def test_an_unexpected_error_closes_its_connection_and_the_next_request_passes(scripted: Caller) -> None:
    with scripted.http() as client:
        for _ in range(5):  # on one kept-alive connection, as the SDK's pool does
            crashed = client.post("/v2/sandboxes", json={"templateID": "crashing"})
            assert_error(crashed, 500)
            assert crashed.headers["connection"] == "close"
            assert client.get("/v2/sandboxes").status_code == 200


def test_concurrent_creates_with_one_idempotency_key_make_one_sandbox(scripted: Caller) -> None:
    def create(_: int) -> str:
        return Sandbox.create("slow", idempotency_key="raced-key", **scripted.opts).sandbox_id

    with ThreadPoolExecutor(3) as pool:
        ids = set(pool.map(create, range(3)))
    assert len(ids) == 1
    assert scripted.stack.app.state.runtime.slow_creates == 3
    # The losers' sandboxes were killed again: only the winner runs.
    assert set(scripted.stack.handles()) == ids
    Sandbox.kill(ids.pop(), **scripted.opts)


def test_v1_create_and_connect(caller: Caller) -> None:
    client = get_api_client(ConnectionConfig(**caller.opts))
    created = post_sandboxes.sync_detailed(client=client, body=NewSandbox(template_id="base", secure=True))
    assert created.status_code == 201
    sandbox_id = created.parsed.sandbox_id
    info = Sandbox.get_info(sandbox_id, **caller.opts)
    assert abs((info.end_at - info.started_at).total_seconds() - 15) < 2

    connected = post_sandboxes_sandbox_id_connect.sync_detailed(
        sandbox_id, client=client, body=ConnectSandbox(timeout=60)
    )
    assert connected.status_code == 200 and connected.parsed.sandbox_id == sandbox_id
    assert (Sandbox.get_info(sandbox_id, **caller.opts).end_at - info.end_at).total_seconds() > 40
    assert_error(post(caller, f"/sandboxes/{sandbox_id}/connect", json={}), 400)
    assert Sandbox.kill(sandbox_id, **caller.opts)
