"""``hutch template ls|rm``: the built-in templates are listed and cannot be removed."""

from __future__ import annotations

from tests.cli.conftest import Hutch, error_line, parse


def test_ls_lists_the_built_in_templates(hutch: Hutch) -> None:
    templates = parse(hutch("template", "ls", "--json"))
    [base] = [item for item in templates if "base" in item["aliases"]]
    assert base["isDefault"] is True and base["buildStatus"] == "ready"
    table = hutch("template", "ls")
    assert table.returncode == 0
    [row] = [line for line in table.stdout.splitlines() if line.split()[:1] == [base["templateID"]]]
    assert "base" in row


def test_rm_refuses_built_ins_and_unknown_templates(hutch: Hutch) -> None:
    line = error_line(hutch("template", "rm", "base"))
    assert line.startswith("403: ") and "built in" in line
    assert error_line(hutch("template", "rm", "no-such-template")).startswith("404: ")
    assert any("base" in item["aliases"] for item in parse(hutch("template", "ls", "--json")))
