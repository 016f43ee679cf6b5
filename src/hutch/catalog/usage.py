"""A team's usage, from the spans its sandboxes ran (``sandbox_spans``).

Spans are kept by the catalog itself, so no caller can forget one: at every flush, a sandbox row added
running, or whose state turns to ``running``, opens a span; one whose state leaves ``running``, or that is
deleted, closes its span. The statements that change many rows without the ORM (deleting a row, marking
a node's sandboxes lost) close their spans themselves (``repos.spans.closing``).

:func:`per_day` sums spans into UTC days: sandbox-hours, and the most sandboxes that ran at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from .models import SandboxRow, SandboxSpan
from .repos import spans

# How long spans are kept after they end.
RETENTION = timedelta(days=90)


# A new row's state before its insert applies the column's default.
_DEFAULT_STATE = SandboxRow.__table__.c.state.default.arg  # type: ignore[union-attr]


class RecordingSession(Session):
    """The catalog's sessions: they keep sandbox spans as rows change (:func:`_record`)."""


@event.listens_for(RecordingSession, "before_flush")
def _record(session: Session, _context: Any, _instances: Any) -> None:
    now = datetime.now(UTC)
    ended: list[str] = []
    for row in session.new:
        if isinstance(row, SandboxRow) and (row.state or _DEFAULT_STATE) == "running":
            session.add(spans.opened(row.team_id, row.sandbox_id, now))
    for row in session.dirty:
        if not isinstance(row, SandboxRow):
            continue
        history = inspect(row).attrs.state.history
        if not history.has_changes():
            continue
        was = history.deleted[0] if history.deleted else None
        if row.state == "running" and was != "running":
            session.add(spans.opened(row.team_id, row.sandbox_id, now))
        elif was == "running" and row.state != "running":
            ended.append(row.sandbox_id)
    ended += [row.sandbox_id for row in session.deleted if isinstance(row, SandboxRow)]
    if ended:
        session.execute(spans.closing(ended, now))


@dataclass(frozen=True)
class Day:
    day: date
    sandbox_hours: float
    peak_running: int


def per_day(found: Iterable[SandboxSpan], *, first: date, last: date, now: datetime) -> list[Day]:
    """Each UTC day from ``first`` to ``last``: the hours sandboxes ran in it (a span still open runs until
    ``now``) and the most that ran at once."""
    days = (last - first).days + 1
    seconds = [0.0] * days
    events: list[list[tuple[datetime, int]]] = [[] for _ in range(days)]
    window_start = datetime.combine(first, time(), UTC)
    window_end = window_start + timedelta(days=days)
    for span in found:
        start = max(span.started_at, window_start)
        end = min(span.ended_at or now, window_end)
        if end <= start:
            continue
        index = (start - window_start).days
        while start < end:
            day_end = window_start + timedelta(days=index + 1)
            piece_end = min(end, day_end)
            seconds[index] += (piece_end - start).total_seconds()
            events[index] += [(start, 1), (piece_end, -1)]
            start, index = piece_end, index + 1
    return [
        Day(first + timedelta(days=index), seconds[index] / 3600, _peak(events[index]))
        for index in range(days)
    ]


def _peak(events: list[tuple[datetime, int]]) -> int:
    """The most spans open at once; one that ends when another starts does not overlap it."""
    running = peak = 0
    for _, change in sorted(events):  # at one moment, ends (-1) come before starts (+1)
        running += change
        peak = max(peak, running)
    return peak
