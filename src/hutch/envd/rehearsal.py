"""The fork server's rehearsal: before it forks any envd, it serves a few requests of each kind an envd
answers first (``/health``, ``/init``, a Connect call) to a throw-away envd over a socket pair.

What a first request makes once and keeps (the interpreter's specialised bytecode, compiled patterns,
caches of the standard library and h11) is then made in the server, whose pages every envd shares, instead
of in each envd's own copy of them. The rehearsal reads no file and touches no network: the server's
root holds nothing a sandbox may see, and it may have no loopback.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from .router import Envd
from .server import serve_connection
from .state import EnvdState

# Runs of each request: enough for the interpreter to specialise every path they take.
RUNS = 64

_INIT = b'{"envVars": {"A": "1"}, "timestamp": "2026-01-01T00:00:00Z"}'
_LIST = b"{}"
REQUESTS = (
    b"GET /health HTTP/1.1\r\nHost: envd\r\n\r\n",
    b"POST /init HTTP/1.1\r\nHost: envd\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_INIT), _INIT),
    b"POST /process.Process/List HTTP/1.1\r\nHost: envd\r\nContent-Type: application/json\r\n"
    b"Connect-Protocol-Version: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(_LIST), _LIST),
)


def rehearse(runs: int = RUNS) -> None:
    """Serve ``runs`` rounds of :data:`REQUESTS` on one keep-alive connection; raises if an answer is not
    a success, and leaves no thread, descriptor or event loop behind."""
    before = set(threading.enumerate())
    asyncio.run(_rehearse(runs))
    if set(threading.enumerate()) - before:
        raise RuntimeError("the rehearsal left a thread: the fork server must stay single-threaded")


async def _rehearse(runs: int) -> None:
    ours, theirs = socket.socketpair()
    with ours:
        server_reader, server_writer = await asyncio.open_connection(sock=theirs)
        served = asyncio.create_task(serve_connection(Envd(EnvdState()), server_reader, server_writer))
        reader, writer = await asyncio.open_connection(sock=ours)
        try:
            for _ in range(runs):
                for request in REQUESTS:
                    writer.write(request)
                    await _answer(reader)
        finally:
            writer.close()
            await served


async def _answer(reader: asyncio.StreamReader) -> None:
    """Read one answer (its head, then as many body bytes as it says) and check its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if not status.startswith(b"2"):
        raise RuntimeError(f"the rehearsal's request was answered {head.splitlines()[0]!r}")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))
