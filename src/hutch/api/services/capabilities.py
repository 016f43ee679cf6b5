"""What this server supports, per engine, and the request fields it refuses: one table for both, so that
``GET /capabilities`` and the 400s of the requests can never disagree.

Every field the official clients send is either carried out or refused with ``InvalidRequest`` naming it
by its wire name. The refused fields are listed here by E2B's name of the request body; each lists the
values that ask for nothing this server does not do anyway (absent, null, an empty list), which pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ...catalog import Catalog
from ...errors import InvalidRequest
from ...runtime.node_client import ENGINES, Engine
from . import templates

Mode = Literal["full", "filesystem"]

# The official clients the test suite pins, by registry: what "compatible" is measured against.
TESTED_SDKS: dict[str, dict[str, str]] = {
    "pypi": {"e2b": "2.63.0", "e2b-code-interpreter": "2.11.5", "e2b-desktop": "2.7.2"},
    "npm": {"e2b": "2.51.0", "@e2b/cli": "2.19.0", "@e2b/desktop": "2.4.0"},
}

# The templates E2B's SDKs create by default for the code interpreter and the desktop.
CODE_INTERPRETER_TEMPLATE = "code-interpreter-v1"
DESKTOP_TEMPLATE = "desktop"
# The template E2B's SDKs create when ``mcp`` is given: the MCP gateway starts in it.
MCP_TEMPLATE = "mcp-gateway"
# The languages of the code-interpreter template's contexts (its kernels: IPython, bash, Deno, IRkernel,
# the JShell-based Java kernel).
CODE_INTERPRETER_LANGUAGES = ("python", "bash", "javascript", "typescript", "r", "java")

# The network settings a create or a network update carries out.
NETWORK_FIELDS = (
    "allowOut", "denyOut", "allowPublicTraffic", "maskRequestHost", "allow_internet_access", "rules",
    "egressProxy", "dnsServers",
)  # fmt: skip
# The types of ``fromImageRegistry`` a template build logs in with.
REGISTRY_TYPES = ("registry",)


@dataclass(frozen=True)
class EngineFeatures:
    """What an engine keeps: when pausing (``full``: memory and processes too), in a snapshot, in a fork.
    gVisor cannot save a sandbox that holds a connection open to outside: its pause and fork then keep the
    files only, as its snapshot does unless ``memory: true`` was asked."""

    pause_modes: tuple[Mode, ...]
    snapshot_modes: tuple[Mode, ...]
    fork_mode: Mode


ENGINE_FEATURES: dict[Engine, EngineFeatures] = {
    # The cgroup freezer keeps a paused sandbox in RAM; a snapshot or a fork copies its files.
    "crun": EngineFeatures(
        pause_modes=("full", "filesystem"), snapshot_modes=("filesystem",), fork_mode="filesystem"
    ),
    # runsc checkpoints: memory and processes go to disk, and come back in a restore.
    "gvisor": EngineFeatures(
        pause_modes=("full", "filesystem"), snapshot_modes=("full", "filesystem"), fork_mode="full"
    ),
}


@dataclass(frozen=True)
class RefusedField:
    """A request field this server does not carry out, by its wire name, and why; a value among
    ``neutral`` asks for nothing and passes."""

    name: str
    reason: str
    neutral: tuple[Any, ...] = (None,)

    def check(self, body: Mapping[str, Any], *, within: str = "") -> None:
        """``InvalidRequest`` naming the field (as ``within.name``) when ``body`` asks for it."""
        if self.name in body and not any(_same(body[self.name], value) for value in self.neutral):
            raise InvalidRequest(f"{within}{self.name} is not supported by this server: {self.reason}")


def _same(value: Any, neutral: Any) -> bool:
    """Equal and of the same type (``0`` is not ``False``)."""
    return type(value) is type(neutral) and value == neutral


_EMPTY = (None, [], {})

# ``SandboxNetworkConfig`` of a create (``SandboxNetworkUpdateConfig`` of ``PUT .../network`` refuses none).
NETWORK_UPDATE_REFUSED: tuple[RefusedField, ...] = ()
NETWORK_REFUSED = (
    *NETWORK_UPDATE_REFUSED,
    RefusedField("httpsPorts", "the proxy reaches a sandbox's ports over plain HTTP", _EMPTY),
)

NEW_SANDBOX_REFUSED = (
    RefusedField("iam", "it issues no workload identity tokens", (None, {}, {"tokens": {}})),
)

# By E2B's name of the request body: v1's ``NewSandbox`` is ``NewSandboxV2`` with ``secure``.
REFUSED: dict[str, tuple[RefusedField, ...]] = {
    "NewSandboxV2": NEW_SANDBOX_REFUSED,
    "NewSandbox": (
        *NEW_SANDBOX_REFUSED,
        RefusedField("secure", "every sandbox's envd requires its access token", (None, True)),
    ),
    "SandboxNetworkConfig": NETWORK_REFUSED,
    "SandboxNetworkUpdateConfig": NETWORK_UPDATE_REFUSED,
    "SandboxPauseRequest": (
        RefusedField("requireHealthyGuest", "a pause does not ask envd first", (None, False)),
    ),
    "ResumedSandbox": (RefusedField("autoPause", "a sandbox's lifecycle is set by its create (autoPause)"),),
    "TemplateBuildRequestV3": (
        RefusedField("minFreeDiskMb", "a template's sandboxes get its disk size", (None, 0)),
        RefusedField("teamID", "a build belongs to the team of its API key"),
    ),
}


def refuse_unsupported(body: Any, schema: str, *, within: str = "") -> None:
    """``InvalidRequest`` for the first field of ``REFUSED[schema]`` that ``body`` asks for (a body that
    is not an object is left to its model's validation)."""
    if isinstance(body, Mapping):
        for field in REFUSED[schema]:
            field.check(body, within=within)


def refuse_registry(registry_type: str) -> None:
    """``InvalidRequest`` for a ``fromImageRegistry`` of a type this server cannot log in with."""
    if registry_type not in REGISTRY_TYPES:
        raise InvalidRequest(
            f"fromImageRegistry is not supported by this server for type {registry_type!r}: it logs in"
            f" with type {' or '.join(map(repr, REGISTRY_TYPES))} (username and password) only"
        )


def refuse_memory_snapshot(engine: Engine) -> None:
    """``InvalidRequest`` for ``memory: true`` in a snapshot of a sandbox whose engine keeps files only."""
    if "full" not in ENGINE_FEATURES[engine].snapshot_modes:
        keeping = [name for name, features in ENGINE_FEATURES.items() if "full" in features.snapshot_modes]
        raise InvalidRequest(
            f"memory is not supported for snapshots of {engine} sandboxes: the {engine} engine keeps files"
            f" only; snapshot with memory: false (mode 'filesystem'), or run the sandbox on"
            f" {' or '.join(keeping)}"
        )


def refuses(schema: str, field: str) -> bool:
    """Whether the body ``schema`` has ``field`` refused."""
    return any(refused.name == field for refused in REFUSED[schema])


@dataclass(frozen=True)
class Capabilities:
    """What a team can use on this server."""

    engines: dict[Engine, EngineFeatures]
    volumes: bool
    mcp: bool
    secrets: bool
    desktop: bool
    code_interpreter_template: str
    code_interpreter: bool
    languages: tuple[str, ...]
    network: tuple[str, ...]
    network_refused: tuple[str, ...]
    registry_types: tuple[str, ...]
    refused: dict[str, tuple[RefusedField, ...]]
    tested_sdks: dict[str, dict[str, str]]
    # Served by a cluster's API replicas, whose snapshots keep files only.
    cluster: bool = False


async def of(*, catalog: Catalog, team_id: str, cluster: bool = False) -> Capabilities:
    """The server's capabilities as the team sees them: the desktop, the code interpreter and MCP count
    only where their templates are there for it. A cluster's (``cluster``) snapshots keep files only, for
    now."""
    async with catalog.transaction() as session:
        desktop = await templates.find(session, name=DESKTOP_TEMPLATE, team_id=team_id)
        interpreter = await templates.find(session, name=CODE_INTERPRETER_TEMPLATE, team_id=team_id)
        gateway = await templates.find(session, name=MCP_TEMPLATE, team_id=team_id)
    return Capabilities(
        engines={
            engine: replace(ENGINE_FEATURES[engine], snapshot_modes=("filesystem",))
            if cluster
            else ENGINE_FEATURES[engine]
            for engine in ENGINES
        },
        volumes=not refuses("NewSandboxV2", "volumeMounts"),
        mcp=not refuses("NewSandboxV2", "mcp") and gateway is not None and bool(gateway.rootfs),
        secrets=not refuses("SandboxNetworkConfig", "rules"),
        desktop=desktop is not None and bool(desktop.rootfs),
        code_interpreter_template=CODE_INTERPRETER_TEMPLATE,
        code_interpreter=interpreter is not None and bool(interpreter.rootfs),
        languages=CODE_INTERPRETER_LANGUAGES,
        network=NETWORK_FIELDS,
        network_refused=tuple(field.name for field in NETWORK_REFUSED),
        registry_types=REGISTRY_TYPES,
        refused=dict(REFUSED),
        tested_sdks=TESTED_SDKS,
        cluster=cluster,
    )
