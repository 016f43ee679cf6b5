"""``hutch status``: whether the API answers, how many sandboxes run, and the URLs in use."""

from __future__ import annotations

import ssl
from collections import Counter
from typing import Any

import httpx
import typer

from ..config import Settings
from ..secret_files import OPERATOR_KEY_HEADER, operator_key_path
from .client import Api, Connection
from .output import JsonOption, console, emit_json


def _healthy(connection: Connection) -> bool:
    try:
        return httpx.get(f"{connection.api_url}/health", timeout=5).status_code < 300
    except httpx.TransportError:
        return False


def _nodes(connection: Connection) -> list[dict[str, Any]] | None:
    """The cluster's nodes, if this machine can read the operator key; None otherwise."""
    settings = Settings()
    try:
        key = operator_key_path(settings.data_dir, settings.api.operator_key_file).read_bytes().hex()
    except OSError:
        return None
    try:
        response = httpx.get(
            f"{connection.api_url}/nodes",
            headers={OPERATOR_KEY_HEADER: key},
            timeout=5,
            verify=ssl.create_default_context(),  # the system's store, which holds the local authority
        )
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show whether the API is up, how many sandboxes run, the URLs in use, and a cluster's nodes."""
    connection: Connection = ctx.obj
    up = _healthy(connection)
    running: int | None = None
    nodes: list[dict[str, Any]] | None = None
    if up and connection.api_key:
        with Api(connection) as api:
            running = sum(1 for _ in api.pages("/v2/sandboxes", {"state": "running"}))
    if up:
        nodes = _nodes(connection)
    if as_json:
        emit_json(
            {
                "apiUp": up,
                "apiUrl": connection.api_url,
                "sandboxUrl": connection.sandbox_url,
                "running": running,
                "nodes": nodes,
            }
        )
    else:
        console.print(f"API        {connection.api_url}  " + ("[green]up[/]" if up else "[red]down[/]"))
        console.print(f"proxy      {connection.sandbox_url or '(from E2B_DOMAIN)'}", highlight=False)
        count = running if running is not None else "unknown (no API key)" if up else "unknown"
        console.print(f"sandboxes  {count} running", highlight=False)
        if nodes:  # a cluster (one machine has none registered)
            states = Counter(node["status"] for node in nodes)
            summary = ", ".join(f"{number} {state}" for state, number in sorted(states.items()))
            console.print(f"nodes      {len(nodes)}: {summary}", highlight=False)
            for node in nodes:
                console.print(
                    f"  {node['nodeID']}  {node['status']}  {node['sandboxCount']} sandboxes  "
                    f"{node['allocatedMemoryMB']}/{node['memoryMB']} MiB",
                    highlight=False,
                )
    if not up:
        raise typer.Exit(1)
