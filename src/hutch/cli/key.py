"""``hutch key create|ls|revoke``: the team's API keys (``/api-keys``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .client import Api, segment
from .output import JsonOption, console, emit_json, short_time, table

app = typer.Typer(help="Create, list and revoke the team's API keys.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name to tell the key apart.")] = "Unnamed API key",
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it: this is the only time it is shown."""
    with Api(ctx.obj) as api:
        created = api.json("POST", "/api-keys", json={"name": name})
    if as_json:
        emit_json(created)
    else:
        console.print(created["key"], highlight=False)


@app.command("ls")
def list_keys(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the team's keys (masked)."""
    with Api(ctx.obj) as api:
        keys = api.json("GET", "/api-keys")
    if as_json:
        emit_json(keys)
        return
    table(
        ["ID", "NAME", "KEY", "CREATED", "LAST USED"],
        (
            [
                item["id"],
                item["name"],
                f"{item['mask']['prefix']}{item['mask']['maskedValuePrefix']}…"
                f"{item['mask']['maskedValueSuffix']}",
                short_time(item["createdAt"]),
                short_time(item.get("lastUsed")) or "never",
            ]
            for item in keys
        ),
        empty="No keys.",
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id (see key ls).")]
) -> None:
    """Revoke a key: it is refused from the next request on."""
    with Api(ctx.obj) as api:
        api.call("DELETE", f"/api-keys/{segment(key_id)}")
    console.print(f"revoked {key_id}", highlight=False)
