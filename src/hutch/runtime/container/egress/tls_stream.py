"""The server side of a TLS connection over an asyncio stream whose first bytes were already read (the
egress proxy peeks at the ClientHello before it decides to terminate the connection): an ``ssl.SSLObject``
over memory buffers, fed those bytes first, then whatever the stream brings."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

CHUNK = 65536


class TlsServerStream:
    """Decrypted reads and encrypted writes over ``reader``/``writer``; at most one chunk is held."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        first: bytes,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._incoming.write(first)
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _fill(self) -> None:
        chunk = await self.reader.read(CHUNK)
        if chunk:
            self._incoming.write(chunk)
        else:
            self._incoming.write_eof()

    async def handshake(self) -> None:
        """Complete the handshake (``ssl.SSLError``, ``ConnectionError`` if it fails)."""
        while True:
            try:
                self._tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                if self._incoming.eof:
                    raise ConnectionError("closed during the TLS handshake") from None
                await self._fill()

    @property
    def alpn(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    async def read(self, size: int = CHUNK) -> bytes:
        """Up to ``size`` decrypted bytes; ``b""`` at the end (a clean close or not)."""
        while True:
            try:
                return self._tls.read(size)
            except ssl.SSLWantReadError:
                await self._flush()
                if self._incoming.eof:
                    return b""
                await self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    async def write(self, data: bytes) -> None:
        if data:
            self._tls.write(data)
            await self._flush()

    async def close(self) -> None:
        """Send close_notify (best effort) and close the stream."""
        with contextlib.suppress(ssl.SSLError, OSError, RuntimeError):
            with contextlib.suppress(ssl.SSLWantReadError):
                self._tls.unwrap()
            await self._flush()
        self.writer.close()
