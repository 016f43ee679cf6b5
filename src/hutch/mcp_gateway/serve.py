"""The gateway process: starts every configured server (all before the deadline, or none), then serves
them on the port; each step is reported as a JSON line on the status descriptor the launcher reads, which
is closed once the gateway serves or has given up."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import time
from typing import Any

import uvicorn
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from . import config, logs
from .backend import Backend
from .endpoint import asgi_app
from .gateway import build_server
from .processes import Account

log = logging.getLogger("mcp-gateway")

MAX_SESSIONS = 64
MAX_CONNECTIONS = 128
SESSION_IDLE_S = 30 * 60
# Longer than clients keep an idle connection (the SDKs: 300 s), so that the client closes it first and never
# sends a request on one the gateway is closing (uvicorn's default is 5 s).
KEEP_ALIVE_S = 620


def main(options: argparse.Namespace) -> int:
    logs.set_up(options.log_file)
    status = os.fdopen(options.status_fd, "w", buffering=1) if options.status_fd is not None else None

    def report(**event: Any) -> None:
        log.info("%s", json.dumps(event))
        if status is not None and not status.closed:
            try:
                status.write(json.dumps(event) + "\n")
            except BrokenPipeError:
                pass
            if event.get("event") in ("ready", "failed"):
                status.close()

    try:
        return asyncio.run(serve(options, report))
    except Exception as error:
        log.exception("the gateway stopped")
        report(event="failed", error=f"{type(error).__name__}: {error}")
        return 1


async def serve(options: argparse.Namespace, report: Any) -> int:
    token = (options.state_dir / ".token").read_text().strip()
    (options.state_dir / "gateway.pid").write_text(f"{os.getpid()}\n")
    plans = config.parse((options.state_dir / "config.json").read_text())
    account = Account.named(options.user)
    listener = socket.create_server((options.host, options.port))
    # Until it serves, SIGTERM (the launcher giving up) stops the servers started so far.
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    deadline = time.monotonic() + options.start_timeout
    backends = [Backend(plan, account, options.servers_dir) for plan in plans]
    started = [loop.create_future() for _ in backends]
    running = [asyncio.ensure_future(b.run(s, deadline)) for b, s in zip(backends, started, strict=True)]
    outcomes = await asyncio.gather(*started, return_exceptions=True)
    failures = [str(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
    try:
        if failures:
            report(event="failed", error="\n".join(failures))
            return 1
        for backend in backends:
            report(event="server", name=backend.plan.name, tools=len(backend.tools))
        manager = StreamableHTTPSessionManager(
            app=build_server(backends),
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_sessions=MAX_SESSIONS,
            session_idle_timeout=SESSION_IDLE_S,
        )
        http = uvicorn.Server(
            uvicorn.Config(
                asgi_app(manager, token),
                log_config=None,
                access_log=False,
                lifespan="off",
                limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        loop.remove_signal_handler(signal.SIGTERM)  # uvicorn's own handler stops it from here on
        async with manager.run():
            serving = asyncio.ensure_future(http.serve(sockets=[listener]))
            while not http.started and not serving.done():
                await asyncio.sleep(0.02)
            if not http.started:
                await serving
                report(event="failed", error="the HTTP server did not start")
                return 1
            report(event="ready", tools=sum(len(b.tools) for b in backends), servers=len(backends))
            await serving
        return 0
    finally:
        for backend in backends:
            backend.stop()
        await asyncio.gather(*running, return_exceptions=True)
        listener.close()
