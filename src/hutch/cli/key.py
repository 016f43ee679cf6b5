"""``hutch key create|ls|revoke``: the team's API keys (``/api-keys``); ``hutch key create --team NAME``
makes a key for any team, with the operator key (``/admin/teams/{id}/keys``)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import team as team_commands
from .client import Api, segment
from .output import JsonOption, console, emit_json, short_time, table

app = typer.Typer(help="Create, list and revoke the team's API keys.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name to tell the key apart.")] = "Unnamed API key",
    team: Annotated[
        str | None, typer.Option(help="A key for this team, made with the operator key (operator only).")
    ] = None,
    data_dir: team_commands.DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it: this is the only time it is shown."""
    if team is None:
        with Api(ctx.obj) as api:
            created = api.json("POST", "/api-keys", json={"name": name})
    else:
        with Api.as_operator(ctx.obj, data_dir) as api:
            path = f"/admin/teams/{segment(team_commands.team_id(api, team))}/keys"
            created = api.json("POST", path, json={"name": name})
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
