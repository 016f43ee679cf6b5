"""Schema migrations: a fresh database gets every revision, a database that an older Hutch made with
``create_all`` is stamped and upgraded with its rows kept, and the models agree with the revisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from hutch.catalog import Catalog, migrate
from hutch.catalog.db import _async_url
from hutch.catalog.keys import hash_key, mask_key, new_key
from hutch.catalog.models import Base, SandboxRow, Template
from hutch.catalog.repos import teams, templates

# The schema as the ``create_all`` of Hutch before migrations made it (its models, column for column).
OLD = sa.MetaData()
sa.Table(
    "teams",
    OLD,
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), unique=True, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "api_keys",
    OLD,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.ForeignKey("teams.team_id", ondelete="CASCADE"), index=True, nullable=False),
    sa.Column("mask", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "templates",
    OLD,
    sa.Column("template_id", sa.String(255), primary_key=True),
    sa.Column("aliases", sa.JSON, nullable=False),
    sa.Column("rootfs", sa.String(4096), nullable=False),
    sa.Column("default_user", sa.String(255), nullable=False),
    sa.Column("default_workdir", sa.String(4096)),
    sa.Column("env", sa.JSON, nullable=False),
    sa.Column("cpu_count", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("disk_mb", sa.Integer, nullable=False),
    sa.Column("start_cmd", sa.String(8192)),
    sa.Column("ready_cmd", sa.String(8192)),
    sa.Column("public", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "sandboxes",
    OLD,
    sa.Column("sandbox_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.ForeignKey("teams.team_id", ondelete="CASCADE"), nullable=False),
    sa.Column("template_id", sa.String(255), nullable=False),
    sa.Column("alias", sa.String(255)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("cpu_count", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("disk_mb", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_at", sa.DateTime(timezone=True), index=True, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("port_overrides", sa.JSON, nullable=False),
    sa.Column("node_id", sa.String(255), index=True, nullable=False),
    sa.Column("envd_version", sa.String(32), nullable=False),
    sa.Column("envd_access_token", sa.String(255), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("allow_internet_access", sa.Boolean),
    sa.UniqueConstraint("team_id", "idempotency_key", name="uq_sandboxes_team_idempotency_key"),
    sa.Index("ix_sandboxes_team_started", "team_id", "started_at", "sandbox_id"),
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _differences(connection: sa.Connection, metadata: sa.MetaData) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


async def _run(url: str, work) -> object:
    parsed = _async_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def _make_old_catalog(url: str, key: str) -> None:
    """What an older Hutch left: its tables, a team, a key, a template and a sandbox, no alembic_version."""

    def create(connection: sa.Connection) -> None:
        OLD.create_all(connection)
        t = OLD.tables
        connection.execute(t["teams"].insert().values(team_id="t1", name="default", created_at=NOW))
        connection.execute(
            t["api_keys"]
            .insert()
            .values(key_hash=hash_key(key), team_id="t1", mask=mask_key(key), created_at=NOW)
        )
        connection.execute(
            t["templates"]
            .insert()
            .values(
                template_id="base",
                aliases=["b"],
                rootfs="/srv/base",
                default_user="user",
                env={},
                cpu_count=2,
                memory_mb=512,
                disk_mb=1024,
                public=True,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        connection.execute(
            t["sandboxes"]
            .insert()
            .values(
                sandbox_id="s1",
                team_id="t1",
                template_id="base",
                state="running",
                metadata={"k": "v"},
                cpu_count=2,
                memory_mb=512,
                disk_mb=1024,
                started_at=NOW,
                end_at=NOW + timedelta(minutes=5),
                host="10.0.0.2",
                port_overrides={},
                node_id="local",
                envd_version="0.9.1",
                envd_access_token="envd-token",
            )
        )

    await _run(url, create)


async def test_a_fresh_database_gets_every_revision(database_url: str) -> None:
    catalog = await Catalog.open(database_url)
    await catalog.close()
    assert await _run(database_url, migrate.current) == migrate.head()


async def test_the_models_agree_with_the_revisions(database_url: str) -> None:
    catalog = await Catalog.open(database_url)
    await catalog.close()
    assert await _run(database_url, lambda c: _differences(c, Base.metadata)) == []


async def test_the_first_revision_is_the_schema_create_all_made(database_url: str) -> None:
    await _run(database_url, lambda c: command.upgrade(migrate.config(c), migrate.BASELINE))
    assert await _run(database_url, lambda c: _differences(c, OLD)) == []


async def test_a_database_made_before_migrations_is_stamped_and_keeps_its_rows(database_url: str) -> None:
    key = new_key()
    await _make_old_catalog(database_url, key)
    assert await _run(database_url, migrate.current) is None

    catalog = await Catalog.open(database_url)
    try:
        async with catalog.transaction() as session:
            found = await teams.key_with_team(session, key)
            assert found is not None
            stored, team = found
            assert team.team_id == "t1" and team.name == "default"
            assert len(stored.id) == 36 and stored.name == "Unnamed API key"
            assert stored.last_used is None and stored.revoked_at is None
            body = key.removeprefix("e2b_")
            assert (stored.value_length, stored.mask_prefix, stored.mask_suffix) == (40, body[:2], body[-4:])
            template = await templates.find(session, "b")
            assert isinstance(template, Template) and template.team_id is None
            sandbox = await session.get(SandboxRow, "s1")
            assert sandbox is not None and sandbox.metadata_ == {"k": "v"}
            assert sandbox.envd_access_token == "envd-token" and sandbox.traffic_access_token is None
            # New rows work alongside the old ones.
            await teams.add_key(session, team_id="t1", key=new_key())
            assert len(await teams.keys(session, "t1")) == 2
    finally:
        await catalog.close()
    assert await _run(database_url, migrate.current) == migrate.head()
    assert await _run(database_url, lambda c: _differences(c, Base.metadata)) == []


async def test_opening_again_changes_nothing(database_url: str) -> None:
    for _ in range(2):
        catalog = await Catalog.open(database_url)
        async with catalog.transaction() as session:
            if await teams.get_by_name(session, "kept") is None:
                await teams.add(session, name="kept")
        await catalog.close()
    catalog = await Catalog.open(database_url)
    try:
        async with catalog.transaction() as session:
            assert await teams.get_by_name(session, "kept") is not None
    finally:
        await catalog.close()


async def test_every_revision_downgrades_cleanly(database_url: str) -> None:
    catalog = await Catalog.open(database_url)
    await catalog.close()
    await _run(database_url, lambda c: command.downgrade(migrate.config(c), "base"))
    tables = await _run(database_url, lambda c: set(sa.inspect(c).get_table_names()))
    assert tables <= {"alembic_version"}
