"""``hutch team create|ls|rm`` and ``hutch key create --team`` against the real stack, with the operator
key that ``hutch up`` wrote to its data directory: the new team's key works through the official SDK and
sees only its team; removing a team with sandboxes is refused unless forced, which kills them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from e2b import Sandbox
from e2b.exceptions import AuthenticationException, RateLimitException

from tests.cli.conftest import Hutch, error_line, parse
from tests.stack import Stack


@pytest.fixture()
def operator(hutch: Hutch, stack: Stack) -> Hutch:
    """``hutch`` pointed at the stack's data directory (its operator key) too."""
    return lambda *args: hutch(*args, env={"HUTCH_DATA_DIR": str(stack.data_dir)})


def test_create_ls_key_and_rm_a_team(operator: Hutch, stack: Stack) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    made = parse(operator("team", "create", name, "--quota", "concurrent_sandboxes=1", "--json"))
    assert made["name"] == name and made["customQuotas"] == {"concurrent_sandboxes": 1}
    assert name in {team["name"] for team in parse(operator("team", "ls", "--json"))}
    [row] = [line for line in operator("team", "ls").stdout.splitlines() if name in line]
    assert made["teamID"] in row and "concurrent_sandboxes=1" in row

    key = operator("key", "create", "--team", name).stdout.strip()
    assert key.startswith("e2b_")
    opts = {**stack.opts, "api_key": key}
    assert Sandbox.list(**opts).next_items() == []  # none of the stack's first team's
    sandbox = Sandbox.create(**opts)
    stack.seen.add(sandbox.sandbox_id)
    with pytest.raises(RateLimitException):
        stack.seen.add(Sandbox.create(**opts).sandbox_id)

    assert error_line(operator("team", "rm", name)).startswith("409: ")
    assert Sandbox.get_info(sandbox.sandbox_id, **opts).state.value == "running"
    assert not stack.gone_from_node(sandbox.sandbox_id, timeout_s=0)
    removed = operator("team", "rm", name, "--force")
    assert removed.returncode == 0 and name in removed.stdout
    assert name not in {team["name"] for team in parse(operator("team", "ls", "--json"))}
    with pytest.raises(AuthenticationException):
        Sandbox.list(**opts).next_items()
    assert stack.gone_from_node(sandbox.sandbox_id)
    assert error_line(operator("team", "rm", name)) == f"no team named {name!r}"


def test_bad_quotas_and_taken_names_are_one_line_errors(operator: Hutch) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert "unknown quota 'gpus'" in error_line(operator("team", "create", name, "--quota", "gpus=1"))
    assert "--quota takes name=number" in error_line(operator("team", "create", name, "--quota", "gpus"))
    assert operator("team", "create", name).returncode == 0
    assert error_line(operator("team", "create", name)).startswith("409: ")
    assert operator("team", "rm", name).returncode == 0


def test_without_the_operator_key_nothing_is_done(hutch: Hutch, tmp_path: Path) -> None:
    elsewhere = {"HUTCH_DATA_DIR": str(tmp_path / "no-stack")}
    assert error_line(hutch("team", "ls", env=elsewhere)).startswith("no operator key at ")
    assert error_line(hutch("key", "create", "--team", "default", env=elsewhere)).startswith(
        "no operator key"
    )
