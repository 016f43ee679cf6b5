"""The template and build queries: a team's templates, builds per template and running per team, the
images in use, tags that name builds, and log entries paged by offset and level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hutch.catalog import Catalog
from hutch.catalog.models import Template, TemplateBuild, TemplateBuildLog
from hutch.catalog.repos import teams, template_builds, templates
from hutch.errors import NotFound

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _team(catalog: Catalog, name: str) -> str:
    async with catalog.transaction() as session:
        return (await teams.add(session, name=name)).team_id


async def _template(catalog: Catalog, template_id: str, team_id: str | None, *, rootfs: str = "") -> None:
    async with catalog.transaction() as session:
        await templates.add(session, Template(template_id=template_id, rootfs=rootfs, team_id=team_id))


async def _build(catalog: Catalog, build_id: str, template_id: str, **fields) -> None:
    async with catalog.transaction() as session:
        await template_builds.add(
            session, TemplateBuild(build_id=build_id, template_id=template_id, **fields)
        )


async def test_a_teams_templates_are_counted_and_listed(catalog: Catalog) -> None:
    team, other = await _team(catalog, "team"), await _team(catalog, "other")
    await _template(catalog, "builtin", None)
    await _template(catalog, "own", team)
    await _template(catalog, "theirs", other)
    async with catalog.transaction() as session:
        snapshot = await templates.add(
            session, Template(template_id="snap", rootfs="", team_id=team, snapshot_of="s")
        )
        assert snapshot.template_id == "snap"
    async with catalog.transaction() as session:
        assert sorted(await templates.owned(session, team)) == ["own", "snap"]
        assert await templates.count_owned(session, team) == 2
        assert await templates.count_owned(session, "nobody") == 0
        assert [row.template_id for row in await templates.all_templates(session)] == [
            "builtin",
            "own",
            "theirs",
            "snap",
        ]
        found = await templates.get(session, "own")
        assert found is not None and found.team_id == team
        assert await templates.get(session, "missing") is None
        await templates.remove(session, found)
    async with catalog.transaction() as session:
        assert await templates.get(session, "own") is None


async def test_builds_are_found_only_under_their_template(catalog: Catalog) -> None:
    team = await _team(catalog, "team")
    await _template(catalog, "one", team)
    await _template(catalog, "two", team)
    await _build(catalog, "b1", "one", created_at=T0)
    await _build(catalog, "b2", "one", created_at=T0 + timedelta(seconds=1))
    await _build(catalog, "b3", "two")
    async with catalog.transaction() as session:
        assert (
            await template_builds.get_or_raise(session, template_id="one", build_id="b1")
        ).build_id == "b1"
        with pytest.raises(NotFound):
            await template_builds.get_or_raise(session, template_id="two", build_id="b1")
        with pytest.raises(NotFound):
            await template_builds.get_or_raise(session, template_id="one", build_id="missing")
        assert [build.build_id for build in await template_builds.of_template(session, "one")] == ["b2", "b1"]


async def test_running_builds_and_images_in_use(catalog: Catalog) -> None:
    team, other = await _team(catalog, "team"), await _team(catalog, "other")
    await _template(catalog, "mine", team, rootfs="/layers/a:/layers/base")
    await _template(catalog, "theirs", other)
    await _build(catalog, "b1", "mine", status="building")
    await _build(catalog, "b2", "mine", status="ready", rootfs="/layers/b:/layers/base")
    await _build(catalog, "b3", "theirs", status="building")
    await _build(catalog, "b4", "theirs", status="waiting")
    async with catalog.transaction() as session:
        assert sorted(build.build_id for build in await template_builds.building(session)) == ["b1", "b3"]
        assert await template_builds.count_building(session, team) == 1
        assert await template_builds.count_building(session, "nobody") == 0
        assert sorted(await template_builds.rootfs_in_use(session)) == [
            "",
            "/layers/a:/layers/base",
            "/layers/b:/layers/base",
        ]


async def test_tags_name_one_build_each(catalog: Catalog) -> None:
    team = await _team(catalog, "team")
    await _template(catalog, "app", team)
    await _build(catalog, "b1", "app")
    await _build(catalog, "b2", "app")
    async with catalog.transaction() as session:
        first = await template_builds.set_tag(session, template_id="app", name="v1", build_id="b1")
        await template_builds.set_tag(session, template_id="app", name="latest", build_id="b1")
    async with catalog.transaction() as session:
        moved = await template_builds.set_tag(session, template_id="app", name="v1", build_id="b2")
        assert moved.build_id == "b2" and moved.created_at >= first.created_at
    async with catalog.transaction() as session:
        assert [(row.tag, row.build_id) for row in await template_builds.tags(session, "app")] == [
            ("latest", "b1"),
            ("v1", "b2"),
        ]
        await template_builds.remove_tags(session, "app", ["v1", "unknown"])
    async with catalog.transaction() as session:
        assert await template_builds.tag(session, "app", "v1") is None
        latest = await template_builds.tag(session, "app", "latest")
        assert latest is not None and latest.build_id == "b1"


async def test_log_entries_count_on_and_page_by_offset_and_level(catalog: Catalog) -> None:
    team = await _team(catalog, "team")
    await _template(catalog, "app", team)
    await _build(catalog, "b1", "app")
    levels = ["info", "debug", "error", "info", "warn"]
    entries = [
        TemplateBuildLog(build_id="b1", seq=seq, timestamp=T0, level=level, message=f"line {seq}")
        for seq, level in enumerate(levels)
    ]
    async with catalog.transaction() as session:
        await template_builds.add_log_entries(session, "b1", entries[:3])
        await template_builds.add_log_entries(session, "b1", [])
    async with catalog.transaction() as session:
        await template_builds.add_log_entries(session, "b1", entries[3:])
    async with catalog.transaction() as session:
        build = await template_builds.get(session, "b1")
        assert build is not None and build.log_count == 5
        page = await template_builds.log_entries(session, "b1", offset=1, limit=2)
        assert [entry.message for entry in page] == ["line 1", "line 2"]
        loud = await template_builds.log_entries(session, "b1", offset=0, limit=10, levels=("warn", "error"))
        assert [entry.seq for entry in loud] == [2, 4]
        assert await template_builds.log_entries(session, "other", offset=0, limit=10) == []
