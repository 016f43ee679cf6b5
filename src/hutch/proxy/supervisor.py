"""The proxy as a child process of ``hutch up``, started again whenever it dies.

The supervisor binds the proxy's port itself and hands the listening socket to each child
(``python -m hutch.proxy --fd N``): while a child is being replaced, new connections wait in the socket's
backlog instead of being refused, and no child ever races another for the port. A child that dies is
started again at once; only one that keeps dying within seconds of its start waits before the next try
(:mod:`.children`). The current child's pid is in ``<data_dir>/proxy.pid``.

Each child asks the kernel for SIGKILL when its parent dies (``--parent``, see ``__main__``), so a
``kill -9`` of ``hutch up`` takes the proxy with it and a new ``hutch up`` can bind the port. That signal is
tied to the thread that started the child: children are started from the event loop's thread, which lives
as long as the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from ..config import ProxySettings, Settings
from .children import Supervised
from .hints import RouteHints
from .server import GRACEFUL_SHUTDOWN_S

PID_FILE = "proxy.pid"
# How long the first child may take until it answers a request.
START_TIMEOUT_S = 60
# After SIGTERM, the child's graceful shutdown, then SIGKILL.
STOP_TIMEOUT_S = GRACEFUL_SHUTDOWN_S + 5


class ProxyProcess(Supervised):
    """``await start()`` binds the port, starts the proxy and waits until it answers, then keeps it
    running; ``await stop()`` stops it (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`)."""

    name = "the proxy"
    stop_timeout_s = STOP_TIMEOUT_S

    def __init__(self, settings: Settings, hints: RouteHints | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.hints = hints
        self.pid_file = settings.data_dir / PID_FILE
        self._listener: socket.socket | None = None

    async def start(self) -> None:
        self._listener = _listen(self.settings.proxy)
        process = await self._spawn()
        await self._wait_serving(process)
        self._keep_running()

    async def stop(self) -> None:
        await self._stop_child()
        self.pid_file.unlink(missing_ok=True)
        if self._listener is not None:
            self._listener.close()

    async def _spawn(self) -> asyncio.subprocess.Process:
        assert self._listener is not None
        fd = self._listener.fileno()
        settings = self.settings
        # The child builds its settings from the environment: make them this process's, whatever their source.
        env = {
            **os.environ,
            "HUTCH_DATA_DIR": str(settings.data_dir),
            "HUTCH_CATALOG__URL": settings.catalog_url,
            **{
                f"HUTCH_PROXY__{name.upper()}": str(value)
                for name, value in settings.proxy.model_dump().items()
            },
        }
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        hints = [] if self.hints is None else ["--hints-fd", str(self.hints.child_fd)]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hutch.proxy",
            # The data directory on the command line names the node in `ps` (and for leak checks).
            "--data-dir",
            str(settings.data_dir),
            "--fd",
            str(fd),
            "--parent",
            str(os.getpid()),
            "--log-level",
            level,
            *hints,
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(fd,) if self.hints is None else (fd, self.hints.child_fd),
            # Its own process group: a terminal's Ctrl-C reaches `hutch up`, which stops the proxy itself.
            process_group=0,
        )
        _write_atomically(self.pid_file, f"{self._process.pid}\n")
        return self._process

    async def _wait_serving(self, process: asyncio.subprocess.Process) -> None:
        """Until the child answers an HTTP request on the port; RuntimeError if it exits first."""
        assert self._listener is not None
        host, port = self._listener.getsockname()[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        probe = asyncio.ensure_future(_answers(host, port))
        exited = asyncio.ensure_future(process.wait())
        done, pending = await asyncio.wait(
            {probe, exited}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if probe not in done or probe.exception() is not None:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise RuntimeError(f"the proxy did not start (exit status {process.returncode})")


def _listen(settings: ProxySettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((settings.host, settings.port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


async def _answers(host: str, port: int) -> None:
    """Send one request that the proxy answers itself (a 400: no sandbox named) and read the status line."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        line = await reader.readline()
        if not line.startswith(b"HTTP/"):
            raise ConnectionError(f"unexpected answer: {line!r}")
    finally:
        writer.close()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)
