"""The runtime's HTTP to envd (``envd_http``), against servers on loopback: whole and streamed answers,
uploads, and what a hostile envd (the tenant's to replace) may send back: every such answer is
``Unreachable`` (so a ``BackendUnavailable`` for the runtime), bounded in memory and in time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hutch.envd.connect import envelope
from hutch.errors import BackendUnavailable
from hutch.runtime import envd_client, envd_http
from hutch.runtime.types import SandboxSpec, TemplateImage

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SHORT_S = 0.5


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A server on a free loopback port that answers every connection with ``handler``; its base URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def _request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request's head and its body (by its length, or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    if b"Content-Length" in fields:
        return head, await reader.readexactly(int(fields[b"Content-Length"]))
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if not size:
            return head, body
        body += chunk[:-2]


def answering(raw: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(raw)
        await writer.drain()

    return handler


async def test_a_whole_answer_and_what_was_sent() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()

    async with serving(handler) as url:
        answer = await envd_http.call(
            url, "POST", "/init?a=1", headers={"X-Access-Token": "t"}, body=b"{}", timeout_s=5
        )
    assert (answer.status, answer.body) == (200, b"hello")
    head, body = seen[0]
    assert head.startswith(b"POST /init?a=1 HTTP/1.1\r\n")
    assert b"X-Access-Token: t\r\n" in head and b"Host: 127.0.0.1:" in head
    assert body == b"{}"


async def test_an_upload_is_sent_chunked() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await _request(reader))[1])
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"", b"two"):
            yield part

    async with serving(handler) as url:
        await envd_client.upload(url, "/tmp/x", parts())
    assert seen == [b"one two"]


async def test_a_command_runs_through_a_stream() -> None:
    events = [
        {"event": {"start": {"pid": 7}}},
        {"event": {"data": {"stdout": "aGkK"}}},
        {"event": {"end": {"exitCode": 3}}},
    ]
    stream = b"".join(envelope(0, json.dumps(event).encode()) for event in events)
    chunked = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (stream[:7], stream[7:])) + b"0\r\n\r\n"
    )
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    output: list[str] = []
    async with serving(answering(raw)) as url:
        code = await envd_client.run(url, "echo hi", user="user", on_output=output.append, timeout_s=5)
    assert (code, output) == (3, ["hi\n"])


HOSTILE = {
    "not http": b"SSH-2.0-OpenSSH " + b"x" * 8000 + b"\r\n\r\n",
    "cut head": b"HTTP/1.1 204 No",
    "cut body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
    "huge head": b"HTTP/1.1 200 OK\r\nX-Fill: " + b"a" * 4 * envd_http.READ_SIZE + b"\r\n\r\n",
    "huge body": b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % (envd_http.MAX_BODY + 1)
    + b"x" * (envd_http.MAX_BODY + 1),
    "nothing": b"",
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_answer_is_unreachable(raw: bytes) -> None:
    async with serving(answering(raw)) as url:
        with pytest.raises(envd_http.Unreachable) as raised:
            await envd_http.call(url, "GET", "/health", timeout_s=5)
        assert len(str(raised.value)) < 2 * envd_http.SHOWN
        with pytest.raises(BackendUnavailable):
            await envd_client.init(url, _spec(), default_user="user")


async def test_an_answer_that_never_ends_is_cut_at_the_timeout() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async with serving(trickle) as url:
        started = asyncio.get_running_loop().time()
        with pytest.raises(envd_http.Unreachable, match="in time"):
            await envd_http.call(url, "GET", "/health", timeout_s=SHORT_S)
        with pytest.raises(BackendUnavailable, match="broken"):
            await envd_client.run(url, "true", user="user", timeout_s=SHORT_S)
    assert asyncio.get_running_loop().time() - started < 20 * SHORT_S


async def test_a_stream_of_garbage_is_broken() -> None:
    stream = envelope(0, b"not json") + envelope(0, b'{"event": []}')
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(stream), stream)
    async with serving(answering(raw)) as url:
        with pytest.raises(BackendUnavailable, match="broken"):
            await envd_client.run(url, "true", user="user", timeout_s=5)


async def test_nothing_listening_is_unreachable() -> None:
    async with serving(answering(b"")) as url:
        pass
    with pytest.raises(envd_http.Unreachable):
        await envd_http.call(url, "GET", "/health", timeout_s=5)


def _spec() -> SandboxSpec:
    return SandboxSpec(template=TemplateImage(template_id="t", rootfs=Path("/")))
