"""``hutch doctor``: checks this machine can run Hutch, each problem with a one-line fix, then shows what
the running server supports (its ``GET /capabilities``) when one answers.

A failed *required* check makes the exit code 1; warnings (gVisor) and information (``/dev/kvm``) do not.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import ValidationError
from rich.markup import escape

from ..config import Settings
from .client import Connection, fail
from .output import JsonOption, console, emit_json, table

MIN_FREE_BYTES = 2 * 1024**3
GVISOR_MIN_YEAR = 2024
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | fail | warn | info
    detail: str
    fix: str = ""


def _tool(name: str, package: str, *, required: bool = True) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, "fail" if required else "warn", "not installed", f"apt-get install {package}")
    return Check(name, "ok", path)


def _haproxy() -> Check:
    """The TLS edge (E2B_DOMAIN); without it only the plain-HTTP API and proxy ports serve."""
    path = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if path is None:
        detail = "not installed: no TLS edge, E2B_DOMAIN does not work"
        return Check("haproxy", "warn", detail, "apt-get install haproxy")
    return Check("haproxy", "ok", path)


def _root() -> Check:
    if os.geteuid() == 0:
        return Check("root", "ok", "running as root")
    return Check("root", "fail", f"running as uid {os.geteuid()}", "run hutch up as root: sudo hutch up")


def _gvisor() -> Check:
    found = _tool("runsc", "runsc", required=False)
    if found.status != "ok":
        return Check(
            "runsc (gVisor)", "warn", "not installed", "apt-get install runsc (see docs/security.md)"
        )
    try:
        version = subprocess.run(
            ["runsc", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("runsc (gVisor)", "warn", f"runsc --version failed: {error}", "reinstall runsc")
    date = re.search(r"(20\d{6})", version)
    if date is None:
        return Check("runsc (gVisor)", "warn", f"unknown version {version.strip()!r}", "install runsc ≥ 2024")
    if int(date.group(1)[:4]) < GVISOR_MIN_YEAR:
        return Check(
            "runsc (gVisor)", "warn", f"version {date.group(1)} is too old", "install runsc from Debian 13"
        )
    return Check("runsc (gVisor)", "ok", f"version {date.group(1)}")


def _cgroups() -> Check:
    fix = "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and mount it at /sys/fs/cgroup"
    try:
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
            missing = [name for name in ("memory", "pids", "cpu") if name not in controllers]
            if missing:
                return Check("cgroups", "fail", f"v2 without {', '.join(missing)}", fix)
            return Check("cgroups", "ok", "v2 (unified)")
        layout = "hybrid (v1 + unified)" if (CGROUP_ROOT / "unified").is_dir() else "v1"
        if not (CGROUP_ROOT / "memory").is_dir() or not os.access(CGROUP_ROOT / "memory", os.R_OK):
            return Check("cgroups", "fail", f"{layout} without a readable memory controller", fix)
        return Check("cgroups", "ok", layout)
    except OSError as error:
        return Check("cgroups", "fail", f"{CGROUP_ROOT} is not readable: {error}", fix)


def _kvm() -> Check:
    if Path("/dev/kvm").exists():
        return Check("/dev/kvm", "info", "present: microVMs can use hardware virtualisation")
    return Check("/dev/kvm", "info", "absent: microVMs would run on QEMU's software CPU")


def _disk(label: str, directory: Path) -> Check:
    existing = directory
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    detail = f"{free / 1024**3:.1f} GiB free at {directory}"
    if free < MIN_FREE_BYTES:
        return Check(
            f"disk ({label})", "fail", detail, f"free at least {MIN_FREE_BYTES // 1024**3} GiB there"
        )
    return Check(f"disk ({label})", "ok", detail)


def _port(label: str, port: int, is_hutch: Callable[[int], bool]) -> Check:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
            return Check(f"port {port} ({label})", "ok", "free")
        except OSError:
            pass
    if is_hutch(port):
        return Check(f"port {port} ({label})", "ok", "held by Hutch")
    return Check(
        f"port {port} ({label})", "fail", "held by another program", f"stop it (ss -ltnp 'sport = {port}')"
    )


def _hutch_api(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 204
    except httpx.TransportError:
        return False


def _hutch_proxy(port: int) -> bool:
    """Hutch's proxy answers a request that names no sandbox with a 400 in E2B's JSON error body."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        body = response.json()
    except (httpx.TransportError, ValueError):
        return False
    return response.status_code == 400 and isinstance(body, dict) and {"code", "message"} <= body.keys()


def checks(settings: Settings) -> list[Check]:
    return [
        _root(),
        _tool("crun", "crun"),
        _gvisor(),
        _cgroups(),
        _kvm(),
        _disk("data", settings.data_dir),
        _disk("cache", settings.templates.cache_dir),
        _port("API", settings.api.port, _hutch_api),
        _port("proxy", settings.proxy.port, _hutch_proxy),
        _tool("mmdebstrap", "mmdebstrap"),
        _tool("nft", "nftables"),
        _haproxy(),
    ]


_MARK = {"ok": "[green]ok[/]", "fail": "[red]FAIL[/]", "warn": "[yellow]warn[/]", "info": "[blue]info[/]"}


def _capabilities(connection: Connection) -> dict[str, Any] | str:
    """The running server's ``GET /capabilities``, or why there is none to show."""
    if not connection.api_key:
        return "no API key (pass --api-key, set E2B_API_KEY, or run where hutch up wrote .env.local)"
    try:
        response = httpx.get(
            f"{connection.api_url}/capabilities", headers={"X-API-Key": connection.api_key}, timeout=5
        )
    except httpx.TransportError:
        return f"no API answers at {connection.api_url}"
    if response.status_code != 200:
        return f"{connection.api_url}/capabilities answered {response.status_code}"
    return response.json()


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


def _show_capabilities(connection: Connection) -> None:
    found = _capabilities(connection)
    if isinstance(found, str):
        console.print(f"\n[dim]server capabilities: {escape(found)}[/]")
        return
    console.print(f"\n[bold]What the server at {escape(connection.api_url)} supports[/]")
    table(
        ["ENGINE", "PAUSE", "SNAPSHOTS", "FORKS"],
        (
            [name, ", ".join(engine["pauseModes"]), ", ".join(engine["snapshotModes"]), engine["forkMode"]]
            for name, engine in found["engines"].items()
        ),
        empty="no engines",
    )
    interpreter = found["codeInterpreter"]
    console.print(
        f"volumes {_yes(found['volumes'])}  mcp {_yes(found['mcp'])}  desktop {_yes(found['desktop'])}  "
        f"code interpreter {_yes(interpreter['available'])} ({', '.join(interpreter['languages'])})"
    )
    network = found["network"]
    console.print(
        f"network: {', '.join(network['supported'])}; not {', '.join(network['unsupported'])}",
        highlight=False,
    )
    table(
        ["REQUEST", "REFUSED FIELD", "WHY"],
        (
            [escape(body), escape(field["field"]), escape(field["reason"])]
            for body, fields in found["unsupportedFields"].items()
            for field in fields
        ),
        empty="no refused fields",
    )
    tested = (
        f"{name} {version} ({registry})"
        for registry, sdks in found["testedSdks"].items()
        for name, version in sdks.items()
    )
    console.print(f"tested with: {escape(', '.join(tested))}", highlight=False)


def doctor(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Check that this machine can run Hutch, and show what the running server supports; exit code 1
    when a required check fails."""
    try:
        settings = Settings()
    except ValidationError as error:
        fail(f"the HUTCH_ settings are not valid: {error}")
    results = checks(settings)
    if as_json:
        emit_json([asdict(result) for result in results])
    else:
        table(
            ["", "CHECK", "DETAIL", "FIX"],
            ([_MARK[r.status], escape(r.name), escape(r.detail), escape(r.fix)] for r in results),
            empty="",
        )
        _show_capabilities(ctx.obj)
    if any(result.status == "fail" for result in results):
        raise typer.Exit(1)
