"""What commands print: JSON for machines (``--json``, no markup), rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Piped output is not cut to 80 columns: the lines stay whole for grep and less.
console = Console(width=None if sys.stdout.isatty() else 200)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (no markup) instead of a table.")]


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str) -> None:
    """``rows`` under ``columns``, or the line ``empty`` when there are none."""
    rows = list(rows)
    if not rows:
        console.print(empty)
        return
    grid = Table(box=None, header_style="bold")
    for index, column in enumerate(columns):
        # Ids stay whole (people copy them); the other columns wrap when the terminal is narrow.
        grid.add_column(column, no_wrap=index == 0)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(grid)


def short_time(value: str | None) -> str:
    """``2026-01-01T10:00:00.123456Z`` as ``2026-01-01 10:00:00``."""
    return "" if not value else value.replace("T", " ")[:19]
