"""Connect RPC over HTTP/1.1 with the JSON codec, as the E2B SDK speaks it.

Three call shapes, each an adapter from a service function to an HTTP handler:

* :func:`unary` — ``application/json`` in and out; errors are a non-200 status with
  ``{"code": "<connect code>", "message": ...}``.
* :func:`server_stream` — one request envelope in; ``application/connect+json`` envelopes out, each flushed,
  then an end-stream envelope (flag 0x02) holding ``{}`` or ``{"error": {...}}``. The service is an async
  generator; idle streams get keepalive messages, and a client that goes away cancels the generator.
  When envd is told to stop (the state's ``stopping``), every open stream ends with ``unavailable``: the
  client then knows its stream broke off, whatever is between it and envd (a proxy that would pass a
  closed connection on as a complete answer).
* :func:`client_stream` — envelopes in, one message and the end-stream envelope out.

Envelope: 1 flag byte (0x01 compressed, 0x02 end-stream), 4-byte big-endian length, payload.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable

from .errors import CONNECT_STATUS, RpcError
from .server import ClientGone, Request, Response

log = logging.getLogger("hutch.envd")

Message = dict[str, Any]
STREAM_CONTENT_TYPE = "application/connect+json"
END_STREAM = 0x02
COMPRESSED = 0x01
MAX_MESSAGE = 16 * 1024 * 1024
DEFAULT_KEEPALIVE_S = 90.0
# Messages a stream may have produced but not yet written: a slow client slows the producer down.
STREAM_WINDOW = 8
_END = object()
_GONE = object()
_STOPPING = object()
SHUTTING_DOWN = "envd is shutting down: the sandbox is stopping"


class Call:
    """What a service sees of one RPC: the HTTP request, its deadline and the envd state."""

    def __init__(self, request: Request, state: Any) -> None:
        self.request = request
        self.headers = request.headers
        self.state = state
        self.started = time.monotonic()
        self.timeout_s = _timeout_s(request.headers.get("connect-timeout-ms"))
        self.keepalive_s = _keepalive_s(request.headers.get("keepalive-ping-interval"))

    @property
    def disconnected(self) -> asyncio.Event:
        return self.request.disconnected


def field(msg: Message, name: str, default: Any = None) -> Any:
    """Read a protobuf-JSON field by its lowerCamelCase name, accepting the snake_case original too."""
    if name in msg:
        return msg[name]
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
    return msg.get(snake, default)


def message(value: Any, what: str) -> Message:
    """A sub-message: an object, or absent/null as empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RpcError("invalid_argument", f"{what} must be an object")
    return value


def decode_bytes(value: Any, what: str) -> bytes:
    """A protobuf ``bytes`` field: standard or URL-safe base64, padding optional."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise RpcError("invalid_argument", f"{what} must be a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RpcError("invalid_argument", f"{what} is not valid base64") from None


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def text(value: Any, what: str) -> str | None:
    """A protobuf string field (absent is None)."""
    if value is None or isinstance(value, str):
        return value
    raise RpcError("invalid_argument", f"{what} must be a string")


def uint(value: Any, what: str, limit: int = 0xFFFFFFFFFFFFFFFF) -> int:
    """A protobuf integer field, sent as a number or (64-bit) as a string, at most ``limit``."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise RpcError("invalid_argument", f"{what} must be an integer")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise RpcError("invalid_argument", f"{what} must be an integer") from None
    if not isinstance(value, int) or value < 0 or value > limit:
        raise RpcError("invalid_argument", f"{what} must be an integer from 0 to {limit}")
    return value


def _timeout_s(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        ms = int(raw)
    except ValueError:
        return None
    return ms / 1000 if ms > 0 else None


def _keepalive_s(raw: str | None) -> float:
    try:
        seconds = float(raw) if raw else DEFAULT_KEEPALIVE_S
    except ValueError:
        return DEFAULT_KEEPALIVE_S
    return seconds if seconds > 0 else DEFAULT_KEEPALIVE_S


def _dumps(msg: Message) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _parse(payload: bytes) -> Message:
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise RpcError("invalid_argument", "request is not valid JSON") from None
    if not isinstance(msg, dict):
        raise RpcError("invalid_argument", "request must be a JSON object")
    return msg


def envelope(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


async def frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Split a byte stream into envelopes: ``(flags, payload)``. Used on both sides of a stream (envd's
    requests, the runtime's reading of envd's answers)."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= 5:
            flags, length = struct.unpack_from(">BI", buf)
            if length > MAX_MESSAGE:
                raise RpcError("resource_exhausted", "message too large")
            if len(buf) < 5 + length:
                break
            payload = bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            yield flags, payload
    if buf:
        raise RpcError("invalid_argument", "incomplete envelope at end of stream")


async def read_envelopes(request: Request) -> AsyncIterator[Message]:
    """Yield the JSON messages of a streaming request body, envelope by envelope."""
    async for flags, payload in frames(request.stream()):
        if flags & COMPRESSED:
            raise RpcError("unimplemented", "compressed messages are not supported")
        if flags & END_STREAM:
            continue
        yield _parse(payload)


def _check_content_type(request: Request, expected: str) -> str | None:
    got = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if got != expected:
        return f"unsupported content-type {got!r}, expected {expected!r}"
    return None


async def _send_unary_error(response: Response, err: RpcError) -> None:
    await response.send(
        CONNECT_STATUS[err.code], _dumps(err.to_json()), [("content-type", "application/json")]
    )


def unary(fn: Callable[[Call, Message], Awaitable[Message]]):
    """Adapt ``async fn(call, msg) -> msg`` to a Connect unary endpoint."""

    async def handle(request: Request, response: Response, state: Any) -> None:
        call = Call(request, state)
        try:
            problem = _check_content_type(request, "application/json")
            if problem:
                await request.body(limit=MAX_MESSAGE)
                body = _dumps({"code": "unimplemented", "message": problem})
                await response.send(415, body, [("content-type", "application/json")])
                return
            try:
                raw = await request.body(limit=MAX_MESSAGE)
            except ValueError:
                raise RpcError("resource_exhausted", "message too large") from None
            msg = _parse(raw or b"{}")
            if call.timeout_s is not None:
                try:
                    result = await asyncio.wait_for(fn(call, msg), call.timeout_s)
                except asyncio.TimeoutError:
                    raise RpcError("deadline_exceeded", "context deadline exceeded") from None
            else:
                result = await fn(call, msg)
        except RpcError as err:
            await _send_unary_error(response, err)
            return
        await response.send(200, _dumps(result), [("content-type", "application/json")])

    return handle


class _StreamWriter:
    def __init__(self, response: Response) -> None:
        self.response = response

    async def open(self) -> None:
        await self.response.start(200, [("content-type", STREAM_CONTENT_TYPE)])

    async def send(self, msg: Message) -> None:
        await self.response.write(envelope(0, _dumps(msg)))

    async def close(self, error: RpcError | None = None) -> None:
        end: Message = {"error": error.to_json()} if error is not None else {}
        await self.response.write(envelope(END_STREAM, _dumps(end)))
        await self.response.finish()


async def _first_message(request: Request) -> Message:
    first: Message | None = None
    async for msg in read_envelopes(request):
        if first is not None:
            raise RpcError("invalid_argument", "server-streaming call takes exactly one message")
        first = msg
    if first is None:
        raise RpcError("invalid_argument", "missing request message")
    return first


def server_stream(
    fn: Callable[[Call, Message], AsyncIterator[Message]],
    keepalive: Message,
    enforce_deadline: bool = True,
):
    """Adapt an async generator ``fn(call, msg)`` to a Connect server-streaming endpoint.

    ``keepalive`` is sent after ``Keepalive-Ping-Interval`` seconds without a message. With
    ``enforce_deadline`` the stream ends with ``deadline_exceeded`` when ``Connect-Timeout-Ms`` runs out;
    services that give the timeout another meaning (a process's lifetime) turn it off.
    """

    async def handle(request: Request, response: Response, state: Any) -> None:
        call = Call(request, state)
        out = _StreamWriter(response)
        problem = _check_content_type(request, STREAM_CONTENT_TYPE)
        if problem:
            await request.body(limit=MAX_MESSAGE)
            body = _dumps({"code": "unimplemented", "message": problem})
            await response.send(415, body, [("content-type", "application/json")])
            return
        try:
            msg = await _first_message(request)
        except RpcError as err:
            await out.open()
            await out.close(err)
            return
        await out.open()
        await _pump(call, fn(call, msg), out, keepalive, enforce_deadline)

    return handle


async def _pump(
    call: Call,
    messages: AsyncIterator[Message],
    out: _StreamWriter,
    keepalive: Message,
    enforce_deadline: bool,
) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    window = asyncio.Semaphore(STREAM_WINDOW)

    async def produce() -> None:
        try:
            async for msg in messages:
                await window.acquire()
                queue.put_nowait(msg)
            queue.put_nowait(_END)
        except RpcError as err:
            queue.put_nowait(err)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("stream failed")
            queue.put_nowait(RpcError("internal", str(err)))

    producer = asyncio.ensure_future(produce())
    gone = asyncio.ensure_future(call.disconnected.wait())
    gone.add_done_callback(lambda _: queue.put_nowait(_GONE))
    told = asyncio.ensure_future(call.state.stopping.wait())
    told.add_done_callback(lambda done: None if done.cancelled() else queue.put_nowait(_STOPPING))
    call.state.stream_opened()
    deadline = call.started + call.timeout_s if (enforce_deadline and call.timeout_s) else None
    try:
        while True:
            wait = call.keepalive_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            try:
                item = await asyncio.wait_for(queue.get(), max(wait, 0))
            except asyncio.TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    await out.close(RpcError("deadline_exceeded", "context deadline exceeded"))
                    return
                await out.send(keepalive)
                continue
            if item is _GONE:
                raise ClientGone()
            if item is _STOPPING:
                await out.close(RpcError("unavailable", SHUTTING_DOWN))
                return
            if item is _END:
                await out.close()
                return
            if isinstance(item, RpcError):
                await out.close(item)
                return
            await out.send(item)
            window.release()
    finally:
        gone.cancel()
        told.cancel()
        call.state.stream_closed()
        if not producer.done():
            producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        aclose = getattr(messages, "aclose", None)
        if aclose is not None:
            await aclose()


def client_stream(fn: Callable[[Call, AsyncIterator[Message]], Awaitable[Message]]):
    """Adapt ``async fn(call, messages) -> msg`` to a Connect client-streaming endpoint."""

    async def handle(request: Request, response: Response, state: Any) -> None:
        call = Call(request, state)
        out = _StreamWriter(response)
        problem = _check_content_type(request, STREAM_CONTENT_TYPE)
        if problem:
            await request.body(limit=MAX_MESSAGE)
            body = _dumps({"code": "unimplemented", "message": problem})
            await response.send(415, body, [("content-type", "application/json")])
            return
        try:
            result = await fn(call, read_envelopes(request))
        except RpcError as err:
            # Drain what the client still sends so the error reaches it on a clean exchange.
            try:
                async for _ in request.stream():
                    pass
            except Exception:
                pass
            await out.open()
            await out.close(err)
            return
        await out.open()
        await out.send(result)
        await out.close()

    return handle
