"""``hutch key``: create → ls → revoke, and the revoked key is refused."""

from __future__ import annotations

from tests.cli.conftest import Hutch, error_line, parse


def test_create_ls_revoke(hutch: Hutch) -> None:
    created = parse(hutch("key", "create", "--name", "cli-test", "--json"))
    key, key_id = created["key"], created["id"]
    assert key.startswith("e2b_")

    # The new key works on its own.
    assert parse(hutch("--api-key", key, "key", "ls", "--json"))
    listed = {item["id"]: item for item in parse(hutch("key", "ls", "--json"))}
    assert listed[key_id]["name"] == "cli-test" and key not in str(listed)
    table = hutch("key", "ls")
    [row] = [line for line in table.stdout.splitlines() if key_id in line]
    assert "cli-test" in row and key not in row

    revoked = hutch("key", "revoke", key_id)
    assert revoked.returncode == 0 and key_id in revoked.stdout
    assert key_id not in {item["id"] for item in parse(hutch("key", "ls", "--json"))}
    assert error_line(hutch("--api-key", key, "sandbox", "ls")).startswith("401: ")
    assert error_line(hutch("key", "revoke", key_id)).startswith("404: ")


def test_human_create_prints_only_the_key(hutch: Hutch) -> None:
    result = hutch("key", "create", "--name", "plain")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert key.startswith("e2b_") and "\n" not in key
    [item] = [item for item in parse(hutch("key", "ls", "--json")) if item["name"] == "plain"]
    assert hutch("key", "revoke", item["id"]).returncode == 0
