"""``hutch status``: whether the API answers, how many sandboxes run, and the URLs in use."""

from __future__ import annotations

import httpx
import typer

from .client import Api, Connection
from .output import JsonOption, console, emit_json


def _healthy(connection: Connection) -> bool:
    try:
        return httpx.get(f"{connection.api_url}/health", timeout=5).status_code < 300
    except httpx.TransportError:
        return False


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show whether the API is up, how many sandboxes run and the URLs in use."""
    connection: Connection = ctx.obj
    up = _healthy(connection)
    running: int | None = None
    if up and connection.api_key:
        with Api(connection) as api:
            running = sum(1 for _ in api.pages("/v2/sandboxes", {"state": "running"}))
    if as_json:
        emit_json(
            {
                "apiUp": up,
                "apiUrl": connection.api_url,
                "sandboxUrl": connection.sandbox_url,
                "running": running,
            }
        )
    else:
        console.print(f"API        {connection.api_url}  " + ("[green]up[/]" if up else "[red]down[/]"))
        console.print(f"proxy      {connection.sandbox_url or '(from E2B_DOMAIN)'}", highlight=False)
        count = running if running is not None else "unknown (no API key)" if up else "unknown"
        console.print(f"sandboxes  {count} running", highlight=False)
    if not up:
        raise typer.Exit(1)
