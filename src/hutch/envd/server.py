"""HTTP/1.1 server for envd: asyncio streams with h11 doing the protocol work.

One task per connection reads requests with h11 and hands each to the router as a :class:`Request` and a
:class:`Response`. Bodies stream both ways: a request body is read chunk by chunk, a response is either sent
whole, streamed with chunked encoding (flushed per write) or sent from a file with ``sendfile``. While a
response streams, the connection is watched so a handler learns at once when the client goes away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Callable
from urllib.parse import parse_qsl, unquote

import h11

log = logging.getLogger("hutch.envd")

READ_SIZE = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024
LINGER_S = 5.0

Headers = list[tuple[str, str]]
Handler = Callable[["Request", "Response"], Awaitable[None]]


class ClientGone(Exception):
    """The client closed the connection before the exchange finished."""


class Request:
    """One HTTP request: method, path, query, headers, and its body as a stream."""

    def __init__(self, conn: _Connection, method: str, target: str, headers: Headers) -> None:
        self._conn = conn
        self.method = method
        path, _, query = target.partition("?")
        self.path = unquote(path)
        self.query = dict(parse_qsl(query, keep_blank_values=True))
        self.header_list = headers
        self.headers = dict(headers)
        self.body_done = False
        self.body_complete = asyncio.Event()

    @property
    def disconnected(self) -> asyncio.Event:
        """Set when the client closes the connection while the response is still being produced."""
        return self._conn.disconnected

    @property
    def body_pending(self) -> bool:
        """True while body bytes may still be on their way (more than the end-of-message marker)."""
        if self.body_done:
            return False
        if "transfer-encoding" in self.headers:
            return True
        return self.headers.get("content-length", "0").strip() not in ("", "0")

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body's chunks as they arrive."""
        if self._conn.h11.they_are_waiting_for_100_continue:
            await self._conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        while not self.body_done:
            event = await self._conn.next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.body_done = True
                self.body_complete.set()
            else:
                raise ClientGone()

    async def body(self, limit: int = 64 * 1024 * 1024) -> bytes:
        """Read the whole body (at most ``limit`` bytes)."""
        chunks = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise ValueError("request body too large")
            chunks.append(chunk)
        return b"".join(chunks)


class Response:
    """Writes one response: whole, streamed (chunked) or from a file."""

    def __init__(self, conn: _Connection, request: Request | None = None) -> None:
        self._conn = conn
        self._request = request
        self.started = False
        self.finished = False
        self.status = 0
        self.added_headers: Headers = []  # put on this response's head, whoever starts it

    async def send(self, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send a complete response with a Content-Length."""
        all_headers = list(headers)
        if status not in (204, 304):
            all_headers.append(("content-length", str(len(body))))
        await self._start(status, all_headers)
        if body:
            await self._conn.send(h11.Data(data=body))
        await self.finish()

    async def start(
        self, status: int, headers: Iterable[tuple[str, str]] = (), content_length: int | None = None
    ) -> None:
        """Start a streamed response: chunked unless a length is given."""
        all_headers = list(headers)
        if content_length is None:
            all_headers.append(("transfer-encoding", "chunked"))
        else:
            all_headers.append(("content-length", str(content_length)))
        await self._start(status, all_headers)

    async def write(self, data: bytes) -> None:
        """Send one piece of a streamed body and flush it."""
        if data:
            await self._conn.send(h11.Data(data=data))

    async def sendfile(self, file, offset: int, count: int) -> None:
        """Send ``count`` bytes of an open binary file as (part of) a Content-Length body."""
        await self._conn.sendfile(file, offset, count)

    async def finish(self) -> None:
        if not self.finished:
            self.finished = True
            await self._conn.send(h11.EndOfMessage())

    async def _start(self, status: int, headers: Headers) -> None:
        if self.started:
            raise RuntimeError("response already started")
        headers = [*headers, *self.added_headers]
        if self._request is not None and self._request.body_pending:
            # Answering before the body is in (an error cut it short): the connection ends with this
            # response, so the client does not send its next request into it.
            headers = [*headers, ("connection", "close")]
        self.started = True
        self.status = status
        await self._conn.send(h11.Response(status_code=status, headers=headers))


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.disconnected = asyncio.Event()
        self._eof = False

    async def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self._eof:
                return h11.ConnectionClosed()
            data = await self.reader.read(READ_SIZE)
            if not data:
                self._eof = True
            self.h11.receive_data(data)

    async def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            if self.disconnected.is_set():
                raise ClientGone()
            self.writer.write(data)
            await self.writer.drain()

    async def sendfile(self, file, offset: int, count: int) -> None:
        # h11 only counts the bytes of a Content-Length body; the bytes themselves go straight to the socket.
        self.h11.send_with_data_passthrough(h11.Data(data=_Length(count)))
        await self.writer.drain()
        loop = asyncio.get_running_loop()
        sent = await loop.sendfile(self.writer.transport, file, offset, count)
        if sent != count:
            raise ClientGone()

    async def _watch_disconnect(self) -> None:
        """While a response is produced, read ahead so that a closed connection is noticed at once."""
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    self._eof = True
                    self.disconnected.set()
                    return
                self.h11.receive_data(data)
        except (ConnectionError, OSError):
            self._eof = True
            self.disconnected.set()

    async def serve(self) -> None:
        try:
            while True:
                event = await self.next_event()
                if isinstance(event, h11.Request):
                    if not await self._one_request(event):
                        break
                    if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                        break
                    self.h11.start_next_cycle()
                else:
                    break
        except h11.RemoteProtocolError as err:
            await self._protocol_error(err)
        except (ClientGone, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writer.close()

    async def _one_request(self, event: h11.Request) -> bool:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
        request = Request(self, event.method.decode("ascii"), event.target.decode("latin-1"), headers)
        response = Response(self, request)
        self.disconnected = asyncio.Event()
        handler_task = asyncio.ensure_future(self.handler(request, response))
        body_read = asyncio.ensure_future(request.body_complete.wait())
        watcher: asyncio.Task | None = None
        try:
            await asyncio.wait([handler_task, body_read], return_when=asyncio.FIRST_COMPLETED)
            if not handler_task.done():
                # The body is in; while the handler keeps producing, notice a client that goes away.
                watcher = asyncio.ensure_future(self._watch_disconnect())
                await asyncio.wait([handler_task, watcher], return_when=asyncio.FIRST_COMPLETED)
                if not handler_task.done():
                    await asyncio.wait([handler_task], timeout=5)
                    handler_task.cancel()
            try:
                await handler_task
            except (ClientGone, ConnectionError, asyncio.CancelledError):
                return False
        finally:
            for task in (body_read, watcher):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        if not response.finished or self.disconnected.is_set():
            return False
        if request.body_pending:
            await self._linger()
            return False
        if not request.body_done:
            try:  # only the end-of-message marker is left
                await asyncio.wait_for(request.body(limit=0), 1)
            except Exception:
                return False
        return True

    async def _linger(self) -> None:
        """Close after answering with a request body still coming: stop sending, then drop what the client
        still sends until it closes too. Closing at once would reset the connection while the client is
        writing, and the reset can destroy the answer before the client reads it."""
        try:
            self.writer.write_eof()
            deadline = asyncio.get_running_loop().time() + LINGER_S
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 or not await asyncio.wait_for(self.reader.read(READ_SIZE), left):
                    return
        except (asyncio.TimeoutError, ConnectionError, OSError, RuntimeError):
            return

    async def _protocol_error(self, err: h11.RemoteProtocolError) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = b'{"code":%d,"message":"bad request"}' % err.error_status_hint
        try:
            self.writer.write(
                self.h11.send(
                    h11.Response(
                        status_code=err.error_status_hint,
                        headers=[("content-type", "application/json"), ("content-length", str(len(body)))],
                    )
                )
                + self.h11.send(h11.Data(data=body))
                + self.h11.send(h11.EndOfMessage())
            )
            await self.writer.drain()
        except Exception:
            pass


class _Length:
    """A stand-in for body bytes that h11 only measures (the bytes go through ``sendfile``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


async def serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve the requests of one connection until it closes."""
    try:
        await _Connection(reader, writer, handler).serve()
    except asyncio.CancelledError:
        pass  # envd is shutting down


async def serve(handler: Handler, host: str, port: int, sock: socket.socket | None = None):
    """Start listening; returns the ``asyncio.Server``."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = writer.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await serve_connection(handler, reader, writer)

    if sock is not None:
        return await asyncio.start_server(on_client, sock=sock, limit=READ_SIZE)
    return await asyncio.start_server(
        on_client, host=host, port=port, reuse_address=True, limit=READ_SIZE, backlog=1024
    )
