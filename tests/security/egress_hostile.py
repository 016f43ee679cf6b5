"""Hostile clients of the egress proxy's interception, run inside a test sandbox's network namespace: each
prints what came back (or ``closed``) and how long the proxy took to end the connection.

argv: mode address name ca_file
"""

from __future__ import annotations

import socket
import ssl
import sys
import time

MODE, ADDRESS, NAME, CA = sys.argv[1:5]


def connect(server_name: str = NAME) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=CA)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE if MODE == "long-sni" else ssl.CERT_REQUIRED
    raw = socket.create_connection((ADDRESS, 443), timeout=60)
    return context.wrap_socket(raw, server_hostname=server_name)


def answer(conn: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


started = time.monotonic()
try:
    if MODE == "huge-header":
        conn = connect()
        conn.sendall(b"GET / HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\nX-Big: ")
        sent = 0
        try:
            while sent < 100 * 1024 * 1024:
                conn.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
        print(f"sent {sent}")
        print(answer(conn)[:200])
    elif MODE == "malformed":
        conn = connect()
        conn.sendall(b"GET / HTTP/1.1\r\nHost " + NAME.encode() + b"\r\n\x00\x01\r\n\r\n")
        print(answer(conn)[:200])
    elif MODE == "slowloris":
        conn = connect()
        conn.sendall(b"GET / HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\n")
        try:
            for _ in range(60):
                conn.sendall(b"X-a: b\r\n")
                time.sleep(0.5)
        except OSError:
            pass
        print(answer(conn)[:200])
    elif MODE == "smuggle":
        conn = connect()
        conn.sendall(
            b"POST / HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: "
            + NAME.encode()
            + b"\r\n\r\n"
        )
        print(answer(conn)[:200])
    elif MODE == "long-sni":
        try:
            conn = connect("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 40)
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            print(answer(conn)[:200])
        except (OSError, ssl.SSLError) as err:
            print(f"closed {type(err).__name__}")
    elif MODE == "keep-alive":
        conn = connect()
        for i in range(3):
            conn.sendall(b"GET /k%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, NAME.encode()))
        conn.sendall(b"GET /last HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % NAME.encode())
        print(answer(conn).decode(errors="replace"))
except (OSError, ssl.SSLError) as err:
    print(f"closed {type(err).__name__}")
print(f"took {time.monotonic() - started:.1f}")
