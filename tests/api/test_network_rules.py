"""Egress settings on create and on ``PUT /sandboxes/{id}/network``, through the official SDK: header rules
whose values name secrets (``${e2b.secrets.NAME}``, resolved at create or update against the team's secrets,
only the named ones handed to the node), an upstream proxy and name servers; hostile values refused with a
400 that names the field and never a value; a sandbox's detail shows placeholders, never a secret's value
or the proxy's password; a snapshot's sandboxes get the current value of a secret; and ``mcp`` is taken."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from e2b import Sandbox, SandboxException, Secret

from hutch.api import create_app
from hutch.catalog import register_template
from hutch.catalog.repos import sandboxes, templates
from hutch.config import Settings
from hutch.runtime.fake import FakeRuntime
from hutch.runtime.types import EgressSettings, SandboxSpec
from tests.api.conftest import Caller, Stack, register_test_templates, serving

SNAPSHOT_LIKE = "hutchsnaplike0000001"


class RecordingRuntime(FakeRuntime):
    """The fake runtime, remembering each sandbox's spec and the egress settings of its updates."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs: dict[str, SandboxSpec] = {}
        self.updates: dict[str, EgressSettings | None] = {}
        self.pushed: dict[str, dict[str, str]] = {}

    async def create(self, spec):  # type: ignore[no-untyped-def]
        handle = await super().create(spec)
        self.specs[handle.sandbox_id] = spec
        return handle

    async def update_egress(self, sandbox_id, *, internet, allow_out, deny_out, settings=None):  # type: ignore[no-untyped-def]
        self.updates[sandbox_id] = settings

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        self.pushed[sandbox_id] = secrets


@pytest.fixture(scope="module")
def rules_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hutch-rules"))
    with serving(create_app(settings, runtime=RecordingRuntime(node_id=settings.runtime.node_id))) as stack:
        register_test_templates(stack)
        yield stack


@pytest.fixture()
def team(rules_stack: Stack) -> Caller:
    return Caller(stack=rules_stack, api_key=rules_stack.new_key())


def runtime(caller: Caller) -> RecordingRuntime:
    return caller.stack.app.state.runtime


def test_rules_name_secrets_and_the_node_gets_only_those(team: Caller) -> None:
    token, unused = f"tok-{uuid.uuid4().hex}", f"unused-{uuid.uuid4().hex}"
    Secret.create("API-Token", token, **team.opts)
    Secret.create("other", unused, **team.opts)
    bearer = f"Bearer {Secret.fill('API-Token')}"
    network = {
        "allow_out": ["api.example.com"],
        "rules": {"API.Example.com": [{"transform": {"headers": {"Authorization": bearer}}}],
                  "*.cdn.example.com": [{"transform": {"headers": {"X-Plain": "1"}}}]},
        "egress_proxy": {"address": "proxy.example.com:1080", "username": "u", "password": "proxy-pass-xyz",
                         "tls": {"server_name": "proxy.example.com"}},
        "dns_servers": ["1.1.1.1"],
    }  # fmt: skip
    sandbox = Sandbox.create("base", network=network, **team.opts)
    spec = runtime(team).specs[sandbox.sandbox_id]
    assert spec.egress.secrets == {"api-token": token}
    by_pattern = {rule.pattern: rule.headers for rule in spec.egress.rules}
    assert by_pattern == {
        "api.example.com": {"Authorization": "Bearer ${e2b.secrets.api-token}"},
        "*.cdn.example.com": {"X-Plain": "1"},
    }
    assert spec.egress.proxy is not None and spec.egress.proxy.password == "proxy-pass-xyz"
    assert spec.egress.proxy.tls and spec.egress.proxy.server_name == "proxy.example.com"
    assert spec.egress.dns_servers == ("1.1.1.1",)
    with team.http() as client:
        detail = client.get(f"/sandboxes/{sandbox.sandbox_id}").text
    assert token not in detail and unused not in detail and "proxy-pass-xyz" not in detail
    shown = json.loads(detail)["network"]
    assert shown["rules"]["api.example.com"] == [
        {"transform": {"headers": {"Authorization": "Bearer ${e2b.secrets.api-token}"}}}
    ]
    assert shown["egressProxy"] == {
        "address": "proxy.example.com:1080", "username": "u",
        "tls": {"enabled": True, "serverName": "proxy.example.com"},
    }  # fmt: skip
    assert shown["dnsServers"] == ["1.1.1.1"]
    info = sandbox.get_info()  # the SDK reads the detail back
    assert info.network is not None and info.network["dns_servers"] == ["1.1.1.1"]
    sandbox.kill()


def test_an_http_proxy_is_written_with_its_scheme(team: Caller) -> None:
    network = {
        "egress_proxy": {"address": "http://proxy.example.com:3128", "username": "u", "password": "pw"}
    }
    sandbox = Sandbox.create("base", network=network, **team.opts)
    proxy = runtime(team).specs[sandbox.sandbox_id].egress.proxy
    assert proxy is not None and (proxy.scheme, proxy.address) == ("http", "proxy.example.com:3128")
    plain = Sandbox.create(
        "base", network={"egress_proxy": {"address": "socks5://p.example.com:1080"}}, **team.opts
    )
    proxy = runtime(team).specs[plain.sandbox_id].egress.proxy
    assert proxy is not None and (proxy.scheme, proxy.address) == ("socks5", "p.example.com:1080")
    sandbox.kill()
    plain.kill()


def test_an_empty_dns_list_is_none_and_an_absent_one_the_default(team: Caller) -> None:
    none = Sandbox.create("base", network={"dns_servers": []}, **team.opts)
    default = Sandbox.create("base", **team.opts)
    assert runtime(team).specs[none.sandbox_id].egress.dns_servers == ()
    assert runtime(team).specs[default.sandbox_id].egress == EgressSettings()
    none.kill()
    default.kill()


def test_an_unknown_secret_is_a_400_naming_it_and_nothing_starts(team: Caller) -> None:
    secret_value = f"v-{uuid.uuid4().hex}"
    Secret.create("known", secret_value, **team.opts)
    before = set(team.stack.handles())
    headers = {"A": Secret.fill("known"), "B": Secret.fill("Missing-One")}
    with pytest.raises(SandboxException) as error:
        Sandbox.create("base", network={"rules": {"x.example.com": [{"transform": {"headers": headers}}]}},
                       **team.opts)  # fmt: skip
    assert "'missing-one'" in str(error.value) and secret_value not in str(error.value)
    assert set(team.stack.handles()) <= before


def test_another_teams_secret_cannot_be_named(team: Caller, rules_stack: Stack) -> None:
    other = Caller(stack=rules_stack, api_key=rules_stack.new_key())
    Secret.create("theirs", "their-value", **other.opts)
    with pytest.raises(SandboxException, match="'theirs'"):
        Sandbox.create("base", network={"rules": {"a.example.com": [
            {"transform": {"headers": {"K": Secret.fill("theirs")}}}]}}, **team.opts)  # fmt: skip


def _rules(pattern: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"rules": {pattern: [{"transform": {"headers": headers}}]}}


HOSTILE: list[tuple[dict[str, Any], str]] = [
    (_rules("*", {"A": "b"}), "not a host pattern"),
    (_rules("*.", {"A": "b"}), "not a host pattern"),
    (_rules("**.example.com", {"A": "b"}), "not a host pattern"),
    (_rules("a..example.com", {"A": "b"}), "not a host pattern"),
    (_rules("-a.example.com", {"A": "b"}), "not a host pattern"),
    (_rules("a.example.com\n", {"A": "b"}), "not a host pattern"),
    (_rules("10.0.0.1/8", {"A": "b"}), "not a host pattern"),
    (_rules("a" * 300, {"A": "b"}), "not a host pattern"),
    (_rules("a.example.com", {"A": "v\r\nInjected: 1"}), "control character"),
    (_rules("a.example.com", {"A": "v\nx"}), "control character"),
    (_rules("a.example.com", {"A": "v\x00"}), "control character"),
    (_rules("a.example.com", {"Bad Name": "v"}), "header name"),
    (_rules("a.example.com", {"Bad:Name": "v"}), "header name"),
    (_rules("a.example.com", {"A\r\nB": "v"}), "header name"),
    (_rules("a.example.com", {"A": "v" * 9000}), "at most 8192 bytes"),
    (_rules("a.example.com", {f"H{i}": "v" for i in range(33)}), "at most 32 headers"),
    (_rules("a.example.com", {"A": "${e2b.secrets.}"}), "no name"),
    ({"rules": {f"h{i}.example.com": [] for i in range(65)}}, "at most 64"),
    ({"rules": {"A.example.com": [], "a.example.com": []}}, "given twice"),
    ({"egressProxy": {"address": "proxy.example.com"}}, "host:port"),
    ({"egressProxy": {"address": "proxy.example.com:0"}}, "host:port"),
    ({"egressProxy": {"address": "proxy.example.com:99999"}}, "host:port"),
    ({"egressProxy": {"address": "127.0.0.1:1080"}}, "internal address"),
    ({"egressProxy": {"address": "10.1.2.3:1080"}}, "internal address"),
    ({"egressProxy": {"address": "[::1]:1080"}}, "internal address"),
    ({"egressProxy": {"address": "169.254.169.254:80"}}, "internal address"),
    ({"egressProxy": {"address": "bad host:1080"}}, "not a host name"),
    ({"egressProxy": {"address": "ftp://p.example.com:21"}}, "not a proxy protocol"),
    ({"egressProxy": {"address": "http://10.0.0.1:3128"}}, "internal address"),
    ({"egressProxy": {"address": "p.example.com:1080", "password": "x"}}, "only valid with a username"),
    ({"egressProxy": {"address": "p.example.com:1080", "username": "u" * 256}}, "username"),
    ({"egressProxy": {"address": "p.example.com:1080", "username": "ü" * 128}}, "1 to 255 bytes"),
    ({"egressProxy": {"address": "p.example.com:1080", "tls": {"enabled": False, "serverName": "x.com"}}},
     "need enabled: true"),
    ({"egressProxy": {"address": "p.example.com:1080", "tls": {"enabled": True, "caCert": "not pem"}}},
     "PEM"),
    ({"egressProxy": {"address": "p.example.com:1080", "tls": {"enabled": True, "serverName": "a b"}}},
     "serverName"),
    ({"dnsServers": ["::1"]}, "not an IPv4 address"),
    ({"dnsServers": ["dns.google"]}, "not an IPv4 address"),
    ({"dnsServers": ["1.1.1.1"] * 9}, "at most 8"),
]  # fmt: skip


@pytest.mark.parametrize(("network", "message"), HOSTILE)
def test_hostile_network_settings_are_a_400_on_create_and_on_update(
    team: Caller, network: dict[str, Any], message: str
) -> None:
    before = set(team.stack.handles())
    with team.http() as client:
        created = client.post("/v2/sandboxes", json={"templateID": "base", "network": network})
        assert created.status_code == 400 and message in created.json()["message"], created.text
        assert set(team.stack.handles()) <= before
        sandbox = client.post("/v2/sandboxes", json={"templateID": "base"}).json()["sandboxID"]
        updated = client.put(f"/sandboxes/{sandbox}/network", json=network)
        assert updated.status_code == 400 and message in updated.json()["message"], updated.text
        client.delete(f"/sandboxes/{sandbox}")


def test_a_huge_network_body_is_refused(team: Caller) -> None:
    rules = {f"h{i}.example.com": [{"transform": {"headers": {"A": "v" * 8000}}}] for i in range(200)}
    with team.http() as client:
        response = client.post("/v2/sandboxes", json={"templateID": "base", "network": {"rules": rules}})
    assert response.status_code == 413


def test_an_update_replaces_the_settings_and_reads_secrets_then(team: Caller) -> None:
    Secret.create("rotating", "first", **team.opts)
    sandbox = Sandbox.create("base", **team.opts)
    sandbox.update_network({**_network_of("rotating"), "dns_servers": []})
    settings = runtime(team).updates[sandbox.sandbox_id]
    assert settings is not None and settings.secrets == {"rotating": "first"} and settings.dns_servers == ()
    with team.http() as client:
        assert client.get(f"/sandboxes/{sandbox.sandbox_id}").json()["network"]["dnsServers"] == []
        missing = client.put(f"/sandboxes/{sandbox.sandbox_id}/network", json=_rules("a.example.com", {
            "K": "${e2b.secrets.nope}"}))  # fmt: skip
        assert missing.status_code == 400 and "'nope'" in missing.json()["message"]
    sandbox.update_network({})  # omitted: cleared
    assert runtime(team).updates[sandbox.sandbox_id] == EgressSettings()
    with team.http() as client:
        assert client.get(f"/sandboxes/{sandbox.sandbox_id}").json()["network"] == {
            "allowPublicTraffic": True
        }
    sandbox.kill()


def test_a_snapshots_sandboxes_read_the_secrets_again(team: Caller, rules_stack: Stack) -> None:
    """A snapshot keeps its sandbox's settings by secret name (the service copies the row's stored form,
    whose placeholders this template stands for); each sandbox from it gets the value current then."""
    Secret.create("snap-secret", "old", **team.opts)
    source = Sandbox.create("base", network=_network_of("snap-secret"), **team.opts)
    team_id = rules_stack.run(_team_of(rules_stack, source.sandbox_id))
    rules_stack.run(_snapshot_like(rules_stack, source.sandbox_id, team_id))
    assert "old" not in json.dumps(rules_stack.run(_template_egress(rules_stack)))
    Secret.update("snap-secret", "new", **team.opts)
    child = Sandbox.create(SNAPSHOT_LIKE, **team.opts)
    assert runtime(team).specs[child.sandbox_id].egress.secrets == {"snap-secret": "new"}
    Secret.destroy("snap-secret", **team.opts)
    with pytest.raises(SandboxException, match="'snap-secret'"):
        Sandbox.create(SNAPSHOT_LIKE, **team.opts)
    source.kill()
    child.kill()


def _network_of(name: str) -> dict[str, Any]:
    return {"rules": {"a.example.com": [{"transform": {"headers": {"K": Secret.fill(name)}}}]}}


async def _team_of(stack: Stack, sandbox_id: str) -> str:
    async with stack.app.state.catalog.transaction() as session:
        return (await sandboxes.get(session, sandbox_id)).team_id


async def _snapshot_like(stack: Stack, sandbox_id: str, team_id: str) -> None:
    from hutch.catalog.repos import sandboxes

    await register_template(stack.app.state.catalog, template_id=SNAPSHOT_LIKE, rootfs="/", public=False)
    async with stack.app.state.catalog.transaction() as session:
        row = await sandboxes.get(session, sandbox_id)
        template = await templates.get(session, SNAPSHOT_LIKE)
        template.egress, template.team_id = row.egress, team_id


async def _template_egress(stack: Stack) -> Any:
    async with stack.app.state.catalog.transaction() as session:
        return (await templates.get(session, SNAPSHOT_LIKE)).egress


def test_mcp_is_taken_within_its_bound(team: Caller) -> None:
    with team.http() as client:
        taken = client.post("/v2/sandboxes", json={"templateID": "base", "mcp": {"exa": {"apiKey": "x"}}})
        assert taken.status_code == 201, taken.text
        client.delete(f"/sandboxes/{taken.json()['sandboxID']}")
        big = {"templateID": "base", "mcp": {"k": "x" * (64 * 1024)}}
        huge = client.post("/v2/sandboxes", json=big)
        assert huge.status_code == 400 and "mcp" in huge.json()["message"]
        assert client.post("/v2/sandboxes", json={"templateID": "base", "mcp": "text"}).status_code == 400


def test_a_changed_or_deleted_secret_reaches_the_sandboxes_whose_rules_name_it(team: Caller) -> None:
    name = f"push-{uuid.uuid4().hex[:8]}"
    Secret.create(name, "first", **team.opts)
    Secret.create(f"{name}-other", "kept", **team.opts)
    header = {"X-Key": f"{Secret.fill(name)} {Secret.fill(name + '-other')}"}
    naming = Sandbox.create(
        "base", network={"rules": {"a.example.com": [{"transform": {"headers": header}}]}}, **team.opts
    )
    plain = Sandbox.create("base", **team.opts)
    pushed = runtime(team).pushed
    Secret.update(name, "second", **team.opts)
    assert pushed[naming.sandbox_id] == {name: "second", f"{name}-other": "kept"}
    assert plain.sandbox_id not in pushed
    Secret.destroy(name, **team.opts)
    assert pushed[naming.sandbox_id] == {f"{name}-other": "kept"}  # no longer sent
    naming.kill()
    plain.kill()
