"""Create, inspect, connect to and kill sandboxes through the official SDK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException

from hutch.api import create_app
from hutch.config import Settings
from hutch.envd.version import VERSION
from hutch.runtime.fake import FakeRuntime
from tests.api.conftest import BASE_TEMPLATE_ID, Caller, register_test_templates, serving


def test_create_returns_a_ready_sandbox_with_its_details(caller: Caller) -> None:
    before = datetime.now(UTC)
    sandbox = Sandbox.create("base", timeout=120, metadata={"owner": "tests", "run": "1"}, **caller.opts)
    info = sandbox.get_info()

    assert info.sandbox_id == sandbox.sandbox_id
    assert len(sandbox.sandbox_id) == 20 and sandbox.sandbox_id.isalnum()
    assert info.template_id == BASE_TEMPLATE_ID
    assert info.name == "base"
    assert info.metadata == {"owner": "tests", "run": "1"}
    assert info.state.value == "running"
    assert info.envd_version == VERSION
    assert (info.cpu_count, info.memory_mb) == (2, 512)
    assert info.sandbox_domain == "hutch.localhost"  # the TLS edge's, E2B_DOMAIN
    assert before - timedelta(seconds=1) <= info.started_at <= datetime.now(UTC)
    assert abs((info.end_at - info.started_at).total_seconds() - 120) < 2
    # envd answers as soon as create returns.
    assert httpx.get(f"{caller.stack.envd_url(sandbox.sandbox_id)}/health").status_code == 204
    assert sandbox.kill()


def test_default_timeout_is_five_minutes(caller: Caller) -> None:
    sandbox = Sandbox.create(**caller.opts)
    info = sandbox.get_info()
    assert abs((info.end_at - info.started_at).total_seconds() - 300) < 2
    sandbox.kill()


def test_env_vars_and_a_fresh_access_token_reach_envd(caller: Caller) -> None:
    first = Sandbox.create(envs={"GREETING": "hello", "EMPTY": ""}, **caller.opts)
    second = Sandbox.create(**caller.opts)
    token = first._envd_access_token
    assert token and second._envd_access_token and token != second._envd_access_token

    url = caller.stack.envd_url(first.sandbox_id)
    assert httpx.get(f"{url}/envs").status_code == 401
    envs = httpx.get(f"{url}/envs", headers={"X-Access-Token": token}).json()
    assert envs["GREETING"] == "hello" and envs["EMPTY"] == ""
    first.kill()
    second.kill()


def test_commands_run_through_a_connected_sdk(caller: Caller, tmp_path: Path) -> None:
    created = Sandbox.create(envs={"GREETING": "hello"}, **caller.opts)
    url = caller.stack.envd_url(created.sandbox_id)
    sandbox = Sandbox.connect(created.sandbox_id, sandbox_url=url, **caller.opts)

    result = sandbox.commands.run("echo $GREETING from $0", timeout=15)
    assert result.exit_code == 0
    assert result.stdout.startswith("hello from")
    # The fake runtime's envd is a process of the host: its files are the host's.
    sandbox.files.write(str(tmp_path / "written.txt"), "content")
    assert sandbox.files.read(str(tmp_path / "written.txt")) == "content"
    sandbox.kill()


def test_kill_removes_the_sandbox_and_its_envd(caller: Caller) -> None:
    sandbox = Sandbox.create(**caller.opts)
    url = caller.stack.envd_url(sandbox.sandbox_id)

    assert Sandbox.kill(sandbox.sandbox_id, **caller.opts) is True
    assert sandbox.sandbox_id not in caller.stack.handles()
    assert Sandbox.kill(sandbox.sandbox_id, **caller.opts) is False
    assert not Sandbox.list(**caller.opts).next_items()
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("envd still answers after kill")


def test_connect_reattaches_and_only_extends_the_timeout(caller: Caller) -> None:
    sandbox = Sandbox.create(timeout=100, **caller.opts)
    end = sandbox.get_info().end_at

    shorter = Sandbox.connect(sandbox.sandbox_id, timeout=10, **caller.opts)
    assert shorter.sandbox_id == sandbox.sandbox_id
    assert shorter._envd_access_token == sandbox._envd_access_token
    assert sandbox.get_info().end_at == end

    Sandbox.connect(sandbox.sandbox_id, timeout=600, **caller.opts)
    assert (sandbox.get_info().end_at - datetime.now(UTC)).total_seconds() > 590
    sandbox.kill()


def test_no_timeout_goes_past_the_operators_maximum(caller: Caller) -> None:
    longest = caller.stack.app.state.settings.api.max_timeout_s
    refusal = f"400: timeout must be between 0 and {longest} seconds"
    with pytest.raises(SandboxException, match=refusal):
        Sandbox.create(timeout=longest + 1, **caller.opts)
    sandbox = Sandbox.create(timeout=longest, **caller.opts)
    try:
        for extend in (
            lambda: sandbox.set_timeout(longest + 1),
            lambda: Sandbox.connect(sandbox.sandbox_id, timeout=longest + 1, **caller.opts),
        ):
            with pytest.raises(SandboxException, match=refusal):
                extend()
        assert (sandbox.get_info().end_at - datetime.now(UTC)).total_seconds() <= longest
    finally:
        sandbox.kill()


def test_idempotency_key_returns_the_same_sandbox(caller: Caller) -> None:
    first = Sandbox.create(idempotency_key="create-once-1", **caller.opts)
    again = Sandbox.create(idempotency_key="create-once-1", **caller.opts)
    other = Sandbox.create(idempotency_key="create-once-2", **caller.opts)

    assert again.sandbox_id == first.sandbox_id
    assert again._envd_access_token == first._envd_access_token
    assert other.sandbox_id != first.sandbox_id
    assert len(Sandbox.list(**caller.opts).next_items()) == 2

    # Once that sandbox is gone, the key makes a new one.
    first.kill()
    after = Sandbox.create(idempotency_key="create-once-1", **caller.opts)
    assert after.sandbox_id not in (first.sandbox_id, other.sandbox_id)
    after.kill()
    other.kill()


def test_idempotency_keys_belong_to_one_team(caller: Caller) -> None:
    other_team = Caller(stack=caller.stack, api_key=caller.stack.new_key())
    mine = Sandbox.create(idempotency_key="shared-key", **caller.opts)
    theirs = Sandbox.create(idempotency_key="shared-key", **other_team.opts)
    assert mine.sandbox_id != theirs.sandbox_id
    mine.kill()
    theirs.kill()


def test_templates_resolve_by_id_alias_and_legacy_id(caller: Caller) -> None:
    for name in (BASE_TEMPLATE_ID, "base", "base-template-000-0000-0000-000000000001"):
        sandbox = Sandbox.create(name, **caller.opts)
        assert sandbox.get_info().template_id == BASE_TEMPLATE_ID
        sandbox.kill()


def test_a_restarted_api_forgets_sandboxes_its_runtime_lost(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with serving(create_app(settings, runtime=FakeRuntime())) as first:
        register_test_templates(first)
        caller = Caller(stack=first, api_key=first.new_key())
        Sandbox.create(**caller.opts)
        assert len(Sandbox.list(**caller.opts).next_items()) == 1
    # The fake runtime's sandboxes die with it; a new one runs none of them.
    with serving(create_app(settings, runtime=FakeRuntime())) as second:
        caller = Caller(stack=second, api_key=caller.api_key)
        assert Sandbox.list(**caller.opts).next_items() == []


def test_a_sandbox_without_public_traffic_gets_a_traffic_token(caller: Caller) -> None:
    secured = Sandbox.create(network={"allow_public_traffic": False}, **caller.opts)
    token = secured.traffic_access_token
    assert isinstance(token, str) and len(token) >= 32 and token != secured._envd_access_token
    assert Sandbox.connect(secured.sandbox_id, **caller.opts).traffic_access_token == token
    assert secured.get_info().network == {"allow_public_traffic": False}

    public = Sandbox.create(network={"allow_public_traffic": True}, **caller.opts)
    default = Sandbox.create(**caller.opts)
    for sandbox in (public, default):
        assert sandbox.traffic_access_token is None
        assert sandbox.get_info().network == {"allow_public_traffic": True}
    with caller.http() as client:
        raw = client.post(
            "/v2/sandboxes", json={"templateID": "base", "network": {"allowPublicTraffic": False}}
        )
        assert raw.status_code == 201 and isinstance(raw.json()["trafficAccessToken"], str)
        detail = client.get(f"/sandboxes/{raw.json()['sandboxID']}").json()
        assert detail["network"] == {"allowPublicTraffic": False} and "trafficAccessToken" not in detail
        assert client.delete(f"/sandboxes/{raw.json()['sandboxID']}").status_code == 204
    for sandbox in (secured, public, default):
        assert sandbox.kill()


def test_an_unknown_engine_is_a_clear_400(caller: Caller) -> None:
    with caller.http() as client:
        response = client.post(
            "/v2/sandboxes", json={"templateID": "base", "metadata": {"hutch.runtime": "firecracker"}}
        )
    assert response.status_code == 400
    assert response.json()["code"] == 400 and "crun, gvisor" in response.json()["message"]


def test_crun_is_still_found_by_its_former_name(caller: Caller) -> None:
    with caller.http() as client:
        response = client.post(
            "/v2/sandboxes", json={"templateID": "base", "metadata": {"hutch.runtime": "container"}}
        )
        assert response.status_code == 201
        assert client.delete(f"/sandboxes/{response.json()['sandboxID']}").status_code == 204


def test_a_mask_request_host_with_line_breaks_is_a_400(caller: Caller) -> None:
    with caller.http() as client:
        response = client.post(
            "/v2/sandboxes",
            json={"templateID": "base", "network": {"maskRequestHost": "a.test\r\nX-Evil: 1"}},
        )
    assert response.status_code == 400 and response.json()["code"] == 400
