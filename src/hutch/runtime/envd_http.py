"""HTTP/1.1 to a sandbox's envd, one connection per call, with ``h11``: what the runtime's calls to envd
(``envd_client``) are sent over.

A sandbox's envd is the tenant's to replace, so every answer is bounded: its head by ``MAX_HEAD`` beyond
what one read brings (``READ_SIZE``), a body that is read whole by ``MAX_BODY``, and the whole call by its
timeout. A call that cannot reach envd, or that gets no complete answer, is ``Unreachable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import h11

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
READ_SIZE = 16 * 1024
# Of what envd sent (an answer's body, the line h11 could not parse), what an error shows.
SHOWN = 200

Body = bytes | AsyncIterable[bytes]
T = TypeVar("T")


class Unreachable(Exception):
    """envd could not be reached, or its answer broke off or was not HTTP."""


@dataclass(frozen=True)
class Answer:
    """A whole answer: its status and (at most ``MAX_BODY`` of) its body."""

    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass(frozen=True)
class Stream:
    """An answer whose body is read as it comes: ``chunks()`` yields it."""

    status: int
    _connection: _Connection

    def chunks(self) -> AsyncIterator[bytes]:
        return self._connection.body()


async def call(
    base_url: str,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: Body = b"",
    timeout_s: float | None,
) -> Answer:
    """Send one request and read its whole answer (a body beyond ``MAX_BODY`` is ``Unreachable``)."""
    async with streaming(base_url, method, target, headers=headers, body=body, timeout_s=timeout_s) as answer:
        content = bytearray()
        async for chunk in answer.chunks():
            content += chunk
            if len(content) > MAX_BODY:
                raise Unreachable(f"envd's answer to {method} {target} is larger than {MAX_BODY} bytes")
        return Answer(answer.status, bytes(content))


@asynccontextmanager
async def streaming(
    base_url: str,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: Body = b"",
    timeout_s: float | None,
) -> AsyncIterator[Stream]:
    """Send one request and yield its answer once its head came; the block reads the body. The timeout
    bounds the whole call, the reading of the body included; the connection is closed when the block
    ends."""
    url = urlsplit(base_url)
    if url.hostname is None or url.port is None:
        raise ValueError(f"envd's URL names no host and port: {base_url!r}")
    deadline = None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s
    connection = _Connection(f"{method} {target}", deadline)
    await connection.open(url.hostname, url.port)
    try:
        await connection.send(method, target, url.netloc, headers or {}, body)
        yield Stream(await connection.head(), connection)
    finally:
        connection.close()


class _Connection:
    """One request and its answer on one connection; every step of it ends by the deadline, and what
    breaks it is ``Unreachable``."""

    def __init__(self, what: str, deadline: float | None) -> None:
        self._what = what
        self._deadline = deadline
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, host: str, port: int) -> None:
        self._reader, self._writer = await self._guarded(asyncio.open_connection(host, port))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def send(self, method: str, target: str, host: str, headers: dict[str, str], body: Body) -> None:
        fields = [("Host", host), *headers.items()]
        fields.append(
            ("Content-Length", str(len(body)))
            if isinstance(body, bytes)
            else ("Transfer-Encoding", "chunked")
        )
        self._write(h11.Request(method=method, target=target, headers=fields))
        if isinstance(body, bytes):
            if body:
                self._write(h11.Data(data=body))
        else:
            async for chunk in body:
                if chunk:
                    self._write(h11.Data(data=chunk))
                    await self._drain()
        self._write(h11.EndOfMessage())
        await self._drain()

    async def head(self) -> int:
        while True:
            event = await self._next()
            if isinstance(event, h11.Response):
                return event.status_code
            if not isinstance(event, h11.InformationalResponse):  # ``100 Continue`` comes first
                raise self._broken(f"{type(event).__name__} before the answer's head")

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise self._broken(f"{type(event).__name__} in the answer's body")

    def _write(self, event: h11.Event) -> None:
        assert self._writer is not None
        self._writer.write(self._h11.send(event) or b"")

    async def _drain(self) -> None:
        assert self._writer is not None
        await self._guarded(self._writer.drain())

    async def _next(self) -> object:
        assert self._reader is not None
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                raise self._broken(str(error)) from error
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.ConnectionClosed):
                    raise self._broken("the connection closed")
                return event
            self._h11.receive_data(await self._guarded(self._reader.read(READ_SIZE)))

    async def _guarded(self, step: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(self._deadline):
                return await step
        except TimeoutError as error:
            raise Unreachable(f"envd did not answer {self._what} in time") from error
        except OSError as error:
            raise self._broken(str(error) or type(error).__name__) from error

    def _broken(self, why: str) -> Unreachable:
        return Unreachable(f"envd's answer to {self._what} broke off: {why[:SHOWN]}")
