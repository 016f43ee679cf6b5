"""Secrets and header rules end to end, through the official SDK against a whole stack whose uplink leads to
the outside of ``test_egress_secrets`` (network namespaces: an HTTPS server with a test CA's certificate
that logs the headers it gets; nothing leaves the machine): ``Secret.create``, a create whose
``network.rules`` names the secret, a request from the sandbox that reaches the server with the value in
its header while the sandbox never holds it, the value again after a pause of the sandbox's files, a
secret changed later reaching the running sandbox as well as those started afterwards, and a deleted one
no longer sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from e2b import Sandbox, Secret

from tests.security.test_egress_secrets import OUTSIDE, SUBNET, UPLINK, Outside, outside  # noqa: F401
from tests.stack import Stack, start_stack, stop_stack

HOST = "api.test"


@pytest.fixture(scope="module")
def secrets_stack(tmp_path_factory: pytest.TempPathFactory, outside: Outside) -> Iterator[Stack]:  # noqa: F811
    stack = start_stack(
        tmp_path_factory.mktemp("egress-secrets"),
        subnet=SUBNET,
        settings={
            "HUTCH_RUNTIME__EGRESS_INTERFACE": UPLINK,
            # the node trusts the outside's test CA, as an operator's setting would
            "HUTCH_RUNTIME__EGRESS_UPSTREAM_CA_FILE": str(outside.ca),
            "HUTCH_RUNTIME__EGRESS_NAME_SERVERS": json.dumps([OUTSIDE]),
        },
    )
    yield stack
    stop_stack(stack)


def _rules(secret: str) -> dict:
    header = {"Authorization": f"Bearer {Secret.fill(secret)}"}
    return {
        "allow_out": [HOST],
        "dns_servers": [],
        "rules": {HOST: [{"transform": {"headers": header}}]},
    }


def _sandbox(stack: Stack, secret: str) -> Sandbox:
    sandbox = Sandbox.create(allow_internet_access=False, network=_rules(secret), **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    return sandbox


def _request(sandbox: Sandbox) -> str:
    """curl -v from the sandbox to the outside by name, trusting what the sandbox trusts; all it printed."""
    done = sandbox.commands.run(
        f"curl -sS -v --connect-timeout 5 -m 20 --resolve {HOST}:443:{OUTSIDE} https://{HOST}/ 2>&1",
        timeout=30,
    )
    return done.stdout


def _last_authorization(outside: Outside) -> str:  # noqa: F811
    headers = {name.lower(): value for name, value in outside.requests()[-1]["headers"]}
    return headers.get("authorization", "")


def test_a_sandbox_sends_a_secret_it_never_holds(secrets_stack: Stack, outside: Outside) -> None:  # noqa: F811
    name, value = f"tok-{uuid.uuid4().hex[:8]}", f"value-{uuid.uuid4().hex}"
    Secret.create(name, value, **secrets_stack.opts)
    sandbox = _sandbox(secrets_stack, name)
    try:
        printed = _request(sandbox)
        assert f"ok {HOST}" in printed and value not in printed
        assert _last_authorization(outside) == f"Bearer {value}"
        # Nowhere in the sandbox: its files, its processes' environments (a pattern that finds the value
        # without holding it, so that the search's own command line does not count).
        pattern = f"{value[:-1]}[{value[-1]}]"
        search = sandbox.commands.run(
            f"sudo grep -rlsE '{pattern}' /etc /home /tmp /root /var /proc/*/environ; true", timeout=60
        )
        assert search.stdout.strip() == ""
        assert value not in repr(sandbox.get_info())

        sandbox.pause(mode="filesystem")
        sandbox = Sandbox.connect(sandbox.sandbox_id, **secrets_stack.opts)
        trust = sandbox.commands.run("echo $SSL_CERT_FILE").stdout.strip()
        assert trust and sandbox.files.read(trust)  # the trust files come back with the boot
        assert f"ok {HOST}" in _request(sandbox)
        assert _last_authorization(outside) == f"Bearer {value}"

        # A value changed later reaches this sandbox and those started afterwards.
        changed = f"changed-{uuid.uuid4().hex}"
        Secret.update(name, changed, **secrets_stack.opts)
        later = _sandbox(secrets_stack, name)
        try:
            assert f"ok {HOST}" in _request(later)
            assert _last_authorization(outside) == f"Bearer {changed}"
        finally:
            later.kill()
        _request(sandbox)
        assert _last_authorization(outside) == f"Bearer {changed}"
        # A deleted secret is no longer sent: its placeholder goes out as it is.
        Secret.destroy(name, **secrets_stack.opts)
        _request(sandbox)
        assert _last_authorization(outside) == f"Bearer {Secret.fill(name)}"
    finally:
        sandbox.kill()
        Secret.destroy(name, **secrets_stack.opts)


def test_a_secret_of_another_team_is_unknown(secrets_stack: Stack) -> None:
    name = f"tok-{uuid.uuid4().hex[:8]}"
    Secret.create(name, "theirs", **secrets_stack.opts)
    other = secrets_stack.new_team()
    try:
        with pytest.raises(Exception, match=name) as refused:
            Sandbox.create(allow_internet_access=False, network=_rules(name), **other.opts)
        assert "theirs" not in str(refused.value)
    finally:
        Secret.destroy(name, **secrets_stack.opts)
