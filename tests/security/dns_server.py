"""A name server for tests, standard library only: answers A queries over UDP for the names it is given,
an empty answer for other types of those names, NXDOMAIN for any other name.

``python dns_server.py ADDRESS NAME=IPV4 [NAME=IPV4 ...]`` serves on ADDRESS, port 53, until killed.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

TYPE_A, CLASS_IN = 1, 1
NXDOMAIN = 3


def question(query: bytes) -> tuple[str, int, int]:
    """The first question's name (lower case), type and the offset just past it."""
    labels, offset = [], 12
    while length := query[offset]:
        labels.append(query[offset + 1 : offset + 1 + length].decode("ascii").lower())
        offset += 1 + length
    qtype = struct.unpack("!H", query[offset + 1 : offset + 3])[0]
    return ".".join(labels), qtype, offset + 5


def answer(query: bytes, names: dict[str, str]) -> bytes:
    """The response to ``query``: the question echoed, and an A record if ``names`` has one."""
    name, qtype, end = question(query)
    address = names.get(name)
    records = b""
    if address is not None and qtype == TYPE_A:
        rdata = ipaddress.IPv4Address(address).packed
        records = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, 60, len(rdata)) + rdata
    rcode = NXDOMAIN if address is None else 0
    flags = 0x8180 | rcode  # a response, recursion desired and available
    header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if records else 0, 0, 0)
    return header + query[12:end] + records


def serve(address: str, names: dict[str, str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 53))
        while True:
            query, client = sock.recvfrom(512)
            try:
                sock.sendto(answer(query, names), client)
            except (IndexError, UnicodeDecodeError, struct.error):
                continue  # not a query this server understands


if __name__ == "__main__":
    serve(sys.argv[1], dict(entry.lower().split("=", 1) for entry in sys.argv[2:]))
