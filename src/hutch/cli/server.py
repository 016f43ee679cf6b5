"""``hutch up`` and ``hutch down``: run the stack in the foreground, or detached with a pid file."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.logging import RichHandler

from ..config import Settings
from ..dotenv import read_env_file
from ..private_files import FILE_MODE, narrow, private_directory, write_private
from .setup_progress import SetupProgress

console = Console()


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "hutch.pid"


def up(
    env_file: Annotated[Path, typer.Option(help="Where to write the client settings.")] = Path(".env.local"),
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    log_level: Annotated[str, typer.Option(help="Log level of the stack.")] = "INFO",
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Local development mode: serve the SDK's debug mode (E2B_DEBUG=true, no API key) a shared "
            "development sandbox, to clients on loopback only.",
        ),
    ] = False,
) -> None:
    """Start the runtime, API (port 3000), proxy (port 49983) and TLS edge (port 443, for E2B_DOMAIN), on
    loopback unless configured; build the base template if missing."""
    if os.geteuid() != 0:
        console.print(
            "[red]hutch up needs root (it mounts overlays, creates network namespaces and runs crun)"
        )
        raise typer.Exit(1)
    settings = Settings()
    if dev:
        settings.proxy.local_development = True
    if settings.proxy.local_development and not _is_loopback(settings.proxy.host):
        console.print(
            f"[red]local development mode serves a sandbox without an API key: it needs the proxy on "
            f"loopback (HUTCH_PROXY__HOST is {settings.proxy.host})"
        )
        raise typer.Exit(2)
    if detach:
        _detach(settings, env_file.resolve(), log_level)
        return
    logging.basicConfig(
        level=log_level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request to envd is noise here
    private_directory(_pid_file(settings).parent)
    write_private(_pid_file(settings), str(os.getpid()))
    # The stack (FastAPI, the runtime…) is loaded only here: the other commands start in a fraction of it.
    from ..stack import run

    try:
        with SetupProgress(console) as say:
            asyncio.run(run(settings, env_file=env_file.resolve(), say=say))
    finally:
        _pid_file(settings).unlink(missing_ok=True)


def _detach(settings: Settings, env_file: Path, log_level: str) -> None:
    private_directory(settings.data_dir)
    log_path = settings.data_dir / "hutch.log"
    started = time.time()
    narrow(log_path)  # one an older Hutch made
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE), "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hutch.cli.main",
                "up",
                "--env-file",
                str(env_file),
                "--log-level",
                log_level,
                *(["--dev"] if settings.proxy.local_development else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    with console.status("starting Hutch (the first start builds the base template, about a minute)"):
        while True:
            if process.poll() is not None:
                console.print(f"[red]hutch up failed; see {log_path}")
                raise typer.Exit(1)
            if env_file.exists() and env_file.stat().st_mtime >= started and _healthy(settings):
                break
            time.sleep(0.2)
    console.print(f"Hutch is up (pid {process.pid}, log {log_path}). Client settings in {env_file}:\n")
    console.print("\n".join(f"{k}={v}" for k, v in read_env_file(env_file).items()), highlight=False)


def _is_loopback(host: str) -> bool:
    from ..proxy.access import is_loopback  # the proxy's imports are loaded only by `hutch up`

    return is_loopback(host)


def _healthy(settings: Settings) -> bool:
    try:
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings.api.host, settings.api.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return httpx.get(f"http://{host}:{settings.api.port}/health", timeout=1).status_code < 300
    except httpx.TransportError:
        return False


def down() -> None:
    """Stop a Hutch started with ``hutch up --detach``."""
    settings = Settings()
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        console.print("Hutch is not running (no pid file).")
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        console.print("Hutch was not running.")
        return
    with console.status("stopping Hutch"):
        for _ in range(300):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    console.print("Hutch stopped.")
