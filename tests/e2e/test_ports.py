"""User ports through the proxy: host routing ``{port}-{id}.{domain}`` and header routing."""

from __future__ import annotations

import time

import httpx


def _serve(sandbox, port: int) -> None:
    sandbox.files.write("/home/user/site/index.html", "<h1>hello from the sandbox</h1>")
    sandbox.commands.run(f"cd /home/user/site && python3 -m http.server {port}", background=True, timeout=0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"
        probe = sandbox.commands.run(f'python3 -c "{code}" 2>/dev/null && echo up || true')
        if probe.stdout.strip() == "up":
            return
        time.sleep(0.1)
    raise AssertionError("the http.server did not start")


def test_host_routing(stack, sandbox):
    _serve(sandbox, 8000)
    response = httpx.get(
        f"http://127.0.0.1:{stack.proxy_port}/index.html",
        headers={"Host": f"8000-{sandbox.sandbox_id}.localhost:{stack.proxy_port}"},
    )
    assert response.status_code == 200
    assert "hello from the sandbox" in response.text


def test_header_routing(stack, sandbox):
    _serve(sandbox, 8001)
    response = httpx.get(
        f"{stack.sandbox_url}/index.html",
        headers={"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "8001"},
    )
    assert response.status_code == 200
    assert "hello from the sandbox" in response.text


def test_closed_port_is_reported(stack, sandbox):
    response = httpx.get(
        f"{stack.sandbox_url}/", headers={"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "8999"}
    )
    assert response.status_code == 502
    assert response.json()["message"] == "The sandbox is running but port is not open"


ECHO_HOST = """
from http.server import BaseHTTPRequestHandler, HTTPServer
class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.headers.get("Host", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("0.0.0.0", 8002), Echo).serve_forever()
"""


def test_mask_request_host_rewrites_the_host_of_user_ports(stack):
    sandbox = stack.create(network={"mask_request_host": "app.example.test:${PORT}"})
    try:
        sandbox.files.write("/home/user/echo.py", ECHO_HOST)
        sandbox.commands.run("python3 /home/user/echo.py", background=True, timeout=0)
        deadline = time.monotonic() + 10
        while True:
            response = httpx.get(
                f"http://127.0.0.1:{stack.proxy_port}/",
                headers={"Host": f"8002-{sandbox.sandbox_id}.localhost:{stack.proxy_port}"},
            )
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.text == "app.example.test:8002"
        # envd's port keeps the client's Host: the SDK still works.
        assert sandbox.commands.run("echo fine").stdout.strip() == "fine"
    finally:
        sandbox.kill()
