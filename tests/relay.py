"""A TCP relay on threads: connections to ``listen`` are joined to ``target``, bytes copied both ways
unchanged (TLS passes through). For a client in a namespace of its own to reach a server on loopback;
``cut()`` breaks every connection it holds, as a network that fails for a moment."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class Relay:
    def __init__(self) -> None:
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def hold(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(sockets)

    def cut(self) -> None:
        """Break every connection now (both ends see a reset); new ones are relayed as before."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()


@contextlib.contextmanager
def relay(listen: tuple[str, int], target: tuple[str, int]) -> Iterator[Relay]:
    relaying = Relay()

    class Joined(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection(target, timeout=10) as upstream:
                upstream.settimeout(None)
                relaying.hold(self.request, upstream)
                back = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
                back.start()
                _pipe(self.request, upstream)
                back.join()
                relaying.drop(self.request, upstream)

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server(listen, Joined) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield relaying
        finally:
            server.shutdown()
