"""``hutch doctor``: every check is named, and the exit code follows the required checks; with a server up
(and its key), what that server supports, as its ``GET /capabilities`` says."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from hutch.api.services.capabilities import REFUSED, TESTED_SDKS
from tests.cli.conftest import Hutch, clean_env, run_hutch

CHECKS = [
    "root",
    "crun",
    "runsc (gVisor)",
    "cgroups",
    "/dev/kvm",
    "disk (data)",
    "disk (cache)",
    "mmdebstrap",
    "nft",
    "haproxy",
]


def test_doctor_names_every_check_and_exits_by_the_required_ones(tmp_path: Path) -> None:
    result = run_hutch("doctor", "--json", env=clean_env(), cwd=tmp_path)
    checks = json.loads(result.stdout)
    names = [check["name"] for check in checks]
    for name in CHECKS:
        assert name in names
    assert sum(name.startswith("port ") for name in names) == 2
    failed = [check for check in checks if check["status"] == "fail"]
    assert result.returncode == (1 if failed else 0), failed
    assert all(check["fix"] for check in failed)

    human = run_hutch("doctor", env=clean_env(), cwd=tmp_path)
    assert human.returncode == result.returncode
    for name in CHECKS:
        assert name in human.stdout
    assert "server capabilities: no API key" in human.stdout


def test_a_port_held_by_another_program_fails_with_a_fix(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_hutch("doctor", "--json", env=clean_env(HUTCH_API__PORT=str(port)), cwd=tmp_path)
    assert result.returncode == 1
    [check] = [check for check in json.loads(result.stdout) if check["name"] == f"port {port} (API)"]
    assert check["status"] == "fail" and str(port) in check["fix"]


def test_doctor_shows_what_the_running_server_supports(hutch: Hutch) -> None:
    shown = hutch("doctor").stdout
    assert "supports" in shown
    for engine in ("crun", "gvisor"):
        assert engine in shown
    for fields in REFUSED.values():
        for field in fields:
            assert field.name in shown
    for name, version in TESTED_SDKS["pypi"].items():
        assert f"{name} {version} (pypi)" in shown
