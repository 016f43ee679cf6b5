"""A small server to start in a sandbox, whose answers show its memory: a random token made at its start
and a count of the requests it answered (what a pause, a resume or a fork must keep); and a dialer, whose
open connection keeps gVisor from saving the sandbox's memory. Used by ``pause_bench.py`` and by the pause
and snapshot tests."""

from __future__ import annotations

from e2b import Sandbox

# A server whose answer is a random token made at its start (its memory) and a request counter.
SERVER = """\
import http.server, secrets
token, count = secrets.token_hex(8), [0]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        count[0] += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"{token} {count[0]}".encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""
ASK = "curl -s --retry 20 --retry-connrefused --retry-delay 0 --max-time 5 http://127.0.0.1:8000/"


def start_server(sandbox: Sandbox) -> int:
    sandbox.files.write("/home/user/server.py", SERVER)
    return sandbox.commands.run("python3 /home/user/server.py", background=True, timeout=0).pid


def ask(sandbox: Sandbox) -> tuple[str, int]:
    token, count = sandbox.commands.run(ASK).stdout.split()
    return token, int(count)


# A connection the sandbox opens itself and leaves half-open (to the host's side of its link, which drops
# it): gVisor cannot checkpoint such a connection, so the sandbox's memory cannot be saved while it lasts.
DIALER = """\
import ipaddress, pathlib, socket, subprocess, time
address = subprocess.run(["ip", "-4", "-o", "address", "show", "eth0"], capture_output=True, text=True)
host = ipaddress.ip_interface(address.stdout.split()[3]).network.network_address
dialing = socket.socket()
dialing.setblocking(False)
dialing.connect_ex((str(host), 9))
pathlib.Path("/tmp/dialing").touch()
time.sleep(3600)
"""


def start_dialer(sandbox: Sandbox) -> int:
    """Start the dialer; returns its pid once its connection is being made."""
    sandbox.files.write("/home/user/dialer.py", DIALER)
    pid = sandbox.commands.run("python3 /home/user/dialer.py", background=True, timeout=0).pid
    sandbox.commands.run("for i in $(seq 100); do test -e /tmp/dialing && exit; sleep 0.1; done; exit 1")
    return pid
