"""The outside of the egress secrets tests, run in its own network namespace: an HTTPS server (a test CA's
certificate) that writes the headers of every request it gets to a log and answers ``ok <host>`` (never
the headers, so that nothing it got goes back to the sandbox), a SOCKS5 server (port 1080) and an HTTP
proxy (port 3128), both with username/password auth, that log each CONNECT's target, and a UDP echo on
port 53 of each address given.

argv: cert key https_log socks_log socks_user socks_password address...
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import ssl
import struct
import sys
import threading

CERT, KEY, HTTPS_LOG, SOCKS_LOG, USER, PASSWORD, *ADDRESSES = sys.argv[1:]
NAMES = {"api.test", "other.test", "exact.wild.test", "x.y.wild.test", "z.deep.wild.test", "wild.test"}
lock = threading.Lock()


def record(path: str, entry: dict) -> None:
    with lock, open(path, "a") as log:
        log.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and body go out at once, not after a delayed ACK

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record(HTTPS_LOG, {"path": self.path, "headers": self.headers.items(), "body": len(body)})
        answer = f"ok {self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def socks_client(conn: socket.socket) -> None:
    try:
        _, count = exact(conn, 2)
        if 2 not in exact(conn, count):
            conn.sendall(b"\x05\xff")
            return
        conn.sendall(b"\x05\x02")
        _, ulen = exact(conn, 2)
        user = exact(conn, ulen).decode()
        (plen,) = exact(conn, 1)
        password = exact(conn, plen).decode()
        if (user, password) != (USER, PASSWORD):
            conn.sendall(b"\x01\x01")
            return
        conn.sendall(b"\x01\x00")
        _, command, _, kind = exact(conn, 4)
        if kind == 3:
            (length,) = exact(conn, 1)
            host = exact(conn, length).decode()
            address = ADDRESSES[0] if host in NAMES else None
        else:
            host = address = socket.inet_ntoa(exact(conn, 4))
        (port,) = struct.unpack("!H", exact(conn, 2))
        record(SOCKS_LOG, {"kind": kind, "host": host, "port": port})
        if command != 1 or address is None:
            conn.sendall(b"\x05\x04\x00\x01" + bytes(6))
            return
        upstream = socket.create_connection((address, port), timeout=5)
        upstream.settimeout(None)
        conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)
    except OSError:
        pass


def connect_client(conn: socket.socket) -> None:
    """An HTTP proxy's CONNECT with Basic credentials, logged to the SOCKS log as ``kind`` "http"."""
    try:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        login = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if f"Proxy-Authorization: {login}" not in lines[1:]:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        record(SOCKS_LOG, {"kind": "http", "host": host, "port": int(port)})
        address = ADDRESSES[0] if host in NAMES else host
        if method != "CONNECT" or not (host in NAMES or host in ADDRESSES):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((address, int(port)), timeout=5)
        upstream.settimeout(None)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)
    except (OSError, ValueError):
        pass


def http_proxy() -> None:
    listener = socket.create_server(("0.0.0.0", 3128))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=connect_client, args=(conn,), daemon=True).start()


def socks() -> None:
    listener = socket.create_server(("0.0.0.0", 1080))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=socks_client, args=(conn,), daemon=True).start()


def udp_echo(address: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    while True:
        data, peer = sock.recvfrom(512)
        sock.sendto(b"answer:" + data, peer)


secure = Server(("0.0.0.0", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
threads = [secure.serve_forever, socks, http_proxy] + [lambda a=a: udp_echo(a) for a in ADDRESSES]
for target in threads:
    threading.Thread(target=target, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
