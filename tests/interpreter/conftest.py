"""Fixtures for the code interpreter: the server as a host process on a free port, next to a real envd.

envd runs as root with an access token and a sandbox-level variable, so the interpreter's ``GET /envs``
(with the token the SDK forwards) is exercised too. The official ``e2b_code_interpreter.Sandbox`` is built
the way ``Sandbox.create`` builds it, with ``sandbox_url`` pointing at the interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from e2b import ConnectionConfig
from e2b_code_interpreter import Sandbox
from packaging.version import Version

from hutch.envd.version import VERSION
from hutch.templates import code_interpreter
from tests.conftest import free_port, wait_http
from tests.envd.conftest import Envd, start_envd, stop_envd
from tests.interpreter import image

TOKEN = "interpreter-test-token"
SANDBOX_VAR = ("HUTCH_SANDBOX_VAR", "sandbox-level")  # what start_envd gives /init


@dataclass
class Interpreter:
    url: str
    cwd: str
    envd: Envd
    process: subprocess.Popen


@pytest.fixture(scope="session")
def envd_server() -> Iterator[Envd]:
    server = start_envd("root", "/root", accessToken=TOKEN)
    yield server
    stop_envd(server)


def start_interpreter(cwd: str, envd_url: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hutch.interpreter",
            "--port",
            str(port),
            "--cwd",
            cwd,
            "--envd-url",
            envd_url,
        ],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MPLBACKEND": ""},
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", timeout=60)
    return url, process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def interpreter(envd_server: Envd, tmp_path_factory) -> Iterator[Interpreter]:
    cwd = str(tmp_path_factory.mktemp("interpreter-home"))
    url, process = start_interpreter(cwd, envd_server.url)
    yield Interpreter(url, cwd, envd_server, process)
    kernels = psutil.Process(process.pid).children(recursive=True)
    assert kernels, "the default kernel runs as a child of the server"
    stop(process)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    _, alive = psutil.wait_procs(kernels, timeout=5)
    assert not alive, f"kernels left behind: {alive}"


@pytest.fixture()
def sandbox(interpreter: Interpreter) -> Sandbox:
    """The official code-interpreter SDK, its calls going to the interpreter under test."""
    headers = {"E2b-Sandbox-Id": "interpretertest", "X-Access-Token": TOKEN}
    return Sandbox(
        sandbox_id="interpretertest",
        sandbox_domain=None,
        envd_version=Version(VERSION),
        envd_access_token=TOKEN,
        connection_config=ConnectionConfig(
            sandbox_url=interpreter.url, extra_sandbox_headers=headers, debug=True
        ),
    )


# Tests of the built image, which is built first where this code's is not (seconds over a built packages
# stage, minutes without one).
needs_image = pytest.mark.usefixtures("image_url")


@pytest.fixture(scope="session")
def image_url() -> Iterator[str]:
    """The built image's server (:mod:`.image`)."""
    port = free_port()
    process = image.start(code_interpreter.build(Path("/var/cache/hutch"), log=lambda _line: None), port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=60)
        ready = code_interpreter.READY_CMD.replace(str(code_interpreter.PORT), str(port))
        assert subprocess.run(["sh", "-c", ready]).returncode == 0
        yield url
    finally:
        stop(process)
