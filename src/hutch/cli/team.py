"""``hutch team create|ls|rm``: the operator's teams (``/admin/teams``), each with its own quotas. These
commands send the operator key that ``hutch up`` keeps in its data directory (readable by root only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .client import Api, fail, segment
from .output import JsonOption, console, emit_json, short_time, table

app = typer.Typer(help="Create, list and remove teams (operator only).", no_args_is_help=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(help="The stack's data directory, where its operator key is (default: HUTCH_DATA_DIR)."),
]


def team_id(api: Api, name: str) -> str:
    """The id of the team named ``name`` (the command fails if there is none)."""
    for team in api.json("GET", "/admin/teams"):
        if team["name"] == name:
            return team["teamID"]
    fail(f"no team named {name!r}")


def _quotas(pairs: list[str]) -> dict[str, int]:
    """``["api_keys=5", …]`` as ``{"api_keys": 5, …}``; the API says which names exist."""
    quotas: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().isdigit():
            fail(f"--quota takes name=number, not {pair!r}")
        quotas[name.strip()] = int(value)
    return quotas


def _custom(team: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(team["customQuotas"].items())) or "defaults"


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The team's name.")],
    quota: Annotated[
        list[str] | None,
        typer.Option(help="A limit of the team, name=value (e.g. concurrent_sandboxes=10); repeatable."),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a team (then give it a key: hutch key create --team NAME)."""
    with Api.as_operator(ctx.obj, data_dir) as api:
        team = api.json("POST", "/admin/teams", json={"name": name, "quotas": _quotas(quota or [])})
    if as_json:
        emit_json(team)
    else:
        console.print(f"created team {team['name']} ({team['teamID']}): {_custom(team)}", highlight=False)


@app.command("ls")
def list_teams(ctx: typer.Context, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List the teams, their own quotas and how many sandboxes each holds."""
    with Api.as_operator(ctx.obj, data_dir) as api:
        teams = api.json("GET", "/admin/teams")
    if as_json:
        emit_json(teams)
        return
    table(
        ["NAME", "ID", "SANDBOXES", "QUOTAS", "CREATED"],
        (
            [team["name"], team["teamID"], team["sandboxes"], _custom(team), short_time(team["createdAt"])]
            for team in teams
        ),
        empty="No teams.",
    )


ForceOption = Annotated[bool, typer.Option("--force", help="Kill the team's sandboxes rather than refuse.")]


@app.command("rm")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The team's name.")],
    force: ForceOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Remove a team with its keys, templates and snapshots; refused while it has sandboxes (--force kills
    them)."""
    with Api.as_operator(ctx.obj, data_dir) as api:
        path = f"/admin/teams/{segment(team_id(api, name))}"
        api.call("DELETE", path, params={"force": str(force).lower()})
    console.print(f"removed team {name}", highlight=False)
