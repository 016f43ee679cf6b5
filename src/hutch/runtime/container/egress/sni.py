"""The host a new TCP connection names in its first bytes, and host-name patterns to match it against.

``sniff`` reads the server name (SNI) of a TLS ClientHello or the ``Host`` of an HTTP/1 request from the
bytes a client sent first. It never reads past the data it is given, so the caller bounds the input, and
it decides as soon as it can: ``None`` means "send more bytes". Anything that starts like TLS or HTTP but
does not parse cleanly is ``INVALID``; the egress proxy refuses it, so that a name cannot be smuggled past
it in a form a server would read differently (two ``Host`` headers, two server names, a folded header…).

Patterns are what ``allowOut``/``denyOut`` may hold besides addresses: ``example.com`` (that name only),
``*.example.com`` (any name below it, not ``example.com`` itself) and ``*`` (any name). Names and
patterns compare case-insensitively, without a trailing dot, internationalised names as their ``xn--``
form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_RECORD = 16384  # TLSPlaintext.length may not exceed 2^14
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/(\d)\.(\d)\r?")
_METHOD_PREFIX = re.compile(rb"(?:" + _TOKEN + rb")(?: [\x21-\x7e]*(?: H?T?T?P?/?\d?\.?\d?\r?)?)?")
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(.*?)[ \t]*\r?")
_BLOCK_END = re.compile(rb"\n\r?\n")


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes of a connection say: ``tls``, ``http``, ``other`` (neither) or ``invalid``
    (looks like TLS or HTTP but is malformed), and the host name it names, if any (normalised)."""

    protocol: str
    name: str | None = None


OTHER = Sniffed("other")
INVALID = Sniffed("invalid")


class _Malformed(Exception):
    pass


def normalise_name(raw: str) -> str | None:
    """A host name in canonical form (lower case, no trailing dot, ``xn--`` labels, IPv6 compressed), or
    ``None`` if it is not a valid host name or IP literal."""
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
        try:
            return str(ipaddress.IPv6Address(raw))
        except ValueError:
            return None
    try:
        name = raw.encode("idna").decode("ascii") if not raw.isascii() else raw
    except UnicodeError:
        return None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not 0 < len(name) <= 253:
        return None
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return name


def pattern(entry: str) -> str | None:
    """The host-name pattern an ``allowOut``/``denyOut`` entry stands for, or ``None`` if it is none
    (an address, a CIDR, or not a valid name)."""
    entry = entry.strip()
    if entry == "*":
        return "*"
    try:
        ipaddress.ip_network(entry, strict=False)
        return None
    except ValueError:
        pass
    if entry.startswith("*."):
        name = normalise_name(entry[2:])
        return None if name is None or ":" in name else "*." + name
    name = normalise_name(entry)
    return None if name is None or ":" in name else name


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether the (normalised) ``name`` matches any of the patterns."""
    for candidate in patterns:
        if candidate == "*" or candidate == name:
            return True
        if candidate.startswith("*.") and name.endswith(candidate[1:]):
            return True
    return False


def sniff(data: bytes, *, complete: bool = False) -> Sniffed | None:
    """Classify the first bytes a client sent. ``None``: undecided, more bytes are needed. With
    ``complete`` (no more bytes will come: end of stream, the byte limit or the time limit was reached)
    the answer is never ``None``."""
    if not data:
        return OTHER if complete else None
    try:
        if data[0] == 0x16:
            result = _tls(data)
        elif _METHOD_PREFIX.match(data):
            result = _http(data)
        else:
            return OTHER
    except _Malformed:
        return INVALID
    if result is None and complete:
        return INVALID
    return result


# -- TLS ------------------------------------------------------------------------------------------------


class _Reader:
    """Bounds-checked reads over a byte string; reading past the end is ``_Malformed``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise _Malformed
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def _tls(data: bytes) -> Sniffed | None:
    """Join the handshake records until the ClientHello is whole, then read its server name."""
    handshake = bytearray()
    pos = 0
    while True:
        header = data[pos : pos + 5]
        if len(header) >= 2 and header[1] != 3:
            raise _Malformed
        if len(header) < 5:
            return None
        length = int.from_bytes(header[3:5], "big")
        if header[0] != 0x16 or not 0 < length <= MAX_RECORD:
            raise _Malformed
        if len(data) - pos - 5 < length:
            return None
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != 1:  # client_hello
                raise _Malformed
            size = int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= 4 + size:
                return Sniffed("tls", _client_hello_name(bytes(handshake[4 : 4 + size])))


def _client_hello_name(body: bytes) -> str | None:
    hello = _Reader(body)
    if hello.number(1) != 3:  # legacy_version 3.x
        raise _Malformed
    hello.take(1 + 32)  # minor version, random
    if len(hello.vector(1)) > 32:  # legacy_session_id
        raise _Malformed
    suites = hello.vector(2)
    if not suites or len(suites) % 2:
        raise _Malformed
    if not hello.vector(1):  # legacy_compression_methods
        raise _Malformed
    if hello.done:
        return None  # no extensions at all
    extensions = _Reader(hello.vector(2))
    if not hello.done:
        raise _Malformed
    seen: set[int] = set()
    name = None
    while not extensions.done:
        kind = extensions.number(2)
        content = extensions.vector(2)
        if kind in seen:
            raise _Malformed
        seen.add(kind)
        if kind == 0:  # server_name
            name = _server_name(content)
    return name


def _server_name(content: bytes) -> str:
    outer = _Reader(content)
    names = _Reader(outer.vector(2))
    if not outer.done or names.done:
        raise _Malformed
    found = None
    while not names.done:
        kind = names.number(1)
        value = names.vector(2)
        if kind != 0:  # only host_name (0) is defined
            continue
        if found is not None:
            raise _Malformed
        found = _checked_name(value, ip_literal=False)
    if found is None:
        raise _Malformed
    return found


def _checked_name(value: bytes, *, ip_literal: bool) -> str:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise _Malformed from None
    if not ip_literal and (text.startswith("[") or ":" in text):
        raise _Malformed
    name = normalise_name(text)
    if name is None:
        raise _Malformed
    return name


# -- HTTP/1 ---------------------------------------------------------------------------------------------


def _http(data: bytes) -> Sniffed | None:
    end = data.find(b"\n")
    if end < 0:
        return None if _METHOD_PREFIX.fullmatch(data) else OTHER
    request = _REQUEST_LINE.fullmatch(data[:end])
    if request is None:
        return OTHER
    method, target, major = request.group(1), request.group(2), request.group(3)
    if major != b"1":
        return OTHER  # HTTP/2 with prior knowledge ("PRI * HTTP/2.0") names its host inside HPACK
    target_host = _target_host(method, target)
    # Parse the header block only once it is whole: a client sending it a line at a time costs a scan
    # per read, not a parse.
    block_end = _BLOCK_END.search(data, end)
    if block_end is None:
        return None
    hosts = []
    for line in data[end + 1 : block_end.start() + 1].split(b"\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            raise _Malformed  # obsolete line folding
        header = _HEADER.fullmatch(line)
        if header is None:
            raise _Malformed
        if header.group(1).lower() == b"host":
            hosts.append(header.group(2))
    if len(hosts) > 1:
        raise _Malformed
    host = _authority_host(hosts[0]) if hosts and hosts[0] else None
    if target_host is not None:
        if host is not None and host != target_host:
            raise _Malformed
        host = target_host
    return Sniffed("http", host)


def _target_host(method: bytes, target: bytes) -> str | None:
    """The host of an absolute-form target (``http://host/…``, which servers prefer over ``Host``) or of
    a CONNECT's authority-form target; ``None`` for an origin-form path or ``*``."""
    if method == b"CONNECT":
        return _authority_host(target)
    scheme, separator, rest = target.partition(b"://")
    if not separator:
        return None
    if not re.fullmatch(rb"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise _Malformed
    authority = re.split(rb"[/?#]", rest, maxsplit=1)[0]
    authority = authority.rpartition(b"@")[2]
    return _authority_host(authority)


def _authority_host(authority: bytes) -> str:
    """``host``, ``host:port`` or ``[v6]:port`` → the normalised host."""
    if authority.startswith(b"["):
        close = authority.find(b"]")
        if close < 0:
            raise _Malformed
        host, rest = authority[: close + 1], authority[close + 1 :]
    else:
        host, colon, port = authority.partition(b":")
        rest = colon + port
    if rest and not re.fullmatch(rb":\d{0,5}", rest):
        raise _Malformed
    if not host:
        raise _Malformed
    return _checked_name(host, ip_literal=True)
