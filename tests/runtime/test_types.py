"""The runtime's data types: a spec's secret values and proxy password never show in its ``repr`` (what a
log line or a traceback prints), and still travel to the node and into its state file."""

from __future__ import annotations

from pydantic import TypeAdapter

from hutch.runtime.types import EgressSettings, HeaderRule, SandboxSpec, TemplateImage, UpstreamProxy


def test_secret_values_stay_out_of_a_specs_repr_and_in_its_wire_form(tmp_path) -> None:
    egress = EgressSettings(
        rules=(HeaderRule("api.example.com", {"X-Key": "${e2b.secrets.key}"}),),
        secrets={"key": "value-of-the-secret"},
        proxy=UpstreamProxy("proxy.example.com:1080", username="me", password="password-of-the-proxy"),
    )
    spec = SandboxSpec(template=TemplateImage("base", tmp_path), egress=egress)
    shown = repr(spec)
    assert "value-of-the-secret" not in shown and "password-of-the-proxy" not in shown
    assert "${e2b.secrets.key}" in shown
    adapter = TypeAdapter(SandboxSpec)
    assert adapter.validate_python(adapter.dump_python(spec, mode="json")) == spec
