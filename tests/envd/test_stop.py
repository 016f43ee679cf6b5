"""envd's stop (SIGTERM, what the runtime sends before it kills a sandbox): it refuses new connections,
then ends every open stream with ``unavailable`` — an error the client sees even through a proxy that
would pass a closed connection on as a complete answer — and exits."""

from __future__ import annotations

import socket
import time

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException

from tests.envd.conftest import start_envd, stop_envd
from tests.in_flight import CommandInFlight


def test_a_stop_ends_open_streams_with_an_error_and_refuses_new_connections(test_user):
    envd = start_envd(*test_user)
    try:
        sandbox = Sandbox.create(debug=True, sandbox_url=envd.url)
        running = CommandInFlight(sandbox)
        started = time.monotonic()
        stop_envd(envd)
        error = running.outcome(timeout_s=10)
        assert time.monotonic() - started < 3
        assert envd.process.returncode == 0
        assert isinstance(error, SandboxException) and "shutting down" in str(error), error
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", envd.port), timeout=2)
    finally:
        if envd.process.poll() is None:
            stop_envd(envd)
