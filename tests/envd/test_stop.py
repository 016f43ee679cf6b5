"""envd's stop (SIGTERM, what the runtime sends before it kills a sandbox): it refuses new connections,
then ends every open stream with ``unavailable`` — an error the client sees even through a proxy that
would pass a closed connection on as a complete answer — and exits."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException

from tests.envd.conftest import start_envd, stop_envd


def test_a_stop_ends_open_streams_with_an_error_and_refuses_new_connections(test_user):
    envd = start_envd(*test_user)
    try:
        sandbox = Sandbox.create(debug=True, sandbox_url=envd.url)
        outcome: list[BaseException] = []

        def wait_for_sleep() -> None:
            try:
                sandbox.commands.run("sleep 60", timeout=0)
            except BaseException as error:
                outcome.append(error)

        waiting = threading.Thread(target=wait_for_sleep)
        waiting.start()
        deadline = time.monotonic() + 10
        while "sleep 60" not in sandbox.commands.run("ps -eo args").stdout:
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.05)
        started = time.monotonic()
        stop_envd(envd)
        waiting.join(timeout=10)
        assert not waiting.is_alive()
        assert time.monotonic() - started < 3
        assert envd.process.returncode == 0
        assert len(outcome) == 1 and isinstance(outcome[0], SandboxException), outcome
        assert "shutting down" in str(outcome[0])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", envd.port), timeout=2)
    finally:
        if envd.process.poll() is None:
            stop_envd(envd)
