"""Header rules and secrets in real sandboxes (crun and gVisor): the sandbox trusts its own CA through the
bundle bound over its system one and the variables envd gives its processes, the outside server gets the
secret, and nothing in the sandbox (its files, its environment, curl's verbose output) ever holds it; the
rules are replaced on a running sandbox, kept in its state file, and hold after a pause of its files and
a restart of the node.

The outside is a network namespace (``tests/security/egress_outside.py``) behind a veth used as the
node's uplink; the node trusts the outside's test CA through ``egress_upstream_ca_file``. Subnets:
172.31.{220+worker}.0/24 (sandboxes), 172.31.{190+worker}.0/24 (uplink), outside 203.0.113.{240+worker}.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hutch.runtime import envd_client
from hutch.runtime.container import ContainerRuntime, state
from hutch.runtime.types import ENVD_PORT, EgressSettings, HeaderRule, SandboxSpec, TemplateImage
from hutch.templates import base
from hutch.templates.envd_zipapp import build
from tests.security.outside_https import make_certificates, running_outside
from tests.security.test_egress import routed_through
from tests.stack import WORKER

SUBNET = f"172.31.{220 + WORKER}.0/24"
HOST_UP, GATEWAY = f"172.31.{190 + WORKER}.1", f"172.31.{190 + WORKER}.2"
OUTSIDE = f"203.0.113.{240 + WORKER}"
TAG = uuid.uuid4().hex[:6]
OUTSIDE_NS, UPLINK = f"hxi-out-{TAG}", f"hxiu{TAG}"
SECRET = "S3CRET-in-the-node-only"
PATTERN = "S3CRET-in-the-node-onl[y]"  # finds the secret, not itself in a command line
ENGINES = pytest.mark.parametrize("engine", ["crun", "gvisor"])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    site = tmp_path_factory.mktemp("interception")
    make_certificates(site, ["api.test"])
    outside = running_outside(
        site, netns=OUTSIDE_NS, uplink=UPLINK, host_ip=HOST_UP, gateway=GATEWAY, addresses=[OUTSIDE],
        socks_login=("u", "p"),
    )  # fmt: skip
    with outside, routed_through(UPLINK, GATEWAY, [SUBNET], 2400 + WORKER):
        yield site


def _node(outside: Path, directory: Path) -> ContainerRuntime:
    return ContainerRuntime(
        data_dir=directory / "data",
        cache_dir=Path("/var/cache/hutch"),
        envd_path=directory / "envd.pyz",
        subnet=SUBNET,
        egress_interface=UPLINK,
        egress_name_servers=(OUTSIDE,),
        egress_upstream_ca_file=str(outside / "ca.pem"),
    )


@pytest.fixture()
async def runtime(outside, tmp_path) -> AsyncIterator[ContainerRuntime]:
    build(tmp_path / "envd.pyz")
    rt = _node(outside, tmp_path)
    await rt.start()
    yield rt
    await rt.close()


async def _run(handle, command: str) -> tuple[int | None, str]:
    output: list[str] = []
    code = await envd_client.run(
        f"http://{handle.host}:{ENVD_PORT}", command, user="root", shell=("/bin/sh", "-c"),
        on_output=output.append, timeout_s=60,
    )  # fmt: skip
    return code, "".join(output)


def _last_headers(site: Path) -> dict[str, str]:
    last = json.loads((site / "https.log").read_text().splitlines()[-1])
    return {name.lower(): value for name, value in last["headers"]}


CURL = (
    f"curl -sS -v -m 10 --resolve api.test:443:{OUTSIDE} -H 'X-Mine: ${{e2b.secrets.tok}}' https://api.test/"
)


@ENGINES
async def test_a_sandbox_sends_secrets_it_never_sees(runtime, outside, engine, tmp_path):
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")), default_user="user")
    rules = (HeaderRule("api.test", {"Authorization": "Bearer ${e2b.secrets.tok}"}),)
    settings = EgressSettings(rules=rules, secrets={"tok": SECRET})
    spec = SandboxSpec(
        template=template, engine=engine, allow_out=("api.test",), deny_out=("0.0.0.0/0",), egress=settings
    )
    handle = await runtime.create(spec)
    try:
        code, out = await _run(handle, CURL)
        assert code == 0, out
        assert "ok api.test" in out and SECRET not in out
        assert _last_headers(outside)["authorization"] == f"Bearer {SECRET}"
        assert _last_headers(outside)["x-mine"] == SECRET
        # Python's default store and the variables (requests, Node, curl) lead to the sandbox's CA too.
        code, out = await _run(
            handle,
            f"echo '{OUTSIDE} api.test' | tee -a /etc/hosts >/dev/null; "
            'python3 -c \'import ssl,urllib.request; print(urllib.request.urlopen("https://api.test/",'
            " timeout=10).read().decode())' 2>&1 || true; env | grep -E 'SSL_CERT_FILE|NODE_EXTRA_CA_CERTS'",
        )
        assert "ok api.test" in out and SECRET not in out
        assert "SSL_CERT_FILE=/usr/local/lib/hutch/trust/ca-bundle.pem" in out
        assert "NODE_EXTRA_CA_CERTS=/usr/local/lib/hutch/trust/egress-ca.pem" in out
        # Nowhere in the sandbox: not in its files, nor its environment; the trust files are read-only.
        code, out = await _run(
            handle,
            f"grep -rlsE '{PATTERN}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; "
            f"cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -cE '{PATTERN}'; "
            "sh -c 'echo x >> /usr/local/lib/hutch/trust/ca-bundle.pem' 2>/dev/null && echo writable; "
            "grep -c 'BEGIN CERTIFICATE' /usr/local/lib/hutch/trust/egress-ca.pem",
        )
        assert out.split() == ["0", "1"], out
        # Rules replaced on the running sandbox, and kept in its state file (root's only).
        rules = (HeaderRule("api.test", {"X-Key": "${e2b.secrets.tok}"}),)
        new = EgressSettings(rules=rules, secrets={"tok": "v2"})
        await runtime.update_egress(
            handle.sandbox_id, internet=None, allow_out=("api.test",), deny_out=("0.0.0.0/0",), settings=new
        )
        code, out = await _run(handle, CURL)
        assert code == 0, out
        assert _last_headers(outside)["x-key"] == "v2" and "authorization" not in _last_headers(outside)
        directory = runtime.host.sandboxes_dir / handle.sandbox_id
        assert state.egress_of(state.load(directory)).settings == new
        assert oct((directory / "sandbox.json").stat().st_mode & 0o777) == "0o600"
        assert oct((directory / "ca.key").stat().st_mode & 0o777) == "0o600"
        # After a pause of its files and a boot.
        await runtime.pause(handle.sandbox_id, memory=False)
        await runtime.resume(handle.sandbox_id)
        code, out = await _run(handle, CURL)
        assert code == 0, out
        assert _last_headers(outside)["x-key"] == "v2"
        # A restarted node adopts it with its rules, secrets and CA.
        await runtime.let_go()
        again = _node(outside, tmp_path)
        await again.start()
        try:
            code, out = await _run(handle, CURL)
            assert code == 0, out
            assert _last_headers(outside)["x-key"] == "v2"
        finally:
            await again.kill(handle.sandbox_id)
            await again.close()
    finally:
        await runtime.kill(handle.sandbox_id)


async def test_a_copy_of_a_gvisor_sandbox_has_the_rules_and_trusts_its_own_ca(runtime, outside):
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")), default_user="user")
    rules = (HeaderRule("api.test", {"X-Key": "${e2b.secrets.tok}"}),)
    spec = SandboxSpec(
        template=template,
        engine="gvisor",
        allow_out=("api.test",),
        deny_out=("0.0.0.0/0",),
        egress=EgressSettings(rules=rules, secrets={"tok": SECRET}),
    )
    handle = await runtime.create(spec)
    copies = []
    try:
        # (Before any connection: gVisor cannot save one in TIME_WAIT.)
        copies = await runtime.fork(handle.sandbox_id, [None])
        (copy,) = copies
        assert not isinstance(copy, Exception), copy
        code, out = await _run(copy, CURL)
        assert code == 0, out
        assert _last_headers(outside)["x-key"] == SECRET and SECRET not in out
        code, out = await _run(handle, CURL)
        assert code == 0, out
        parent, child = (runtime.host.sandboxes_dir / h.sandbox_id / "ca.pem" for h in (handle, copy))
        assert parent.read_bytes() != child.read_bytes()
    finally:
        for made in [handle, *copies]:
            if not isinstance(made, Exception):
                await runtime.kill(made.sandbox_id)


async def test_a_pooled_sandbox_has_the_default_policy_before_it_is_handed_out(runtime, monkeypatch):
    """A spare of a template without a start command gets the policy most creates ask for (internet) while
    it waits, so that such a create changes no rule; any other create replaces it before it returns."""
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")), default_user="user")
    runtime.keep_warm(template, 1, cpu_count=2, memory_mb=512)
    applied: list[tuple[str, str]] = []
    original = runtime.host.firewall.apply

    async def counted(index, host_if, policy):
        applied.append((host_if, "internet" if policy.internet else "closed"))
        await original(index, host_if, policy)

    monkeypatch.setattr(runtime.host.firewall, "apply", counted)
    fetch = f"curl -sS -m 5 -k --resolve api.test:443:{OUTSIDE} https://api.test/ || echo blocked"
    key = ("base", 2, 512, 1024, "crun")
    for internet, expected in ((True, "ok api.test"), (False, "blocked"), (True, "ok api.test")):
        async with asyncio.timeout(120):
            while runtime.pool.size(key) < 1:
                await asyncio.sleep(0.05)
        applied.clear()
        handle = await runtime.create(SandboxSpec(template=template, allow_internet_access=internet))
        try:
            host_if = runtime._live[handle.sandbox_id].network.host_if
            # (The pool's refill gives the next spare its policy meanwhile.)
            assert [kind for name, kind in applied if name == host_if] == ([] if internet else ["closed"])
            _, out = await _run(handle, fetch)
            assert expected in out, out
        finally:
            await runtime.kill(handle.sandbox_id)


async def test_a_cold_create_has_its_policy_applied_once_while_its_container_starts(runtime, monkeypatch):
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")), default_user="user")
    applied: list[bool] = []
    original = runtime.host.firewall.apply

    async def counted(index, host_if, policy):
        applied.append(policy.internet)
        await original(index, host_if, policy)

    monkeypatch.setattr(runtime.host.firewall, "apply", counted)
    fetch = f"curl -sS -m 5 -k --resolve api.test:443:{OUTSIDE} https://api.test/ || echo blocked"
    for internet, expected in ((False, "blocked"), (True, "ok api.test")):
        applied.clear()
        handle = await runtime.create(SandboxSpec(template=template, allow_internet_access=internet))
        try:
            assert applied == [internet]
            _, out = await _run(handle, fetch)
            assert expected in out, out
        finally:
            await runtime.kill(handle.sandbox_id)
