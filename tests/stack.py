"""The real stack for end-to-end and security tests: ``hutch up`` (crun, base template, SQLite) on free ports.

The stack runs as a subprocess with its own data directory and subnet, so it never touches a ``make up``
running on the same machine. At the end of the session it is stopped with SIGTERM and the fixture asserts
that nothing is left behind: no containers, mounts, network namespaces, cgroups or sandbox directories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox

from hutch.runtime.leftovers import leftovers
from tests.conftest import free_port

# One subnet per test worker (pytest-xdist), apart from the 10.11.0.0/16 of a `make up` on this machine.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SUBNET = f"10.{20 + WORKER}.0.0/16"
START_TIMEOUT_S = 600  # the first start on a fresh machine builds the base template


@dataclass
class Stack:
    api_url: str
    sandbox_url: str
    api_key: str
    data_dir: Path
    api_port: int
    proxy_port: int
    process: subprocess.Popen
    subnet: str = SUBNET
    seen: set[str] = field(default_factory=set)

    @property
    def opts(self) -> dict:
        """Keyword arguments that point the official SDK at this stack."""
        return {"api_key": self.api_key, "api_url": self.api_url, "sandbox_url": self.sandbox_url}

    def create(self, engine: str = "container", **options) -> Sandbox:
        """A sandbox of the base template on ``engine`` (``container`` or ``gvisor``), remembered for the
        leak check."""
        metadata = {**options.pop("metadata", {}), "hutch.runtime": engine}
        sandbox = Sandbox.create(metadata=metadata, **self.opts, **options)
        self.seen.add(sandbox.sandbox_id)
        return sandbox

    def env(self) -> dict[str, str]:
        """Environment variables that point the official SDK (and scripts using it) at this stack."""
        return {
            "E2B_API_KEY": self.api_key,
            "E2B_API_URL": self.api_url,
            "E2B_SANDBOX_URL": self.sandbox_url,
        }


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def start_stack(
    base: Path, *, subnet: str = SUBNET, ports: tuple[int, int] | None = None, settings: dict | None = None
) -> Stack:
    """Run ``hutch up`` with its data under ``base`` (again, after a crash, with the same ``base``/ports)."""
    api_port, proxy_port = ports or (free_port(), free_port())
    env_file = base / "env.local"
    log_path = base / "hutch.log"
    started = time.time()
    env = {
        **os.environ,
        "HUTCH_DATA_DIR": str(base / "data"),
        "HUTCH_API__PORT": str(api_port),
        "HUTCH_PROXY__PORT": str(proxy_port),
        "HUTCH_RUNTIME__SUBNET": subnet,
        "HUTCH_RUNTIME__NODE_ID": "e2e",
        "HUTCH_RUNTIME__WARM_POOL": json.dumps({"base": 2}),
        **(settings or {}),
    }
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hutch.cli.main", "up", "--env-file", str(env_file)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not env_file.exists() or env_file.stat().st_mtime < started:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"hutch up did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.1)
    values = _read_env(env_file)
    stack = Stack(
        api_url=values["E2B_API_URL"],
        sandbox_url=values["E2B_SANDBOX_URL"],
        api_key=values["E2B_API_KEY"],
        data_dir=base / "data",
        api_port=api_port,
        proxy_port=proxy_port,
        process=process,
        subnet=subnet,
    )
    assert httpx.get(f"{stack.api_url}/health").status_code < 300
    return stack


def stop_stack(stack: Stack) -> None:
    """SIGTERM, then assert that nothing is left behind."""
    stack.process.send_signal(signal.SIGTERM)
    try:
        stack.process.wait(120)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        pytest.fail("hutch up did not stop within 120 s of SIGTERM")
    problems = leftovers(stack.data_dir, stack.subnet, stack.seen)
    log = (stack.data_dir.parent / "hutch.log").read_text()[-3000:]
    assert not problems, f"left behind after the stack stopped: {problems}\n{log}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (crun, mounts, network namespaces)")
    running = start_stack(tmp_path_factory.mktemp("hutch-stack"))
    yield running
    stop_stack(running)


# The engines every sandbox-level test runs on.
ENGINES = ["container", "gvisor"]


@pytest.fixture(params=ENGINES)
def sandbox(stack: Stack, request: pytest.FixtureRequest):
    """A fresh sandbox of the base template on each engine, killed afterwards."""
    sbx = stack.create(request.param)
    yield sbx
    sbx.kill()
