"""A sandbox's state file: what a restarted node reads back is what the sandbox was, and it is root's
alone."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime

from hutch.runtime.container import state
from hutch.runtime.container.egress.firewall import EgressPolicy
from hutch.runtime.types import (
    EgressSettings,
    HeaderRule,
    SandboxHandle,
    SandboxSpec,
    TemplateImage,
    UpstreamProxy,
    VolumeMount,
)


def test_a_pooled_sandbox_records_only_where_it_is(sandbox_record):
    sandbox = sandbox_record("gvisor")
    state.save(sandbox)
    found = state.load(sandbox.directory)
    assert found == {
        "template": "base",
        "rootfs": str(sandbox.template.rootfs),
        "index": 3,
        "engine": "gvisor",
        "disk_mb": 256,
        "claimed": False,
        "paused": None,
    }
    assert state.spec_of(found) is None
    assert state.egress_of(found) == EgressPolicy()


def test_a_handed_out_sandbox_round_trips(sandbox_record, tmp_path):
    sandbox = sandbox_record()
    template = TemplateImage(
        "code-interpreter-v1",
        tmp_path / "layers",
        env={"A": "1"},
        start_cmd="serve",
        ready_cmd="ready",
        start_user="root",
        engine="gvisor",
        checkpoint=tmp_path / "memory",
    )
    settings = EgressSettings(
        rules=(HeaderRule("*.example.com", {"Authorization": "Bearer ${e2b.secrets.KEY}"}),),
        secrets={"KEY": "s3cret"},
        proxy=UpstreamProxy("10.1.2.3:1080", "who", "pass", tls=True, server_name="proxy", scheme="http"),
        dns_servers=("10.1.2.4",),
    )
    spec = SandboxSpec(
        template=template,
        cpu_count=4,
        memory_mb=2048,
        env_vars={"B": "2"},
        access_token="token",
        allow_internet_access=True,
        allow_out=("example.com",),
        deny_out=("0.0.0.0/0",),
        engine="gvisor",
        egress=settings,
        volumes=(VolumeMount("vol-1", "/data"),),
    )
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sandbox.spec, sandbox.template, sandbox.access_token = spec, template, "token"
    sandbox.handle = SandboxHandle(sandbox.sandbox_id, template.template_id, "10.99.0.7", "local", started)
    sandbox.egress = EgressPolicy(True, ("example.com",), ("0.0.0.0/0",), settings, tmp_path / "authority")
    sandbox.paused = "full"
    state.save(sandbox)

    found = state.load(sandbox.directory)
    assert (found["claimed"], found["paused"], found["token"]) == (True, "full", "token")
    assert datetime.fromisoformat(found["started_at"]) == started
    assert state.spec_of(found) == spec
    assert state.egress_of(found) == sandbox.egress
    file = sandbox.directory / state.FILE
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert not [p for p in sandbox.directory.iterdir() if p != file]  # no partial file left beside it


def test_a_missing_or_broken_file_reads_as_nothing(tmp_path):
    assert state.load(tmp_path) == {}
    (tmp_path / state.FILE).write_text("{not json")
    assert state.load(tmp_path) == {}


def test_a_file_without_egress_rules_means_none(sandbox_record):
    sandbox = sandbox_record()
    (sandbox.directory / state.FILE).write_text(json.dumps({"claimed": True, "egress": {"internet": 1}}))
    assert state.egress_of(state.load(sandbox.directory)) == EgressPolicy(True)
