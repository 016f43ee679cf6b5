"""How ``hutch.Sandbox`` finds its settings: ``.env.local`` discovery, precedence and the debug translation.

``/health`` is answered by a tiny HTTP server on a free port; no stack is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from e2b import AuthenticationException

import hutch
from hutch.dotenv import find_env_file, read_env_file
from hutch.sdk._settings import DEFAULT_SANDBOX_URL, api_answers, resolve
from tests.conftest import free_port

E2B_VARIABLES = ("E2B_API_KEY", "E2B_API_URL", "E2B_SANDBOX_URL", "E2B_DOMAIN", "E2B_DEBUG")


class _Health(BaseHTTPRequestHandler):
    status = 204

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(status: int) -> Iterator[str]:
    handler = type("Handler", (_Health,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def hutch_api() -> Iterator[str]:
    """The URL of an API whose ``/health`` answers 204, as Hutch's does."""
    yield from _serve(204)


@pytest.fixture(scope="module")
def broken_api() -> Iterator[str]:
    """The URL of a server whose ``/health`` answers 500."""
    yield from _serve(500)


@pytest.fixture()
def closed_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in E2B_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def seed_env(api_url: str, *, key: str | None = "hutch_test_key") -> str:
    lines = ["E2B_DEBUG=true", f"E2B_API_URL={api_url}", "E2B_DOMAIN=localhost"]
    return "\n".join([*lines, f"E2B_API_KEY={key}"] if key else lines) + "\n"


def test_env_file_is_found_in_a_parent_directory(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("E2B_API_KEY=k\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_env_file(nested) == tmp_path / ".env.local"


def test_the_nearest_env_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("E2B_API_KEY=outer\n")
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / ".env.local").write_text("E2B_API_KEY=inner\n")
    assert find_env_file(tmp_path / "inner") == tmp_path / "inner" / ".env.local"


def test_no_env_file_below_the_search_start(tmp_path: Path) -> None:
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / ".env.local").write_text("E2B_API_KEY=k\n")
    found = find_env_file(tmp_path)
    assert found is None or not found.is_relative_to(tmp_path)


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / ".env.local"
    path.write_text(
        "# Hutch\n\nE2B_API_URL=http://localhost:3000\nexport E2B_API_KEY='secret'\n"
        'E2B_DOMAIN = "localhost"\nnot a setting\nE2B_EMPTY=\n'
    )
    assert read_env_file(path) == {
        "E2B_API_URL": "http://localhost:3000",
        "E2B_API_KEY": "secret",
        "E2B_DOMAIN": "localhost",
        "E2B_EMPTY": "",
    }


def test_settings_come_from_the_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text(
        "E2B_API_URL=http://localhost:3000\nE2B_SANDBOX_URL=http://localhost:49983\nE2B_API_KEY=file-key\n"
    )
    assert resolve({}, environ={}, cwd=tmp_path) == {
        "api_key": "file-key",
        "api_url": "http://localhost:3000",
        "sandbox_url": "http://localhost:49983",
        "debug": False,
    }


def test_the_environment_wins_over_the_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("E2B_API_KEY=file-key\nE2B_API_URL=http://file:3000\n")
    environ = {"E2B_API_KEY": "env-key", "E2B_API_URL": "", "PATH": "/bin"}
    params = resolve({}, environ=environ, cwd=tmp_path)
    # An empty variable counts as unset, as it does for the official SDK.
    assert (params["api_key"], params["api_url"]) == ("env-key", "http://file:3000")


def test_debug_off_in_the_environment_wins_over_the_seed_file(tmp_path: Path, hutch_api: str) -> None:
    (tmp_path / ".env.local").write_text(seed_env(hutch_api))
    params = resolve({}, environ={"E2B_DEBUG": "false"}, cwd=tmp_path)
    assert params["debug"] is False
    assert "sandbox_url" not in params


def test_call_arguments_win_over_everything(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("E2B_API_KEY=file-key\n")
    params = resolve({"api_key": "call-key", "domain": None}, environ={"E2B_API_KEY": "env"}, cwd=tmp_path)
    assert params["api_key"] == "call-key"
    assert "domain" not in params


def test_seed_settings_become_real_sandboxes_when_hutch_answers(tmp_path: Path, hutch_api: str) -> None:
    (tmp_path / ".env.local").write_text(seed_env(hutch_api))
    assert resolve({}, environ={}, cwd=tmp_path) == {
        "api_key": "hutch_test_key",
        "api_url": hutch_api,
        "domain": "localhost",
        "debug": False,
        "sandbox_url": DEFAULT_SANDBOX_URL,
    }


def test_translation_keeps_a_configured_sandbox_url(tmp_path: Path, hutch_api: str) -> None:
    (tmp_path / ".env.local").write_text(seed_env(hutch_api))
    params = resolve({}, environ={"E2B_SANDBOX_URL": "http://127.0.0.1:1234"}, cwd=tmp_path)
    assert (params["debug"], params["sandbox_url"]) == (False, "http://127.0.0.1:1234")


@pytest.mark.parametrize("api", ["closed_url", "broken_api"])
def test_debug_mode_stays_when_no_api_answers(
    tmp_path: Path, api: str, request: pytest.FixtureRequest
) -> None:
    api_url = request.getfixturevalue(api)
    (tmp_path / ".env.local").write_text(seed_env(api_url, key=None))
    params = resolve({}, environ={}, cwd=tmp_path)
    assert params["debug"] is True
    assert "sandbox_url" not in params


def test_an_explicit_debug_argument_is_not_translated(tmp_path: Path, hutch_api: str) -> None:
    (tmp_path / ".env.local").write_text(seed_env(hutch_api))
    assert resolve({"debug": True}, environ={}, cwd=tmp_path)["debug"] is True


def test_health_probe(hutch_api: str, broken_api: str, closed_url: str) -> None:
    assert api_answers(hutch_api)
    assert api_answers(hutch_api + "/")
    assert not api_answers(broken_api)
    assert not api_answers(closed_url)


def test_no_api_key_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("E2B_API_URL=http://localhost:3000\n")
    with pytest.raises(AuthenticationException, match=r"hutch up.*\.env\.local"):
        resolve({}, environ={}, cwd=tmp_path)


def test_translated_seed_settings_without_a_key_are_a_clear_error(tmp_path: Path, hutch_api: str) -> None:
    (tmp_path / ".env.local").write_text(seed_env(hutch_api, key=None))
    with pytest.raises(AuthenticationException, match="hutch up"):
        resolve({}, environ={}, cwd=tmp_path)


def test_sandbox_create_without_a_key_fails_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None, closed_url: str
) -> None:
    (tmp_path / ".env.local").write_text(f"E2B_API_URL={closed_url}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuthenticationException, match="hutch up"):
        hutch.Sandbox.create()


async def test_async_sandbox_create_without_a_key_fails_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None, closed_url: str
) -> None:
    (tmp_path / ".env.local").write_text(f"E2B_API_URL={closed_url}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuthenticationException, match="hutch up"):
        await hutch.AsyncSandbox.create()


def test_seed_settings_without_hutch_keep_the_official_debug_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None, closed_url: str
) -> None:
    (tmp_path / ".env.local").write_text(seed_env(closed_url, key=None))
    monkeypatch.chdir(tmp_path)
    sandbox = hutch.Sandbox.create()
    assert sandbox.sandbox_id == "debug_sandbox_id"
    assert sandbox.connection_config.debug


async def test_async_sandbox_reads_the_env_file_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None, hutch_api: str
) -> None:
    (tmp_path / ".env.local").write_text(seed_env(hutch_api))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    params = hutch.AsyncSandbox._resolve_api_params()
    assert (params["debug"], params["api_url"], params["api_key"]) == (False, hutch_api, "hutch_test_key")
