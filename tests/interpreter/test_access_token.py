"""``/execute`` runs code only for the sandbox's envd access token; a sandbox without one stays open.

The interpreter asks the envd next to it, so a token renewed by ``/init`` (a restored or forked sandbox)
takes effect at once, and the old one stops working.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import ConnectionConfig, SandboxException
from e2b_code_interpreter import Sandbox
from packaging.version import Version

from hutch.envd.version import VERSION
from tests.envd.conftest import Envd, start_envd, stop_envd

from .conftest import TOKEN, Interpreter, start_interpreter, stop

REFUSED = {"code": 401, "message": "unauthorized access, please provide a valid access token"}


def _post_execute(url: str, headers: dict[str, str], marker: Path) -> httpx.Response:
    """A raw ``/execute`` whose code, if it ran, would create ``marker``."""
    body = {"code": f"open({str(marker)!r}, 'w').close()", "context_id": None, "language": None}
    return httpx.post(f"{url}/execute", json=body, headers=headers, timeout=30)


def _sdk(url: str, token: str | None) -> Sandbox:
    """The official SDK as ``Sandbox.create`` builds it; ``token`` is the envd access token it was given."""
    return Sandbox(
        sandbox_id="tokentest",
        sandbox_domain=None,
        envd_version=Version(VERSION),
        envd_access_token=token,
        connection_config=ConnectionConfig(sandbox_url=url, debug=True),
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Access-Token": ""}, {"X-Access-Token": "wrong"}, {"X-Access-Token": TOKEN + "x"}],
    ids=["missing", "empty", "wrong", "longer"],
)
def test_execute_without_the_token_is_refused(interpreter: Interpreter, headers: dict[str, str], tmp_path):
    marker = tmp_path / "ran"
    response = _post_execute(interpreter.url, headers, marker)
    assert response.status_code == 401
    assert response.json() == REFUSED
    assert _post_execute(interpreter.url, {"X-Access-Token": TOKEN}, tmp_path / "control").status_code == 200
    assert (tmp_path / "control").exists() and not marker.exists()


def test_the_sdk_with_a_wrong_token_gets_401(interpreter: Interpreter):
    with pytest.raises(SandboxException, match="401"):
        _sdk(interpreter.url, "not-the-token").run_code("1 + 1")


def test_the_sdk_with_the_token_runs_code(interpreter: Interpreter):
    assert _sdk(interpreter.url, TOKEN).run_code("6 * 7").text == "42"


def test_the_context_routes_work_as_the_sdk_calls_them(interpreter: Interpreter):
    sandbox = _sdk(interpreter.url, TOKEN)  # it sends the token to /execute only
    context = sandbox.create_code_context()
    try:
        assert context.id in [c.id for c in sandbox.list_code_contexts()]
        sandbox.restart_code_context(context)
        assert sandbox.run_code("'in context'", context=context).text == "in context"
    finally:
        sandbox.remove_code_context(context)


@pytest.fixture()
def open_sandbox(tmp_path) -> Iterator[tuple[Envd, str]]:
    """An envd initialised without a token (``secure=False``) and an interpreter next to it."""
    envd = start_envd("root", "/root")
    try:
        url, process = start_interpreter(str(tmp_path), envd.url)
        try:
            yield envd, url
        finally:
            stop(process)
    finally:
        stop_envd(envd)


def test_a_sandbox_without_a_token_is_open_and_a_renewed_token_applies_at_once(open_sandbox, tmp_path):
    envd, url = open_sandbox
    assert _sdk(url, None).run_code("'open'").text == "open"
    # What a restored or forked sandbox gets: a new token through /init.
    assert envd.init(accessToken="renewed").status_code == 204
    assert _post_execute(url, {}, tmp_path / "a").json() == REFUSED
    assert _sdk(url, "renewed").run_code("'renewed'").text == "renewed"
    assert envd.init(accessToken="newer", headers={"X-Access-Token": "renewed"}).status_code == 204
    assert _post_execute(url, {"X-Access-Token": "renewed"}, tmp_path / "b").json() == REFUSED
    assert _sdk(url, "newer").run_code("'newer'").text == "newer"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
