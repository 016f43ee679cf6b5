"""Pause and resume through the official SDK against the real stack, on both engines: files, a background
process and its in-memory state survive a full pause; a filesystem pause keeps the files and reboots;
pausing twice is refused, and pausing and resuming again keeps everything (E2B's data-loss reports)."""

from __future__ import annotations

import time

import pytest
from e2b import Sandbox, SandboxQuery, SandboxState

from tests.stack import ENGINES, Stack

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
http.server.HTTPServer(("127.0.0.1", 8000), Handler).serve_forever()
"""
ASK = "curl -s --retry 20 --retry-connrefused --retry-delay 0 --max-time 5 http://127.0.0.1:8000/"


def start_server(sandbox: Sandbox) -> int:
    sandbox.files.write("/home/user/server.py", SERVER)
    return sandbox.commands.run("python3 /home/user/server.py", background=True).pid


def ask(sandbox: Sandbox) -> tuple[str, int]:
    token, count = sandbox.commands.run(ASK).stdout.split()
    return token, int(count)


@pytest.mark.parametrize("engine", ENGINES)
def test_full_pause_keeps_files_processes_and_memory_twice(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        pid = start_server(sandbox)
        token, count = ask(sandbox)
        for round_ in (1, 2):
            assert sandbox.pause() is not False
            info = Sandbox.get_info(sandbox.sandbox_id, **stack.opts)
            assert info.state.value == "paused"
            assert Sandbox.pause(sandbox.sandbox_id, **stack.opts) is False  # already paused: 409
            paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED]), **stack.opts).next_items()
            assert sandbox.sandbox_id in {item.sandbox_id for item in paused}
            resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
            assert Sandbox.get_info(sandbox.sandbox_id, **stack.opts).state.value == "running"
            assert resumed.files.read("/home/user/notes.txt") == "kept"
            assert ask(resumed) == (token, count + round_)
            assert pid in {process.pid for process in resumed.commands.list()}
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_filesystem_pause_keeps_files_and_reboots(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        pid = start_server(sandbox)
        ask(sandbox)
        sandbox.pause(mode="filesystem")
        info = Sandbox.get_info(sandbox.sandbox_id, **stack.opts)
        assert info.state.value == "paused"
        resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
        assert resumed.files.read("/home/user/notes.txt") == "kept"
        assert pid not in {process.pid for process in resumed.commands.list()}
        assert resumed.commands.run("echo back").stdout == "back\n"
        # The processes are gone, so the server must be started again.
        start_server(resumed)
        assert ask(resumed)[1] == 1
    finally:
        sandbox.kill()


def test_kill_of_a_paused_sandbox_frees_it(stack: Stack) -> None:
    sandbox = stack.create()
    sandbox.pause()
    assert Sandbox.kill(sandbox.sandbox_id, **stack.opts) is True
    assert sandbox.sandbox_id not in {s.sandbox_id for s in Sandbox.list(**stack.opts).next_items()}
    # Its disk, overlay and network go in the background, within moments.
    directory = stack.data_dir / "sandboxes" / sandbox.sandbox_id
    deadline = time.monotonic() + 10
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not directory.exists()
