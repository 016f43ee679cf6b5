"""``hutch sandbox``: create → ls → exec → logs → metrics → kill against the real stack."""

from __future__ import annotations

import httpx
import pytest
from e2b import Sandbox

from tests.cli.conftest import Hutch, error_line, parse
from tests.stack import Stack


@pytest.fixture()
def sandbox_id(hutch: Hutch, stack: Stack):
    result = hutch(
        "sandbox", "create", "--template", "base", "--timeout", "120", "--metadata", "owner=cli-test"
    )
    assert result.returncode == 0, result.stderr
    sandbox_id = result.stdout.strip()
    stack.seen.add(sandbox_id)
    yield sandbox_id
    hutch("sandbox", "kill", sandbox_id)


def test_create_ls_metrics_kill(hutch: Hutch, stack: Stack) -> None:
    created = parse(hutch("sandbox", "create", "--json", "-m", "owner=cli-test", "-m", "n=1"))
    sandbox_id = created["sandboxID"]
    stack.seen.add(sandbox_id)
    assert created["templateID"] and created["envdVersion"]

    listed = {item["sandboxID"]: item for item in parse(hutch("sandbox", "ls", "--json"))}
    assert listed[sandbox_id]["metadata"] == {"owner": "cli-test", "n": "1"}
    assert listed[sandbox_id]["state"] == "running"
    table = hutch("sandbox", "ls")
    assert table.returncode == 0 and "ID" in table.stdout
    [row] = [line for line in table.stdout.splitlines() if sandbox_id in line]
    assert "base" in row and "running" in row and "owner=cli-test" in row

    samples = parse(hutch("sandbox", "metrics", sandbox_id, "--json"))
    assert isinstance(samples, list)
    for sample in samples:
        assert {"timestamp", "cpuUsedPct", "memUsed", "memTotal", "diskUsed"} <= sample.keys()
    assert hutch("sandbox", "metrics", sandbox_id).returncode == 0

    killed = hutch("sandbox", "kill", sandbox_id)
    assert killed.returncode == 0 and sandbox_id in killed.stdout
    assert sandbox_id not in {item["sandboxID"] for item in parse(hutch("sandbox", "ls", "--json"))}
    assert error_line(hutch("sandbox", "kill", sandbox_id)).startswith("404: ")


def test_exec_streams_output_and_propagates_the_exit_code(hutch: Hutch, sandbox_id: str) -> None:
    result = hutch("sandbox", "exec", sandbox_id, "--", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n" and result.stderr == "err\n"

    argv = hutch("sandbox", "exec", sandbox_id, "ls", "-d", "/home/user")
    assert argv.returncode == 0 and argv.stdout == "/home/user\n"

    as_root = hutch("sandbox", "exec", "--user", "root", "--cwd", "/tmp", sandbox_id, "whoami; pwd")
    assert as_root.stdout == "root\n/tmp\n"

    machine = parse(hutch("sandbox", "exec", "--json", sandbox_id, "echo hi; exit 0"))
    assert machine == {"stdout": "hi\n", "stderr": "", "exitCode": 0}


def test_exec_in_an_unknown_sandbox_is_one_error_line(hutch: Hutch) -> None:
    line = error_line(hutch("sandbox", "exec", "nosuchsandbox0000000", "true"))
    assert "not found" in line


def test_create_from_an_unknown_template_shows_the_apis_message(hutch: Hutch) -> None:
    line = error_line(hutch("sandbox", "create", "--template", "no-such-template"))
    assert line.startswith("404: ") and "known templates" in line


def test_logs_show_the_sandboxs_processes(hutch: Hutch, stack: Stack, sandbox_id: str) -> None:
    Sandbox.connect(sandbox_id, **stack.opts).commands.run("true", user="root")
    entries = parse(hutch("sandbox", "logs", sandbox_id, "--json"))["logEntries"]
    started = [entry for entry in entries if "started: /bin/bash as root" in entry["message"]]
    assert started and {"timestamp", "message", "level", "fields"} <= set(started[-1])
    pid = started[-1]["message"].split()[1]
    assert any(entry["message"] == f"process {pid} ended: exit status 0" for entry in entries)
    table = hutch("sandbox", "logs", sandbox_id)
    assert table.returncode == 0 and f"process {pid} started" in table.stdout
    # The v2 route pages backwards from a cursor and filters by level and text.
    v2 = httpx.get(
        f"{stack.api_url}/v2/sandboxes/{sandbox_id}/logs",
        params={"direction": "backward", "limit": 1, "search": "ended"},
        headers={"X-API-Key": stack.api_key},
    )
    assert [entry["message"] for entry in v2.json()["logs"]] == [f"process {pid} ended: exit status 0"]
    assert error_line(hutch("sandbox", "logs", "nosuchsandbox")).startswith("404: ")


def test_bad_metadata_is_refused_before_any_call(hutch: Hutch) -> None:
    assert "KEY=VALUE" in error_line(hutch("sandbox", "create", "--metadata", "novalue"))
