"""A real ``code-interpreter-v1`` sandbox, reached through the proxy: its server on port 49999 runs code
only for the sandbox's access token, which the official SDK sends; ``secure=False`` (which Hutch's API
ignores: every sandbox gets a token) changes nothing for the SDK."""

from __future__ import annotations

import httpx
import pytest
from e2b_code_interpreter import Sandbox

from tests.stack import Stack

PORT = "49999"


def _execute(stack: Stack, sandbox_id: str, code: str, token: str | None = None) -> httpx.Response:
    """A raw ``POST /execute`` to the sandbox's port 49999, as the SDK routes it (header mode)."""
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": PORT}
    if token is not None:
        headers["X-Access-Token"] = token
    body = {"code": code, "context_id": None, "language": None, "env_vars": None}
    return httpx.post(f"{stack.sandbox_url}/execute", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def secured(stack: Stack):
    sandbox = Sandbox.create(**stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    yield sandbox
    sandbox.kill()


def test_run_code_works_with_the_token_the_sdk_sends(secured: Sandbox):
    assert secured.run_code("6 * 7").text == "42"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_raw_execute_without_the_token_is_refused(stack: Stack, secured: Sandbox, token: str | None):
    marker = f"/tmp/ran-{token}"
    response = _execute(stack, secured.sandbox_id, f"open({marker!r}, 'w').close()", token)
    assert response.status_code == 401
    assert response.json()["code"] == 401
    assert not secured.files.exists(marker)


def test_a_sandbox_made_with_secure_false_runs_code(stack: Stack):
    sandbox = Sandbox.create(secure=False, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert sandbox.run_code("'runs'").text == "runs"
    finally:
        sandbox.kill()
