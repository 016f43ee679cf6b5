"""Sandbox spans and usage per day: spans open and close as sandbox rows start, pause, resume, get lost and
go (whichever way the row changes), and sum into sandbox-hours and the most running at once per UTC day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from hutch.catalog import Catalog
from hutch.catalog.models import SandboxSpan
from hutch.catalog.repos import nodes, sandboxes, spans, teams
from hutch.catalog.usage import Day, per_day
from tests.catalog.test_nodes import NOW, node, register
from tests.catalog.test_sandboxes import add, make_team, row

DAY = date(2026, 3, 10)
MIDNIGHT = datetime(2026, 3, 10, tzinfo=UTC)


def span(start_h: float, end_h: float | None) -> SandboxSpan:
    end = None if end_h is None else MIDNIGHT + timedelta(hours=end_h)
    return SandboxSpan(
        team_id="t", sandbox_id="s", started_at=MIDNIGHT + timedelta(hours=start_h), ended_at=end
    )


async def _spans(catalog: Catalog, sandbox_id: str) -> list[SandboxSpan]:
    async with catalog.transaction() as session:
        statement = (
            select(SandboxSpan).where(SandboxSpan.sandbox_id == sandbox_id).order_by(SandboxSpan.started_at)
        )
        return list(await session.scalars(statement))


def test_hours_and_the_most_at_once_per_day():
    found = [span(1, 3), span(2, 4), span(4, 5), span(23, 26), span(-5, 0.5)]
    first, second = per_day(found, first=DAY, last=DAY + timedelta(days=1), now=MIDNIGHT + timedelta(days=3))
    assert first == Day(DAY, 2 + 2 + 1 + 1 + 0.5, 2)  # 4 → 5 starts as 2 → 4 ends: not at once
    assert second == Day(DAY + timedelta(days=1), 2, 1)


def test_an_open_span_runs_until_now_and_days_without_any_are_zero():
    days = per_day(
        [span(10, None)], first=DAY - timedelta(days=1), last=DAY, now=MIDNIGHT + timedelta(hours=12)
    )
    assert days == [Day(DAY - timedelta(days=1), 0, 0), Day(DAY, 2, 1)]


def test_spans_outside_the_window_count_nothing():
    days = per_day([span(-48, -30), span(50, 60)], first=DAY, last=DAY, now=MIDNIGHT + timedelta(days=5))
    assert days == [Day(DAY, 0, 0)]


async def test_a_sandbox_opens_and_closes_spans_as_it_runs_pauses_and_goes(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    await add(catalog, row("s1", team))
    [opened] = await _spans(catalog, "s1")
    assert opened.team_id == team and opened.ended_at is None
    for state in ("paused", "running", "paused", "paused", "running"):
        async with catalog.transaction() as session:
            (await sandboxes.get_or_raise(session, team_id=team, sandbox_id="s1")).state = state
    found = await _spans(catalog, "s1")
    assert len(found) == 3 and [s.ended_at is None for s in found] == [False, False, True]
    async with catalog.transaction() as session:
        assert await sandboxes.remove(session, "s1")
    assert all(s.ended_at is not None for s in await _spans(catalog, "s1"))


async def test_a_paused_sandbox_added_opens_no_span(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    await add(catalog, row("s2", team, state="paused"))
    assert await _spans(catalog, "s2") == []


async def test_a_lost_node_closes_the_spans_of_its_sandboxes(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    await register(catalog, node("n1"))
    await add(catalog, row("s3", team, node_id="n1"))
    async with catalog.transaction() as session:
        assert await nodes.mark_lost(session, silent_since=NOW + timedelta(seconds=1)) == ["n1"]
    [closed] = await _spans(catalog, "s3")
    assert closed.ended_at is not None


async def test_spans_go_with_their_team_and_after_the_retention(catalog: Catalog) -> None:
    team = await make_team(catalog, "a")
    await add(catalog, row("s4", team), row("s5", team))
    async with catalog.transaction() as session:
        await sandboxes.remove(session, "s4")
        assert await spans.prune(session, ended_before=datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert await _spans(catalog, "s4") == [] and len(await _spans(catalog, "s5")) == 1
    async with catalog.transaction() as session:
        await teams.remove(session, await teams.get(session, team))
    assert await _spans(catalog, "s5") == []
