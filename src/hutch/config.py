"""Hutch's settings: one typed object, built only by entry points and passed down.

Precedence, highest first: environment variables (prefix ``HUTCH_``, ``__`` between a section and its key,
e.g. ``HUTCH_API__PORT=3000``), then the TOML file named by ``HUTCH_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class ApiSettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = 3000
    default_timeout_s: int = 300
    max_timeout_s: int = 24 * 3600
    # How long a paused sandbox is kept (then killed, its disk freed).
    paused_retention_s: int = 30 * 24 * 3600
    # Snapshots a team may keep: each holds a copy of a sandbox's files (and, on gVisor, of its memory).
    max_snapshots_per_team: int = 100
    # A snapshot is refused when the node's disk could have less free space than this after it.
    min_free_disk_mb: int = 2048
    reaper_interval_s: float = 0.5
    # Per team, token buckets (0 turns one off): any request, and sandbox creates.
    requests_per_s: float = 500
    requests_burst: int = 1000
    creates_per_s: float = 50
    creates_burst: int = 100
    # Returned to clients as each sandbox's ``domain``; None lets them use their own E2B_DOMAIN/SANDBOX_URL.
    sandbox_domain: str | None = None


class CatalogSettings(BaseModel):
    # SQLite file by default; a postgresql+asyncpg:// URL for clusters.
    url: str = ""


class RuntimeSettings(BaseModel):
    backend: str = "container"
    node_id: str = "local"
    # Ready sandboxes kept per template, so that a create only claims and initialises one.
    warm_pool: dict[str, int] = Field(default_factory=lambda: {"base": 4, "code-interpreter-v1": 1})
    # The same for sandboxes created with metadata ``hutch.runtime: gvisor`` (none by default).
    gvisor_warm_pool: dict[str, int] = Field(default_factory=dict)
    subnet: str = "10.11.0.0/16"
    # The interface sandboxes may reach the outside through (masqueraded), as each one's egress policy
    # allows; None: no sandbox has any route out.
    egress_interface: str | None = None


class ProxySettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = 49983
    domain: str = "localhost"


class TemplateSettings(BaseModel):
    cache_dir: Path = Path("/var/cache/hutch")
    # Build and serve ``code-interpreter-v1`` (Jupyter; about a minute to build once, ~0.7 GB on disk).
    code_interpreter: bool = True
    # Template builds: at most this many at once; each step's sandbox gets a sparse disk of this size and
    # may run this long.
    max_parallel_builds: int = 2
    build_disk_mb: int = 8192
    build_step_timeout_s: float = 3600
    # Egress of build sandboxes (through ``runtime.egress_interface``; none without one): anything, or
    # only ``build_allow_out`` (addresses, CIDRs, host names like ``pypi.org``, ``*.debian.org``).
    build_internet: bool = True
    build_allow_out: list[str] = Field(default_factory=list)
    # A CA bundle that build steps trust too (for networks that inspect TLS), e.g. the host's
    # /etc/ssl/certs/ca-certificates.crt.
    build_ca_bundle: Path | None = None
    # The largest ``COPY`` upload, and registries reached over plain HTTP (loopback ones always are).
    max_upload_mb: int = 4096
    insecure_registries: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Everything configurable, by component."""

    model_config = SettingsConfigDict(env_prefix="HUTCH_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("/var/lib/hutch")
    dev: bool = False
    api: ApiSettings = Field(default_factory=ApiSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)

    @property
    def catalog_url(self) -> str:
        return self.catalog.url or f"sqlite+aiosqlite:///{self.data_dir / 'hutch.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls)


class _TomlSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``HUTCH_CONFIG`` (if any)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data().get(field_name), field_name, False

    def _data(self) -> dict[str, Any]:
        path = os.environ.get("HUTCH_CONFIG")
        if not path:
            return {}
        with open(path, "rb") as f:
            return tomllib.load(f)

    def __call__(self) -> dict[str, Any]:
        return self._data()
