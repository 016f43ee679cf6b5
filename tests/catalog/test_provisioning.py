"""The first team and key (``hutch up``) and template rows (the template builder)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from hutch.catalog import Catalog, create_api_key, ensure_api_key, register_template
from hutch.catalog.models import ApiKey, Template
from hutch.catalog.repos import teams, templates
from hutch.errors import Conflict


async def test_ensure_api_key_makes_one_key_once(catalog: Catalog) -> None:
    key = await ensure_api_key(catalog)
    assert key is not None and re.fullmatch(r"e2b_[0-9a-f]{40}", key)
    assert await ensure_api_key(catalog) is None

    async with catalog.transaction() as session:
        team = await teams.for_key(session, key)
        assert team is not None and team.name == "default"
        [stored] = list(await session.scalars(select(ApiKey)))
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in (stored.key_hash, stored.mask)
    assert stored.mask.startswith("e2b_") and "…" in stored.mask


async def test_ensure_api_key_stores_a_given_key(catalog: Catalog) -> None:
    assert await ensure_api_key(catalog, team_name="dev", key="e2b_devkey") == "e2b_devkey"
    assert await ensure_api_key(catalog, team_name="dev", key="e2b_devkey") == "e2b_devkey"
    async with catalog.transaction() as session:
        team = await teams.for_key(session, "e2b_devkey")
        assert team is not None and team.name == "dev"
        assert await teams.for_key(session, "e2b_other") is None
    with pytest.raises(Conflict):
        await ensure_api_key(catalog, team_name="someone-else", key="e2b_devkey")


async def test_create_api_key_adds_keys_to_a_team(catalog: Catalog) -> None:
    first = await create_api_key(catalog, team_name="team")
    second = await create_api_key(catalog, team_name="team")
    assert first != second
    async with catalog.transaction() as session:
        one, two = await teams.for_key(session, first), await teams.for_key(session, second)
        assert one is not None and two is not None and one.team_id == two.team_id


async def test_register_template_creates_and_updates(catalog: Catalog) -> None:
    await register_template(catalog, template_id="tpl1", rootfs="/srv/tpl1", aliases=["base"])
    await register_template(
        catalog,
        template_id="tpl1",
        rootfs="/srv/tpl1-v2",
        aliases=["base", "base:v2"],
        env={"LANG": "C.UTF-8"},
        start_cmd="sleep infinity",
        memory_mb=1024,
    )
    async with catalog.transaction() as session:
        [row] = list(await session.scalars(select(Template)))
        assert row.rootfs == "/srv/tpl1-v2" and row.aliases == ["base", "base:v2"]
        assert row.env == {"LANG": "C.UTF-8"} and row.start_cmd == "sleep infinity"
        assert (row.memory_mb, row.cpu_count, row.default_user) == (1024, 2, "user")
        for name in ("tpl1", "base", "base:v2"):
            found = await templates.find(session, name)
            assert found is not None and found.template_id == "tpl1"
        assert await templates.find(session, "nope") is None


async def test_an_alias_moves_to_the_template_registered_last(catalog: Catalog) -> None:
    await register_template(catalog, template_id="old", rootfs="/old", aliases=["base", "legacy"])
    await register_template(catalog, template_id="new", rootfs="/new", aliases=["base"])
    async with catalog.transaction() as session:
        found = await templates.find(session, "base")
        assert found is not None and found.template_id == "new"
        old = await templates.find(session, "old")
        assert old is not None and old.aliases == ["legacy"]
        assert await templates.names(session) == ["base", "legacy", "new", "old"]


async def test_aliases_are_found_among_many_templates_whatever_they_hold(catalog: Catalog) -> None:
    """An alias is found by the rows whose text holds it (snapshots make templates many), whatever
    characters it has: SQL's wildcards, quotes, backslashes, letters JSON escapes; a near miss is not it."""
    odd = ["with_under%score", 'a"quote', "back\\slash", "grüße", "x!y", "bas"]
    for index in range(30):
        await register_template(catalog, template_id=f"t{index}", rootfs=f"/t{index}", aliases=[f"a{index}"])
    await register_template(catalog, template_id="odd", rootfs="/odd", aliases=odd)
    near = ["withxunderyscore", "base1"]
    await register_template(catalog, template_id="near", rootfs="/near", aliases=near)
    loaded: list[Template] = []

    def read(row: Template, _context: object) -> None:
        loaded.append(row)

    event.listen(Template, "load", read)
    try:
        for name in [*odd, "a7", "a29"]:
            loaded.clear()
            async with catalog.transaction() as session:
                found = await templates.find(session, name)
            assert found is not None and name in found.aliases, name
            assert loaded == [found], f"{name}: {len(loaded)} rows read"
    finally:
        event.remove(Template, "load", read)
    async with catalog.transaction() as session:
        for name in ("with_under_score", "base", "a", "grüß", '"bas"'):
            assert await templates.find(session, name) is None, name


async def test_a_template_is_found_in_one_query_and_an_id_comes_before_an_alias(catalog: Catalog) -> None:
    await register_template(catalog, template_id="first", rootfs="/first", aliases=["second"])
    await register_template(catalog, template_id="second", rootfs="/second", aliases=["other"])
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(catalog.engine.sync_engine, "before_cursor_execute", record)
    try:
        for name, template_id in (("second", "second"), ("other", "second"), ("first", "first")):
            statements.clear()
            async with catalog.transaction() as session:
                found = await templates.find(session, name)
            assert found is not None and found.template_id == template_id, name
            assert len(statements) == 1, statements
    finally:
        event.remove(catalog.engine.sync_engine, "before_cursor_execute", record)


async def test_a_revoked_key_is_not_stored_again(catalog: Catalog) -> None:
    key = await create_api_key(catalog, team_name="team")
    spare = await create_api_key(catalog, team_name="team")
    async with catalog.transaction() as session:
        stored = await teams.stored_key(session, key)
        assert stored is not None
        await teams.revoke_key(session, stored.key_hash, at=datetime.now(UTC))
    # As `hutch up` does with the key in its .env.local: a revoked one does not come back.
    assert await ensure_api_key(catalog, team_name="team", key=key) is None
    async with catalog.transaction() as session:
        assert await teams.for_key(session, key) is None
        assert await teams.for_key(session, spare) is not None
        team = await teams.get_by_name(session, "team")
        assert team is not None
        assert [row.key_hash for row in await teams.keys(session, team.team_id)] != [stored.key_hash]
        assert await teams.count_keys(session, team.team_id) == 1
        with pytest.raises(Conflict):
            await teams.add_key(session, team_id=team.team_id, key=key)
