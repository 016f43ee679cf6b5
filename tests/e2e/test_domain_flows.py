"""The flows of a sandbox's ``get_host(port)`` URL through the TLS edge, with a client given only
``E2B_DOMAIN`` and ``E2B_API_KEY``: the traffic access token, a masked ``Host``, waking an autoResume
sandbox by HTTP, the immediate answers of a paused and a killed sandbox, Node's ``getHost`` with
``fetch``, and a headless Chromium. The stack's proxy has a short idle timeout, so that a sandbox port
that never answers is seen to end within it.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox

from hutch.proxy.haproxy import proxy_timeout_s
from tests import edge_ca
from tests.browser import chromium, trusting_home
from tests.cli.test_e2b_npm_cli import Cli, e2b_cli  # noqa: F401 (a fixture)
from tests.e2e.domain_fixtures import ca_context, node_environment, serve, use_only_domain
from tests.stack import WORKER, Stack, running_stack

# Apart from the session's stack (tests/stack.py), which runs at the same time.
SUBNET = f"10.{180 + WORKER}.0.0/16"  # the flow tests' own stack

PORT = 8000
SILENT_PORT = 8001
IDLE_TIMEOUT_S = 3
NOT_FOUND = "The sandbox was not found"
MISSING_TOKEN = (
    "Sandbox is secured with traffic access token. Token header 'e2b-traffic-access-token' is missing"
)
# A page that tells the Host it was asked for, with the standard library only.
HOST_ECHO = textwrap.dedent(
    """
    import http.server
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("<html><body><p id='page'>served from the sandbox for "
                    + self.headers.get("Host", "") + "</p></body></html>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Echo).serve_forever()
    """
).replace("PORT", str(PORT))
# Accepts every connection and never answers.
SILENT = textwrap.dedent(
    """
    import socket
    server = socket.create_server(("0.0.0.0", PORT), reuse_port=True)
    held = []
    while True:
        held.append(server.accept()[0])
    """
).replace("PORT", str(SILENT_PORT))
NODE_FETCH = textwrap.dedent(
    """
    const path = require('node:path')
    const { Sandbox } = require(require.resolve('e2b', { paths: [path.dirname(process.argv[2])] }))
    ;(async () => {
      const sandbox = await Sandbox.connect(process.argv[3])
      const host = sandbox.getHost(8000)
      const response = await fetch(`https://${host}/`)
      console.log(JSON.stringify({ host, status: response.status, text: await response.text() }))
    })().catch((err) => { console.error(err); process.exit(1) })
    """
)


@pytest.fixture(scope="module")
def flows_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {"HUTCH_PROXY__IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}
    with running_stack(
        tmp_path_factory, "hutch-flows", subnet=SUBNET, edge=True, settings=settings
    ) as running:
        yield running


@pytest.fixture()
def only_domain(flows_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return use_only_domain(flows_stack, monkeypatch)


def _create(stack: Stack, **options) -> Sandbox:
    sandbox = Sandbox.create(**options)
    stack.seen.add(sandbox.sandbox_id)
    return sandbox


@pytest.fixture()
def web(only_domain: Stack) -> Iterator[Sandbox]:
    """A sandbox serving :data:`HOST_ECHO` on :data:`PORT`."""
    sandbox = _create(only_domain)
    _serve_echo(sandbox)
    yield sandbox
    sandbox.kill()


def _serve_echo(sandbox: Sandbox) -> str:
    sandbox.files.write("/home/user/echo.py", HOST_ECHO)
    return serve(sandbox, "python3 /home/user/echo.py", PORT)


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, verify=ca_context(), timeout=60)


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = _get(url)
    return response, time.monotonic() - started


def _curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["curl", "-sS", "--cacert", str(edge_ca.ca_path()), "-w", "\n%{http_code}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_secured_port_wants_the_traffic_token(only_domain: Stack):
    sandbox = _create(only_domain, network={"allow_public_traffic": False})
    try:
        host = _serve_echo(sandbox)
        token = sandbox.traffic_access_token
        assert token
        url = f"https://{host}/"

        refused = _get(url)
        assert refused.status_code == 403
        assert refused.json() == {"sandboxId": sandbox.sandbox_id, "message": MISSING_TOKEN, "code": 403}
        passed = _get(url, **{"e2b-traffic-access-token": token})
        assert passed.status_code == 200 and "served from the sandbox" in passed.text

        body, _, status = _curl(url).stdout.rpartition("\n")
        assert status == "403" and json.loads(body)["message"] == MISSING_TOKEN
        body, _, status = _curl(url, "-H", f"e2b-traffic-access-token: {token}").stdout.rpartition("\n")
        assert status == "200" and "served from the sandbox" in body
    finally:
        sandbox.kill()


def test_the_server_sees_the_masked_host(only_domain: Stack):
    sandbox = _create(only_domain, network={"mask_request_host": "masked.example:${PORT}"})
    try:
        host = _serve_echo(sandbox)
        answer = _get(f"https://{host}/")
        assert answer.status_code == 200
        assert "served from the sandbox for masked.example:8000" in answer.text
    finally:
        sandbox.kill()


def test_http_wakes_a_paused_auto_resume_sandbox(only_domain: Stack):
    sandbox = _create(only_domain, lifecycle={"on_timeout": "pause", "auto_resume": True})
    try:
        host = _serve_echo(sandbox)
        sandbox.pause()
        assert Sandbox.get_info(sandbox.sandbox_id).state.value == "paused"
        answer = _get(f"https://{host}/")
        assert answer.status_code == 200 and f"served from the sandbox for {host}" in answer.text
        assert Sandbox.get_info(sandbox.sandbox_id).state.value == "running"
    finally:
        sandbox.kill()


def test_a_paused_sandbox_answers_at_once_that_it_is_not_running(only_domain: Stack):
    sandbox = _create(only_domain)
    try:
        host = _serve_echo(sandbox)
        sandbox.pause()
        answer, took = _timed_get(f"https://{host}/")
        assert answer.status_code == 502
        assert answer.json() == {"sandboxId": sandbox.sandbox_id, "message": NOT_FOUND, "code": 502}
        assert took < 1, f"the paused sandbox's answer took {took:.2f} s"
        assert not sandbox.is_running()
    finally:
        sandbox.kill()


def test_a_killed_sandbox_answers_at_once_that_it_is_gone(only_domain: Stack):
    sandbox = _create(only_domain)
    host = _serve_echo(sandbox)
    assert _get(f"https://{host}/").status_code == 200
    sandbox.kill()
    answer, took = _timed_get(f"https://{host}/")
    assert answer.status_code == 502
    assert answer.json() == {"sandboxId": sandbox.sandbox_id, "message": NOT_FOUND, "code": 502}
    assert took < 1, f"the killed sandbox's answer took {took:.2f} s"
    assert not sandbox.is_running()


def test_a_port_that_never_answers_ends_within_the_idle_timeout(only_domain: Stack, web: Sandbox):
    web.files.write("/home/user/silent.py", SILENT)
    web.commands.run("python3 /home/user/silent.py", background=True)
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {SILENT_PORT}), 1)\""
    deadline = time.monotonic() + 20
    while web.commands.run(f"{probe} 2>/dev/null && echo up || true").stdout.strip() != "up":
        assert time.monotonic() < deadline, "the silent server did not start"
        time.sleep(0.2)

    answer, took = _timed_get(f"https://{web.get_host(SILENT_PORT)}/")
    # The proxy ends it, with E2B's JSON, before the edge's own bound.
    assert answer.status_code == 502 and answer.json()["sandboxId"] == web.sandbox_id
    assert IDLE_TIMEOUT_S - 0.5 < took < IDLE_TIMEOUT_S + 5, f"took {took:.2f} s"
    assert proxy_timeout_s(IDLE_TIMEOUT_S) > IDLE_TIMEOUT_S + 5


def test_requests_during_a_pause_end_within_the_idle_timeout(only_domain: Stack, web: Sandbox):
    url = f"https://{web.get_host(PORT)}/"
    pausing = threading.Thread(target=web.pause)
    pausing.start()
    took: list[float] = []
    statuses: set[int | str] = set()
    while pausing.is_alive() or not took:
        started = time.monotonic()
        try:
            statuses.add(_get(url).status_code)
        except httpx.RemoteProtocolError:
            # The sandbox froze after its answer had begun: the answer cannot end, the connection is cut.
            statuses.add("cut")
        took.append(time.monotonic() - started)
    pausing.join()
    answer, elapsed = _timed_get(url)
    assert answer.status_code == 502 and answer.json()["message"] == NOT_FOUND and elapsed < 1
    assert statuses <= {200, 502, "cut"}, statuses
    assert max(took) < IDLE_TIMEOUT_S + 5, took


def test_node_fetches_a_page_from_get_host(only_domain: Stack, web: Sandbox, e2b_cli: Cli, tmp_path: Path):  # noqa: F811
    env = node_environment(only_domain, tmp_path)
    script = tmp_path / "fetch.cjs"
    script.write_text(NODE_FETCH)
    done = subprocess.run(
        [e2b_cli.node, str(script), e2b_cli.entry, web.sandbox_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["host"] == web.get_host(PORT)
    assert result["status"] == 200 and "served from the sandbox" in result["text"]


def test_chromium_shows_the_page(only_domain: Stack, web: Sandbox, tmp_path: Path):
    home = trusting_home(tmp_path)
    url = f"https://{web.get_host(PORT)}/"
    command = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        url,
    ]
    for _ in range(3):
        shown = subprocess.run(
            command,
            env={"PATH": os.environ["PATH"], "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        # On the host, the addresses other tests' sandboxes add are a change of network to Chromium, which
        # fails the page it is loading (tests/playwright_chromium.py): only that is tried again.
        if "ERR_NETWORK_CHANGED" not in shown.stderr:
            break
    assert f"served from the sandbox for {web.get_host(PORT)}" in shown.stdout, shown.stderr[-2000:]
