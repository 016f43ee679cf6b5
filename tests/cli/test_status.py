"""``hutch status``, and where the command finds the API: options, environment, ``.env.local``."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Hutch, clean_env, parse, run_hutch
from tests.conftest import free_port
from tests.stack import Stack


def test_status_shows_the_api_up_the_urls_and_the_running_count(hutch: Hutch, stack: Stack) -> None:
    status = parse(hutch("status", "--json"))
    assert status["apiUp"] is True and isinstance(status["running"], int)
    assert status["apiUrl"] == stack.api_url and status["sandboxUrl"] == stack.sandbox_url
    human = hutch("status")
    assert human.returncode == 0, human.stderr
    assert stack.api_url in human.stdout and stack.sandbox_url in human.stdout and "up" in human.stdout


def test_status_of_an_api_that_is_down_exits_1(hutch: Hutch) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = hutch("--api-url", down, "status", "--json")
    assert result.returncode == 1
    assert '"apiUp": false' in result.stdout


def test_settings_come_from_env_local_in_the_working_directory(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text(
        f"E2B_API_URL={stack.api_url}\nE2B_SANDBOX_URL={stack.sandbox_url}\nE2B_API_KEY={stack.api_key}\n"
    )
    status = parse(run_hutch("status", "--json", env=clean_env(), cwd=tmp_path))
    assert status["apiUrl"] == stack.api_url and status["running"] is not None


def test_an_option_wins_over_the_environment(hutch: Hutch) -> None:
    result = hutch("--api-key", "e2b_not_a_key", "sandbox", "ls")
    assert result.returncode == 1 and result.stderr.startswith("401")
