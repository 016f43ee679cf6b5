"""The body of ``GET /capabilities``: what this server supports, per engine, and the request fields it
refuses (Hutch's own; E2B has no such route)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..services.capabilities import Capabilities, EngineFeatures, RefusedField
from .common import WireModel

Mode = Literal["full", "filesystem"]


class EngineCapabilities(WireModel):
    """What an engine keeps, in E2B's modes: ``full`` is memory and processes with the files."""

    pause_modes: list[Mode] = Field(alias="pauseModes")
    snapshot_modes: list[Mode] = Field(alias="snapshotModes")
    fork_mode: Mode = Field(alias="forkMode")

    @classmethod
    def of(cls, features: EngineFeatures) -> EngineCapabilities:
        return cls(
            pause_modes=list(features.pause_modes),
            snapshot_modes=list(features.snapshot_modes),
            fork_mode=features.fork_mode,
        )


class CodeInterpreterCapabilities(WireModel):
    template: str
    available: bool
    languages: list[str]


class NetworkCapabilities(WireModel):
    supported: list[str]
    unsupported: list[str]


class TemplateBuildCapabilities(WireModel):
    registry_types: list[str] = Field(alias="registryTypes")


class UnsupportedField(WireModel):
    field: str
    reason: str

    @classmethod
    def of(cls, refused: RefusedField) -> UnsupportedField:
        return cls(field=refused.name, reason=refused.reason)


class CapabilitiesBody(WireModel):
    """``GET /capabilities``. ``unsupportedFields`` is keyed by E2B's name of the request body; a request
    that asks for one of them is a 400 naming it."""

    engines: dict[str, EngineCapabilities]
    volumes: bool
    mcp: bool
    secrets: bool
    desktop: bool
    cluster: bool
    code_interpreter: CodeInterpreterCapabilities = Field(alias="codeInterpreter")
    network: NetworkCapabilities
    template_builds: TemplateBuildCapabilities = Field(alias="templateBuilds")
    unsupported_fields: dict[str, list[UnsupportedField]] = Field(alias="unsupportedFields")
    tested_sdks: dict[str, dict[str, str]] = Field(alias="testedSdks")

    @classmethod
    def of(cls, found: Capabilities) -> CapabilitiesBody:
        return cls(
            engines={engine: EngineCapabilities.of(features) for engine, features in found.engines.items()},
            volumes=found.volumes,
            mcp=found.mcp,
            secrets=found.secrets,
            desktop=found.desktop,
            cluster=found.cluster,
            code_interpreter=CodeInterpreterCapabilities(
                template=found.code_interpreter_template,
                available=found.code_interpreter,
                languages=list(found.languages),
            ),
            network=NetworkCapabilities(
                supported=list(found.network), unsupported=list(found.network_refused)
            ),
            template_builds=TemplateBuildCapabilities(registry_types=list(found.registry_types)),
            unsupported_fields={
                schema: [UnsupportedField.of(field) for field in fields]
                for schema, fields in found.refused.items()
            },
            tested_sdks=found.tested_sdks,
        )
