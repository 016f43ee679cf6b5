"""One configured server as the gateway's client of it: fetched and installed (a custom server's clone and
``installCmd``), started as a stdio process, initialized with the ``mcp`` client library, its tools,
prompts and resources listed once; then its calls, at most ``MAX_CALLS_IN_FLIGHT`` at a time."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from .config import ServerPlan
from .processes import Account, Output, StepFailed, kill_group, run_step, spawn

log = logging.getLogger("mcp-gateway")

# The longest JSON-RPC message (one line) a server may send; a longer one ends the server.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_CALLS_IN_FLIGHT = 32
CALL_TIMEOUT_S = 300.0
# What one server may offer; the rest is left out (and logged).
MAX_LISTED = 1000


class Backend:
    """A server of the configuration and the client session to it."""

    def __init__(self, plan: ServerPlan, account: Account, servers_dir: Path) -> None:
        self.plan = plan
        self.account = account
        self.servers_dir = servers_dir
        self.output = Output(plan.name)
        self.tools: list[types.Tool] = []
        self.prompts: list[types.Prompt] = []
        self.resources: list[types.Resource] = []
        self.exited: str | None = None
        self._session: ClientSession | None = None
        self._stop = asyncio.Event()
        self._calls = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)

    async def run(self, started: asyncio.Future[None], deadline: float) -> None:
        """Start the server by ``deadline`` (``time.monotonic()``) and resolve ``started`` (with the error
        that stopped it, if any); then keep it until ``stop`` or until it exits."""
        process = None
        try:
            cwd = await self._fetch_and_install(deadline)
            env = self.account.environment(self.plan.env)
            process = await spawn(
                self.plan.command, self.account, cwd, env, pipes=True, limit=MAX_MESSAGE_BYTES
            )
            assert process.stderr is not None
            drained = asyncio.ensure_future(self.output.drain(process.stderr))
            async with (
                stdio_transport(process, self.plan.name) as (read, write),
                ClientSession(read, write) as session,
            ):
                try:
                    await asyncio.wait_for(self._list(session), _left(deadline))
                except Exception as error:
                    with suppress(TimeoutError):  # a server that closed its output is likely gone
                        await asyncio.wait_for(process.wait(), 2)
                    raise StepFailed(self._start_error(process, error)) from None
                self._session = session
                started.set_result(None)
                waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(process.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                waits[0].cancel()
            self._session = None
            if process.returncode is not None:
                self.exited = f"the server {self.plan.name} exited with {process.returncode}"
                log.warning("%s: %s", self.exited, self.output.tail())
            drained.cancel()
        except Exception as error:
            while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
                error = error.exceptions[0]  # the mcp library's task groups wrap what stopped them
            message = str(error) if isinstance(error, StepFailed) else f"{type(error).__name__}: {error}"
            self.exited = f"the server {self.plan.name} is not running: {message}"
            if not started.done():
                started.set_exception(StepFailed(f"{self.plan.name}: {message}"))
            log.warning("%s", self.exited, exc_info=not isinstance(error, StepFailed))
        finally:
            self._session = None
            if process is not None:
                kill_group(process)
                with suppress(ProcessLookupError):
                    await process.wait()

    def stop(self) -> None:
        self._stop.set()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session = self._running()
        async with self._calls:
            timeout = timedelta(seconds=CALL_TIMEOUT_S)
            return await session.call_tool(name, arguments, read_timeout_seconds=timeout)

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        session = self._running()
        async with self._calls:
            return await session.get_prompt(name, arguments)

    async def read_resource(self, uri: Any) -> types.ReadResourceResult:
        session = self._running()
        async with self._calls:
            return await session.read_resource(uri)

    def _running(self) -> ClientSession:
        if self._session is None:
            raise RuntimeError(self.exited or f"the server {self.plan.name} is not running")
        return self._session

    async def _fetch_and_install(self, deadline: float) -> str:
        """The directory the server runs in: a custom server's shallow clone (made unless there), after
        its ``installCmd``; the account's home for a catalog server."""
        repository = self.plan.repository
        if repository is None:
            return self.account.home if os.path.isdir(self.account.home) else "/"
        owner_dir = self.servers_dir / repository.owner
        for directory in (self.servers_dir, owner_dir):
            directory.mkdir(mode=0o755, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(directory, self.account.uid, self.account.gid)
        clone = owner_dir / repository.name
        env = self.account.environment({"GIT_TERMINAL_PROMPT": "0"})
        if not (clone / ".git").is_dir():
            argv = ["git", "clone", "--depth", "1", "--quiet", "--", repository.url, str(clone)]
            what = f"git clone {repository.url}"
            await run_step(what, argv, self.account, str(owner_dir), env, self.output, _left(deadline))
        if self.plan.install_cmd is not None:
            argv = ["sh", "-c", self.plan.install_cmd]
            await run_step("installCmd", argv, self.account, str(clone), env, self.output, _left(deadline))
        return str(clone)

    async def _list(self, session: ClientSession) -> None:
        initialized = await session.initialize()
        capabilities = initialized.capabilities
        if capabilities.tools is not None:
            self.tools = await _all(session.list_tools, "tools", self.plan.name)
        if capabilities.prompts is not None:
            self.prompts = await _all(session.list_prompts, "prompts", self.plan.name)
        if capabilities.resources is not None:
            self.resources = await _all(session.list_resources, "resources", self.plan.name)
        counts = (len(self.tools), len(self.prompts), len(self.resources))
        log.info("%s: %d tools, %d prompts, %d resources", self.plan.name, *counts)

    def _start_error(self, process: asyncio.subprocess.Process, error: BaseException) -> str:
        if process.returncode is not None:
            return f"it exited with {process.returncode} before it answered: {self.output.tail()}"
        if isinstance(error, TimeoutError):
            return f"it did not answer MCP's initialize in time: {self.output.tail()}"
        return f"{type(error).__name__}: {error} {self.output.tail()}".strip()


async def _all(list_page: Any, attribute: str, name: str) -> list:
    """Every page of a listing, up to ``MAX_LISTED`` items."""
    items: list = []
    cursor = None
    while True:
        page = await list_page(cursor)
        items += getattr(page, attribute)
        cursor = page.nextCursor
        if len(items) >= MAX_LISTED:
            log.warning("%s: more than %d %s; the rest are left out", name, MAX_LISTED, attribute)
            return items[:MAX_LISTED]
        if not cursor:
            return items


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.1)


@asynccontextmanager
async def stdio_transport(process: asyncio.subprocess.Process, name: str) -> AsyncIterator[tuple[Any, Any]]:
    """The ``mcp`` library's pair of streams over a server's stdin and stdout: one JSON-RPC message a line,
    none longer than ``MAX_MESSAGE_BYTES`` (a longer one ends the server); unbuffered streams, so a server
    that sends faster than the gateway reads waits."""
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)
    assert process.stdout is not None and process.stdin is not None
    stdout, stdin = process.stdout, process.stdin

    async def read() -> None:
        async with incoming_send:
            while True:
                try:
                    line = await stdout.readline()
                except ValueError:  # over the limit
                    log.warning("%s: a message over %d bytes; the server is stopped", name, MAX_MESSAGE_BYTES)
                    kill_group(process)
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    message = types.JSONRPCMessage.model_validate_json(line)
                except ValidationError:
                    log.warning("%s: not a JSON-RPC message on stdout: %r", name, line[:200])
                    continue
                await incoming_send.send(SessionMessage(message))

    async def write() -> None:
        async with outgoing_receive:
            async for message in outgoing_receive:
                text = message.message.model_dump_json(by_alias=True, exclude_none=True)
                try:
                    stdin.write(text.encode() + b"\n")
                    await stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return

    tasks = [asyncio.ensure_future(read()), asyncio.ensure_future(write())]
    try:
        yield incoming, outgoing
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stdin.close()
