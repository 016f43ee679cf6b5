"""The real stack for end-to-end and security tests: ``hutch up`` (crun, base template, SQLite) on free ports.

The stack runs as a subprocess with its own data directory and subnet, so it never touches a ``make up``
running on the same machine. Its egress is off, unless a test gives it an uplink of its own making (never
``auto``, never the machine's default route: a test sends nothing off the machine). At the end of the
session it is stopped with SIGTERM and the fixture asserts that nothing is left behind: no containers,
mounts, network namespaces, cgroups or sandbox directories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2b import Sandbox

from bench.leftovers import leftovers
from hutch.runtime.container.egress.uplink import AUTO, default_route_interface, find_uplink
from hutch.secret_files import OPERATOR_KEY_HEADER, operator_key_path
from tests import edge_ca
from tests.conftest import EGRESS_OFF, free_port

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
    # With the TLS edge (``start_stack(edge=True)``): E2B_DOMAIN, and the .env.local the stack wrote.
    domain: str | None = None
    client_env: dict[str, str] = field(default_factory=dict)

    @property
    def opts(self) -> dict:
        """Keyword arguments that point the official SDK at this stack."""
        return {"api_key": self.api_key, "api_url": self.api_url, "sandbox_url": self.sandbox_url}

    def create(self, engine: str = "crun", **options) -> Sandbox:
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

    def admin(self) -> httpx.Client:
        """A client of the operator's routes (``/admin``), with the operator key the stack made."""
        key = operator_key_path(self.data_dir).read_bytes().hex()
        return httpx.Client(base_url=f"{self.api_url}/admin", headers={OPERATOR_KEY_HEADER: key}, timeout=60)

    def gone_from_node(self, sandbox_id: str, timeout_s: float = 30) -> bool:
        """Whether the sandbox's directory and network namespace are gone (within ``timeout_s``)."""
        traces = (self.data_dir / "sandboxes" / sandbox_id, Path("/run/netns") / f"hutch-{sandbox_id}")
        deadline = time.monotonic() + timeout_s
        while any(path.exists() for path in traces):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def new_team(self, **quotas: int) -> Team:
        """A new team (with its own ``quotas``) and an API key of its, made over the operator's routes."""
        with self.admin() as admin:
            made = admin.post("/teams", json={"name": f"team-{uuid.uuid4().hex[:12]}", "quotas": quotas})
            assert made.status_code == 201, made.text
            team = made.json()
            key = admin.post(f"/teams/{team['teamID']}/keys", json={"name": "tests"})
            assert key.status_code == 201, key.text
        return Team(stack=self, team_id=team["teamID"], name=team["name"], api_key=key.json()["key"])


@dataclass
class Team:
    """Another team of the stack than its first (``Stack.new_team``): its id, name and API key."""

    stack: Stack
    team_id: str
    name: str
    api_key: str

    @property
    def opts(self) -> dict:
        """Keyword arguments that point the official SDK at the stack as this team."""
        return {**self.stack.opts, "api_key": self.api_key}

    def create(self, engine: str = "crun", **options) -> Sandbox:
        """A sandbox of this team (``Stack.create``'s options), remembered for the leak check."""
        metadata = {**options.pop("metadata", {}), "hutch.runtime": engine}
        sandbox = Sandbox.create(metadata=metadata, **self.opts, **options)
        self.stack.seen.add(sandbox.sandbox_id)
        return sandbox


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def start_stack(
    base: Path,
    *,
    subnet: str = SUBNET,
    ports: tuple[int, int] | None = None,
    settings: dict | None = None,
    edge: bool = False,
) -> Stack:
    """Run ``hutch up`` with its data under ``base`` (again, after a crash, with the same ``base``/ports);
    with ``edge``, the TLS edge too, on a free port with the tests' certificate authority
    (:mod:`tests.edge_ca`), for the domain ``hutch.localhost:<port>``."""
    api_port, proxy_port = ports or (free_port(), free_port())
    edge_settings = (
        {"HUTCH_PROXY__TLS_PORT": str(free_port()), "HUTCH_PROXY__TLS_DIR": str(edge_ca.TLS_DIR)}
        if edge
        else {}
    )
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
        # The test registries (tests/registry.py) run on loopback, which builds refuse unless allowed.
        "HUTCH_TEMPLATES__INTERNAL_REGISTRIES": json.dumps(["127.0.0.0/8", "::1", "localhost"]),
        # The SDK's debug mode is tested against the stack (`hutch up --dev`); tests/security/
        # test_debug_mode.py starts one without it.
        "HUTCH_PROXY__LOCAL_DEVELOPMENT": "true",
        **EGRESS_OFF,
        **edge_ca.EDGE_OFF,
        **edge_settings,
        **(settings or {}),
    }
    check_test_uplink(env["HUTCH_RUNTIME__EGRESS_INTERFACE"])
    # The stack's log is root's alone, as ``hutch up --detach`` keeps it.
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
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
        api_url=f"http://localhost:{api_port}",
        sandbox_url=f"http://localhost:{proxy_port}",
        api_key=values["E2B_API_KEY"],
        data_dir=base / "data",
        api_port=api_port,
        proxy_port=proxy_port,
        process=process,
        subnet=subnet,
        domain=values.get("E2B_DOMAIN"),
        client_env=values,
    )
    assert httpx.get(f"{stack.api_url}/health").status_code < 300
    return stack


def check_test_uplink(setting: str) -> None:
    """Fail unless a test stack's egress is off or goes through an interface a test made: never ``auto``
    and never the machine's default route."""
    uplink = AUTO if setting == AUTO else find_uplink(setting)
    if uplink is not None and uplink in (AUTO, default_route_interface()):
        pytest.fail(f"a test stack must not reach the outside through this machine (egress {setting!r})")


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


@contextmanager
def running_stack(factory: pytest.TempPathFactory, name: str, **options: Any) -> Iterator[Stack]:
    """A stack of its own (``start_stack``'s ``options``) under a new temporary ``name`` directory, stopped
    and checked for leftovers afterwards; a fixture's body."""
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (crun, mounts, network namespaces)")
    running = start_stack(factory.mktemp(name), **options)
    yield running
    stop_stack(running)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "hutch-stack") as running:
        yield running


@pytest.fixture()
def second_team(stack: Stack) -> Team:
    """A team other than the stack's first, with default quotas and an API key of its own."""
    return stack.new_team()


# The engines every sandbox-level test runs on.
ENGINES = ["crun", "gvisor"]


@pytest.fixture(params=ENGINES)
def sandbox(stack: Stack, request: pytest.FixtureRequest):
    """A fresh sandbox of the base template on each engine, killed afterwards."""
    sbx = stack.create(request.param)
    yield sbx
    sbx.kill()
