"""Hop-by-hop headers are dropped in both directions."""

from __future__ import annotations

from hutch.proxy.asgi import end_to_end


def test_hop_by_hop_headers_are_dropped():
    headers = [
        (b"Host", b"x"),
        (b"Connection", b"keep-alive, X-Private"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Authorization", b"secret"),
        (b"x-private", b"dropped because Connection names it"),
        (b"Content-Encoding", b"gzip"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert end_to_end(headers) == [
        (b"host", b"x"),
        (b"content-encoding", b"gzip"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
