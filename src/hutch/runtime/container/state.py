"""A sandbox's state file, ``sandbox.json`` in its directory (readable by root only): what a restarted node
needs to adopt the sandbox, or to tear down what a half-made one left.

It is written first thing when a sandbox is made (so that a restart can undo whatever follows), and again
whenever what it records changes: the sandbox handed out, paused or resumed, its egress rules replaced.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from ...private_files import write_private
from ..types import EgressSettings, Engine, SandboxSpec, engine_named
from .egress.firewall import EgressPolicy
from .sandbox import ContainerSandbox, container_boot

FILE = "sandbox.json"
_SPEC = TypeAdapter(SandboxSpec)
_EGRESS_SETTINGS = TypeAdapter(EgressSettings)


def save(sandbox: ContainerSandbox) -> None:
    """Write the sandbox's state file."""
    state = {
        "template": sandbox.template.template_id,
        "rootfs": str(sandbox.template.rootfs),
        "index": sandbox.network.index,
        "engine": sandbox.engine,
        "disk_mb": sandbox.disk.size_mb,
        "claimed": sandbox.handle is not None,
        "paused": sandbox.paused,
    }
    if sandbox.container_id != sandbox.sandbox_id:  # a gVisor sandbox started again
        state["container"] = sandbox.container_id
    if sandbox.handle is not None:
        state["started_at"] = sandbox.handle.started_at.isoformat()
        state["token"] = sandbox.access_token
        if sandbox.spec is not None:
            state["spec"] = _SPEC.dump_python(sandbox.spec, mode="json")
        state["egress"] = {
            "internet": sandbox.egress.internet,
            "allow_out": list(sandbox.egress.allow_out),
            "deny_out": list(sandbox.egress.deny_out),
            # Header rules, the secrets they name, upstream proxy, name servers (the file is root's only).
            "settings": _EGRESS_SETTINGS.dump_python(sandbox.egress.settings, mode="json"),
            "authority": None if sandbox.egress.authority is None else str(sandbox.egress.authority),
        }
    write_private(sandbox.directory / FILE, json.dumps(state, default=str))  # (paths)


def load(directory: Path) -> dict:
    """The state file of the sandbox in ``directory``; empty when it is missing or unreadable."""
    try:
        return json.loads((directory / FILE).read_text())
    except (OSError, ValueError):
        return {}


def container_of(directory: Path, state: dict) -> str:
    """The id of the container the sandbox in ``directory`` last had (one of its own names only; files
    written before containers had names of their own say none: the sandbox's id)."""
    container_id = str(state.get("container", directory.name))
    return container_id if container_boot(directory.name, container_id) is not None else directory.name


def spec_of(state: dict) -> SandboxSpec | None:
    """The spec the sandbox was started with (a boot after a restart needs it); None before its hand-out."""
    data = state.get("spec")
    if not data:
        return None
    return _SPEC.validate_python({**_with_engine(data), "template": _with_engine(data["template"])})


def engine_of(state: dict) -> Engine:
    """The engine the sandbox runs on (a state file written before engines had their names says
    ``container`` for crun)."""
    return engine_named(str(state.get("engine", "crun"))) or "crun"


def _with_engine(fields: dict) -> dict:
    """``fields`` of a spec or template with its engine by its name (older files call it ``runtime``)."""
    named = {key: value for key, value in fields.items() if key != "runtime"}
    named["engine"] = engine_named(str(fields.get("engine", fields.get("runtime", "crun")))) or "crun"
    return named


def egress_of(state: dict) -> EgressPolicy:
    """The egress policy the sandbox last had (none recorded: no internet, no rules)."""
    egress = state.get("egress", {})
    return EgressPolicy(
        bool(egress.get("internet")),
        tuple(egress.get("allow_out", ())),
        tuple(egress.get("deny_out", ())),
        _EGRESS_SETTINGS.validate_python(egress.get("settings") or {}),
        Path(egress["authority"]) if egress.get("authority") else None,
    )
