"""The names a connection's first bytes carry (TLS SNI, HTTP Host), and host-name patterns."""

from __future__ import annotations

import ssl
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hutch.runtime.container.egress.sni import (
    INVALID,
    OTHER,
    Sniffed,
    matches,
    normalise_name,
    pattern,
    sniff,
)


def real_client_hello(server_name: str | None) -> bytes:
    """The ClientHello Python's own TLS stack (OpenSSL) sends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:  # waiting for the ServerHello: the ClientHello is out
        return outgoing.read()
    raise AssertionError("the handshake cannot finish without a server")


def _vector(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!H", kind) + _vector(data, 2)


def _sni(*names: bytes, kind: int = 0) -> bytes:
    return _extension(0, _vector(b"".join(bytes([kind]) + _vector(n, 2) for n in names), 2))


def client_hello(*extensions: bytes, trailing: bytes = b"", record_size: int = 16384) -> bytes:
    """A hand-made ClientHello with these extensions, in records of at most ``record_size`` bytes."""
    body = b"\x03\x03" + bytes(32) + _vector(b"", 1) + _vector(b"\x13\x01", 2) + _vector(b"\x00", 1)
    body += _vector(b"".join(extensions), 2) + trailing
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    chunks = [handshake[i : i + record_size] for i in range(0, len(handshake), record_size)]
    return b"".join(b"\x16\x03\x01" + _vector(chunk, 2) for chunk in chunks)


HELLOS = [client_hello(_sni(b"a.example")), real_client_hello("b.example")]


# -- TLS ------------------------------------------------------------------------------------------------


def test_openssl_client_hello():
    hello = real_client_hello("Allowed.Example.com")
    assert sniff(hello) == Sniffed("tls", "allowed.example.com")
    assert sniff(hello + b"\x17\x03\x03\x00\x01x") == Sniffed("tls", "allowed.example.com")


def test_no_server_name():
    assert sniff(real_client_hello(None)) == Sniffed("tls", None)
    assert sniff(client_hello()) == Sniffed("tls", None)


def test_every_prefix_asks_for_more():
    hello = real_client_hello("example.com")
    for end in range(1, len(hello)):
        assert sniff(hello[:end]) is None, end
        assert sniff(hello[:end], complete=True) == INVALID


@pytest.mark.parametrize("record_size", [1, 2, 3, 7, 100])
def test_hello_over_several_records(record_size):
    hello = client_hello(_extension(10, b"\x00\x02\x00\x1d"), _sni(b"a.example"), record_size=record_size)
    assert sniff(hello) == Sniffed("tls", "a.example")


@pytest.mark.parametrize(
    "hello",
    [
        client_hello(_sni(b"a.example"), _sni(b"b.example")),  # the extension twice
        client_hello(_sni(b"a.example", b"b.example")),  # two host names
        client_hello(_sni(b"caf\xc3\xa9.example")),  # not ASCII
        client_hello(_sni(b"bad name.example")),
        client_hello(_sni(b"")),
        client_hello(_sni(b"10.0.0.1:443")),
        client_hello(_sni(b"[::1]")),
        client_hello(_extension(0, b"")),  # server_name without a list
        client_hello(_sni(b"x.example", kind=7)),  # no host_name entry
        client_hello(_sni(b"a.example"), trailing=b"\x00"),  # bytes after the extensions
        b"\x16\x03\x01\x00\x00",  # empty record
        b"\x16\x03\x01\x40\x01" + bytes(16385),  # record over 2^14
        b"\x16\x02\x00\x00\x05",  # not TLS 1.x
        b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",  # a ServerHello
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x02",  # legacy_version 2.x
        # half the hello, then a record that is not a handshake
        b"\x16\x03\x01" + _vector(client_hello()[5:15], 2) + b"\x17\x03\x01\x00\x01x",
    ],
)
def test_malformed_hellos_are_invalid(hello):
    assert sniff(hello) == INVALID


def test_trailing_dot_and_case():
    assert sniff(client_hello(_sni(b"WWW.Example.COM."))) == Sniffed("tls", "www.example.com")


# -- HTTP -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: Allowed.Test\r\nAccept: */*\r\n\r\n", Sniffed("http", "allowed.test")),
        (b"GET / HTTP/1.1\r\nhost:allowed.test:8080\r\n\r\n", Sniffed("http", "allowed.test")),
        (b"POST /x HTTP/1.0\nHOST: \t a.test \t\n\n", Sniffed("http", "a.test")),
        (b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", Sniffed("http", "2001:db8::1")),
        (b"GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", Sniffed("http", "10.0.0.1")),
        (b"GET / HTTP/1.0\r\n\r\n", Sniffed("http", None)),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Sniffed("http", None)),
        (b"GET http://u@b.test:81/p?q HTTP/1.1\r\nHost: b.test\r\n\r\n", Sniffed("http", "b.test")),
        (b"GET http://b.test HTTP/1.1\r\n\r\n", Sniffed("http", "b.test")),
        (b"CONNECT c.test:443 HTTP/1.1\r\nHost: c.test:443\r\n\r\n", Sniffed("http", "c.test")),
        (b"OPTIONS * HTTP/1.1\r\nHost: d.test\r\n\r\n", Sniffed("http", "d.test")),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", OTHER),
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", OTHER),
        (b"PING\r\n", OTHER),
        (b"\x00\x00\x00\x08\x04\xd2\x16/", OTHER),  # PostgreSQL SSLRequest
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nhost: a.test\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nX: 1\r\n Host: b.test\r\n\r\n", INVALID),  # folded
        (b"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nHost: a.test/evil\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nHost: a.test:80:80\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nHost: a.test:x\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nHost: a.t\xc3\xa9st\r\n\r\n", INVALID),
        (b"GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n", INVALID),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", INVALID),
    ],
)
def test_http(request_bytes, expected):
    assert sniff(request_bytes) == expected


def test_http_waits_for_the_whole_header_block():
    request = b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n"
    for end in range(1, len(request)):
        assert sniff(request[:end]) is None, request[:end]
        assert sniff(request[:end], complete=True) == INVALID
    assert sniff(request) == Sniffed("http", "a.test")


def test_nothing_sent():
    assert sniff(b"") is None
    assert sniff(b"", complete=True) == OTHER


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_any_bytes_give_an_answer(data, complete):
    result = sniff(data, complete=complete)
    assert result is None or isinstance(result, Sniffed)
    if complete:
        assert result is not None
    if result is not None and result.name is not None:
        assert normalise_name(result.name) == result.name


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_hellos_never_break_the_parser(data):
    hello = bytearray(data.draw(st.sampled_from(HELLOS)))
    for _ in range(data.draw(st.integers(1, 4))):
        hello[data.draw(st.integers(0, len(hello) - 1))] = data.draw(st.integers(0, 255))
    end = data.draw(st.integers(0, len(hello)))
    result = sniff(bytes(hello[:end]), complete=data.draw(st.booleans()))
    assert result is None or result.protocol in ("tls", "invalid", "other", "http")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_http_like_garbage(head, tail):
    result = sniff(b"GET / HTTP/1.1\r\n" + head + b"\r\n\r\n" + tail)
    assert result is None or result.protocol in ("http", "invalid")


# -- patterns -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("example.com", "example.com"),
        (" Example.COM. ", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("*", "*"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("*.bücher.de", "*.xn--bcher-kva.de"),
        ("localhost", "localhost"),
        ("1.2.3.4", None),
        ("10.0.0.0/8", None),
        ("0.0.0.0/0", None),
        ("2001:db8::/32", None),
        ("example.com:443", None),
        ("*.*.example.com", None),
        ("ex*mple.com", None),
        ("*example.com", None),
        ("*.", None),
        ("", None),
        ("a" * 64 + ".com", None),
        ("-bad.com", None),
        ("http://example.com", None),
    ],
)
def test_pattern(entry, expected):
    assert pattern(entry) == expected


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("example.com", ["example.com"], True),
        ("www.example.com", ["example.com"], False),
        ("www.example.com", ["*.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("badexample.com", ["*.example.com"], False),
        ("anything.test", ["*"], True),
        ("example.com", [], False),
    ],
)
def test_matches(name, patterns, expected):
    assert matches(name, patterns) is expected
