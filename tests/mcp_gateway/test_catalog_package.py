"""A catalog server published on PyPI (``time``: ``uvx --from mcp-server-time==<version>``) run by the gateway
of the ``mcp-gateway`` template, created through the official SDK and reached through Hutch's edge, with no
sandbox reaching the internet.

The package and its dependencies are downloaded once, as wheels for the sandbox's Python (Debian 12's 3.11,
manylinux x86_64), by this machine's pip into the template cache. An "outside" made of a network namespace
serves them over HTTP as a package index (a directory per project, whose ``http.server`` listing is the
project's page of the simple API); the stack's uplink leads there and nowhere else, and the create's
``envs`` make it ``uv``'s index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2b import NotFoundException, Sandbox
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from hutch.mcp_gateway.config import load_catalog
from tests.netns import wait_for_http
from tests.security.test_egress import routed_through, serve_outside
from tests.stack import Stack, running_stack

# The sandboxes' subnet; the uplink's network and the outside's address are benchmarking addresses
# (198.18.0.0/15), which the egress guard leaves open as it would a public address.
SUBNET = "172.29.0.0/16"
HOST_IP, GATEWAY_IP, OUTSIDE_IP = "198.18.0.1", "198.18.0.2", "198.19.0.10"
ROUTING_TABLE = 2900
WHEEL_CACHE = Path(os.environ.get("HUTCH_TEMPLATES__CACHE_DIR", "/var/cache/hutch")) / "test-wheels"
# Wheels the sandbox's Python can install: CPython 3.11 on glibc 2.36.
PLATFORMS = ["manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"]
SERVER = "time"


@dataclass(frozen=True)
class Outside:
    """The index the sandboxes install from, and the HTTP server's log of what it sent."""

    index_url: str
    access_log: Path
    interface: str


def download_wheels(package: str, version: str) -> Path:
    """``package==version`` and its dependencies as wheels, under ``WHEEL_CACHE/<package>-<version>``
    (downloaded unless there; a directory in place is complete)."""
    destination = WHEEL_CACHE / f"{package}-{version}"
    if destination.is_dir():
        return destination
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    partial = WHEEL_CACHE / f".{destination.name}.{uuid.uuid4().hex[:8]}"
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    try:
        subprocess.run([*command, *platforms, "-d", str(partial), f"{package}=={version}"], check=True)
        try:
            partial.rename(destination)
        except OSError:  # another run finished first
            assert destination.is_dir()
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return destination


@pytest.fixture(scope="module")
def package() -> tuple[str, str]:
    entry = load_catalog()[SERVER]
    assert entry["registry"] == "pypi" and entry["command"][0] == "uvx"
    return entry["package"], entry["version"]


def simple_index(wheels: Path, root: Path) -> None:
    """The simple API (PEP 503) of ``wheels`` under ``root``: ``<project>/<wheel>``, a link to the cached
    wheel for each."""
    for wheel in sorted(wheels.glob("*.whl")):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()
        (root / project).mkdir(exist_ok=True)
        (root / project / wheel.name).symlink_to(wheel)


@pytest.fixture(scope="module")
def outside(package: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    """A namespace serving the index of the wheels on port 80 of ``OUTSIDE_IP``, behind the gateway of the
    uplink's network; the stack's sandboxes are routed to it."""
    index = tmp_path_factory.mktemp("index")
    simple_index(download_wheels(*package), index)
    tag = uuid.uuid4().hex[:8]
    netns, host_if = f"hutch-pkg-{tag}", f"hp{tag}"
    access_log = tmp_path_factory.mktemp("outside") / "access.log"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    server = None
    try:
        serve_outside(netns, host_if, HOST_IP, GATEWAY_IP, [OUTSIDE_IP])
        http = ["ip", "netns", "exec", netns, sys.executable, "-m", "http.server", "80"]
        with access_log.open("wb") as log:
            server = subprocess.Popen(
                [*http, "--bind", "0.0.0.0", "--directory", str(index)], stdout=log, stderr=log
            )
        wait_for_http(f"http://{GATEWAY_IP}/")
        with routed_through(host_if, GATEWAY_IP, [SUBNET], ROUTING_TABLE):
            yield Outside(f"http://{OUTSIDE_IP}/", access_log, host_if)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


@pytest.fixture(scope="module")
def package_stack(outside: Outside, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with the edge, the ``base`` and ``mcp-gateway`` templates, and the outside as its uplink."""
    settings = {
        "HUTCH_TEMPLATES__CODE_INTERPRETER": "false",
        "HUTCH_TEMPLATES__DESKTOP": "false",
        "HUTCH_RUNTIME__EGRESS_INTERFACE": outside.interface,
        # The outside's gateway stands for the node's name server (none answers: the wheels are found by
        # address), so that no query is routed to the host's.
        "HUTCH_RUNTIME__EGRESS_NAME_SERVERS": json.dumps([GATEWAY_IP]),
    }
    with running_stack(
        tmp_path_factory, "hutch-mcp-pkg", subnet=SUBNET, edge=True, settings=settings
    ) as stack:
        yield stack


class ObservedSandbox(Sandbox):
    """The official ``Sandbox``, remembering each sandbox the API made (a failed gateway start kills it
    before ``create`` returns)."""

    made: list[str] = []

    @classmethod
    def _create(cls, *args, **kwargs):
        sandbox = super()._create(*args, **kwargs)
        cls.made.append(sandbox.sandbox_id)
        return sandbox


async def test_a_pypi_server_of_the_catalog_runs_through_the_gateway(
    package_stack: Stack, outside: Outside, package: tuple[str, str]
):
    assert package_stack.domain is not None
    opts = {"domain": package_stack.domain, "api_key": package_stack.api_key}
    # uv installs from the outside's index, and runs the image's Python (it downloads none).
    envs = {"UV_DEFAULT_INDEX": outside.index_url, "UV_PYTHON_DOWNLOADS": "never"}
    ObservedSandbox.made = []
    try:
        sandbox = ObservedSandbox.create(mcp={SERVER: {"localTimezone": "Europe/Paris"}}, envs=envs, **opts)
    finally:
        package_stack.seen.update(ObservedSandbox.made)
    try:
        assert sandbox.get_info().template_id == "mcp-gateway"
        headers = {"Authorization": f"Bearer {sandbox.get_mcp_token()}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(sandbox.get_mcp_url(), http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert set(tools) == {"time__get_current_time", "time__convert_time"}
            # The setting reached the server as its ``--local-timezone``.
            assert "Europe/Paris" in json.dumps(tools["time__get_current_time"].inputSchema)
            arguments = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
            converted = await session.call_tool("time__convert_time", arguments)
            assert not converted.isError, converted
            answer = json.loads(converted.content[0].text)
            assert answer["target"]["timezone"] == "Asia/Tokyo"
            assert answer["target"]["datetime"].endswith("T21:00:00+09:00")
            now = await session.call_tool("time__get_current_time", {"timezone": "Europe/Paris"})
            assert not now.isError and json.loads(now.content[0].text)["timezone"] == "Europe/Paris"
        log = sandbox.files.read("/var/log/mcp-gateway/gateway.log", user="root")
        assert f"{SERVER}: 2 tools" in log
    finally:
        sandbox.kill()
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sandbox.sandbox_id, **opts)
    # The package's own wheel was fetched from the outside's index.
    name, version = package
    fetched = outside.access_log.read_text()
    wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    assert f'"GET /{name}/{wheel} HTTP/1.1" 200' in fetched, fetched[-2000:]
